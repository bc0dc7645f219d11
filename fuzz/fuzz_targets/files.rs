//! Damaged store files: byte flips, truncations, extensions and deletions, then every read.
//!
//! A small store with a known history is built once; each run copies its files into a fresh
//! directory, applies the damage the input describes, opens the copy and reads it through every
//! lookup path. Whatever comes back must be exactly what was last saved under that id; a deleted
//! or overwritten token must never come back; a saved token may be missing from an answer only if
//! `verify` reports damage; and every failure must be a typed error. A copy that `open` refuses is
//! then opened with `recover(true)` and repaired, which must leave a clean store holding nothing
//! that was not saved.
//!
//! Input: 8-byte commands `[kind, file, offset (u32 LE), value, count]`, at most 16:
//! kind % 5 = 0 xor the byte at `offset` with `value` (or 1), 1 set it to `value`, 2 truncate the
//! file to `offset`, 3 append `count + 1` bytes of `value`, 4 delete the file. `file` indexes the
//! sorted list of the store's files; `offset` is taken modulo the file's length.
#![no_main]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tokenvault::{
    Durability, EncryptedStore, Error, KdfParams, OpenOptions, SealStatus, Token, TokenStore,
};

const PASSPHRASE: &str = "fuzz passphrase";
/// The cheapest parameters Argon2 accepts: the fuzzer is after the files, not the KDF.
const KDF: KdfParams = KdfParams {
    memory_kib: 8,
    iterations: 1,
    parallelism: 1,
};
const MAX_COMMANDS: usize = 16;

fuzz_target!(|data: &[u8]| {
    contain_engine_panics();
    let template = TEMPLATE.get_or_init(Template::build);
    let dir = scratch_dir();
    let path = dir.path().join("store");
    template.write_to(&path);
    for command in data.chunks_exact(8).take(MAX_COMMANDS) {
        damage(&path, &template.files, command);
    }
    match open(&path, false) {
        Ok(store) => template.check_open(&store),
        Err(Error::Corrupt { .. }) => template.check_salvage(&path),
        Err(err) => check_refusal(&err),
    }
});

/// The store every run starts from: its files, and what it holds.
struct Template {
    /// Relative path and contents of every file, sorted by path.
    files: Vec<(PathBuf, Vec<u8>)>,
    live: BTreeMap<String, Token>,
    /// Deleted tokens and earlier versions of rotated ones.
    gone: Vec<Token>,
}

static TEMPLATE: OnceLock<Template> = OnceLock::new();

impl Template {
    /// Six tokens, two rotated, one deleted, then closed.
    fn build() -> Template {
        let dir = scratch_dir();
        let path = dir.path().join("store");
        let store = open(&path, false).expect("create the template store");
        let mut live = BTreeMap::new();
        let mut gone = Vec::new();
        for n in 1..=6 {
            let mut token = token(n);
            store.save_token(&mut token).expect("save");
            live.insert(token.id.clone().expect("id"), token);
        }
        for id in ["2", "5"] {
            let mut rotated = Token {
                id: Some(id.into()),
                access_token: Some(format!("access-rotated-{id}")),
                refresh_token: Some(format!("refresh-rotated-{id}")),
                ..Token::default()
            };
            store.save_token(&mut rotated).expect("rotate");
            gone.extend(live.insert(id.into(), rotated));
        }
        store.delete_token("3").expect("delete");
        gone.extend(live.remove("3"));
        drop(store);
        let mut files = Vec::new();
        read_tree(&path, Path::new(""), &mut files);
        files.sort();
        Template { files, live, gone }
    }

    fn write_to(&self, path: &Path) {
        for (name, bytes) in &self.files {
            let target = path.join(name);
            fs::create_dir_all(target.parent().expect("parent")).expect("create dir");
            fs::write(target, bytes).expect("write file");
        }
    }

    /// Reads everything through every path; a saved token may be missing only if `verify`
    /// says the store is damaged.
    fn check_open(&self, store: &EncryptedStore) {
        let mut missing = false;
        for (id, token) in &self.live {
            match store.find_token_by_id(id) {
                Ok(found) => missing |= self.check_found(found, Some(token)),
                Err(err) => check_read_error(&err),
            }
            for query in queries(token) {
                match store.find_token(&query) {
                    Ok(found) => missing |= self.check_found(found, Some(token)),
                    Err(err) => check_read_error(&err),
                }
            }
        }
        for old in &self.gone {
            self.check_gone(store, old);
        }
        match store.get_tokens() {
            Ok(tokens) => assert!(tokens.iter().eq(self.live.values()), "get_tokens is wrong"),
            Err(err) => check_read_error(&err),
        }
        match store.verify() {
            Ok(report) => assert!(!missing || !report.is_clean(), "silent loss: {report:?}"),
            Err(err) => check_read_error(&err),
        }
    }

    /// `found` must be `expected`; returns whether it was missing.
    fn check_found(&self, found: Option<Token>, expected: Option<&Token>) -> bool {
        match found {
            Some(found) => {
                assert!(
                    Some(&found) == expected,
                    "a read returned a token that was not saved"
                );
                false
            }
            None => expected.is_some(),
        }
    }

    /// A deleted token's id and values, and a rotated token's old values, lead nowhere (or, for
    /// values rotation kept, to the current token).
    fn check_gone(&self, store: &EncryptedStore, old: &Token) {
        let id = old.id.as_deref().expect("id");
        let current = self.live.get(id);
        match store.find_token_by_id(id) {
            Ok(found) => assert!(found.as_ref() == current, "a deleted token came back"),
            Err(err) => check_read_error(&err),
        }
        for query in queries(old) {
            match store.find_token(&query) {
                Ok(Some(found)) => {
                    let kept = current.is_some_and(|c| queries(c).contains(&query));
                    assert!(
                        kept && Some(&found) == current,
                        "an old value found a token"
                    );
                }
                Ok(None) => {}
                Err(err) => check_read_error(&err),
            }
        }
    }

    /// Opens with `recover(true)`, repairs, and checks the result is clean and genuine.
    fn check_salvage(&self, path: &Path) {
        let store = match open(path, true) {
            Ok(store) => store,
            Err(err) => return check_refusal(&err),
        };
        let missing = match store.verify() {
            Ok(report) => match report.seal {
                SealStatus::Ahead { missing_commits } => missing_commits,
                _ => 0,
            },
            Err(err) => return check_read_error(&err),
        };
        match store.repair() {
            Ok(report) => assert_eq!(report.lost_commits, missing, "repair miscounted the loss"),
            Err(err) => return check_read_error(&err),
        }
        let report = store.verify().expect("verify after a repair");
        assert!(report.is_clean(), "not clean after a repair: {report:?}");
        for token in store.get_tokens().expect("get_tokens after a repair") {
            // Lost commits stay lost, so an earlier version may be what survived.
            let genuine = self.live.values().chain(&self.gone).any(|t| t == &token);
            assert!(
                genuine,
                "a repaired store holds a token that was never saved"
            );
            for query in queries(&token) {
                let found = store.find_token(&query).expect("lookup after a repair");
                assert!(
                    found.as_ref() == Some(&token),
                    "an index is wrong after a repair"
                );
            }
        }
    }
}

/// Applies one damage command.
fn damage(path: &Path, files: &[(PathBuf, Vec<u8>)], command: &[u8]) {
    let target = path.join(&files[usize::from(command[1]) % files.len()].0);
    let Ok(mut bytes) = fs::read(&target) else {
        return; // deleted by an earlier command
    };
    let offset = u32::from_le_bytes([command[2], command[3], command[4], command[5]]) as usize;
    let (value, count) = (command[6], usize::from(command[7]));
    let at = offset % bytes.len().max(1);
    match command[0] % 5 {
        0 if !bytes.is_empty() => bytes[at] ^= value.max(1),
        1 if !bytes.is_empty() => bytes[at] = value,
        2 => bytes.truncate(offset % (bytes.len() + 1)),
        3 => bytes.extend(std::iter::repeat_n(value, count + 1)),
        4 => return fs::remove_file(&target).expect("delete file"),
        _ => {}
    }
    fs::write(&target, bytes).expect("write damaged file");
}

fn open(path: &Path, recover: bool) -> Result<EncryptedStore, Error> {
    OpenOptions::new()
        .kdf(KDF)
        .durability(Durability::Immediate)
        .recover(recover)
        .open(path, PASSPHRASE)
}

/// `open` may refuse damaged files only as damage (or as the I/O error a missing file gives).
fn check_refusal(err: &Error) {
    let expected = matches!(
        err,
        Error::Corrupt { .. }
            | Error::WrongPassphrase
            | Error::UnsupportedFormat { .. }
            | Error::Io { .. }
    );
    assert!(expected, "open failed with an unexpected error: {err:?}");
}

fn check_read_error(err: &Error) {
    let expected = matches!(err, Error::Corrupt { .. } | Error::Io { .. });
    assert!(expected, "a read failed with an unexpected error: {err:?}");
}

/// A token whose every value is unique to `n`.
fn token(n: u32) -> Token {
    Token {
        id: None,
        user_name: Some(format!("user{n}@example.com")),
        client_id: Some(format!("client-{n}")),
        client_secret: Some(format!("secret-{n}")),
        refresh_token: Some(format!("refresh-{n}")),
        access_token: Some(format!("access-{n}")),
        grant_token: Some(format!("grant-{n}")),
        expiry_time: Some(1_900_000_000_000 + i64::from(n)),
        redirect_url: Some("https://app.example.com/cb".into()),
        api_domain: Some("https://www.zohoapis.eu".into()),
    }
}

/// One query per lookup path `token` can be found by.
fn queries(token: &Token) -> Vec<Token> {
    let client = Token {
        client_id: token.client_id.clone(),
        client_secret: token.client_secret.clone(),
        ..Token::default()
    };
    vec![
        Token {
            user_name: token.user_name.clone(),
            ..Token::default()
        },
        Token {
            access_token: token.access_token.clone(),
            ..Token::default()
        },
        Token {
            refresh_token: token.refresh_token.clone(),
            ..client.clone()
        },
        Token {
            grant_token: token.grant_token.clone(),
            ..client
        },
    ]
}

fn read_tree(root: &Path, relative: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    for entry in fs::read_dir(root.join(relative)).expect("list dir") {
        let entry = entry.expect("dir entry");
        let name = relative.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            read_tree(root, &name, out);
        } else {
            out.push((name.clone(), fs::read(root.join(&name)).expect("read file")));
        }
    }
}

/// A fresh directory, in memory when the system has a tmpfs at /dev/shm: every run writes and
/// syncs a whole store.
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

/// libfuzzer-sys aborts on every panic, including the ones `engine::guarded` catches and turns
/// into `Error::Corrupt`, which is the store's contract for sled's panics on damaged files. Let
/// panics on this thread unwind (one that escapes the store still aborts, in libfuzzer-sys's
/// wrapper); abort on any other thread, where sled's background work cannot be contained.
fn contain_engine_panics() {
    static HOOK: OnceLock<()> = OnceLock::new();
    HOOK.get_or_init(|| {
        let fuzz_thread = std::thread::current().id();
        std::panic::set_hook(Box::new(move |info| {
            eprintln!("panic: {info}");
            if std::thread::current().id() != fuzz_thread {
                std::process::abort();
            }
        }));
    });
}
