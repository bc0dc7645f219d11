//! A process killed right after a save returned loses nothing of that save.
//!
//! The test re-runs its own binary as a child that runs only `child_writer`: it opens the store,
//! saves, reports what it saved on stdout, and waits. The parent kills it with SIGKILL (no
//! destructor, no flush), reopens the store and looks for what the child reported.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokenvault::{EncryptedStore, Token, TokenStore};

/// The store the child writes to; the child does nothing without it.
const STORE_VAR: &str = "TOKENVAULT_TEST_CRASH_STORE";
/// The round number, which decides what the child saves.
const ROUND_VAR: &str = "TOKENVAULT_TEST_CRASH_ROUND";
/// Set to open the store with buffered durability and flush before reporting.
const BUFFERED_VAR: &str = "TOKENVAULT_TEST_CRASH_BUFFERED";

const SIGKILL: i32 = 9;

fn some(value: &str) -> Option<String> {
    Some(value.to_owned())
}

/// Record 1's refresh and access tokens after the rotation of `round`.
fn rotated(round: u32) -> (String, String) {
    (
        format!("1000.R{round}.rotated"),
        format!("1000.A{round}.rotated"),
    )
}

/// The child's side: round 1 creates record 1; every round saves `common::token(round + 100)`
/// and rotates record 1's refresh and access tokens, then reports and waits to be killed. A
/// buffered child flushes before it reports.
#[test]
#[ignore = "the child process of the crash tests, which run it themselves"]
fn child_writer() {
    let Ok(path) = std::env::var(STORE_VAR) else {
        return;
    };
    let round: u32 = std::env::var(ROUND_VAR).unwrap().parse().unwrap();
    let buffered = std::env::var_os(BUFFERED_VAR).is_some();
    let store = if buffered {
        common::open_buffered(Path::new(&path))
    } else {
        common::open(Path::new(&path))
    };
    if round == 1 {
        store.save_token(&mut common::token(1)).unwrap();
    }
    let mut token = common::token(round + 100);
    store.save_token(&mut token).unwrap();
    let (refresh, access) = rotated(round);
    let mut rotation = Token {
        id: some("1"),
        refresh_token: Some(refresh),
        access_token: Some(access),
        ..Token::default()
    };
    store.save_token(&mut rotation).unwrap();
    if buffered {
        store.flush().unwrap();
    }

    // On a line of its own: the test harness may have printed a partial line before.
    println!("\nsaved {} {round}", token.id.unwrap());
    std::io::Write::flush(&mut std::io::stdout()).unwrap();
    // Still holding the store open. Bounded, so that an orphan cannot linger for ever.
    std::thread::sleep(Duration::from_secs(300));
}

/// A child process that is killed when dropped, so that a failing parent leaves none behind.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `child_writer` for `round` on `path`, waits for its report, and kills it with SIGKILL.
/// Returns the id it reported.
fn save_then_kill(path: &Path, round: u32, buffered: bool) -> String {
    let exe = std::env::current_exe().unwrap();
    let mut command = Command::new(exe);
    command
        .args(["child_writer", "--exact", "--ignored", "--nocapture"])
        .arg("--test-threads=1")
        .env(STORE_VAR, path)
        .env(ROUND_VAR, round.to_string())
        .stdout(Stdio::piped());
    if buffered {
        command.env(BUFFERED_VAR, "1");
    }
    let mut child = Child(command.spawn().unwrap());

    let stdout = child.0.stdout.take().unwrap();
    let report = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("saved ").map(str::to_owned))
        .unwrap_or_else(|| panic!("round {round}: the child ended without reporting a save"));
    let (id, reported_round) = report.split_once(' ').unwrap();
    assert_eq!(reported_round, round.to_string());

    child.0.kill().unwrap();
    let status = child.0.wait().unwrap();
    assert_eq!(status.signal(), Some(SIGKILL), "round {round}: {status:?}");
    id.to_owned()
}

/// Checks what the child of `round` reported is in the store, with its rotation.
fn assert_survived(store: &EncryptedStore, round: u32, id: &str) {
    let expected = Token {
        id: some(id),
        ..common::token(round + 100)
    };
    assert_eq!(store.find_token_by_id(id).unwrap(), Some(expected.clone()));
    let by_user = Token {
        user_name: expected.user_name.clone(),
        ..Token::default()
    };
    assert_eq!(store.find_token(&by_user).unwrap(), Some(expected));

    let first = store.find_token_by_id("1").unwrap().unwrap();
    let (refresh, access) = rotated(round);
    assert_eq!(first.refresh_token, Some(refresh.clone()), "round {round}");
    assert_eq!(first.access_token, Some(access));
    let by_refresh = |refresh: String| Token {
        client_id: first.client_id.clone(),
        client_secret: first.client_secret.clone(),
        refresh_token: Some(refresh),
        ..Token::default()
    };
    assert_eq!(
        store.find_token(&by_refresh(refresh)).unwrap(),
        Some(first.clone())
    );
    if round > 1 {
        let (before, _) = rotated(round - 1);
        assert_eq!(store.find_token(&by_refresh(before)).unwrap(), None);
    }
}

/// Rounds of: a child saves and rotates, reports, is killed; the parent reopens and checks.
fn kill_rounds(rounds: u32, buffered: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    for round in 1..=rounds {
        let id = save_then_kill(&path, round, buffered);
        let store = common::open(&path);
        assert_survived(&store, round, &id);
        assert_eq!(store.get_tokens().unwrap().len(), round as usize + 1);
        assert!(store.verify().unwrap().is_clean(), "round {round}");
    }
}

/// The default durability: every save is durable when it returns.
#[test]
fn killed_writer_loses_nothing_it_reported() {
    kill_rounds(4, false);
}

/// Buffered durability keeps its promise for what was flushed before the kill.
#[test]
fn killed_buffered_writer_keeps_what_it_flushed() {
    kill_rounds(2, true);
}
