//! A token's whole life cycle in an encrypted store, as an OAuth SDK drives it.
//!
//! Run with `cargo run --release --example quickstart`. It creates `./quickstart-store` (replacing
//! the one a previous run left), saves a granted token, looks it up by every path, rotates its
//! tokens, shows that a wrong passphrase is refused, deletes the token, and finally reads every
//! file of the store to show that no secret is in the clear.

use std::error::Error;
use std::fs;
use std::path::Path;
use std::time::Instant;

use tokenvault::{EncryptedStore, Token, TokenStore};

const STORE: &str = "quickstart-store";
const PASSPHRASE: &str = "correct horse battery staple";

fn main() -> Result<(), Box<dyn Error>> {
    let path = Path::new(STORE);
    if path.join("tokenvault.header").exists() {
        fs::remove_dir_all(path)?;
    }

    let started = Instant::now();
    let store = EncryptedStore::open(path, PASSPHRASE)?;
    let kdf = store.kdf_params();
    println!(
        "created {STORE}/ in {:.2?} (Argon2id: {} MiB, {} passes, {} lanes)",
        started.elapsed(),
        kdf.memory_kib / 1024,
        kdf.iterations,
        kdf.parallelism
    );

    let mut token = granted();
    store.save_token(&mut token)?;
    let id = token.id.clone().unwrap_or_default();
    println!("1. saved the granted token as id {id:?}");

    look_up_by_every_path(&store, &token)?;
    let rotated = rotate(&store, &id)?;
    println!(
        "3. rotated: the old refresh and access tokens find nothing, the new ones find id {id:?}"
    );
    check_rotation(&store, &token, &rotated)?;
    drop(store);

    match EncryptedStore::open(path, "not the passphrase") {
        Err(tokenvault::Error::WrongPassphrase) => println!("4. a wrong passphrase is refused"),
        other => return Err(format!("expected a wrong-passphrase error, got {other:?}").into()),
    }

    let store = EncryptedStore::open(path, PASSPHRASE)?;
    store.delete_token(&id)?;
    println!("5. deleted it; {} token(s) left", store.get_tokens()?.len());
    let report = store.verify()?;
    println!(
        "6. verify: {} records, clean: {}",
        report.records,
        report.is_clean()
    );
    drop(store);

    let secrets = secret_values(&token, &rotated);
    let found = plaintext_in_files(path, &secrets)?;
    println!(
        "7. read every file under {STORE}/ looking for {} secret values: {found} found",
        secrets.len()
    );
    if found > 0 {
        return Err("a secret value was found in the clear on disk".into());
    }
    Ok(())
}

/// A token as the SDK saves it right after exchanging a grant token.
fn granted() -> Token {
    Token {
        user_name: Some("alice@example.com".into()),
        client_id: Some("1000.QUICKSTARTCLIENT".into()),
        client_secret: Some("quickstart-client-secret-0123456789".into()),
        grant_token: Some("1000.grant.quickstart0123456789".into()),
        refresh_token: Some("1000.refresh.quickstart0123456789".into()),
        access_token: Some("1000.access.quickstart0123456789".into()),
        expiry_time: Some(now_ms() + 3_600_000),
        redirect_url: Some("https://app.example.com/callback".into()),
        api_domain: Some("https://www.zohoapis.com".into()),
        ..Token::default()
    }
}

/// The SDK's four ways to find a token from a partial one, and lookup by id.
fn look_up_by_every_path(store: &EncryptedStore, token: &Token) -> Result<(), Box<dyn Error>> {
    let client = Token {
        client_id: token.client_id.clone(),
        client_secret: token.client_secret.clone(),
        ..Token::default()
    };
    let queries = [
        (
            "user name",
            Token {
                user_name: token.user_name.clone(),
                ..Token::default()
            },
        ),
        (
            "access token",
            Token {
                access_token: token.access_token.clone(),
                ..Token::default()
            },
        ),
        (
            "grant token",
            Token {
                grant_token: token.grant_token.clone(),
                ..client.clone()
            },
        ),
        (
            "refresh token",
            Token {
                refresh_token: token.refresh_token.clone(),
                ..client
            },
        ),
    ];
    for (path, query) in queries {
        let found = store
            .find_token(&query)?
            .ok_or(format!("not found by {path}"))?;
        if found != *token {
            return Err(format!("lookup by {path} returned another token").into());
        }
    }
    let id = token.id.as_deref().unwrap_or_default();
    if store.find_token_by_id(id)?.as_ref() != Some(token) {
        return Err("lookup by id returned another token".into());
    }
    println!("2. found it by user name, access token, grant token, refresh token and id");
    Ok(())
}

/// What the SDK saves after a refresh: new tokens under the same id, the rest kept.
fn rotate(store: &EncryptedStore, id: &str) -> Result<Token, Box<dyn Error>> {
    let mut refreshed = Token {
        id: Some(id.into()),
        refresh_token: Some("1000.refresh.rotated9876543210".into()),
        access_token: Some("1000.access.rotated9876543210".into()),
        expiry_time: Some(now_ms() + 3_600_000),
        ..Token::default()
    };
    store.save_token(&mut refreshed)?;
    Ok(refreshed)
}

fn check_rotation(store: &EncryptedStore, old: &Token, new: &Token) -> Result<(), Box<dyn Error>> {
    let by_access = |access: &Option<String>| Token {
        access_token: access.clone(),
        ..Token::default()
    };
    if store.find_token(&by_access(&old.access_token))?.is_some() {
        return Err("the rotated-away access token still finds the record".into());
    }
    if store.find_token(&by_access(&new.access_token))?.as_ref() != Some(new) {
        return Err("the new access token does not find the record".into());
    }
    Ok(())
}

fn secret_values(old: &Token, new: &Token) -> Vec<String> {
    [old, new]
        .iter()
        .flat_map(|t| {
            [
                &t.user_name,
                &t.client_id,
                &t.client_secret,
                &t.refresh_token,
                &t.access_token,
            ]
            .into_iter()
            .chain([&t.grant_token])
            .flatten()
            .cloned()
        })
        .collect()
}

/// Counts the secret values that occur in any file under `dir`.
fn plaintext_in_files(dir: &Path, secrets: &[String]) -> Result<usize, Box<dyn Error>> {
    let mut found = 0;
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            found += plaintext_in_files(&path, secrets)?;
            continue;
        }
        let bytes = fs::read(&path)?;
        found += secrets
            .iter()
            .filter(|s| bytes.windows(s.len()).any(|w| w == s.as_bytes()))
            .count();
    }
    Ok(found)
}

fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since_epoch.map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
