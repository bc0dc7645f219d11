//! A writer killed with SIGKILL at random points, over and over on one store: every reopen works,
//! `verify` is clean, and every operation that returned before the kill is in the store.
//!
//! The test re-runs its own binary as a child that runs only `child_writer`: it saves, rotates
//! and deletes tokens in a loop, printing `begin` before each call and `done` once it returned.
//! The parent kills it after a random number of completed operations plus a random pause, reads
//! what the child printed before dying, and checks the reopened store against it: each `done`
//! operation is applied, and the one operation in flight is either wholly applied or not at all.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokenvault::{Token, TokenStore};

/// The store the child writes to; the child does nothing without it.
const STORE_VAR: &str = "TOKENVAULT_TEST_CRASH_LOOP_STORE";
/// The round and the seed, which decide what the child does.
const ROUND_VAR: &str = "TOKENVAULT_TEST_CRASH_LOOP_ROUND";
const SEED_VAR: &str = "TOKENVAULT_TEST_CRASH_LOOP_SEED";
const ROUNDS: u32 = 50;

/// A small xorshift generator: reproducible from the seed the test prints.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The token the child inserts as operation `k` of `round`.
fn made(round: u32, k: u32) -> Token {
    Token {
        user_name: Some(format!("user.{round}.{k}@example.com")),
        client_id: Some("1000.CLIENT".into()),
        client_secret: Some("client-secret".into()),
        refresh_token: Some(format!("1000.R.{round}.{k}")),
        access_token: Some(format!("1000.A.{round}.{k}")),
        expiry_time: Some(1_900_000_000_000 + i64::from(k)),
        ..Token::default()
    }
}

/// `token` after the child's rotation number `k` of `round`.
fn rotated(token: &Token, round: u32, k: u32) -> Token {
    Token {
        refresh_token: Some(format!("1000.R.{round}.{k}.rotated")),
        access_token: Some(format!("1000.A.{round}.{k}.rotated")),
        ..token.clone()
    }
}

/// One operation as the child announces it: `<begin|done> <save|rotate|delete> <id|-> <k>`.
#[derive(Clone, Debug, PartialEq)]
struct Op {
    kind: String,
    id: String,
    k: u32,
}

impl Op {
    fn parse(line: &str) -> Option<(bool, Op)> {
        // With --nocapture the harness's "test child_writer ... " may start the first line.
        let start = line.find("begin ").or_else(|| line.find("done "))?;
        let mut words = line[start..].split_whitespace();
        let done = match words.next()? {
            "begin" => false,
            "done" => true,
            _ => return None,
        };
        let kind = words.next()?.to_string();
        let id = words.next()?.to_string();
        let k = words.next()?.parse().ok()?;
        Some((done, Op { kind, id, k }))
    }

    /// Applies the operation to the expected state; `inserted` is the id a save got.
    fn apply(&self, state: &mut BTreeMap<String, Token>, round: u32, inserted: &str) {
        match self.kind.as_str() {
            "save" => {
                let token = Token {
                    id: Some(inserted.into()),
                    ..made(round, self.k)
                };
                state.insert(inserted.into(), token);
            }
            "rotate" => {
                let token = rotated(&state[&self.id], round, self.k);
                state.insert(self.id.clone(), token);
            }
            "delete" => {
                state.remove(&self.id);
            }
            other => panic!("unknown operation {other}"),
        }
    }
}

/// The child's side: writes until killed (or, should the parent be gone, for a few seconds).
#[test]
#[ignore = "the child process of crash_loop, which runs it itself"]
fn child_writer() {
    let Ok(path) = std::env::var(STORE_VAR) else {
        return;
    };
    let round: u32 = std::env::var(ROUND_VAR).unwrap().parse().unwrap();
    let seed: u64 = std::env::var(SEED_VAR).unwrap().parse().unwrap();
    let mut rng = Rng(seed ^ u64::from(round).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let store = common::open(Path::new(&path));
    let mut live: Vec<String> = store
        .get_tokens()
        .unwrap()
        .into_iter()
        .map(|t| t.id.unwrap())
        .collect();
    let mut out = std::io::stdout().lock();
    let deadline = Instant::now() + Duration::from_secs(10);
    for k in 0.. {
        if Instant::now() > deadline {
            break;
        }
        let choice = if live.len() < 3 { 0 } else { rng.below(3) };
        let pick = live
            .get(rng.below(live.len().max(1) as u64) as usize)
            .cloned();
        match (choice, pick) {
            (1, Some(id)) => {
                writeln!(out, "begin rotate {id} {k}").unwrap();
                out.flush().unwrap();
                let mut token = rotated(&store.find_token_by_id(&id).unwrap().unwrap(), round, k);
                store.save_token(&mut token).unwrap();
                writeln!(out, "done rotate {id} {k}").unwrap();
            }
            (2, Some(id)) if live.len() > 3 => {
                writeln!(out, "begin delete {id} {k}").unwrap();
                out.flush().unwrap();
                store.delete_token(&id).unwrap();
                live.retain(|l| *l != id);
                writeln!(out, "done delete {id} {k}").unwrap();
            }
            _ => {
                writeln!(out, "begin save - {k}").unwrap();
                out.flush().unwrap();
                let mut token = made(round, k);
                store.save_token(&mut token).unwrap();
                let id = token.id.unwrap();
                writeln!(out, "done save {id} {k}").unwrap();
                live.push(id);
            }
        }
        out.flush().unwrap();
    }
}

#[test]
fn killed_at_random_points_the_store_keeps_every_completed_operation() {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("crash_loop seed {seed}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let mut rng = Rng(seed);
    let mut expected = BTreeMap::new();
    let (mut killed_mid_operation, mut completed) = (0, 0);
    for round in 0..ROUNDS {
        // Now and then right after the start, so that opening (and creating) is hit too.
        let completions = if rng.below(5) == 0 {
            0
        } else {
            1 + rng.below(30) as usize
        };
        let pause = Duration::from_micros(rng.below(3000));
        let (done, in_flight) = run_child(&path, round, seed, completions, pause);
        killed_mid_operation += usize::from(in_flight.is_some());
        completed += done.len();
        expected = check_store(&path, round, expected, &done, in_flight.as_ref());
    }
    println!(
        "{ROUNDS} kills, {killed_mid_operation} in the middle of an operation, {completed} \
         operations completed, {} tokens at the end",
        expected.len()
    );
    // A child that never got to write would make every check above trivially true.
    assert!(
        completed >= ROUNDS as usize,
        "the children completed only {completed} operations"
    );
}

/// Runs the child until it has completed `completions` operations (or until it has started,
/// for 0), waits `pause`, kills it, and returns what it completed and what it had begun.
fn run_child(
    path: &Path,
    round: u32,
    seed: u64,
    completions: usize,
    pause: Duration,
) -> (Vec<Op>, Option<Op>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_writer",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(STORE_VAR, path)
        .env(ROUND_VAR, round.to_string())
        .env(SEED_VAR, seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut done = Vec::new();
    let mut in_flight = None;
    let mut record = |line: &str, done: &mut Vec<Op>| match Op::parse(line) {
        Some((true, op)) => {
            let begun = in_flight.take().map(|b: Op| (b.kind, b.k));
            assert_eq!(
                begun,
                Some((op.kind.clone(), op.k)),
                "round {round}: {line}"
            );
            done.push(op);
        }
        Some((false, op)) => in_flight = Some(op),
        None => {}
    };
    while done.len() < completions {
        let Some(line) = lines.next() else { break };
        record(&line.unwrap(), &mut done);
    }
    std::thread::sleep(pause);
    child.kill().unwrap();
    // What the child printed before it died still counts: those calls had returned.
    for line in lines {
        record(&line.unwrap(), &mut done);
    }
    child.wait().unwrap();
    (done, in_flight)
}

/// Reopens the store and checks it against the expected state after `done`, with `in_flight`
/// applied or not. Returns the state the store is in.
fn check_store(
    path: &Path,
    round: u32,
    mut expected: BTreeMap<String, Token>,
    done: &[Op],
    in_flight: Option<&Op>,
) -> BTreeMap<String, Token> {
    for op in done {
        op.apply(&mut expected, round, &op.id);
    }
    let store = common::try_open(path, common::PASSPHRASE)
        .unwrap_or_else(|e| panic!("round {round}: the store does not open after a kill: {e}"));
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "round {round}: {report:?}");
    let actual: BTreeMap<String, Token> = store
        .get_tokens()
        .unwrap()
        .into_iter()
        .map(|t| (t.id.clone().unwrap(), t))
        .collect();
    if actual == expected {
        return actual;
    }
    let op = in_flight.unwrap_or_else(|| {
        panic!(
            "round {round}: the store differs from the {} completed operations",
            done.len()
        )
    });
    let inserted = match op.kind.as_str() {
        "save" => actual
            .keys()
            .find(|id| !expected.contains_key(*id))
            .cloned()
            .unwrap_or_default(),
        _ => op.id.clone(),
    };
    op.apply(&mut expected, round, &inserted);
    assert!(
        actual == expected,
        "round {round}: the store is neither before nor after {op:?}"
    );
    actual
}
