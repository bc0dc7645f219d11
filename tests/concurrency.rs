//! One store shared by many threads, and the lock that keeps a second handle out.
//!
//! Nothing here depends on timing: threads run to completion and the assertions are about
//! results, whatever the interleaving was.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use tokenvault::{EncryptedStore, Error, Token, TokenStore};

const THREADS: u32 = 4;

fn some(value: &str) -> Option<String> {
    Some(value.to_owned())
}

fn by_user(token: &Token) -> Token {
    Token {
        user_name: token.user_name.clone(),
        ..Token::default()
    }
}

fn by_access(access: &str) -> Token {
    Token {
        access_token: some(access),
        ..Token::default()
    }
}

fn by_refresh(like: &Token, refresh: &str) -> Token {
    Token {
        client_id: like.client_id.clone(),
        client_secret: like.client_secret.clone(),
        refresh_token: some(refresh),
        ..Token::default()
    }
}

/// Runs `work(thread_number)` on `THREADS` threads at once and waits for all of them.
fn on_threads(work: impl Fn(u32) + Send + Sync + 'static) {
    let work = Arc::new(work);
    let start = Arc::new(Barrier::new(THREADS as usize));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (work, start) = (Arc::clone(&work), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                work(t);
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("a thread panicked");
    }
}

#[test]
fn concurrent_writers_each_find_their_own_tokens() {
    const PER_THREAD: u32 = 25;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(common::open(&dir.path().join("store")));

    let shared = Arc::clone(&store);
    on_threads(move |t| {
        for i in 0..PER_THREAD {
            let mut token = common::token(t * 1000 + i);
            shared.save_token(&mut token).unwrap();
            let found = shared.find_token(&by_user(&token)).unwrap();
            assert_eq!(found.as_ref(), Some(&token));
            let access = token.access_token.as_deref().unwrap();
            assert_eq!(shared.find_token(&by_access(access)).unwrap(), Some(token));
        }
    });

    let all = store.get_tokens().unwrap();
    assert_eq!(all.len(), (THREADS * PER_THREAD) as usize);
    // Every id was handed out exactly once, with no gap.
    let mut ids: Vec<u32> = all
        .iter()
        .map(|t| t.id.as_ref().unwrap().parse().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=THREADS * PER_THREAD).collect::<Vec<_>>());
    for t in 0..THREADS {
        for i in 0..PER_THREAD {
            let expected = common::token(t * 1000 + i);
            let found = store.find_token(&by_user(&expected)).unwrap().unwrap();
            assert_eq!(Token { id: None, ..found }, expected);
        }
    }
}

/// One thread rotates record 1's refresh and access tokens in step while others look it and
/// its neighbours up by every path. A lookup may see the record before or after any rotation,
/// but never an error, another record, or a refresh token from one rotation with the access
/// token of another.
#[test]
fn finds_during_rotations_see_whole_records() {
    const ROTATIONS: u32 = 300;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(common::open_buffered(&dir.path().join("store")));
    let seeded: Vec<Token> = (1..=4)
        .map(|n| {
            let mut t = common::token(n);
            store.save_token(&mut t).unwrap();
            t
        })
        .collect();
    let first = seeded[0].clone();
    let done = Arc::new(AtomicBool::new(false));

    let readers: Vec<_> = (0..THREADS - 1)
        .map(|r| {
            let (store, seeded, done) = (Arc::clone(&store), seeded.clone(), Arc::clone(&done));
            thread::spawn(move || read_during_rotations(&store, &seeded, &done, r))
        })
        .collect();
    for k in 1..=ROTATIONS {
        let mut rotation = Token {
            id: some("1"),
            refresh_token: Some(format!("R-{k}")),
            access_token: Some(format!("A-{k}")),
            ..Token::default()
        };
        store.save_token(&mut rotation).unwrap();
    }
    done.store(true, Ordering::SeqCst);
    for reader in readers {
        reader.join().expect("a reader failed");
    }

    let last = store.find_token(&by_user(&first)).unwrap().unwrap();
    assert_eq!(last.refresh_token, Some(format!("R-{ROTATIONS}")));
    let old = first.refresh_token.as_deref().unwrap();
    assert_eq!(store.find_token(&by_refresh(&first, old)).unwrap(), None);
    assert!(store.verify().unwrap().is_clean());
}

fn read_during_rotations(store: &EncryptedStore, seeded: &[Token], done: &AtomicBool, r: u32) {
    // At least one pass even if the writer is already finished.
    let mut pass = 0;
    while pass == 0 || !done.load(Ordering::SeqCst) {
        pass += 1;
        chase_rotation(store, &seeded[0]);
        if pass % 8 == 0 {
            look_around(store, seeded, (pass * 7 + r) % 310);
        }
    }
}

/// Reads record 1, then looks it up by the refresh and access tokens just seen, which the
/// writer is likely rotating away at that moment: the lookup finds nothing, or record 1 whole.
fn chase_rotation(store: &EncryptedStore, first: &Token) {
    let current = store.find_token_by_id("1").unwrap().unwrap();
    assert_whole(&current, first);
    let refresh = current.refresh_token.as_deref().unwrap();
    let access = current.access_token.as_deref().unwrap();
    for query in [
        by_refresh(first, refresh),
        by_access(access),
        by_user(first),
    ] {
        if let Some(hit) = store.find_token(&query).unwrap() {
            assert_whole(&hit, first);
        }
    }
}

/// The tokens of some rotation find record 1 or nothing; the other records are undisturbed.
fn look_around(store: &EncryptedStore, seeded: &[Token], k: u32) {
    let first = &seeded[0];
    let queries = [
        by_refresh(first, &format!("R-{k}")),
        by_access(&format!("A-{k}")),
    ];
    for query in queries {
        if let Some(hit) = store.find_token(&query).unwrap() {
            assert_whole(&hit, first);
        }
    }
    assert_whole(&store.find_token(&by_user(first)).unwrap().unwrap(), first);
    for other in &seeded[1..] {
        let access = other.access_token.as_deref().unwrap();
        let found = store.find_token(&by_access(access)).unwrap();
        assert_eq!(found.as_ref(), Some(other));
    }
    assert_eq!(store.get_tokens().unwrap().len(), seeded.len());
}

/// `token` is record 1 as of one rotation (or none): its refresh and access tokens match.
fn assert_whole(token: &Token, first: &Token) {
    assert_eq!(token.id.as_deref(), Some("1"));
    assert_eq!(token.user_name, first.user_name);
    let refresh = token.refresh_token.as_deref().unwrap();
    let access = token.access_token.as_deref().unwrap();
    match refresh.strip_prefix("R-") {
        Some(k) => assert_eq!(access, format!("A-{k}")),
        None => {
            assert_eq!(token.refresh_token, first.refresh_token);
            assert_eq!(token.access_token, first.access_token);
        }
    }
}

/// Threads race to insert different tokens that share a refresh token: exactly one wins each
/// round, and every other gets a conflict naming the winner.
#[test]
fn racing_inserts_of_one_value_leave_one_winner() {
    const ROUNDS: u32 = 10;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(common::open_buffered(&dir.path().join("store")));
    for round in 0..ROUNDS {
        let results = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (shared, sink) = (Arc::clone(&store), Arc::clone(&results));
        on_threads(move |t| {
            let mut token = Token {
                user_name: Some(format!("racer{t}.round{round}@example.com")),
                refresh_token: Some(format!("shared-refresh-{round}")),
                ..Token::default()
            };
            let result = shared.save_token(&mut token).map(|()| token.id.unwrap());
            sink.lock().unwrap().push(result);
        });

        let results = std::mem::take(&mut *results.lock().unwrap());
        let winners: Vec<&String> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        for result in &results {
            match result {
                Ok(_) => {}
                Err(Error::Conflict { field, held_by }) => {
                    assert_eq!(*field, "refresh_token");
                    assert_eq!(held_by, winners[0]);
                }
                Err(other) => panic!("round {round}: unexpected {other:?}"),
            }
        }
    }
    assert_eq!(store.get_tokens().unwrap().len(), ROUNDS as usize);
    assert!(store.verify().unwrap().is_clean());
}

// ---------------------------------------------------------------------------------------------
// One handle at a time

fn assert_locked(result: Result<EncryptedStore, Error>, path: &std::path::Path) {
    match result {
        Err(err @ Error::Locked { .. }) => {
            let shown = path.display().to_string();
            assert!(
                err.to_string().contains(&shown),
                "{err} does not name {shown}"
            );
        }
        Err(other) => panic!("expected Locked, got {other:?}"),
        Ok(_) => panic!("a second handle opened {}", path.display()),
    }
}

#[test]
fn second_open_is_locked_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = common::open(&path);
    let mut token = common::token(1);
    store.save_token(&mut token).unwrap();

    assert_locked(common::try_open(&path, common::PASSPHRASE), &path);
    // The lock is checked before the passphrase, and whatever the path's spelling.
    assert_locked(common::try_open(&path, "another passphrase"), &path);
    let respelled = path.join(".");
    assert_locked(common::try_open(&respelled, common::PASSPHRASE), &respelled);
    // The refused opens did not disturb the open handle.
    assert_eq!(store.get_tokens().unwrap(), vec![token.clone()]);
    drop(store);

    let store = common::open(&path);
    assert_eq!(store.get_tokens().unwrap(), vec![token]);
    drop(store);
    let again = common::open(&path);
    assert_locked(common::try_open(&path, common::PASSPHRASE), &path);
    drop(again);
}

/// Threads race to create the same new store: one gets it, the others are locked out, and the
/// store that results is a single, working one.
#[test]
fn racing_creations_make_one_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = Arc::new(dir.path().join("store"));
    let outcomes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let held = Arc::new(Barrier::new(THREADS as usize));

    let (shared_path, sink) = (Arc::clone(&path), Arc::clone(&outcomes));
    on_threads(move |t| {
        let result = common::try_open(&shared_path, common::PASSPHRASE);
        if let Ok(store) = &result {
            let mut token = common::token(t);
            store.save_token(&mut token).unwrap();
        }
        let outcome = result.as_ref().map(|_| ()).map_err(|e| format!("{e:?}"));
        sink.lock().unwrap().push(outcome);
        // Every handle stays open until all threads have tried.
        held.wait();
    });

    let outcomes = outcomes.lock().unwrap();
    let opened = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(opened, 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| o
        .as_ref()
        .map_or_else(|e| e.starts_with("Locked"), |()| true)));
    let store = common::open(&path);
    assert_eq!(store.get_tokens().unwrap().len(), 1);
}
