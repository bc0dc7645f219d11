//! Model-based test: random operation sequences give identical results on `EncryptedStore` and
//! on `MemoryStore`, the plain reference.
//!
//! Values come from small pools (and include empty strings), so that lookups hit, rotations,
//! conflicts and id collisions happen in most sequences. The encrypted store is dropped and
//! reopened at random points, so that everything it answers after a reopen comes from its files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tokenvault::{EncryptedStore, Error, MemoryStore, Token, TokenStore};

/// A token described by pool values. Its `Debug` shows the values (they are test data), which
/// `Token`'s own `Debug` deliberately hides; a failing case is readable that way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Spec {
    id: Option<&'static str>,
    user_name: Option<&'static str>,
    client_id: Option<&'static str>,
    client_secret: Option<&'static str>,
    refresh_token: Option<&'static str>,
    access_token: Option<&'static str>,
    grant_token: Option<&'static str>,
    expiry_time: Option<i64>,
    redirect_url: Option<&'static str>,
    api_domain: Option<&'static str>,
}

impl Spec {
    fn token(&self) -> Token {
        let own = |v: Option<&str>| v.map(str::to_owned);
        Token {
            id: own(self.id),
            user_name: own(self.user_name),
            client_id: own(self.client_id),
            client_secret: own(self.client_secret),
            refresh_token: own(self.refresh_token),
            access_token: own(self.access_token),
            grant_token: own(self.grant_token),
            expiry_time: self.expiry_time,
            redirect_url: own(self.redirect_url),
            api_domain: own(self.api_domain),
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Save(Spec),
    /// `save_tokens`: all of them in one commit, or none.
    SaveBatch(Vec<Spec>),
    Find(Spec),
    Delete(&'static str),
    GetTokens,
    DeleteTokens,
    FindById(&'static str),
    Purge(i64),
    /// Drops the encrypted store and opens it again; the memory store is untouched.
    Reopen,
}

/// A token with every field visible, for comparing and printing results.
#[derive(Debug, PartialEq, Eq)]
struct Shown {
    id: Option<String>,
    user_name: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
    access_token: Option<String>,
    grant_token: Option<String>,
    expiry_time: Option<i64>,
    redirect_url: Option<String>,
    api_domain: Option<String>,
}

impl From<Token> for Shown {
    fn from(t: Token) -> Self {
        Shown {
            id: t.id,
            user_name: t.user_name,
            client_id: t.client_id,
            client_secret: t.client_secret,
            refresh_token: t.refresh_token,
            access_token: t.access_token,
            grant_token: t.grant_token,
            expiry_time: t.expiry_time,
            redirect_url: t.redirect_url,
            api_domain: t.api_domain,
        }
    }
}

/// What one operation returned, in a form both stores' answers can be compared in.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// A save's result, and the caller's token after it.
    Saved(Result<(), Failure>, Shown),
    /// A batch save's result, and the caller's tokens after it.
    SavedBatch(Result<(), Failure>, Vec<Shown>),
    Found(Result<Option<Shown>, Failure>),
    Listed(Result<Vec<Shown>, Failure>),
    Done(Result<(), Failure>),
    Purged(Result<usize, Failure>),
}

/// An error, compared by variant and by the details the contract fixes (which field conflicts
/// and with whom, which id is missing); messages are free to differ.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    Conflict {
        field: &'static str,
        held_by: String,
    },
    NotFound {
        id: String,
    },
    InvalidToken,
    /// Anything else: never expected from either store here.
    Other(String),
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        match err {
            Error::Conflict { field, held_by } => Failure::Conflict { field, held_by },
            Error::NotFound { id } => Failure::NotFound { id },
            Error::InvalidToken { .. } => Failure::InvalidToken,
            other => Failure::Other(format!("{other:?}: {other}")),
        }
    }
}

/// The operations, with `purge_expired` (inherent on each store) brought under one name.
trait Subject: TokenStore {
    fn purge(&self, now_ms: i64) -> Result<usize, Error>;
    fn save_batch(&self, tokens: &mut [Token]) -> Result<(), Error>;
}

impl Subject for EncryptedStore {
    fn purge(&self, now_ms: i64) -> Result<usize, Error> {
        self.purge_expired(now_ms)
    }

    fn save_batch(&self, tokens: &mut [Token]) -> Result<(), Error> {
        self.save_tokens(tokens)
    }
}

impl Subject for MemoryStore {
    fn purge(&self, now_ms: i64) -> Result<usize, Error> {
        Ok(self.purge_expired(now_ms))
    }

    fn save_batch(&self, tokens: &mut [Token]) -> Result<(), Error> {
        self.save_tokens(tokens)
    }
}

fn listed(store: &dyn Subject) -> Outcome {
    let tokens = store.get_tokens();
    Outcome::Listed(
        tokens
            .map(|ts| ts.into_iter().map(Shown::from).collect())
            .map_err(Failure::from),
    )
}

fn apply(store: &dyn Subject, op: &Op) -> Outcome {
    match op {
        Op::Save(spec) => {
            let mut token = spec.token();
            let result = store.save_token(&mut token).map_err(Failure::from);
            Outcome::Saved(result, Shown::from(token))
        }
        Op::SaveBatch(specs) => {
            let mut tokens: Vec<Token> = specs.iter().map(Spec::token).collect();
            let result = store.save_batch(&mut tokens).map_err(Failure::from);
            Outcome::SavedBatch(result, tokens.into_iter().map(Shown::from).collect())
        }
        Op::Find(spec) => {
            let found = store.find_token(&spec.token());
            Outcome::Found(found.map(|t| t.map(Shown::from)).map_err(Failure::from))
        }
        Op::FindById(id) => {
            let found = store.find_token_by_id(id);
            Outcome::Found(found.map(|t| t.map(Shown::from)).map_err(Failure::from))
        }
        Op::Delete(id) => Outcome::Done(store.delete_token(id).map_err(Failure::from)),
        Op::DeleteTokens => Outcome::Done(store.delete_tokens().map_err(Failure::from)),
        Op::GetTokens => listed(store),
        Op::Purge(now) => Outcome::Purged(store.purge(*now).map_err(Failure::from)),
        Op::Reopen => Outcome::Done(Ok(())),
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies: small pools, so that values collide often.

fn pick(
    pool: &'static [&'static str],
    present: f64,
) -> impl Strategy<Value = Option<&'static str>> {
    prop::option::weighted(present, prop::sample::select(pool))
}

fn spec(id_present: f64) -> impl Strategy<Value = Spec> {
    let keys = (
        // The largest sequential id, after which the stores have no id left to assign.
        pick(
            &[
                "1",
                "2",
                "3",
                "4",
                "5",
                "x",
                "05",
                "",
                "18446744073709551615",
            ],
            id_present,
        ),
        pick(&["u1", "u2", "u3", ""], 0.5),
        pick(&["c1", "c2", ""], 0.5),
        pick(&["s1", "s2", ""], 0.5),
    );
    let tokens = (
        pick(&["r1", "r2", "r3", ""], 0.4),
        pick(&["a1", "a2", "a3", "a4", ""], 0.7),
        pick(&["g1", "g2", ""], 0.3),
    );
    let rest = (
        prop::option::weighted(0.8, prop::sample::select(&[100_i64, 200, 300][..])),
        pick(&["https://a.example/cb", ""], 0.3),
        pick(&["https://www.zohoapis.eu", ""], 0.3),
    );
    (keys, tokens, rest).prop_map(
        |((id, user, cid, secret), (refresh, access, grant), rest)| Spec {
            id,
            user_name: user,
            client_id: cid,
            client_secret: secret,
            refresh_token: refresh,
            access_token: access,
            grant_token: grant,
            expiry_time: rest.0,
            redirect_url: rest.1,
            api_domain: rest.2,
        },
    )
}

/// A query aimed at one lookup path, so that most finds hit something; plus fully random ones.
fn query() -> impl Strategy<Value = Spec> {
    let one = |pool: &'static [&'static str]| prop::sample::select(pool).prop_map(Some);
    prop_oneof![
        2 => spec(0.1),
        1 => one(&["u1", "u2", "u3"]).prop_map(|user_name| Spec { user_name, ..Spec::default() }),
        1 => one(&["a1", "a2", "a3"])
            .prop_map(|access_token| Spec { access_token, ..Spec::default() }),
        1 => (one(&["c1", "c2"]), one(&["s1", "s2"]), one(&["r1", "r2", "r3"])).prop_map(
            |(client_id, client_secret, refresh_token)| Spec {
                client_id,
                client_secret,
                refresh_token,
                ..Spec::default()
            }
        ),
        1 => (one(&["c1", "c2"]), one(&["s1", "s2"]), one(&["g1", "g2"])).prop_map(
            |(client_id, client_secret, grant_token)| Spec {
                client_id,
                client_secret,
                grant_token,
                ..Spec::default()
            }
        ),
    ]
}

fn any_id() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&["1", "2", "3", "4", "5", "6", "7", "x", "05", ""][..])
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => spec(0.3).prop_map(Op::Save),
        2 => prop::collection::vec(spec(0.3), 0..6).prop_map(Op::SaveBatch),
        5 => query().prop_map(Op::Find),
        2 => any_id().prop_map(Op::Delete),
        2 => any_id().prop_map(Op::FindById),
        1 => Just(Op::GetTokens),
        1 => Just(Op::DeleteTokens),
        1 => prop::sample::select(&[50_i64, 150, 200, 250, 350][..]).prop_map(Op::Purge),
        2 => Just(Op::Reopen),
    ]
}

// ---------------------------------------------------------------------------------------------
// The runner

/// Applies `ops` to both stores and requires identical outcomes at every step, identical
/// contents after every step, and an encrypted store that verifies clean at the end.
fn check(ops: &[Op], open: fn(&Path) -> EncryptedStore) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let mut encrypted = open(&path);
    let memory = MemoryStore::new();

    for (step, op) in ops.iter().enumerate() {
        if let Op::Reopen = op {
            drop(encrypted);
            encrypted = open(&path);
        }
        let got = apply(&encrypted, op);
        let want = apply(&memory, op);
        prop_assert_eq!(got, want, "step {} {:?}", step, op);
        prop_assert_eq!(
            listed(&encrypted),
            listed(&memory),
            "contents after step {}",
            step
        );
    }

    let report = encrypted.verify().unwrap();
    prop_assert!(report.is_clean(), "verify after the sequence: {:?}", report);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Buffered durability: the bulk of the cases, cheap enough for many.
    #[test]
    fn encrypted_store_matches_the_model(ops in prop::collection::vec(op(), 1..64)) {
        check(&ops, common::open_buffered)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Immediate durability (the default), which takes another commit path; fewer cases, since
    /// each write syncs.
    #[test]
    fn encrypted_store_matches_the_model_with_immediate_durability(
        ops in prop::collection::vec(op(), 1..40)
    ) {
        check(&ops, common::open)?;
    }
}
