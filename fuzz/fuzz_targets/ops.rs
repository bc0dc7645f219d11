//! Sequences of store operations, run against `EncryptedStore` and the `MemoryStore` reference,
//! which must agree on every answer: the same `Ok` values, the same error variants.
//!
//! Besides the six `TokenStore` operations the sequences reopen the store, change its
//! passphrase and purge expired tokens. Ids and values come from small tables, so that lookups,
//! updates, conflicts, odd ids and the size limits are all reached quickly.
//!
//! Input: the first byte picks the durability (even: immediate, odd: buffered); then each
//! operation is an opcode byte followed by its operand bytes (see `Op::read`), at most 64.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tokenvault::{
    Durability, EncryptedStore, Error, KdfParams, MemoryStore, OpenOptions, Token, TokenStore,
    MAX_FIELD_LEN,
};

/// The cheapest parameters Argon2 accepts: the fuzzer is after the operations, not the KDF.
const KDF: KdfParams = KdfParams {
    memory_kib: 8,
    iterations: 1,
    parallelism: 1,
};
const MAX_OPS: usize = 64;

/// Ids: index 0 means none. Covers normalization (""), ids the counter would assign, ids it
/// must skip, the counter's ceiling, and ids that are refused.
const IDS: [&str; 12] = [
    "",
    "",
    "1",
    "2",
    "3",
    "7",
    "01",
    "é",
    "18446744073709551614",
    "18446744073709551615",
    "a\u{1}b",
    "IDTOOLONG",
];

/// Field values: index 0 means none, 1 the empty string; a few long ones test the size limit.
const VALUES: [&str; 9] = ["", "", "a", "b", "c", "d", "a\0b", "LONG_OK", "LONG_BAD"];

fuzz_target!(|data: &[u8]| {
    let mut input = Input { data, pos: 0 };
    let durability = if input.byte().is_multiple_of(2) {
        Durability::Immediate
    } else {
        Durability::Buffered
    };
    let dir = scratch_dir();
    let mut pair = Pair::new(dir.path().join("store"), durability);
    for _ in 0..MAX_OPS {
        if input.done() {
            break;
        }
        let op = Op::read(&mut input);
        pair.run(&op);
    }
    pair.check_same_tokens();
});

/// The operand bytes, read in order; past the end every byte reads as 0.
struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn id(&mut self) -> Option<String> {
        let index = usize::from(self.byte()) % IDS.len();
        (index > 0).then(|| expand(IDS[index]))
    }

    fn value(&mut self) -> Option<String> {
        let index = usize::from(self.byte()) % VALUES.len();
        (index > 0).then(|| expand(VALUES[index]))
    }

    fn token(&mut self) -> Token {
        Token {
            id: self.id(),
            user_name: self.value(),
            client_id: self.value(),
            client_secret: self.value(),
            refresh_token: self.value(),
            access_token: self.value(),
            grant_token: self.value(),
            expiry_time: match self.byte() {
                0 => None,
                b => Some(i64::from(b as i8)),
            },
            redirect_url: self.value(),
            api_domain: self.value(),
        }
    }
}

/// Turns the placeholders of the tables into their values.
fn expand(value: &str) -> String {
    match value {
        "IDTOOLONG" => "9".repeat(tokenvault::MAX_ID_LEN + 1),
        "LONG_OK" => "x".repeat(MAX_FIELD_LEN),
        "LONG_BAD" => "y".repeat(MAX_FIELD_LEN + 1),
        other => other.to_string(),
    }
}

#[derive(Debug)]
enum Op {
    Save(Token),
    Find(Token),
    FindById(String),
    Delete(String),
    GetAll,
    DeleteAll,
    Purge(i64),
    Reopen,
    ChangePassphrase(String),
}

impl Op {
    fn read(input: &mut Input) -> Op {
        match input.byte() % 9 {
            0 => Op::Save(input.token()),
            1 => Op::Find(input.token()),
            2 => Op::FindById(input.id().unwrap_or_default()),
            3 => Op::Delete(input.id().unwrap_or_default()),
            4 => Op::GetAll,
            5 => Op::DeleteAll,
            6 => Op::Purge(i64::from(input.byte() as i8)),
            7 => Op::Reopen,
            _ => Op::ChangePassphrase(match input.byte() % 4 {
                0 => String::new(),
                n => format!("passphrase {n}"),
            }),
        }
    }
}

/// The store under test and the reference, driven in lockstep.
struct Pair {
    path: std::path::PathBuf,
    durability: Durability,
    passphrase: String,
    store: Option<EncryptedStore>,
    reference: MemoryStore,
}

impl Pair {
    fn new(path: std::path::PathBuf, durability: Durability) -> Pair {
        let passphrase = "passphrase 0".to_string();
        let store = open(&path, durability, &passphrase).expect("create the store");
        Pair {
            path,
            durability,
            passphrase,
            store: Some(store),
            reference: MemoryStore::new(),
        }
    }

    fn store(&self) -> &EncryptedStore {
        self.store.as_ref().expect("open")
    }

    fn run(&mut self, op: &Op) {
        let (store, reference) = (self.store(), &self.reference);
        match op {
            Op::Save(token) => {
                let (mut mine, mut theirs) = (token.clone(), token.clone());
                let got = store.save_token(&mut mine);
                let want = reference.save_token(&mut theirs);
                agree(op, &got, &want);
                assert_eq!(mine, theirs, "{op:?}: the saved tokens differ");
            }
            Op::Find(query) => agree(op, &store.find_token(query), &reference.find_token(query)),
            Op::FindById(id) => agree(
                op,
                &store.find_token_by_id(id),
                &reference.find_token_by_id(id),
            ),
            Op::Delete(id) => agree(op, &store.delete_token(id), &reference.delete_token(id)),
            Op::GetAll => agree(op, &store.get_tokens(), &reference.get_tokens()),
            Op::DeleteAll => agree(op, &store.delete_tokens(), &reference.delete_tokens()),
            Op::Purge(now) => agree(
                op,
                &store.purge_expired(*now),
                &Ok(reference.purge_expired(*now)),
            ),
            Op::Reopen => self.reopen(),
            Op::ChangePassphrase(new) => self.change_passphrase(new),
        }
    }

    fn reopen(&mut self) {
        drop(self.store.take());
        let store = open(&self.path, self.durability, &self.passphrase);
        self.store = Some(store.expect("reopen"));
        self.check_same_tokens();
    }

    /// The reference has no passphrase: an empty one must be refused, any other taken, and
    /// the store must open with it (and not with the old one) afterwards.
    fn change_passphrase(&mut self, new: &str) {
        match self.store().change_passphrase(new) {
            Ok(()) if !new.is_empty() => {
                let old = std::mem::replace(&mut self.passphrase, new.to_string());
                drop(self.store.take());
                let wrong = match open(&self.path, self.durability, &old) {
                    Ok(_) => false,
                    Err(err) => matches!(err, Error::WrongPassphrase),
                };
                assert!(old == new || wrong, "the old passphrase still opens");
                self.reopen();
            }
            Err(Error::InvalidOptions { .. }) if new.is_empty() => {}
            other => panic!("change_passphrase({new:?}) gave {other:?}"),
        }
    }

    fn check_same_tokens(&self) {
        let got = self.store().get_tokens().expect("get_tokens");
        let want = self
            .reference
            .get_tokens()
            .expect("get_tokens on the reference");
        assert!(got == want, "the stores hold different tokens");
        assert!(
            self.store().verify().expect("verify").is_clean(),
            "verify found damage"
        );
    }
}

/// Both `Ok` and equal, or both `Err` with the same variant (and, where they name one, the same
/// id and field).
fn agree<T: PartialEq + std::fmt::Debug>(op: &Op, got: &Result<T, Error>, want: &Result<T, Error>) {
    let same = match (got, want) {
        (Ok(a), Ok(b)) => a == b,
        (Err(a), Err(b)) => same_error(a, b),
        _ => false,
    };
    assert!(
        same,
        "{op:?}: the store gave {got:?}, the reference {want:?}"
    );
}

fn same_error(a: &Error, b: &Error) -> bool {
    match (a, b) {
        (Error::NotFound { id: x }, Error::NotFound { id: y }) => x == y,
        (
            Error::Conflict {
                field: f,
                held_by: h,
            },
            Error::Conflict {
                field: g,
                held_by: i,
            },
        ) => f == g && h == i,
        _ => std::mem::discriminant(a) == std::mem::discriminant(b),
    }
}

fn open(path: &Path, durability: Durability, passphrase: &str) -> Result<EncryptedStore, Error> {
    OpenOptions::new()
        .kdf(KDF)
        .durability(durability)
        .open(path, passphrase)
}

/// A fresh directory, in memory when the system has a tmpfs at /dev/shm.
fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let builder = tempfile::Builder::new();
    let dir = if shm.is_dir() {
        builder.tempdir_in(shm)
    } else {
        builder.tempdir()
    };
    dir.expect("temp dir")
}
