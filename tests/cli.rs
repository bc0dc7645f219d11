//! The `tokenvault` command-line tool, run as a real process on real files made here.
//!
//! The clock is pinned with `TOKENVAULT_NOW_MS` and the time zone with `TZ=UTC`, so that
//! output can be compared exactly. Every store uses the fast KDF.
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::assert::Assert;
use assert_cmd::Command;
use predicates::prelude::*;
use tempfile::TempDir;
use tokenvault::{Error, KdfParams, Token, TokenStore};

use common::PASSPHRASE;

/// Twelve minutes before `common::token(0)` expires.
const NOW_MS: i64 = 1_900_000_000_000 - 12 * 60_000;

/// The binary, with a pinned clock and time zone and no passphrase in the environment.
fn tv() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokenvault"));
    cmd.env("TZ", "UTC")
        .env("TOKENVAULT_NOW_MS", NOW_MS.to_string())
        .env_remove("TOKENVAULT_PASSPHRASE")
        .env_remove("TOKENVAULT_NEW_PASSPHRASE");
    cmd
}

/// A temporary directory with a passphrase file and a store path in it.
struct Fixture {
    dir: TempDir,
    store: PathBuf,
    pass: PathBuf,
}

impl Fixture {
    /// No store yet.
    fn empty() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let pass = dir.path().join("pass");
        fs::write(&pass, format!("{PASSPHRASE}\n")).unwrap();
        Fixture { dir, store, pass }
    }

    /// A store made by `tokenvault init`.
    fn new() -> Fixture {
        let fx = Fixture::empty();
        fx.init(&fx.store);
        fx
    }

    /// A store holding `tokens`, saved through the library.
    fn with_tokens(tokens: &[Token]) -> Fixture {
        let fx = Fixture::new();
        let store = common::open(&fx.store);
        for token in tokens {
            store.save_token(&mut token.clone()).unwrap();
        }
        fx
    }

    fn init(&self, path: &Path) {
        tv().arg("init")
            .arg(path)
            .args(FAST_KDF_ARGS)
            .arg("--passphrase-file")
            .arg(&self.pass)
            .assert()
            .success();
    }

    /// Runs `tokenvault SUBCOMMAND STORE ARGS... --passphrase-file PASS`.
    fn run(&self, subcommand: &str, args: &[&str]) -> Assert {
        self.command(subcommand, args).assert()
    }

    fn command(&self, subcommand: &str, args: &[&str]) -> Command {
        let mut cmd = tv();
        cmd.arg(subcommand)
            .arg(&self.store)
            .args(args)
            .arg("--passphrase-file")
            .arg(&self.pass);
        cmd
    }

    fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        fs::write(&path, contents).unwrap();
        path
    }

    /// What the store holds, read through the library.
    fn stored(&self) -> Vec<Token> {
        common::open(&self.store).get_tokens().unwrap()
    }
}

const FAST_KDF_ARGS: [&str; 6] = [
    "--kdf-memory",
    "1024",
    "--kdf-iterations",
    "1",
    "--kdf-parallelism",
    "1",
];

fn stdout(assert: &Assert) -> String {
    String::from_utf8(assert.get_output().stdout.clone()).unwrap()
}

fn stderr(assert: &Assert) -> String {
    String::from_utf8(assert.get_output().stderr.clone()).unwrap()
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Fails when `text` holds a secret of any of `tokens`, or the passphrase.
fn assert_no_secret(text: &str, tokens: &[Token]) {
    assert!(!text.contains(PASSPHRASE), "the passphrase leaked:\n{text}");
    for token in tokens {
        let secrets = [
            &token.client_secret,
            &token.refresh_token,
            &token.access_token,
            &token.grant_token,
        ];
        for secret in secrets.into_iter().flatten() {
            assert!(!text.contains(secret.as_str()), "{secret} leaked:\n{text}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Files as the SDK writes them.

/// One row as Python's `csv.writer` writes it: fields quoted only when they hold a comma, a
/// quote or a line break, quotes doubled, `\r\n` at the end.
fn python_csv_row(fields: &[String]) -> String {
    let quoted: Vec<String> = fields
        .iter()
        .map(|f| {
            if f.contains([',', '"', '\r', '\n']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.clone()
            }
        })
        .collect();
    format!("{}\r\n", quoted.join(","))
}

/// The SDK FileStore's CSV holding `tokens`: absent values as empty fields.
fn sdk_csv(tokens: &[Token], with_api_domain: bool) -> String {
    let mut header = "id,user_name,client_id,client_secret,refresh_token,access_token,\
                      grant_token,expiry_time,redirect_uri"
        .to_string();
    if with_api_domain {
        header.push_str(",api_domain");
    }
    let mut out = format!("{header}\r\n");
    for t in tokens {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let mut fields = vec![
            text(&t.id),
            text(&t.user_name),
            text(&t.client_id),
            text(&t.client_secret),
            text(&t.refresh_token),
            text(&t.access_token),
            text(&t.grant_token),
            t.expiry_time.map(|e| e.to_string()).unwrap_or_default(),
            text(&t.redirect_url),
        ];
        if with_api_domain {
            fields.push(text(&t.api_domain));
        }
        out.push_str(&python_csv_row(&fields));
    }
    out
}

/// A token as the SDK stores them: a client secret that needs quoting (a comma and a quote),
/// no grant token, and every third user name and api domain absent.
fn sdk_token(n: u32) -> Token {
    Token {
        id: Some(n.to_string()),
        user_name: (!n.is_multiple_of(3)).then(|| format!("user{n}@example.com")),
        client_id: Some(format!("1000.CLIENT{n:06}")),
        client_secret: Some(format!("sec,ret\"{n:040}")),
        refresh_token: Some(format!("1000.refresh.{n:058}")),
        access_token: Some(format!("1000.access.{n:058}")),
        grant_token: None,
        expiry_time: Some(1_900_000_000_000 + i64::from(n)),
        redirect_url: Some("https://app.example.com/cb".into()),
        api_domain: (n % 3 != 1).then(|| "https://www.zohoapis.eu".into()),
    }
}

/// A SQLite database with the SDK users' `oauthtoken` schema (under `table`) holding `tokens`;
/// absent values are NULL, except the user names, which are empty strings as some apps write.
fn sdk_sqlite(path: &Path, table: &str, tokens: &[Token]) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE {table} (id TEXT NOT NULL PRIMARY KEY, user_name TEXT, client_id TEXT, \
         client_secret TEXT, refresh_token TEXT, access_token TEXT, grant_token TEXT, \
         expiry_time TEXT, redirect_url TEXT, api_domain TEXT)"
    ))
    .unwrap();
    for t in tokens {
        conn.execute(
            &format!("INSERT INTO {table} VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
            rusqlite::params![
                t.id,
                t.user_name.clone().unwrap_or_default(),
                t.client_id,
                t.client_secret,
                t.refresh_token,
                t.access_token,
                t.grant_token,
                t.expiry_time.map(|e| e.to_string()),
                t.redirect_url,
                t.api_domain,
            ],
        )
        .unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// init

#[test]
fn init_creates_a_store_with_the_chosen_kdf_cost_and_refuses_an_existing_one() {
    let fx = Fixture::new();
    let store = common::try_open(&fx.store, PASSPHRASE).unwrap();
    let fast = KdfParams {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };
    assert_eq!(store.kdf_params(), fast);
    drop(store);

    let again = fx.run("init", &FAST_KDF_ARGS).failure().code(1);
    assert_eq!(
        stderr(&again),
        format!(
            "error: a store already exists at {}; init only creates new stores\n",
            fx.store.display()
        )
    );
}

#[test]
fn init_derives_lanes_the_memory_can_feed() {
    let fx = Fixture::empty();
    tv().args([
        "init",
        path_str(&fx.store),
        "--kdf-memory",
        "16",
        "--kdf-iterations",
        "1",
    ])
    .arg("--passphrase-file")
    .arg(&fx.pass)
    .assert()
    .success()
    .stdout(predicate::str::contains("16 KiB, 1 pass(es), 2 lane(s)"))
    .stderr(predicate::str::contains("below the default"));
    assert_eq!(common::open(&fx.store).kdf_params().parallelism, 2);
}

#[test]
fn init_refuses_a_directory_holding_other_files() {
    let fx = Fixture::empty();
    fx.file("store", "");
    fs::remove_file(&fx.store).unwrap();
    fs::create_dir(&fx.store).unwrap();
    fs::write(fx.store.join("notes.txt"), "mine").unwrap();
    fx.run("init", &FAST_KDF_ARGS)
        .failure()
        .code(1)
        .stderr(predicate::str::starts_with(
            "error: cannot create a store at",
        ));
    assert_eq!(fs::read(fx.store.join("notes.txt")).unwrap(), b"mine");
}

#[test]
fn passphrase_file_loses_exactly_one_trailing_newline() {
    let fx = Fixture::empty();
    for (name, contents, passphrase) in [
        ("lf", "pass word\n", "pass word"),
        ("crlf", "pass word\r\n", "pass word"),
        ("two", "pass word\n\n", "pass word\n"),
        ("none", "pass word", "pass word"),
    ] {
        let pass = fx.file(&format!("{name}.pass"), contents);
        let store = fx.dir.path().join(name);
        tv().arg("init")
            .arg(&store)
            .args(FAST_KDF_ARGS)
            .arg("--passphrase-file")
            .arg(&pass)
            .assert()
            .success();
        common::try_open(&store, passphrase).unwrap();
    }
}

#[test]
fn passphrase_comes_from_the_environment_when_there_is_no_file() {
    let fx = Fixture::empty();
    tv().arg("init")
        .arg(&fx.store)
        .args(FAST_KDF_ARGS)
        .env("TOKENVAULT_PASSPHRASE", "from the environment")
        .assert()
        .success();
    common::try_open(&fx.store, "from the environment").unwrap();
    tv().arg("list")
        .arg(&fx.store)
        .env("TOKENVAULT_PASSPHRASE", "from the environment")
        .assert()
        .success()
        .stdout("no tokens\n");
}

#[test]
fn without_a_passphrase_source_or_terminal_the_command_says_where_to_put_one() {
    let fx = Fixture::new();
    let assert = tv()
        .arg("list")
        .arg(&fx.store)
        .write_stdin("")
        .assert()
        .failure()
        .code(1);
    assert_eq!(
        stderr(&assert),
        "error: no passphrase: pass --passphrase-file FILE or set TOKENVAULT_PASSPHRASE (there \
         is no terminal to ask on)\n"
    );
}

/// Runs `init` under `script`, which gives it a pseudo-terminal fed from `input`.
#[cfg(target_os = "linux")]
fn init_on_a_terminal(store: &Path, input: &str) -> Assert {
    let init = format!(
        "'{}' init '{}' --kdf-memory 1024 --kdf-iterations 1 --kdf-parallelism 1",
        env!("CARGO_BIN_EXE_tokenvault"),
        store.display()
    );
    Command::new("script")
        .args(["-qec", &init, "/dev/null"])
        .env_remove("TOKENVAULT_PASSPHRASE")
        .write_stdin(input)
        .assert()
}

#[cfg(target_os = "linux")]
#[test]
fn on_a_terminal_init_asks_twice_and_refuses_a_mismatch() {
    let fx = Fixture::empty();
    let mismatch = init_on_a_terminal(&fx.store, "first try\nsecond try\n")
        .failure()
        .code(1);
    let out = stdout(&mismatch);
    assert!(out.contains("Passphrase for the new store: "), "{out}");
    assert!(
        out.contains("Passphrase for the new store (again): "),
        "{out}"
    );
    assert!(out.contains("error: the passphrases do not match; nothing was changed"));
    assert!(!fx.store.exists());

    init_on_a_terminal(&fx.store, "typed twice\ntyped twice\n").success();
    common::try_open(&fx.store, "typed twice").unwrap();
}

// ---------------------------------------------------------------------------------------------
// list and show

/// Token 1 expires in 12 minutes; token 2 (no user name, no access or grant token) expired in
/// 2027; token 10 (grant token only) has no expiry.
fn listed_tokens() -> Vec<Token> {
    let mut first = common::token(0);
    first.id = Some("1".into());
    let second = Token {
        id: Some("2".into()),
        client_id: Some("1000.CLIENTID000002".into()),
        client_secret: Some("short".into()),
        refresh_token: Some("1000.REFRESH.000002.deadbeef".into()),
        expiry_time: Some(1_800_000_000_000),
        ..Token::default()
    };
    let tenth = Token {
        id: Some("10".into()),
        grant_token: Some("1000.GRANT.000010.cafebabe".into()),
        ..Token::default()
    };
    vec![first, tenth, second]
}

#[test]
fn list_prints_ids_in_order_with_local_expiry_and_no_secret() {
    let tokens = listed_tokens();
    let fx = Fixture::with_tokens(&tokens);
    let assert = fx.run("list", &[]).success();
    let expected = "\
ID  USER               CLIENT ID            REFRESH  ACCESS  GRANT  EXPIRES
1   user0@example.com  1000.CLIENTID000000  yes      yes     yes    2030-03-17 17:46 UTC (in 12 min)
2   -                  1000.CLIENTID000002  yes      no      no     2027-01-15 08:00 UTC (expired)
10  -                  -                    no       no      yes    -
";
    assert_eq!(stdout(&assert), expected);
    assert_eq!(stderr(&assert), "");
    assert_no_secret(expected, &tokens);
}

#[test]
fn list_follows_the_time_zone() {
    let fx = Fixture::with_tokens(&listed_tokens());
    let assert = fx
        .command("list", &[])
        .env("TZ", "Asia/Kolkata")
        .assert()
        .success();
    assert!(stdout(&assert).contains("2030-03-17 23:16 IST (in 12 min)"));
}

#[test]
fn list_json_holds_the_identifying_columns_only() {
    let tokens = listed_tokens();
    let fx = Fixture::with_tokens(&tokens);
    let assert = fx.run("list", &["--json"]).success();
    let out = stdout(&assert);
    assert_no_secret(&out, &tokens);
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let expected = serde_json::json!([
        {
            "id": "1", "user_name": "user0@example.com", "client_id": "1000.CLIENTID000000",
            "has_refresh_token": true, "has_access_token": true, "has_grant_token": true,
            "expiry_time": 1_900_000_000_000_i64, "expired": false
        },
        {
            "id": "2", "user_name": null, "client_id": "1000.CLIENTID000002",
            "has_refresh_token": true, "has_access_token": false, "has_grant_token": false,
            "expiry_time": 1_800_000_000_000_i64, "expired": true
        },
        {
            "id": "10", "user_name": null, "client_id": null,
            "has_refresh_token": false, "has_access_token": false, "has_grant_token": true,
            "expiry_time": null, "expired": null
        }
    ]);
    assert_eq!(listed, expected);
}

#[test]
fn show_masks_secrets_unless_asked_to_reveal_them() {
    let tokens = listed_tokens();
    let fx = Fixture::with_tokens(&tokens);
    let masked = fx.run("show", &["1"]).success();
    let expected = "\
id:            1
user_name:     user0@example.com
client_id:     1000.CLIENTID000000
client_secret: SECR…ffee
refresh_token: 1000…beef
access_token:  1000…face
grant_token:   1000…babe
expiry_time:   1900000000000 = 2030-03-17 17:46 UTC (in 12 min)
redirect_url:  https://app.example.com/cb
api_domain:    https://www.zohoapis.eu
";
    assert_eq!(stdout(&masked), expected);
    assert_no_secret(expected, &tokens);

    // A short secret is masked whole: four characters each side would be most of it.
    let short = fx.run("show", &["2"]).success();
    assert!(stdout(&short).contains("client_secret: ****\n"));
    assert!(stdout(&short).contains("(expired)"));

    let revealed = stdout(&fx.run("show", &["1", "--reveal"]).success());
    assert!(revealed.contains("client_secret: SECRET-000000-c0ffee\n"));
    assert!(revealed.contains("refresh_token: 1000.REFRESH.000000.deadbeef\n"));
}

#[test]
fn show_of_an_unknown_id_fails_naming_the_id() {
    let fx = Fixture::with_tokens(&listed_tokens());
    let assert = fx.run("show", &["99"]).failure().code(1);
    assert_eq!(
        stderr(&assert),
        format!(
            "error: no token with id \"99\"; run `tokenvault list {}` to see the ids\n",
            fx.store.display()
        )
    );
}

// ---------------------------------------------------------------------------------------------
// delete, purge-expired, passwd

#[test]
fn delete_removes_exactly_that_token() {
    let tokens = listed_tokens();
    let fx = Fixture::with_tokens(&tokens);
    fx.run("delete", &["2"])
        .success()
        .stdout("deleted the token with id \"2\"\n");
    let ids: Vec<_> = fx.stored().into_iter().map(|t| t.id.unwrap()).collect();
    assert_eq!(ids, ["1", "10"]);
    fx.run("delete", &["2"])
        .failure()
        .code(1)
        .stderr(predicate::str::starts_with("error: no token with id \"2\""));
}

#[test]
fn purge_expired_deletes_the_dead_tokens_and_says_how_many() {
    let dead = Token {
        id: Some("3".into()),
        access_token: Some("1000.ACCESS.dead".into()),
        expiry_time: Some(NOW_MS - 1),
        ..Token::default()
    };
    let mut tokens = listed_tokens();
    tokens.push(dead);
    let fx = Fixture::with_tokens(&tokens);
    // Token 2 expired too, but its refresh token can renew it.
    fx.run("purge-expired", &[])
        .success()
        .stdout("purged 1 expired token(s)\n");
    let ids: Vec<_> = fx.stored().into_iter().map(|t| t.id.unwrap()).collect();
    assert_eq!(ids, ["1", "10", "2"]);
    fx.run("purge-expired", &[])
        .success()
        .stdout("purged 0 expired token(s)\n");
}

#[test]
fn passwd_changes_the_passphrase_from_a_file_or_the_environment() {
    let fx = Fixture::with_tokens(&listed_tokens());
    let new_pass = fx.file("new.pass", "second passphrase\n");
    fx.command("passwd", &["--new-passphrase-file", path_str(&new_pass)])
        .assert()
        .success()
        .stdout(format!(
            "changed the passphrase of {}\n",
            fx.store.display()
        ));
    assert!(matches!(
        common::try_open(&fx.store, PASSPHRASE),
        Err(Error::WrongPassphrase)
    ));
    assert_eq!(
        common::try_open(&fx.store, "second passphrase")
            .unwrap()
            .get_tokens()
            .unwrap()
            .len(),
        3
    );

    tv().arg("passwd")
        .arg(&fx.store)
        .env("TOKENVAULT_PASSPHRASE", "second passphrase")
        .env("TOKENVAULT_NEW_PASSPHRASE", "third passphrase")
        .assert()
        .success();
    common::try_open(&fx.store, "third passphrase").unwrap();
}

// ---------------------------------------------------------------------------------------------
// Failures: wrong passphrase, locked store, damage, usage

#[test]
fn a_wrong_passphrase_fails_with_exit_code_1_and_no_secret() {
    let tokens = listed_tokens();
    let fx = Fixture::with_tokens(&tokens);
    let wrong = fx.file("wrong.pass", "not the passphrase");
    for subcommand in ["list", "export", "verify"] {
        let assert = tv()
            .arg(subcommand)
            .arg(&fx.store)
            .arg("--passphrase-file")
            .arg(&wrong)
            .assert()
            .failure()
            .code(1);
        assert_eq!(
            stderr(&assert),
            "error: wrong passphrase: the store's key does not unwrap with it\n"
        );
        assert_eq!(stdout(&assert), "");
    }
}

#[test]
fn a_store_held_open_elsewhere_is_reported_as_in_use() {
    let fx = Fixture::with_tokens(&listed_tokens());
    let held = common::open(&fx.store);
    let assert = fx.run("list", &[]).failure().code(1);
    assert_eq!(
        stderr(&assert),
        format!(
            "error: store is in use by another process or handle: {}; close it and retry\n",
            fx.store.display()
        )
    );
    drop(held);
    fx.run("list", &[]).success();
}

#[test]
fn a_command_on_a_missing_store_does_not_create_one() {
    let fx = Fixture::empty();
    fx.run("list", &[]).failure().code(1).stderr(format!(
        "error: no store at {0}; create one with `tokenvault init {0}`\n",
        fx.store.display()
    ));
    assert!(!fx.store.exists());
}

#[test]
fn a_damaged_store_points_at_verify_which_reports_and_repair_which_fixes() {
    let fx = Fixture::with_tokens(&listed_tokens());
    fx.run("verify", &[]).success().stdout(
        "records: 3 authenticate, 0 damaged\nindex entries: 6 checked, 0 issue(s)\nquarantined \
         records: 0\ncommit seal: current\nresult: no damage found\n",
    );

    // Both slots of the commit seal overwritten: normal opens refuse the store.
    fs::write(fx.store.join("tokenvault.seal"), [0x5a; 80]).unwrap();
    let list = fx.run("list", &[]).failure().code(1);
    assert_eq!(
        stderr(&list),
        format!(
            "error: store is damaged: the commit seal fails authentication; run `tokenvault \
             verify {0}` to see the damage and `tokenvault repair {0}` to salvage the rest\n",
            fx.store.display()
        )
    );

    let verify = fx.run("verify", &[]).failure().code(1);
    assert!(stdout(&verify).contains("commit seal: the seal fails authentication\n"));
    assert!(stdout(&verify).ends_with(&format!(
        "result: damage found; run `tokenvault repair {}` to salvage what authenticates\n",
        fx.store.display()
    )));

    fx.run("repair", &[]).success().stdout(
        "records kept: 3\nrecords quarantined: 0\nindex entries removed: 0\nindex entries \
         added: 0\nvalues held twice: 0\nlost commits acknowledged: 0\nresult: repaired\n",
    );
    fx.run("verify", &[]).success();
    assert_eq!(fx.stored().len(), 3);
}

#[test]
fn verify_reports_a_deleted_seal_as_missing_not_as_damaged() {
    let fx = Fixture::with_tokens(&listed_tokens());
    fs::remove_file(fx.store.join("tokenvault.seal")).unwrap();
    fx.run("list", &[])
        .failure()
        .code(1)
        .stderr(predicate::str::starts_with(
            "error: store is damaged: the commit seal file tokenvault.seal is missing;",
        ));
    // Opening for verify creates an empty seal file; that must still read as no seal.
    for _ in 0..2 {
        let verify = fx.run("verify", &[]).failure().code(1);
        assert!(stdout(&verify).contains("commit seal: the seal file is missing\n"));
    }
    fx.run("repair", &[]).success();
    fx.run("verify", &[]).success();
}

#[test]
fn usage_errors_exit_with_2() {
    let fx = Fixture::new();
    let csv = fx.file("tokens.csv", sdk_csv(&[sdk_token(1)], true));
    let store = path_str(&fx.store);
    let cases: [&[&str]; 6] = [
        &[],
        &["list"],
        &["frobnicate", store],
        &["import", store, "--from", "xml", path_str(&csv)],
        &[
            "import",
            store,
            "--from",
            "zoho-csv",
            path_str(&csv),
            "--table",
            "t",
        ],
        // A passphrase is never taken as an argument.
        &["list", store, "--passphrase", PASSPHRASE],
    ];
    for args in cases {
        tv().args(args).assert().failure().code(2);
    }
    assert!(fx.stored().is_empty());
}

// ---------------------------------------------------------------------------------------------
// export

#[test]
fn export_masks_by_default_and_a_masked_export_cannot_be_imported() {
    let tokens = listed_tokens();
    let fx = Fixture::with_tokens(&tokens);
    let assert = fx.run("export", &["--format", "json"]).success();
    let out = stdout(&assert);
    assert_no_secret(&out, &tokens);
    assert_eq!(stderr(&assert), "");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["masked"], true);
    assert_eq!(doc["tokens"][0]["client_secret"], "SECR…ffee");
    assert_eq!(doc["tokens"][2]["id"], "10");

    let masked = fx.file("masked.json", &out);
    let other = Fixture::new();
    other
        .run("import", &["--from", "json", path_str(&masked)])
        .failure()
        .code(1)
        .stderr(predicate::str::contains("export again with --reveal"));
    assert!(other.stored().is_empty());
}

#[test]
fn a_malformed_export_is_refused_without_quoting_its_values() {
    let fx = Fixture::new();
    // serde_json's own message would quote the string where a number belongs.
    let json = r#"{"format": "tokenvault-export", "version": 1, "masked": false,
        "tokens": [{"id": "1", "access_token": "1000.ACCESS.x", "expiry_time": "1000.LEAKED"}]}"#;
    let file = fx.file("export.json", json);
    let assert = import(&fx, "json", &file, &[]).failure().code(1);
    assert_eq!(
        stderr(&assert),
        format!(
            "error: {} is not a tokenvault export: a value of the wrong kind at line 2, column \
             92\n",
            file.display()
        )
    );
    assert!(fx.stored().is_empty());
}

#[test]
fn export_reveal_then_import_gives_the_same_tokens() {
    let mut tokens = listed_tokens();
    tokens.push(Token {
        id: Some("weird id".into()),
        user_name: Some("ünïcödé \"quoted\", with comma".into()),
        access_token: Some("tab\tand\nnewline".into()),
        expiry_time: Some(-5),
        ..Token::default()
    });
    let fx = Fixture::with_tokens(&tokens);
    let assert = fx.run("export", &["--reveal"]).success();
    assert!(stderr(&assert).starts_with("warning: this export holds every secret in plaintext"));
    let exported = fx.file("export.json", stdout(&assert));

    let copy = Fixture::new();
    copy.run("import", &["--from", "json", path_str(&exported)])
        .success()
        .stdout(predicate::str::starts_with(
            "imported 4 token(s), skipped 0, in ",
        ));
    assert_eq!(copy.stored(), fx.stored());
}

// ---------------------------------------------------------------------------------------------
// import

/// Runs an import and returns the assert.
fn import(fx: &Fixture, from: &str, file: &Path, extra: &[&str]) -> Assert {
    let mut args = vec!["--from", from, path_str(file)];
    args.extend_from_slice(extra);
    fx.run("import", &args)
}

#[test]
fn import_reads_the_sdk_filestore_csv_with_ten_columns() {
    let tokens: Vec<Token> = (1..=12).map(sdk_token).collect();
    let fx = Fixture::new();
    let csv = fx.file("tokens.csv", sdk_csv(&tokens, true));
    let assert = import(&fx, "zoho-csv", &csv, &[]).success();
    assert!(stdout(&assert).starts_with("imported 12 token(s), skipped 0, in "));
    assert_eq!(
        stderr(&assert),
        format!(
            "note: {0} still holds these secrets in plaintext; once `tokenvault verify {1}` \
             passes and your app uses the store, delete it securely (e.g. `shred -u {0}`)\n",
            csv.display(),
            fx.store.display()
        )
    );
    let mut stored = fx.stored();
    tokenvault_sort(&mut stored);
    assert_eq!(stored, tokens);
}

#[test]
fn import_reads_the_older_nine_column_csv() {
    let tokens: Vec<Token> = (1..=5).map(sdk_token).collect();
    let fx = Fixture::new();
    let csv = fx.file("tokens.csv", sdk_csv(&tokens, false));
    import(&fx, "zoho-csv", &csv, &[]).success();
    let expected: Vec<Token> = tokens
        .into_iter()
        .map(|t| Token {
            api_domain: None,
            ..t
        })
        .collect();
    assert_eq!(fx.stored(), expected);
}

/// Ids "1", "10", "11", "2" in byte order; the tests compare in the order they were made.
fn tokenvault_sort(tokens: &mut [Token]) {
    tokens.sort_by_key(|t| t.id.as_ref().and_then(|id| id.parse::<u64>().ok()));
}

#[test]
fn import_reads_quoted_fields_with_line_breaks_and_reports_later_lines_correctly() {
    let mut tokens: Vec<Token> = (1..=4).map(sdk_token).collect();
    // Quoted by the SDK's writer, spanning two lines of the file.
    tokens[1].client_secret = Some("two\r\nlines, \"and\" quotes".into());
    tokens[2].expiry_time = None;
    let fx = Fixture::new();
    let mut text = sdk_csv(&tokens, true);
    // Row 3 starts on line 5 (header, row 1, row 2 on lines 3-4): spoil its expiry time.
    text = text.replacen(
        ",,,https://app.example.com/cb",
        ",,soon,https://app.example.com/cb",
        1,
    );
    let csv = fx.file("tokens.csv", &text);
    let assert = import(&fx, "zoho-csv", &csv, &[]).failure().code(1);
    assert_eq!(
        stderr(&assert),
        "line 5: expiry_time is not a whole number of milliseconds\nerror: 1 of 4 row(s) cannot \
         be imported, so nothing was imported; fix them, or pass --skip-invalid to import the \
         others\n"
    );

    tokens[2].expiry_time = None;
    let csv = fx.file("good.csv", sdk_csv(&tokens, true));
    import(&fx, "zoho-csv", &csv, &[]).success();
    assert_eq!(fx.stored(), tokens);
}

/// A file of `n` SDK tokens whose row `bad` has no token at all, and whose row `bad + 1` repeats
/// an earlier row's refresh token.
fn csv_with_bad_rows(n: u32, bad: u32) -> (Vec<Token>, String) {
    let mut tokens: Vec<Token> = (1..=n).map(sdk_token).collect();
    let i = bad as usize - 1;
    tokens[i].refresh_token = None;
    tokens[i].access_token = None;
    tokens[i + 1].refresh_token = tokens[0].refresh_token.clone();
    let text = sdk_csv(&tokens, true);
    (tokens, text)
}

#[test]
fn a_bad_row_in_the_middle_imports_nothing_and_each_is_reported_without_its_secrets() {
    let (tokens, text) = csv_with_bad_rows(10, 5);
    let fx = Fixture::new();
    let csv = fx.file("tokens.csv", text);
    let assert = import(&fx, "zoho-csv", &csv, &[]).failure().code(1);
    let err = stderr(&assert);
    assert_eq!(
        err,
        "line 6: it has no refresh, access or grant token\nline 7: its refresh_token repeats \
         the one on line 2\nerror: 2 of 10 row(s) cannot be imported, so nothing was imported; \
         fix them, or pass --skip-invalid to import the others\n"
    );
    assert_no_secret(&err, &tokens);
    assert_eq!(stdout(&assert), "");
    assert!(fx.stored().is_empty());
}

#[test]
fn skip_invalid_imports_the_good_rows_and_reports_the_others() {
    let (tokens, text) = csv_with_bad_rows(10, 5);
    let fx = Fixture::new();
    let csv = fx.file("tokens.csv", text);
    let assert = import(&fx, "zoho-csv", &csv, &["--skip-invalid"]).success();
    assert!(stdout(&assert).starts_with("imported 8 token(s), skipped 2, in "));
    assert!(stderr(&assert).starts_with(
        "line 6: it has no refresh, access or grant token\nline 7: its refresh_token repeats \
         the one on line 2\n"
    ));
    let mut expected = tokens;
    expected.remove(5);
    expected.remove(4);
    let mut stored = fx.stored();
    tokenvault_sort(&mut stored);
    assert_eq!(stored, expected);
}

#[test]
fn conflicts_with_stored_tokens_are_reported_unless_replace_is_given() {
    let stored = vec![sdk_token(1), sdk_token(2)];
    let fx = Fixture::with_tokens(&stored);
    // Row 1 brings id 1 with new values; row 2 a new id with stored token 1's user name.
    let mut same_id = sdk_token(50);
    same_id.id = Some("1".into());
    let mut same_user = sdk_token(51);
    same_user.user_name = stored[0].user_name.clone();
    let csv = fx.file(
        "tokens.csv",
        sdk_csv(&[same_id.clone(), same_user.clone()], true),
    );

    let assert = import(&fx, "zoho-csv", &csv, &[]).failure().code(1);
    assert_eq!(
        stderr(&assert),
        "line 2: conflict: a stored token has the id \"1\"\nline 3: conflict: its user_name is \
         already held by the stored token with id \"1\"\nerror: 2 of 2 row(s) cannot be \
         imported, so nothing was imported; fix them, or pass --skip-invalid to import the \
         others, --replace to overwrite the stored tokens in conflict\n"
    );
    assert_eq!(fx.stored(), stored);

    let assert = import(&fx, "zoho-csv", &csv, &["--replace"]).success();
    assert!(stdout(&assert).starts_with("imported 2 token(s), skipped 0, replaced 1 stored, in "));
    // Both rows replace stored token 1; the second must not delete what the first imported.
    assert_eq!(fx.stored(), vec![same_id, stored[1].clone(), same_user]);
}

#[test]
fn import_reads_the_sdk_users_sqlite_table() {
    let mut tokens: Vec<Token> = (1..=6).map(sdk_token).collect();
    tokens[4].grant_token = Some("1000.grant.5".into());
    tokens[5].expiry_time = None;
    let fx = Fixture::new();
    let db = fx.dir.path().join("tokens.db");
    sdk_sqlite(&db, "oauthtoken", &tokens);
    let assert = import(&fx, "sqlite", &db, &[]).success();
    assert!(stdout(&assert).starts_with("imported 6 token(s), skipped 0, in "));
    assert!(stderr(&assert).contains("still holds these secrets in plaintext"));
    assert_eq!(fx.stored(), tokens);
}

#[test]
fn import_from_sqlite_takes_a_table_name_that_must_be_an_identifier() {
    let tokens: Vec<Token> = (1..=3).map(sdk_token).collect();
    let fx = Fixture::new();
    let db = fx.dir.path().join("tokens.db");
    sdk_sqlite(&db, "tokens_v2", &tokens);

    for bad in [
        "tokens_v2; DROP TABLE tokens_v2",
        "\"tokens_v2\"",
        "2tokens",
        "",
    ] {
        import(&fx, "sqlite", &db, &["--table", bad])
            .failure()
            .code(1)
            .stderr(predicate::str::starts_with(
                "error: the table name must be a plain identifier",
            ));
    }
    import(&fx, "sqlite", &db, &[])
        .failure()
        .code(1)
        .stderr(format!("error: {} has no table oauthtoken\n", db.display()));
    import(&fx, "sqlite", &db, &["--table", "tokens_v2"]).success();
    assert_eq!(fx.stored(), tokens);
}

#[test]
fn a_bad_sqlite_row_is_reported_by_rowid() {
    let tokens: Vec<Token> = (1..=4).map(sdk_token).collect();
    let fx = Fixture::new();
    let db = fx.dir.path().join("tokens.db");
    sdk_sqlite(&db, "oauthtoken", &tokens);
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "UPDATE oauthtoken SET expiry_time = 'tomorrow' WHERE id = '3'",
        [],
    )
    .unwrap();
    conn.execute(
        "UPDATE oauthtoken SET client_secret = x'00ff' WHERE id = '4'",
        [],
    )
    .unwrap();
    drop(conn);
    let assert = import(&fx, "sqlite", &db, &[]).failure().code(1);
    assert_eq!(
        stderr(&assert),
        "rowid 3: expiry_time is not a whole number of milliseconds\nrowid 4: the \
         client_secret column holds neither text nor a number\nerror: 2 of 4 row(s) cannot be \
         imported, so nothing was imported; fix them, or pass --skip-invalid to import the \
         others\n"
    );
    assert!(fx.stored().is_empty());
}

#[test]
fn a_file_that_is_not_a_filestore_csv_is_refused_without_quoting_it() {
    let fx = Fixture::new();
    // No header: the first row's secrets must not show up in the message.
    let tokens = [sdk_token(1), sdk_token(2)];
    let text = sdk_csv(&tokens, true);
    let headless = text.split_once("\r\n").unwrap().1;
    let csv = fx.file("headless.csv", headless);
    let assert = import(&fx, "zoho-csv", &csv, &[]).failure().code(1);
    let err = stderr(&assert);
    assert!(err.starts_with(&format!(
        "error: {} is not a Zoho SDK FileStore CSV: column 1 is not one of the SDK's;",
        csv.display()
    )));
    assert_no_secret(&err, &tokens);
    assert!(!err.contains("user1@example.com"));
}

#[test]
fn import_of_100000_rows_completes() {
    let tokens: Vec<Token> = (1..=100_000).map(sdk_token).collect();
    let fx = Fixture::new();
    let csv = fx.file("tokens.csv", sdk_csv(&tokens, true));
    drop(tokens);
    let assert = import(&fx, "zoho-csv", &csv, &[]).success();
    assert!(stdout(&assert).starts_with("imported 100000 token(s), skipped 0, in "));
    let store = common::open(&fx.store);
    assert_eq!(store.get_tokens().unwrap().len(), 100_000);
    let last = store.find_token_by_id("100000").unwrap().unwrap();
    assert_eq!(last, sdk_token(100_000));
}
