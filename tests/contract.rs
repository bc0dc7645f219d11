//! The token-store contract, case by case, checked on both stores.
//!
//! Every case is a function of a store; `contract_cases!` runs each one on a fresh
//! `EncryptedStore` (fast KDF, temporary directory) and on a fresh `MemoryStore`, so the two
//! implementations are held to the same rules independently of each other.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use tokenvault::{EncryptedStore, Error, MemoryStore, Token, TokenStore};

/// What the cases need from a store: the six operations, and `purge_expired`, which is an
/// inherent method with a different signature on each store.
trait Subject: TokenStore {
    fn purge(&self, now_ms: i64) -> usize;
}

impl Subject for EncryptedStore {
    fn purge(&self, now_ms: i64) -> usize {
        self.purge_expired(now_ms).expect("purge_expired")
    }
}

impl Subject for MemoryStore {
    fn purge(&self, now_ms: i64) -> usize {
        self.purge_expired(now_ms)
    }
}

/// Defines one test per case and store: `encrypted::<case>` and `memory::<case>`.
macro_rules! contract_cases {
    ($($case:ident),* $(,)?) => {
        mod encrypted {
            $(
                #[test]
                fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = super::common::open(&dir.path().join("store"));
                    super::$case(&store);
                }
            )*
        }

        mod memory {
            $(
                #[test]
                fn $case() {
                    super::$case(&tokenvault::MemoryStore::new());
                }
            )*
        }
    };
}

contract_cases!(
    find_by_user_name,
    user_name_wins_over_every_other_key,
    unknown_user_name_does_not_fall_back,
    find_by_access_token_without_client,
    access_token_is_ignored_when_the_client_is_given,
    find_by_grant_token_with_client,
    grant_token_wins_over_refresh_token,
    unknown_grant_token_does_not_fall_back,
    find_by_refresh_token_with_client,
    half_a_client_gives_no_key,
    no_key_gives_none,
    nothing_matches_in_an_empty_store,
    query_fields_win_and_the_rest_come_from_storage,
    empty_query_fields_count_as_absent,
    empty_client_fields_count_as_absent,
    empty_grant_token_falls_to_refresh_token,
    empty_saved_fields_are_stored_as_none,
    empty_fields_in_an_update_keep_the_stored_values,
    empty_id_counts_as_absent,
    update_by_id_fills_absent_fields,
    update_by_id_of_a_missing_record_inserts_under_it,
    id_names_the_record_even_when_a_lookup_would_match,
    update_by_user_name_lookup,
    update_by_access_token_lookup,
    update_by_grant_token_lookup,
    update_by_refresh_token_lookup,
    update_needs_no_credential,
    no_usable_key_inserts,
    lookup_miss_inserts,
    new_token_without_credential_is_rejected,
    any_one_credential_suffices,
    saved_token_is_exactly_what_is_stored,
    ids_are_sequential,
    ids_are_never_reused_after_delete,
    ids_are_never_reused_after_delete_tokens,
    ids_are_never_reused_after_purge,
    caller_ids_are_skipped,
    non_sequential_caller_ids_leave_the_counter_alone,
    used_up_ids_are_an_error_not_a_panic,
    rotating_user_name_moves_its_index_entry,
    rotating_access_token_moves_its_index_entry,
    rotating_refresh_token_moves_its_index_entry,
    rotating_grant_token_moves_its_index_entry,
    rotation_by_lookup_moves_the_index_entry,
    delete_removes_every_index_entry,
    delete_tokens_removes_every_index_entry,
    conflict_on_user_name,
    conflict_on_access_token,
    conflict_on_refresh_token,
    conflict_on_grant_token,
    conflicting_insert_writes_nothing,
    conflicting_rotation_writes_nothing,
    resaving_a_record_is_no_conflict_with_itself,
    delete_unknown_id_is_not_found,
    malformed_ids_are_invalid,
    oversized_values_are_invalid,
    get_tokens_orders_by_id_bytes,
    delete_tokens_empties_the_store,
    find_token_by_id_returns_the_record,
    purge_deletes_only_dead_tokens,
    purge_treats_expiry_equal_to_now_as_expired,
    purge_of_nothing_returns_zero,
);

// ---------------------------------------------------------------------------------------------
// Helpers

fn some(value: &str) -> Option<String> {
    Some(value.to_owned())
}

/// Saves `token` and returns what the store says it stored.
fn saved(store: &dyn Subject, mut token: Token) -> Token {
    store.save_token(&mut token).expect("save_token");
    token
}

/// Saves `common::token(n)` for each `n`, which get ids "1", "2", ... in order.
fn seed(store: &dyn Subject, ns: &[u32]) -> Vec<Token> {
    ns.iter().map(|&n| saved(store, common::token(n))).collect()
}

fn found(store: &dyn Subject, query: &Token) -> Option<Token> {
    store.find_token(query).expect("find_token")
}

/// The id of the record `query` finds.
fn found_id(store: &dyn Subject, query: &Token) -> Option<String> {
    found(store, query).and_then(|t| t.id)
}

fn all(store: &dyn Subject) -> Vec<Token> {
    store.get_tokens().expect("get_tokens")
}

/// An indexed field, to write one case for all four.
#[derive(Clone, Copy, Debug)]
enum Field {
    UserName,
    AccessToken,
    RefreshToken,
    GrantToken,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::UserName => "user_name",
            Field::AccessToken => "access_token",
            Field::RefreshToken => "refresh_token",
            Field::GrantToken => "grant_token",
        }
    }

    fn get(self, token: &Token) -> Option<String> {
        self.slot(&mut token.clone()).clone()
    }

    fn slot(self, token: &mut Token) -> &mut Option<String> {
        match self {
            Field::UserName => &mut token.user_name,
            Field::AccessToken => &mut token.access_token,
            Field::RefreshToken => &mut token.refresh_token,
            Field::GrantToken => &mut token.grant_token,
        }
    }

    /// A query that `find_token` looks up by this field, for `value`. The client pair is taken
    /// from `like` where the priority rules need it.
    fn query(self, like: &Token, value: &str) -> Token {
        let client = Token {
            client_id: like.client_id.clone(),
            client_secret: like.client_secret.clone(),
            ..Token::default()
        };
        match self {
            Field::UserName => by_user(value),
            Field::AccessToken => by_access(value),
            Field::RefreshToken => Token {
                refresh_token: some(value),
                ..client
            },
            Field::GrantToken => Token {
                grant_token: some(value),
                ..client
            },
        }
    }

    /// A token that holds `value` in this field, with no other indexed value, so that saving
    /// it without an id inserts a new record.
    fn lone(self, value: &str) -> Token {
        let mut token = Token {
            // A credential that no seeded token has, so that the token is valid on its own.
            refresh_token: some("lone-refresh"),
            ..Token::default()
        };
        *self.slot(&mut token) = some(value);
        token
    }
}

fn by_user(user: &str) -> Token {
    Token {
        user_name: some(user),
        ..Token::default()
    }
}

fn by_access(access: &str) -> Token {
    Token {
        access_token: some(access),
        ..Token::default()
    }
}

/// A query with the client pair of `like` and its refresh token (no grant token).
fn by_refresh(like: &Token) -> Token {
    Token {
        client_id: like.client_id.clone(),
        client_secret: like.client_secret.clone(),
        refresh_token: like.refresh_token.clone(),
        ..Token::default()
    }
}

/// A query with the client pair of `like` and its grant token.
fn by_grant(like: &Token) -> Token {
    Token {
        grant_token: like.grant_token.clone(),
        ..by_refresh(like)
    }
}

/// Checks that saving `token` fails as `expected` says, and that neither the store nor the
/// caller's token changed.
fn assert_rejected(store: &dyn Subject, token: Token, expected: impl Fn(&Error) -> bool) {
    let before = all(store);
    let mut attempt = token.clone();
    let err = store.save_token(&mut attempt).expect_err("save must fail");
    assert!(expected(&err), "unexpected error: {err:?}");
    assert_eq!(attempt, token, "a failed save changed the caller's token");
    assert_eq!(all(store), before, "a failed save changed the store");
}

fn is_conflict(field: &'static str, holder: &'static str) -> impl Fn(&Error) -> bool {
    move |err| match err {
        Error::Conflict { field: f, held_by } => *f == field && held_by == holder,
        _ => false,
    }
}

fn is_invalid(err: &Error) -> bool {
    matches!(err, Error::InvalidToken { .. })
}

// ---------------------------------------------------------------------------------------------
// find_token: the lookup key

fn find_by_user_name(store: &dyn Subject) {
    let seeded = seed(store, &[1, 2]);
    let hit = found(store, &by_user("user2@example.com")).expect("found by user name");
    assert_eq!(hit, seeded[1]);
}

fn user_name_wins_over_every_other_key(store: &dyn Subject) {
    let seeded = seed(store, &[1, 2]);
    // Every other key points at record 2; the user name points at record 1.
    let query = Token {
        user_name: seeded[0].user_name.clone(),
        ..by_grant(&seeded[1])
    };
    let query = Token {
        access_token: seeded[1].access_token.clone(),
        ..query
    };
    assert_eq!(found_id(store, &query), some("1"));
    let query = Token {
        client_id: None,
        client_secret: None,
        ..query
    };
    assert_eq!(found_id(store, &query), some("1"));
}

fn unknown_user_name_does_not_fall_back(store: &dyn Subject) {
    let seeded = seed(store, &[1]);
    let query = Token {
        user_name: some("nobody@example.com"),
        access_token: seeded[0].access_token.clone(),
        ..by_grant(&seeded[0])
    };
    assert_eq!(found(store, &query), None);
}

fn find_by_access_token_without_client(store: &dyn Subject) {
    let seeded = seed(store, &[1, 2]);
    let query = by_access(seeded[1].access_token.as_deref().unwrap());
    assert_eq!(found(store, &query), Some(seeded[1].clone()));
    // The refresh and grant tokens are not keys without a client: the access token decides.
    let query = Token {
        refresh_token: seeded[0].refresh_token.clone(),
        grant_token: seeded[0].grant_token.clone(),
        ..query
    };
    assert_eq!(found_id(store, &query), some("2"));
}

fn access_token_is_ignored_when_the_client_is_given(store: &dyn Subject) {
    let seeded = seed(store, &[1]);
    let query = Token {
        client_id: seeded[0].client_id.clone(),
        client_secret: seeded[0].client_secret.clone(),
        access_token: seeded[0].access_token.clone(),
        ..Token::default()
    };
    assert_eq!(found(store, &query), None);
}

fn find_by_grant_token_with_client(store: &dyn Subject) {
    let seeded = seed(store, &[1, 2]);
    let query = Token {
        refresh_token: None,
        ..by_grant(&seeded[1])
    };
    assert_eq!(found(store, &query), Some(seeded[1].clone()));
}

fn grant_token_wins_over_refresh_token(store: &dyn Subject) {
    let seeded = seed(store, &[1, 2]);
    let query = Token {
        refresh_token: seeded[0].refresh_token.clone(),
        ..by_grant(&seeded[1])
    };
    assert_eq!(found_id(store, &query), some("2"));
}

fn unknown_grant_token_does_not_fall_back(store: &dyn Subject) {
    let seeded = seed(store, &[1]);
    let query = Token {
        grant_token: some("unknown-grant"),
        ..by_refresh(&seeded[0])
    };
    assert_eq!(found(store, &query), None);
}

fn find_by_refresh_token_with_client(store: &dyn Subject) {
    let seeded = seed(store, &[1, 2]);
    assert_eq!(
        found(store, &by_refresh(&seeded[1])),
        Some(seeded[1].clone())
    );
    // The client pair is a precondition of the key, not compared with the stored one.
    let query = Token {
        client_id: some("another-client"),
        client_secret: some("another-secret"),
        ..by_refresh(&seeded[0])
    };
    assert_eq!(found_id(store, &query), some("1"));
}

fn half_a_client_gives_no_key(store: &dyn Subject) {
    let seeded = seed(store, &[1]);
    let every_token = Token {
        access_token: seeded[0].access_token.clone(),
        ..by_grant(&seeded[0])
    };
    let only_id = Token {
        client_secret: None,
        ..every_token.clone()
    };
    let only_secret = Token {
        client_id: None,
        ..every_token.clone()
    };
    assert_eq!(found(store, &only_id), None);
    assert_eq!(found(store, &only_secret), None);
    assert_eq!(found_id(store, &every_token), some("1"));
}

fn no_key_gives_none(store: &dyn Subject) {
    let seeded = seed(store, &[1]);
    assert_eq!(found(store, &Token::default()), None);
    // A client pair alone, or with only non-key fields, names nothing.
    let query = Token {
        id: some("1"),
        expiry_time: seeded[0].expiry_time,
        redirect_url: seeded[0].redirect_url.clone(),
        api_domain: seeded[0].api_domain.clone(),
        client_id: seeded[0].client_id.clone(),
        client_secret: seeded[0].client_secret.clone(),
        ..Token::default()
    };
    assert_eq!(found(store, &query), None);
}

fn nothing_matches_in_an_empty_store(store: &dyn Subject) {
    let t = common::token(1);
    for query in [
        by_user(t.user_name.as_deref().unwrap()),
        by_access(t.access_token.as_deref().unwrap()),
        by_refresh(&t),
        by_grant(&t),
    ] {
        assert_eq!(found(store, &query), None);
    }
}

// ---------------------------------------------------------------------------------------------
// find_token: merging

fn query_fields_win_and_the_rest_come_from_storage(store: &dyn Subject) {
    let seeded = seed(store, &[1]);
    let query = Token {
        user_name: seeded[0].user_name.clone(),
        access_token: some("access-from-the-query"),
        client_id: some("client-from-the-query"),
        expiry_time: Some(42),
        ..Token::default()
    };
    let expected = Token {
        access_token: some("access-from-the-query"),
        client_id: some("client-from-the-query"),
        expiry_time: Some(42),
        ..seeded[0].clone()
    };
    assert_eq!(found(store, &query), Some(expected));
    // Finding never writes.
    assert_eq!(all(store), seeded);
}

fn empty_query_fields_count_as_absent(store: &dyn Subject) {
    let seeded = seed(store, &[1]);
    // An empty user name is no user name: the access token is the key.
    let query = Token {
        user_name: some(""),
        access_token: seeded[0].access_token.clone(),
        refresh_token: some(""),
        redirect_url: some(""),
        ..Token::default()
    };
    assert_eq!(found(store, &query), Some(seeded[0].clone()));
    let everything_empty = Token {
        id: some(""),
        user_name: some(""),
        client_id: some(""),
        client_secret: some(""),
        refresh_token: some(""),
        access_token: some(""),
        grant_token: some(""),
        redirect_url: some(""),
        api_domain: some(""),
        expiry_time: None,
    };
    assert_eq!(found(store, &everything_empty), None);
}

fn empty_client_fields_count_as_absent(store: &dyn Subject) {
    let seeded = seed(store, &[1]);
    let query = Token {
        client_id: some(""),
        client_secret: some(""),
        access_token: seeded[0].access_token.clone(),
        ..Token::default()
    };
    assert_eq!(found(store, &query), Some(seeded[0].clone()));
    // One real half of the client and one empty half is half a client: no key.
    let query = Token {
        client_id: some(""),
        ..by_refresh(&seeded[0])
    };
    assert_eq!(found(store, &query), None);
}

fn empty_grant_token_falls_to_refresh_token(store: &dyn Subject) {
    let seeded = seed(store, &[1]);
    let query = Token {
        grant_token: some(""),
        ..by_refresh(&seeded[0])
    };
    assert_eq!(found(store, &query), Some(seeded[0].clone()));
}

// ---------------------------------------------------------------------------------------------
// save_token: empty strings

fn empty_saved_fields_are_stored_as_none(store: &dyn Subject) {
    let token = Token {
        user_name: some(""),
        client_id: some(""),
        client_secret: some(""),
        grant_token: some(""),
        access_token: some(""),
        redirect_url: some(""),
        api_domain: some(""),
        refresh_token: some("the-refresh"),
        ..Token::default()
    };
    let stored = saved(store, token);
    let expected = Token {
        id: some("1"),
        refresh_token: some("the-refresh"),
        ..Token::default()
    };
    assert_eq!(stored, expected);
    assert_eq!(all(store), vec![expected]);
}

fn empty_fields_in_an_update_keep_the_stored_values(store: &dyn Subject) {
    let seeded = seed(store, &[1]);
    let update = Token {
        id: some("1"),
        user_name: some(""),
        access_token: some(""),
        refresh_token: some(""),
        grant_token: some(""),
        api_domain: some(""),
        expiry_time: Some(7),
        ..Token::default()
    };
    let stored = saved(store, update);
    let expected = Token {
        expiry_time: Some(7),
        ..seeded[0].clone()
    };
    assert_eq!(stored, expected);
    assert_eq!(all(store), vec![expected]);
}

fn empty_id_counts_as_absent(store: &dyn Subject) {
    seed(store, &[1]);
    let stored = saved(
        store,
        Token {
            id: some(""),
            ..common::token(2)
        },
    );
    assert_eq!(stored.id, some("2"));
    // An empty id with a lookup key updates the record the key finds.
    let update = Token {
        id: some(""),
        user_name: some("user1@example.com"),
        expiry_time: Some(9),
        ..Token::default()
    };
    assert_eq!(saved(store, update).id, some("1"));
    assert_eq!(all(store).len(), 2);
}

// ---------------------------------------------------------------------------------------------
// save_token: updates

fn update_by_id_fills_absent_fields(store: &dyn Subject) {
    let seeded = seed(store, &[1, 2]);
    let update = Token {
        id: some("2"),
        access_token: some("new-access"),
        expiry_time: Some(5),
        ..Token::default()
    };
    let expected = Token {
        access_token: some("new-access"),
        expiry_time: Some(5),
        ..seeded[1].clone()
    };
    assert_eq!(saved(store, update), expected);
    assert_eq!(all(store), vec![seeded[0].clone(), expected]);
}

fn update_by_id_of_a_missing_record_inserts_under_it(store: &dyn Subject) {
    seed(store, &[1]);
    let stored = saved(
        store,
        Token {
            id: some("custom"),
            ..common::token(2)
        },
    );
    assert_eq!(
        stored,
        Token {
            id: some("custom"),
            ..common::token(2)
        }
    );
    assert_eq!(store.find_token_by_id("custom").unwrap(), Some(stored));
    // With nothing to authenticate with, an unknown id is an invalid new token.
    assert_rejected(
        store,
        Token {
            id: some("other"),
            user_name: some("new@example.com"),
            ..Token::default()
        },
        is_invalid,
    );
}

fn id_names_the_record_even_when_a_lookup_would_match(store: &dyn Subject) {
    let seeded = seed(store, &[1, 2]);
    // By lookup, this would update record 1; the id names record 2, which then collides.
    let token = Token {
        id: some("2"),
        user_name: seeded[0].user_name.clone(),
        ..Token::default()
    };
    assert_rejected(store, token, is_conflict("user_name", "1"));
    // Named by id, record 2 is updated even though the refresh token's lookup finds nothing.
    let token = Token {
        id: some("2"),
        expiry_time: Some(1),
        ..by_refresh(&common::token(3))
    };
    let stored = saved(store, token);
    assert_eq!(stored.id, some("2"));
    assert_eq!(stored.user_name, seeded[1].user_name);
    assert_eq!(all(store).len(), 2);
}

fn update_by_user_name_lookup(store: &dyn Subject) {
    let seeded = seed(store, &[1, 2]);
    let update = Token {
        access_token: some("new-access"),
        ..by_user("user1@example.com")
    };
    let expected = Token {
        access_token: some("new-access"),
        ..seeded[0].clone()
    };
    assert_eq!(saved(store, update), expected);
    assert_eq!(all(store), vec![expected, seeded[1].clone()]);
}

fn update_by_access_token_lookup(store: &dyn Subject) {
    let seeded = seed(store, &[1, 2]);
    let update = Token {
        expiry_time: Some(11),
        api_domain: some("https://www.zohoapis.com"),
        ..by_access(seeded[1].access_token.as_deref().unwrap())
    };
    let expected = Token {
        expiry_time: Some(11),
        api_domain: some("https://www.zohoapis.com"),
        ..seeded[1].clone()
    };
    assert_eq!(saved(store, update), expected);
    assert_eq!(all(store), vec![seeded[0].clone(), expected]);
}

fn update_by_grant_token_lookup(store: &dyn Subject) {
    let seeded = seed(store, &[1, 2]);
    // The SDK's first exchange: found by its grant token, it gains a refresh token.
    let update = Token {
        refresh_token: some("exchanged-refresh"),
        ..by_grant(&seeded[0])
    };
    let expected = Token {
        refresh_token: some("exchanged-refresh"),
        ..seeded[0].clone()
    };
    assert_eq!(saved(store, update), expected);
    assert_eq!(all(store), vec![expected, seeded[1].clone()]);
}

fn update_by_refresh_token_lookup(store: &dyn Subject) {
    let seeded = seed(store, &[1, 2]);
    let update = Token {
        access_token: some("refreshed-access"),
        expiry_time: Some(12),
        ..by_refresh(&seeded[1])
    };
    let expected = Token {
        access_token: some("refreshed-access"),
        expiry_time: Some(12),
        ..seeded[1].clone()
    };
    assert_eq!(saved(store, update), expected);
    assert_eq!(all(store), vec![seeded[0].clone(), expected]);
}

fn update_needs_no_credential(store: &dyn Subject) {
    let seeded = seed(store, &[1]);
    let update = Token {
        expiry_time: Some(3),
        ..by_user("user1@example.com")
    };
    let expected = Token {
        expiry_time: Some(3),
        ..seeded[0].clone()
    };
    assert_eq!(saved(store, update), expected);
    let update = Token {
        id: some("1"),
        redirect_url: some("https://other.example.com/cb"),
        ..Token::default()
    };
    assert_eq!(
        saved(store, update).redirect_url,
        some("https://other.example.com/cb")
    );
}

// ---------------------------------------------------------------------------------------------
// save_token: inserts

fn no_usable_key_inserts(store: &dyn Subject) {
    let seeded = seed(store, &[1]);
    // Half a client is no key, so this cannot match record 1 by its client: it is new.
    let token = Token {
        client_id: seeded[0].client_id.clone(),
        refresh_token: some("fresh-refresh"),
        ..Token::default()
    };
    let stored = saved(store, token.clone());
    assert_eq!(
        stored,
        Token {
            id: some("2"),
            ..token
        }
    );
    assert_eq!(all(store).len(), 2);
}

fn lookup_miss_inserts(store: &dyn Subject) {
    seed(store, &[1]);
    let stored = saved(store, common::token(2));
    assert_eq!(stored.id, some("2"));
    assert_eq!(all(store).len(), 2);
}

fn new_token_without_credential_is_rejected(store: &dyn Subject) {
    seed(store, &[1]);
    let full = common::token(2);
    let without = Token {
        refresh_token: None,
        access_token: None,
        grant_token: None,
        ..full.clone()
    };
    assert_rejected(store, without.clone(), is_invalid);
    // Empty credentials are no credentials.
    let empty = Token {
        refresh_token: some(""),
        access_token: some(""),
        grant_token: some(""),
        ..without
    };
    assert_rejected(store, empty, is_invalid);
    assert_rejected(store, Token::default(), is_invalid);
    // The rejection consumed no id.
    assert_eq!(saved(store, full).id, some("2"));
}

fn any_one_credential_suffices(store: &dyn Subject) {
    let tokens = [
        by_access("only-access"),
        Token {
            refresh_token: some("only-refresh"),
            ..Token::default()
        },
        Token {
            grant_token: some("only-grant"),
            ..Token::default()
        },
    ];
    for (i, token) in tokens.into_iter().enumerate() {
        let stored = saved(store, token.clone());
        let expected = Token {
            id: Some((i + 1).to_string()),
            ..token
        };
        assert_eq!(stored, expected);
    }
    assert_eq!(all(store).len(), 3);
}

fn saved_token_is_exactly_what_is_stored(store: &dyn Subject) {
    let mut token = common::token(1);
    store.save_token(&mut token).unwrap();
    assert_eq!(
        token,
        Token {
            id: some("1"),
            ..common::token(1)
        }
    );
    assert_eq!(store.find_token_by_id("1").unwrap(), Some(token.clone()));
    let mut partial = Token {
        id: some("1"),
        grant_token: some("another-grant"),
        ..Token::default()
    };
    store.save_token(&mut partial).unwrap();
    assert_eq!(
        partial,
        Token {
            grant_token: some("another-grant"),
            ..token
        }
    );
    assert_eq!(all(store), vec![partial]);
}

// ---------------------------------------------------------------------------------------------
// save_token: ids

fn ids_are_sequential(store: &dyn Subject) {
    let ids: Vec<_> = seed(store, &[1, 2, 3]).into_iter().map(|t| t.id).collect();
    assert_eq!(ids, vec![some("1"), some("2"), some("3")]);
}

fn ids_are_never_reused_after_delete(store: &dyn Subject) {
    seed(store, &[1, 2]);
    store.delete_token("2").unwrap();
    assert_eq!(saved(store, common::token(3)).id, some("3"));
    store.delete_token("1").unwrap();
    store.delete_token("3").unwrap();
    assert_eq!(saved(store, common::token(4)).id, some("4"));
}

fn ids_are_never_reused_after_delete_tokens(store: &dyn Subject) {
    seed(store, &[1, 2]);
    store.delete_tokens().unwrap();
    assert_eq!(saved(store, common::token(3)).id, some("3"));
}

fn ids_are_never_reused_after_purge(store: &dyn Subject) {
    seed(store, &[1]);
    saved(
        store,
        Token {
            expiry_time: Some(10),
            ..by_access("dead-access")
        },
    );
    assert_eq!(store.purge(10), 1);
    assert_eq!(saved(store, common::token(3)).id, some("3"));
}

fn caller_ids_are_skipped(store: &dyn Subject) {
    seed(store, &[1]);
    let taken = Token {
        id: some("5"),
        ..common::token(5)
    };
    assert_eq!(saved(store, taken).id, some("5"));
    assert_eq!(saved(store, common::token(6)).id, some("6"));
    // A caller id below the counter does not move it back.
    let low = Token {
        id: some("3"),
        ..common::token(3)
    };
    assert_eq!(saved(store, low).id, some("3"));
    assert_eq!(saved(store, common::token(7)).id, some("7"));
    // A caller id right at the counter is skipped too.
    let next = Token {
        id: some("8"),
        ..common::token(8)
    };
    saved(store, next);
    assert_eq!(saved(store, common::token(9)).id, some("9"));
}

fn non_sequential_caller_ids_leave_the_counter_alone(store: &dyn Subject) {
    for (id, n) in [("abc", 10), ("07", 11), ("-3", 12), ("+4", 13), ("1.5", 14)] {
        let token = Token {
            id: some(id),
            ..common::token(n)
        };
        assert_eq!(saved(store, token).id, some(id));
    }
    assert_eq!(saved(store, common::token(1)).id, some("1"));
    assert_eq!(saved(store, common::token(2)).id, some("2"));
}

fn used_up_ids_are_an_error_not_a_panic(store: &dyn Subject) {
    // The caller takes the second-largest number; the store assigns the largest, and then has
    // no number left to assign.
    let below_max = Token {
        id: Some((u64::MAX - 1).to_string()),
        ..common::token(1)
    };
    saved(store, below_max);
    assert_eq!(
        saved(store, common::token(2)).id,
        Some(u64::MAX.to_string())
    );
    assert_rejected(store, common::token(3), is_invalid);
    // A token with its own id is still welcome.
    let own_id = Token {
        id: some("own"),
        ..common::token(3)
    };
    assert_eq!(saved(store, own_id).id, some("own"));
}

// ---------------------------------------------------------------------------------------------
// Index entries follow the record

/// Rotates `field` of record 1 by an update by id, then checks that the old value finds
/// nothing, the new one finds record 1, and the old value is free for another record.
fn rotate(store: &dyn Subject, field: Field) {
    let seeded = seed(store, &[1, 2]);
    let old = field.get(&seeded[0]).unwrap();
    let mut update = Token {
        id: some("1"),
        ..Token::default()
    };
    *field.slot(&mut update) = some("rotated-value");
    let rotated = saved(store, update);

    assert_eq!(found(store, &field.query(&seeded[0], &old)), None);
    let hit = found(store, &field.query(&seeded[0], "rotated-value"));
    assert_eq!(hit, Some(rotated));
    let other = field.get(&seeded[1]).unwrap();
    assert_eq!(found_id(store, &field.query(&seeded[1], &other)), some("2"));

    // The old value belongs to no one now.
    let taker = saved(store, field.lone(&old));
    assert_eq!(taker.id, some("3"));
    assert_eq!(found_id(store, &field.query(&seeded[0], &old)), some("3"));
}

fn rotating_user_name_moves_its_index_entry(store: &dyn Subject) {
    rotate(store, Field::UserName);
}

fn rotating_access_token_moves_its_index_entry(store: &dyn Subject) {
    rotate(store, Field::AccessToken);
}

fn rotating_refresh_token_moves_its_index_entry(store: &dyn Subject) {
    rotate(store, Field::RefreshToken);
}

fn rotating_grant_token_moves_its_index_entry(store: &dyn Subject) {
    rotate(store, Field::GrantToken);
}

fn rotation_by_lookup_moves_the_index_entry(store: &dyn Subject) {
    let seeded = seed(store, &[1]);
    // The SDK's exchange: found by its grant token, the record gets new refresh and access
    // tokens in the same save.
    let update = Token {
        refresh_token: some("next-refresh"),
        access_token: some("next-access"),
        ..by_grant(&seeded[0])
    };
    saved(store, update);
    assert_eq!(found(store, &by_refresh(&seeded[0])), None);
    let old_access = seeded[0].access_token.as_deref().unwrap();
    assert_eq!(found(store, &by_access(old_access)), None);
    let next = Token {
        refresh_token: some("next-refresh"),
        ..seeded[0].clone()
    };
    assert_eq!(found_id(store, &by_refresh(&next)), some("1"));
    assert_eq!(found_id(store, &by_access("next-access")), some("1"));
    assert_eq!(found_id(store, &by_grant(&seeded[0])), some("1"));
}

/// Checks that no value of `token` is found or held any more, by saving a new token with all
/// of them.
fn assert_values_free(store: &dyn Subject, token: &Token) {
    for field in [
        Field::UserName,
        Field::AccessToken,
        Field::RefreshToken,
        Field::GrantToken,
    ] {
        let value = field.get(token).unwrap();
        assert_eq!(found(store, &field.query(token, &value)), None, "{field:?}");
    }
    let again = saved(
        store,
        Token {
            id: None,
            ..token.clone()
        },
    );
    assert_ne!(again.id, token.id);
}

fn delete_removes_every_index_entry(store: &dyn Subject) {
    let seeded = seed(store, &[1, 2]);
    store.delete_token("1").unwrap();
    assert_eq!(store.find_token_by_id("1").unwrap(), None);
    assert_eq!(all(store), vec![seeded[1].clone()]);
    assert_values_free(store, &seeded[0]);
}

fn delete_tokens_removes_every_index_entry(store: &dyn Subject) {
    let seeded = seed(store, &[1, 2]);
    store.delete_tokens().unwrap();
    for token in &seeded {
        assert_values_free(store, token);
    }
}

// ---------------------------------------------------------------------------------------------
// Uniqueness

/// Gives record 2 the value record 1 holds in `field`, by id; then inserts a new token with
/// it. Both must fail with a conflict naming record 1 and change nothing.
fn conflict(store: &dyn Subject, field: Field) {
    let seeded = seed(store, &[1, 2]);
    let taken = field.get(&seeded[0]).unwrap();
    let mut update = Token {
        id: some("2"),
        ..Token::default()
    };
    *field.slot(&mut update) = Some(taken.clone());
    assert_rejected(store, update, is_conflict(field.name(), "1"));

    let mut insert = Token {
        id: some("new"),
        ..field.lone("unused")
    };
    *field.slot(&mut insert) = Some(taken);
    assert_rejected(store, insert, is_conflict(field.name(), "1"));
    assert_eq!(all(store), seeded);
}

fn conflict_on_user_name(store: &dyn Subject) {
    conflict(store, Field::UserName);
}

fn conflict_on_access_token(store: &dyn Subject) {
    conflict(store, Field::AccessToken);
}

fn conflict_on_refresh_token(store: &dyn Subject) {
    conflict(store, Field::RefreshToken);
}

fn conflict_on_grant_token(store: &dyn Subject) {
    conflict(store, Field::GrantToken);
}

fn conflicting_insert_writes_nothing(store: &dyn Subject) {
    let seeded = seed(store, &[1]);
    // A new user (the lookup misses) whose refresh token is record 1's.
    let token = Token {
        refresh_token: seeded[0].refresh_token.clone(),
        ..by_user("new@example.com")
    };
    assert_rejected(store, token, is_conflict("refresh_token", "1"));
    assert_eq!(found(store, &by_user("new@example.com")), None);
    // The failed insert consumed no id.
    assert_eq!(saved(store, common::token(2)).id, some("2"));
}

fn conflicting_rotation_writes_nothing(store: &dyn Subject) {
    let seeded = seed(store, &[1, 2]);
    // Record 2 rotates its access and refresh tokens, but its new grant token is record 1's.
    let update = Token {
        id: some("2"),
        access_token: some("rotated-access"),
        refresh_token: some("rotated-refresh"),
        grant_token: seeded[0].grant_token.clone(),
        ..Token::default()
    };
    assert_rejected(store, update, is_conflict("grant_token", "1"));
    assert_eq!(found(store, &by_access("rotated-access")), None);
    let old_access = seeded[1].access_token.as_deref().unwrap();
    assert_eq!(found_id(store, &by_access(old_access)), some("2"));
    assert_eq!(found_id(store, &by_refresh(&seeded[1])), some("2"));
}

fn resaving_a_record_is_no_conflict_with_itself(store: &dyn Subject) {
    let seeded = seed(store, &[1, 2]);
    assert_eq!(saved(store, seeded[0].clone()), seeded[0]);
    let without_id = Token {
        id: None,
        ..seeded[1].clone()
    };
    assert_eq!(saved(store, without_id), seeded[1]);
    assert_eq!(all(store), seeded);
}

// ---------------------------------------------------------------------------------------------
// Deleting, listing, finding by id

fn delete_unknown_id_is_not_found(store: &dyn Subject) {
    seed(store, &[1]);
    let err = store.delete_token("2").unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { id } if id == "2"),
        "{err:?}"
    );
    store.delete_token("1").unwrap();
    let err = store.delete_token("1").unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { id } if id == "1"),
        "{err:?}"
    );
}

fn malformed_ids_are_invalid(store: &dyn Subject) {
    let seeded = seed(store, &[1]);
    let too_long = "7".repeat(tokenvault::MAX_ID_LEN + 1);
    for id in ["", "a\nb", "\0", too_long.as_str()] {
        if !id.is_empty() {
            let token = Token {
                id: some(id),
                ..common::token(2)
            };
            assert_rejected(store, token, is_invalid);
        }
        assert!(is_invalid(&store.delete_token(id).unwrap_err()), "{id:?}");
        assert!(
            is_invalid(&store.find_token_by_id(id).unwrap_err()),
            "{id:?}"
        );
    }
    let longest = "7".repeat(tokenvault::MAX_ID_LEN);
    let token = Token {
        id: Some(longest.clone()),
        ..common::token(2)
    };
    assert_eq!(saved(store, token).id, Some(longest));
    assert_eq!(all(store)[0], seeded[0]);
}

fn oversized_values_are_invalid(store: &dyn Subject) {
    seed(store, &[1]);
    let huge = "h".repeat(tokenvault::MAX_FIELD_LEN + 1);
    let token = Token {
        access_token: Some(huge.clone()),
        ..common::token(2)
    };
    assert_rejected(store, token, is_invalid);
    let update = Token {
        id: some("1"),
        api_domain: Some(huge),
        ..Token::default()
    };
    assert_rejected(store, update, is_invalid);
    let largest = "l".repeat(tokenvault::MAX_FIELD_LEN);
    let token = Token {
        access_token: Some(largest.clone()),
        ..common::token(2)
    };
    assert_eq!(saved(store, token).access_token, Some(largest));
}

fn get_tokens_orders_by_id_bytes(store: &dyn Subject) {
    let ids = ["9", "10", "b", "2", "B", "1", "a", "Z10", "Z9"];
    for (n, id) in (1..).zip(ids) {
        let token = Token {
            id: some(id),
            ..common::token(n)
        };
        saved(store, token);
    }
    let listed: Vec<_> = all(store).into_iter().filter_map(|t| t.id).collect();
    assert_eq!(listed, ["1", "10", "2", "9", "B", "Z10", "Z9", "a", "b"]);
}

fn delete_tokens_empties_the_store(store: &dyn Subject) {
    seed(store, &[1, 2, 3]);
    store.delete_tokens().unwrap();
    assert_eq!(all(store), Vec::new());
    assert_eq!(store.find_token_by_id("1").unwrap(), None);
    // Deleting from an empty store is fine too.
    store.delete_tokens().unwrap();
    assert_eq!(all(store), Vec::new());
}

fn find_token_by_id_returns_the_record(store: &dyn Subject) {
    let seeded = seed(store, &[1, 2]);
    assert_eq!(
        store.find_token_by_id("2").unwrap(),
        Some(seeded[1].clone())
    );
    assert_eq!(
        store.find_token_by_id("1").unwrap(),
        Some(seeded[0].clone())
    );
    assert_eq!(store.find_token_by_id("3").unwrap(), None);
    assert_eq!(store.find_token_by_id("01").unwrap(), None);
}

// ---------------------------------------------------------------------------------------------
// purge_expired

fn purge_deletes_only_dead_tokens(store: &dyn Subject) {
    let now = 1_000;
    let token = |access: &str, expiry: Option<i64>| Token {
        expiry_time: expiry,
        ..by_access(access)
    };
    let cases = [
        (token("dead-past", Some(now - 1)), true),
        (token("dead-now", Some(now)), true),
        (token("alive-future", Some(now + 1)), false),
        (token("alive-no-expiry", None), false),
        (
            Token {
                refresh_token: some("renewable-refresh"),
                ..token("renewable-by-refresh", Some(now - 1))
            },
            false,
        ),
        (
            Token {
                grant_token: some("renewable-grant"),
                ..token("renewable-by-grant", Some(now - 1))
            },
            false,
        ),
        (
            Token {
                user_name: some("dead@example.com"),
                client_id: some("dead-client"),
                client_secret: some("dead-secret"),
                ..token("dead-with-user", Some(i64::MIN))
            },
            true,
        ),
    ];
    let stored: Vec<_> = cases
        .iter()
        .map(|(t, dead)| (saved(store, t.clone()), *dead))
        .collect();

    assert_eq!(store.purge(now), 3);
    let survivors: Vec<_> = stored
        .iter()
        .filter(|(_, dead)| !dead)
        .map(|(t, _)| t.clone())
        .collect();
    assert_eq!(all(store), survivors);
    for (t, _) in stored.iter().filter(|(_, dead)| *dead) {
        assert_values_free_after_purge(store, t);
    }
}

/// A purged token's user name and access token find nothing and can be taken again.
fn assert_values_free_after_purge(store: &dyn Subject, token: &Token) {
    let access = token.access_token.as_deref().unwrap();
    assert_eq!(found(store, &by_access(access)), None);
    if let Some(user) = token.user_name.as_deref() {
        assert_eq!(found(store, &by_user(user)), None);
    }
    let again = Token {
        id: None,
        ..token.clone()
    };
    assert_ne!(saved(store, again).id, token.id);
}

fn purge_treats_expiry_equal_to_now_as_expired(store: &dyn Subject) {
    let dead = Token {
        expiry_time: Some(500),
        ..by_access("boundary")
    };
    saved(store, dead);
    assert_eq!(store.purge(499), 0);
    assert_eq!(all(store).len(), 1);
    assert_eq!(store.purge(500), 1);
    assert_eq!(all(store), Vec::new());
}

fn purge_of_nothing_returns_zero(store: &dyn Subject) {
    assert_eq!(store.purge(i64::MAX), 0);
    seed(store, &[1]);
    assert_eq!(store.purge(i64::MAX), 0);
    assert_eq!(all(store).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Persistence of the contract's state (encrypted store only)

#[test]
fn id_counter_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = common::open(&path);
    seed(&store, &[1, 2]);
    store.delete_token("2").unwrap();
    drop(store);

    let store = common::open(&path);
    assert_eq!(saved(&store, common::token(3)).id, some("3"));
    store.delete_tokens().unwrap();
    drop(store);

    let store = common::open(&path);
    assert_eq!(saved(&store, common::token(4)).id, some("4"));
    let taken = Token {
        id: some("20"),
        ..common::token(20)
    };
    saved(&store, taken);
    store.delete_token("20").unwrap();
    drop(store);

    let store = common::open(&path);
    assert_eq!(saved(&store, common::token(5)).id, some("21"));
}

#[test]
fn index_entries_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = common::open(&path);
    let seeded = seed(&store, &[1, 2]);
    let update = Token {
        id: some("1"),
        refresh_token: some("rotated-before-reopen"),
        ..Token::default()
    };
    let rotated = saved(&store, update);
    drop(store);

    let store = common::open(&path);
    assert_eq!(found(&store, &by_refresh(&seeded[0])), None);
    assert_eq!(found(&store, &by_refresh(&rotated)), Some(rotated.clone()));
    assert_eq!(
        found(&store, &by_grant(&seeded[1])),
        Some(seeded[1].clone())
    );
    let taken = Token {
        id: some("2"),
        user_name: rotated.user_name.clone(),
        ..Token::default()
    };
    assert_rejected(&store, taken, is_conflict("user_name", "1"));
}
