//! A store with a known history, and the check that a damaged copy of it tells the truth.
//!
//! Shared by the fault tests (`#[path = "common/fault.rs"] mod fault;` beside `mod common;`).
//! The check is the store's promise under damage: whatever is returned is exactly what was last
//! saved under that id, nothing deleted or overwritten comes back, a lookup that comes back empty
//! for a saved token is flagged by `verify`, and everything else is a typed error.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use tokenvault::{EncryptedStore, Error, OpenOptions, SealStatus, Token, TokenStore};

use crate::common;

/// Big enough, with two such fields, for the engine to keep the record in a blob file.
pub const BIG_FIELD: usize = tokenvault::MAX_FIELD_LEN;

/// A closed store and what it holds.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    /// Every token the store holds, by id, as last saved.
    pub live: BTreeMap<String, Token>,
    /// Tokens deleted from the store, as they were before deletion.
    pub deleted: Vec<Token>,
    /// Earlier versions of rotated tokens: their old values must lead nowhere.
    pub stale: Vec<Token>,
}

impl Fixture {
    /// Saves `count` tokens, rotates every fourth, deletes every seventh, adds one token large
    /// enough to live in a blob when `big`, and closes the store.
    pub fn build(count: u32, big: bool) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = common::open(&store_path(dir.path()));
        let mut fixture = Fixture {
            dir,
            live: BTreeMap::new(),
            deleted: Vec::new(),
            stale: Vec::new(),
        };
        for n in 1..=count {
            fixture.save(&store, common::token(n));
        }
        for n in (4..=count).step_by(4) {
            fixture.rotate(&store, &n.to_string());
        }
        for n in (7..=count).step_by(7) {
            fixture.delete(&store, &n.to_string());
        }
        if big {
            let mut token = common::token(count + 1);
            token.redirect_url = Some("r".repeat(BIG_FIELD));
            token.api_domain = Some("d".repeat(BIG_FIELD));
            fixture.save(&store, token);
        }
        drop(store);
        fixture
    }

    pub fn path(&self) -> PathBuf {
        store_path(self.dir.path())
    }

    pub fn save(&mut self, store: &EncryptedStore, mut token: Token) {
        store.save_token(&mut token).expect("save");
        let id = token.id.clone().expect("saved tokens have ids");
        if let Some(old) = self.live.insert(id, token) {
            self.stale.push(old);
        }
    }

    /// Replaces the access and refresh tokens, as an OAuth refresh does.
    pub fn rotate(&mut self, store: &EncryptedStore, id: &str) {
        let token = Token {
            id: Some(id.into()),
            access_token: Some(format!("1000.ACCESS.ROTATED.{id}")),
            refresh_token: Some(format!("1000.REFRESH.ROTATED.{id}")),
            ..Token::default()
        };
        self.save(store, token);
    }

    pub fn delete(&mut self, store: &EncryptedStore, id: &str) {
        store.delete_token(id).expect("delete");
        self.deleted.extend(self.live.remove(id));
    }

    /// Copies the store's files to a fresh directory.
    pub fn copy(&self) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = store_path(dir.path());
        copy_dir(&self.path(), &path);
        (dir, path)
    }

    /// Every file of the store, relative to its directory, in a stable order.
    pub fn files(&self) -> Vec<PathBuf> {
        let root = self.path();
        let mut files: Vec<PathBuf> = walk(&root)
            .into_iter()
            .map(|p| p.strip_prefix(&root).expect("under root").to_path_buf())
            .collect();
        files.sort();
        files
    }
}

fn store_path(dir: &Path) -> PathBuf {
    dir.join("store")
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create dir");
    for entry in fs::read_dir(from).expect("list dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// Every regular file under `dir`.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).expect("list dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// How a damaged store answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Opened, and every lookup and `verify` found everything as saved.
    Intact,
    /// Opened; some reads failed with `Corrupt` or `verify` reported the damage, and nothing
    /// wrong was returned.
    DamageReported,
    /// `open` refused the store with this error.
    Refused(&'static str),
}

/// What `recover(true)` and `repair` made of a store that a normal open refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Salvage {
    /// Not tried: the store opened normally.
    NotNeeded,
    /// Even a recovery open failed with this error.
    Unopenable(&'static str),
    /// `repair` failed with this error.
    RepairFailed(&'static str),
    /// Repaired: `verify` is clean; `intact` when it holds exactly the tokens last saved (else
    /// some commits were lost, and it holds earlier versions or fewer tokens).
    Repaired { intact: bool },
}

/// The variant of an error, for counting.
pub fn kind(err: &Error) -> &'static str {
    match err {
        Error::WrongPassphrase => "WrongPassphrase",
        Error::Locked { .. } => "Locked",
        Error::Corrupt { .. } => "Corrupt",
        Error::UnsupportedFormat { .. } => "UnsupportedFormat",
        Error::NotFound { .. } => "NotFound",
        Error::InvalidToken { .. } => "InvalidToken",
        Error::Conflict { .. } => "Conflict",
        Error::InvalidOptions { .. } => "InvalidOptions",
        Error::Io { .. } => "Io",
        _ => "other",
    }
}

/// Opens a (possibly damaged) copy of the fixture and reads it through every lookup path,
/// panicking on any broken promise. `what` names the damage in failure messages.
pub fn inspect(fixture: &Fixture, path: &Path, what: &str) -> Outcome {
    let store = match common::try_open(path, common::PASSPHRASE) {
        Ok(store) => store,
        Err(err) => return Outcome::Refused(refusal(&err, what)),
    };
    let mut reader = Reader::new(fixture, &store, what);
    reader.read_everything();
    let clean = match store.verify() {
        Ok(report) => report.is_clean(),
        Err(err) => {
            reader.typed(&err, "verify");
            false
        }
    };
    assert!(
        reader.misses == 0 || !clean,
        "{what}: {} saved token(s) missing from lookups, and verify is clean",
        reader.misses
    );
    if reader.errors == 0 && reader.misses == 0 && clean {
        Outcome::Intact
    } else {
        Outcome::DamageReported
    }
}

/// Opens a store with `recover(true)`, which also opens one whose loss check fails.
pub fn try_recover(path: &Path) -> Result<EncryptedStore, Error> {
    OpenOptions::new()
        .kdf(common::FAST_KDF)
        .recover(true)
        .open(path, common::PASSPHRASE)
}

/// [`try_recover`], for a store that must open.
pub fn recover(path: &Path) -> EncryptedStore {
    try_recover(path).expect("open for recovery")
}

/// Opens a copy the normal open refused with `recover(true)`, repairs it, and checks that the
/// result is clean and holds nothing that was not saved.
pub fn salvage(fixture: &Fixture, path: &Path, what: &str) -> Salvage {
    let store = match try_recover(path) {
        Ok(store) => store,
        Err(err) => return Salvage::Unopenable(refusal(&err, what)),
    };
    let missing = match store.verify() {
        Ok(report) => match report.seal {
            SealStatus::Ahead { missing_commits } => missing_commits,
            _ => 0,
        },
        Err(err) => return Salvage::RepairFailed(refusal(&err, what)),
    };
    match store.repair() {
        Ok(repaired) => assert_eq!(
            repaired.lost_commits, missing,
            "{what}: repair acknowledged another number of lost commits than verify reported"
        ),
        Err(err) => return Salvage::RepairFailed(refusal(&err, what)),
    }
    let report = store.verify().expect("verify after repair");
    assert!(
        report.is_clean(),
        "{what}: not clean after repair: {report:?}"
    );
    let tokens = store.get_tokens().expect("get_tokens after repair");
    // Commits lost to the damage stay lost: what survives may be an earlier version of a token,
    // or one whose deletion was lost, but never anything that was not saved under its id.
    let mut reader = Reader {
        history: true,
        ..Reader::new(fixture, &store, what)
    };
    for token in &tokens {
        reader.check_returned(token, "get_tokens after repair");
        reader.check_paths(token);
    }
    assert_eq!(
        reader.errors + reader.misses,
        0,
        "{what}: lookups fail after repair"
    );
    drop(store);
    let reopened = common::try_open(path, common::PASSPHRASE);
    assert!(
        reopened.is_ok(),
        "{what}: a repaired store does not open: {reopened:?}"
    );
    let intact = tokens.iter().eq(fixture.live.values());
    Salvage::Repaired { intact }
}

fn refusal(err: &Error, what: &str) -> &'static str {
    let kind = kind(err);
    assert!(
        matches!(
            kind,
            "Corrupt" | "WrongPassphrase" | "UnsupportedFormat" | "Io"
        ),
        "{what}: open failed with an unexpected error: {err:?}"
    );
    kind
}

/// Reads a store through every path and checks each answer against the fixture.
struct Reader<'a> {
    fixture: &'a Fixture,
    store: &'a EncryptedStore,
    what: &'a str,
    /// Reads that failed with a typed error.
    errors: usize,
    /// Saved tokens that a read said were not there.
    misses: usize,
    /// Whether any version ever saved under an id is an acceptable answer, not only the last.
    history: bool,
}

impl<'a> Reader<'a> {
    fn new(fixture: &'a Fixture, store: &'a EncryptedStore, what: &'a str) -> Self {
        Reader {
            fixture,
            store,
            what,
            errors: 0,
            misses: 0,
            history: false,
        }
    }

    fn read_everything(&mut self) {
        for (id, token) in &self.fixture.live {
            match self.store.find_token_by_id(id) {
                Ok(Some(found)) => self.check_returned(&found, "find_token_by_id"),
                Ok(None) => self.misses += 1,
                Err(err) => self.typed(&err, "find_token_by_id"),
            }
            self.check_paths(token);
        }
        for gone in self.fixture.deleted.iter().chain(&self.fixture.stale) {
            self.check_gone(gone);
        }
        match self.store.get_tokens() {
            Ok(tokens) => self.check_listing(&tokens),
            Err(err) => self.typed(&err, "get_tokens"),
        }
    }

    /// Looks `token` up by each of its indexed values; each answer must be `token` itself.
    fn check_paths(&mut self, token: &Token) {
        for query in queries(token) {
            match self.store.find_token(&query) {
                Ok(Some(found)) => assert!(
                    &found == token,
                    "{}: find_token returned another token",
                    self.what
                ),
                Ok(None) => self.misses += 1,
                Err(err) => self.typed(&err, "find_token"),
            }
        }
    }

    /// A deleted token, or the old values of a rotated one, must lead nowhere.
    fn check_gone(&mut self, gone: &Token) {
        let id = gone.id.as_deref().expect("id");
        let current = self.fixture.live.get(id);
        match self.store.find_token_by_id(id) {
            Ok(Some(found)) => assert!(
                Some(&found) == current,
                "{}: a deleted or overwritten token came back by id {id}",
                self.what
            ),
            Ok(None) => {}
            Err(err) => self.typed(&err, "find_token_by_id"),
        }
        for query in queries(gone) {
            match self.store.find_token(&query) {
                Ok(Some(found)) => assert!(
                    current.is_some_and(|c| queries(c).contains(&query) && &found == c),
                    "{}: an old value of token {id} still finds a token",
                    self.what
                ),
                Ok(None) => {}
                Err(err) => self.typed(&err, "find_token"),
            }
        }
    }

    /// `get_tokens` succeeded: it must hold exactly the saved tokens.
    fn check_listing(&mut self, tokens: &[Token]) {
        for token in tokens {
            self.check_returned(token, "get_tokens");
        }
        let ids: Vec<&str> = tokens.iter().filter_map(|t| t.id.as_deref()).collect();
        let saved: Vec<&str> = self.fixture.live.keys().map(String::as_str).collect();
        assert_eq!(
            ids, saved,
            "{}: get_tokens succeeded without every saved token",
            self.what
        );
    }

    /// A token a read returned must be exactly what was last saved under its id (or, after an
    /// acknowledged loss, any version that was saved under it).
    fn check_returned(&self, found: &Token, by: &str) {
        let id = found.id.as_deref().unwrap_or_default();
        let f = self.fixture;
        let earlier = || f.stale.iter().chain(&f.deleted).any(|t| t == found);
        assert!(
            f.live.get(id) == Some(found) || (self.history && earlier()),
            "{}: {by} returned a token for id {id:?} that is not what was saved",
            self.what
        );
    }

    fn typed(&mut self, err: &Error, by: &str) {
        assert!(
            matches!(err, Error::Corrupt { .. } | Error::Io { .. }),
            "{}: {by} failed with an unexpected error: {err:?}",
            self.what
        );
        self.errors += 1;
    }
}

/// One query per lookup path that `token` can be found by.
pub fn queries(token: &Token) -> Vec<Token> {
    let mut queries = Vec::new();
    if token.user_name.is_some() {
        queries.push(Token {
            user_name: token.user_name.clone(),
            ..Token::default()
        });
    }
    if token.access_token.is_some() {
        queries.push(Token {
            access_token: token.access_token.clone(),
            ..Token::default()
        });
    }
    let client = Token {
        client_id: token.client_id.clone(),
        client_secret: token.client_secret.clone(),
        ..Token::default()
    };
    if client.client_id.is_some() && client.client_secret.is_some() {
        if token.refresh_token.is_some() {
            queries.push(Token {
                refresh_token: token.refresh_token.clone(),
                ..client.clone()
            });
        }
        if token.grant_token.is_some() {
            queries.push(Token {
                grant_token: token.grant_token.clone(),
                ..client
            });
        }
    }
    queries
}

/// Runs `f` on the store's sled database, opened directly (the store must be closed), and
/// flushes what it wrote: how the tests play an attacker or a bug that edits the trees.
pub fn with_sled<T>(store: &Path, f: impl FnOnce(&sled::Db) -> T) -> T {
    let dir = store.join("db");
    // sled releases its lock from a background thread just after a handle closes.
    let mut tries = 0;
    let db = loop {
        match sled::open(&dir) {
            Ok(db) => break db,
            Err(_) if tries < 200 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(err) => panic!("sled::open: {err}"),
        }
    };
    let result = f(&db);
    db.flush().expect("flush sled");
    result
}

/// The key under which `tree` holds an entry whose value is `id` (index trees map a keyed hash
/// to the id of the record holding the value).
pub fn index_key_of(db: &sled::Db, tree: &str, id: &str) -> Vec<u8> {
    let tree = db.open_tree(tree).expect("open tree");
    tree.iter()
        .map(|entry| entry.expect("entry"))
        .find(|(_, value)| value.as_ref() == id.as_bytes())
        .map(|(key, _)| key.to_vec())
        .expect("an index entry for the id")
}
