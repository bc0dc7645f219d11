//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;

use tokenvault::{Durability, EncryptedStore, KdfParams, OpenOptions, Token};

/// Insecure KDF parameters that make opening a store take microseconds. Tests only.
pub const FAST_KDF: KdfParams = KdfParams {
    memory_kib: 1024,
    iterations: 1,
    parallelism: 1,
};

pub const PASSPHRASE: &str = "test passphrase";

/// Opens (or creates) a store at `path` with the fast KDF.
pub fn open(path: &Path) -> EncryptedStore {
    try_open(path, PASSPHRASE).expect("open store")
}

pub fn try_open(path: &Path, passphrase: &str) -> Result<EncryptedStore, tokenvault::Error> {
    OpenOptions::new().kdf(FAST_KDF).open(path, passphrase)
}

/// Opens with buffered durability, for tests that write a lot.
pub fn open_buffered(path: &Path) -> EncryptedStore {
    OpenOptions::new()
        .kdf(FAST_KDF)
        .durability(Durability::Buffered)
        .open(path, PASSPHRASE)
        .expect("open store")
}

/// A complete token whose every value is unique to `n` and easy to grep for.
pub fn token(n: u32) -> Token {
    Token {
        id: None,
        user_name: Some(format!("user{n}@example.com")),
        client_id: Some(format!("1000.CLIENTID{n:06}")),
        client_secret: Some(format!("SECRET-{n:06}-c0ffee")),
        refresh_token: Some(format!("1000.REFRESH.{n:06}.deadbeef")),
        access_token: Some(format!("1000.ACCESS.{n:06}.feedface")),
        grant_token: Some(format!("1000.GRANT.{n:06}.cafebabe")),
        expiry_time: Some(1_900_000_000_000 + i64::from(n)),
        redirect_url: Some("https://app.example.com/cb".into()),
        api_domain: Some("https://www.zohoapis.eu".into()),
    }
}

/// Every entry under `dir`, recursively, by path: a file's bytes, or `None` for a directory.
///
/// Two snapshots compare equal only when no entry was added, removed or changed.
pub fn snapshot_tree(
    dir: &Path,
) -> std::io::Result<std::collections::BTreeMap<std::path::PathBuf, Option<Vec<u8>>>> {
    let mut entries = std::collections::BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current)? {
            let path = entry?.path();
            if path.is_dir() {
                entries.insert(path.clone(), None);
                pending.push(path);
            } else {
                entries.insert(path.clone(), Some(std::fs::read(&path)?));
            }
        }
    }
    Ok(entries)
}

/// True when `needle` occurs anywhere in `haystack`.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}
