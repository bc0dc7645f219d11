//! What a store's files hold and who can open them: the passphrase, persistence, the absence of
//! any plaintext secret on disk, permissions, and what `open` does with paths that are not a
//! store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::path::Path;

use tokenvault::{EncryptedStore, Error, OpenOptions, Token, TokenStore};

fn some(value: &str) -> Option<String> {
    Some(value.to_owned())
}

fn saved(store: &EncryptedStore, mut token: Token) -> Token {
    store.save_token(&mut token).unwrap();
    token
}

/// Every secret value a token holds.
fn secrets_of(token: &Token) -> Vec<String> {
    [
        &token.user_name,
        &token.client_id,
        &token.client_secret,
        &token.refresh_token,
        &token.access_token,
        &token.grant_token,
    ]
    .into_iter()
    .flatten()
    .cloned()
    .collect()
}

/// Fails naming the file when any of `secrets` occurs in any file under `dir`.
fn assert_no_plaintext(dir: &Path, secrets: &[String]) {
    let files = common::snapshot_tree(dir).unwrap();
    let total: usize = files.values().flatten().map(Vec::len).sum();
    assert!(total > 0, "nothing was read under {}", dir.display());
    for (path, bytes) in &files {
        let Some(bytes) = bytes else { continue };
        for secret in secrets {
            assert!(
                !common::contains_bytes(bytes, secret.as_bytes()),
                "{} holds the secret {secret:?} in the clear",
                path.display()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The passphrase

#[test]
fn wrong_passphrase_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let token = saved(&common::open(&path), common::token(1));

    let err = common::try_open(&path, "not the passphrase").unwrap_err();
    assert!(matches!(err, Error::WrongPassphrase), "{err:?}");
    // The refusal did not damage anything: the right passphrase still opens the data.
    let store = common::open(&path);
    assert_eq!(store.get_tokens().unwrap(), vec![token]);
}

#[test]
fn reopen_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = common::open(&path);
    for n in 1..=3 {
        saved(&store, common::token(n));
    }
    let rotate = Token {
        id: some("2"),
        refresh_token: some("1000.ROTATED.refresh"),
        ..Token::default()
    };
    saved(&store, rotate);
    store.delete_token("3").unwrap();
    let before = store.get_tokens().unwrap();
    drop(store);

    let store = common::open(&path);
    assert_eq!(store.get_tokens().unwrap(), before);
    assert_eq!(before.len(), 2);
    let query = Token {
        user_name: some("user2@example.com"),
        ..Token::default()
    };
    let found = store.find_token(&query).unwrap().unwrap();
    assert_eq!(found.refresh_token, some("1000.ROTATED.refresh"));
}

#[test]
fn change_passphrase_replaces_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = common::open(&path);
    let token = saved(&store, common::token(1));
    store.change_passphrase("the new passphrase").unwrap();
    // The open handle keeps working after the change.
    let second = saved(&store, common::token(2));
    drop(store);

    let err = common::try_open(&path, common::PASSPHRASE).unwrap_err();
    assert!(matches!(err, Error::WrongPassphrase), "{err:?}");
    let store = common::try_open(&path, "the new passphrase").unwrap();
    assert_eq!(store.get_tokens().unwrap(), vec![token, second]);
}

#[test]
fn empty_new_passphrase_is_refused_and_the_old_one_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = common::open(&path);
    let token = saved(&store, common::token(1));
    let err = store.change_passphrase("").unwrap_err();
    assert!(matches!(err, Error::InvalidOptions { .. }), "{err:?}");
    drop(store);

    let store = common::open(&path);
    assert_eq!(store.get_tokens().unwrap(), vec![token]);
}

#[test]
fn empty_passphrase_is_refused_on_creation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let err = OpenOptions::new()
        .kdf(common::FAST_KDF)
        .open(&path, "")
        .unwrap_err();
    assert!(matches!(err, Error::InvalidOptions { .. }), "{err:?}");
    assert!(!path.join("tokenvault.header").exists());
    // The refusal leaves nothing that stops a proper creation.
    let store = common::open(&path);
    saved(&store, common::token(1));
    drop(store);
    assert_eq!(common::open(&path).get_tokens().unwrap().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Nothing in the clear

/// Saves, rotates every indexed field, deletes (one by id, the rest by purge and by
/// `delete_tokens` on a second batch), and returns every secret value ever handed to the store.
fn churn(store: &EncryptedStore) -> Vec<String> {
    let mut secrets = vec![common::PASSPHRASE.to_owned()];
    for n in 1..=4 {
        secrets.extend(secrets_of(&saved(store, common::token(n))));
    }
    let rotated = Token {
        id: some("1"),
        user_name: some("renamed.user1@example.com"),
        refresh_token: some("1000.ROTATED-REFRESH.000001.0badf00d"),
        access_token: some("1000.ROTATED-ACCESS.000001.0badf00d"),
        grant_token: some("1000.ROTATED-GRANT.000001.0badf00d"),
        client_secret: some("ROTATED-SECRET-000001"),
        ..Token::default()
    };
    secrets.extend(secrets_of(&saved(store, rotated)));
    store.delete_token("2").unwrap();

    let dying = Token {
        user_name: some("dying.user@example.com"),
        access_token: some("1000.DYING-ACCESS.000009.0badf00d"),
        expiry_time: Some(1),
        ..Token::default()
    };
    secrets.extend(secrets_of(&saved(store, dying)));
    assert_eq!(store.purge_expired(1).unwrap(), 1);
    secrets
}

#[test]
fn no_secret_is_written_in_the_clear() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = common::open(&path);
    let mut secrets = churn(&store);
    store.flush().unwrap();
    assert_no_plaintext(&path, &secrets);

    // A second life: reopen, more writes, then everything deleted at once.
    drop(store);
    let store = common::open(&path);
    for n in 10..=12 {
        secrets.extend(secrets_of(&saved(&store, common::token(n))));
    }
    store.delete_tokens().unwrap();
    drop(store);
    assert_no_plaintext(&path, &secrets);
}

#[test]
fn buffered_store_writes_no_secret_in_the_clear() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = common::open_buffered(&path);
    let secrets = churn(&store);
    drop(store);
    assert_no_plaintext(&path, &secrets);
}

/// The scan above can fail: a secret planted in a file under the store is reported.
#[test]
#[should_panic(expected = "holds the secret")]
fn the_plaintext_scan_finds_a_planted_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = common::open(&path);
    saved(&store, common::token(1));
    drop(store);
    let secret = common::token(1).client_secret.unwrap();
    fs::write(path.join("db").join("planted"), format!("..{secret}..")).unwrap();
    assert_no_plaintext(&path, &[secret]);
}

#[cfg(unix)]
#[test]
fn created_store_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("store");
    let store = common::open(&path);
    saved(&store, common::token(1));
    drop(store);

    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o700, "store directory");
    for name in ["tokenvault.header", "tokenvault.seal", "tokenvault.lock"] {
        assert_eq!(mode(&path.join(name)), 0o600, "{name}");
    }
}

#[cfg(unix)]
#[test]
fn database_is_private_even_in_an_existing_open_directory() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared");
    fs::create_dir(&path).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    let store = common::open(&path);
    saved(&store, common::token(1));
    drop(store);

    let mode = fs::metadata(path.join("db")).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o700,
        "sled's directory inside a directory others can list"
    );
}

// ---------------------------------------------------------------------------------------------
// Paths that are not a store

#[test]
fn directory_of_other_files_is_refused_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("photos");
    fs::create_dir_all(path.join("2024")).unwrap();
    fs::write(path.join("notes.txt"), "keep me").unwrap();
    fs::write(path.join("2024").join("img.raw"), [0_u8, 1, 2, 255]).unwrap();
    let before = common::snapshot_tree(&path).unwrap();

    let err = common::try_open(&path, common::PASSPHRASE).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert_eq!(common::snapshot_tree(&path).unwrap(), before);
}

#[test]
fn directory_with_only_a_subdirectory_is_refused_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    // A `db` directory alone looks like part of a store, but without a header it is not one.
    fs::create_dir_all(path.join("db")).unwrap();
    let before = common::snapshot_tree(&path).unwrap();
    let err = common::try_open(&path, common::PASSPHRASE).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    assert_eq!(common::snapshot_tree(&path).unwrap(), before);
}

#[test]
fn empty_existing_directory_is_initialized() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty");
    fs::create_dir(&path).unwrap();
    let store = common::open(&path);
    let token = saved(&store, common::token(1));
    drop(store);
    assert!(path.join("tokenvault.header").is_file());
    assert_eq!(common::open(&path).get_tokens().unwrap(), vec![token]);
}

#[test]
fn regular_file_is_refused_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.db");
    fs::write(&path, "not a directory").unwrap();
    let before = common::snapshot_tree(dir.path()).unwrap();
    let err = common::try_open(&path, common::PASSPHRASE).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert_eq!(common::snapshot_tree(dir.path()).unwrap(), before);
}

// ---------------------------------------------------------------------------------------------
// Debug and error output

/// Fails when `text` shows any of `secrets` (or a recognizable part of one).
fn assert_quiet(text: &str, secrets: &[String]) {
    for secret in secrets {
        let head = &secret[..secret.len().min(12)];
        assert!(!text.contains(head), "{text:?} shows {secret:?}");
    }
}

#[test]
fn token_debug_shows_no_secret() {
    let token = common::token(7);
    let secrets = secrets_of(&token);
    assert_eq!(secrets.len(), 6);
    assert_quiet(&format!("{token:?}"), &secrets);
    assert_quiet(&format!("{token:#?}"), &secrets);
    // The fields that are not secret stay visible: Debug is still useful.
    assert!(format!("{token:?}").contains("1900000000007"));
}

#[test]
fn errors_show_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = common::open(&path);
    let held = saved(&store, common::token(1));
    let mut secrets = secrets_of(&held);
    secrets.push(common::PASSPHRASE.to_owned());
    let mut errors = Vec::new();

    // A conflict on each field, from a new record carrying a taken value.
    let clash = |token: Token| Token {
        id: some("2"),
        access_token: token.access_token.or_else(|| some("fresh")),
        ..token
    };
    let clashes = [
        clash(Token {
            user_name: held.user_name.clone(),
            ..Token::default()
        }),
        clash(Token {
            access_token: held.access_token.clone(),
            ..Token::default()
        }),
        clash(Token {
            refresh_token: held.refresh_token.clone(),
            ..Token::default()
        }),
        clash(Token {
            grant_token: held.grant_token.clone(),
            ..Token::default()
        }),
    ];
    for mut token in clashes {
        errors.push(store.save_token(&mut token).unwrap_err());
    }

    // An oversized value made of a secret, and a token with nothing to authenticate with.
    let huge = held.client_secret.clone().unwrap().repeat(10_000);
    let oversized = Token {
        client_secret: Some(huge),
        ..common::token(3)
    };
    errors.push(store.save_token(&mut oversized.clone()).unwrap_err());
    let powerless = Token {
        refresh_token: None,
        access_token: None,
        grant_token: None,
        ..common::token(4)
    };
    errors.push(store.save_token(&mut powerless.clone()).unwrap_err());
    errors.push(store.delete_token("404").unwrap_err());
    errors.push(common::try_open(&path, common::PASSPHRASE).unwrap_err());
    drop(store);
    errors.push(common::try_open(&path, "a wrong passphrase").unwrap_err());
    secrets.push("a wrong passphrase".to_owned());

    for err in &errors {
        assert_quiet(&format!("{err:?}"), &secrets);
        assert_quiet(&err.to_string(), &secrets);
    }
    let conflicts = errors
        .iter()
        .filter(|e| matches!(e, Error::Conflict { .. }));
    assert_eq!(conflicts.count(), 4);
    assert!(errors.iter().any(|e| matches!(e, Error::Locked { .. })));
    assert!(errors.iter().any(|e| matches!(e, Error::WrongPassphrase)));
    assert_eq!(
        errors
            .iter()
            .filter(|e| matches!(e, Error::InvalidToken { .. }))
            .count(),
        2
    );
}
