//! `verify` names exactly what is damaged, `repair` salvages the rest, and the commit seal turns
//! commits the engine lost into an error that says how many, without mistaking a seal that
//! merely lags (a crash between commit and seal) for a loss.
//!
//! Damage is made with sled directly on the closed store's `db/`, as an attacker or a bug would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/fault.rs"]
mod fault;

use std::fs;

use tokenvault::{EncryptedStore, Error, IndexIssue, IndexProblem, SealStatus, Token, TokenStore};

use fault::{queries, recover, with_sled, Fixture};

/// Every lookup path of every token leads to it, and the listing is exactly `tokens`.
fn assert_reads(store: &EncryptedStore, tokens: &[&Token]) {
    for token in tokens {
        let id = token.id.as_deref().unwrap();
        assert_eq!(store.find_token_by_id(id).unwrap().as_ref(), Some(*token));
        for query in queries(token) {
            assert_eq!(
                store.find_token(&query).unwrap().as_ref(),
                Some(*token),
                "{id}"
            );
        }
    }
    let listed = store.get_tokens().unwrap();
    assert!(listed.iter().eq(tokens.iter().copied()));
}

#[test]
fn a_clean_store_verifies_clean_and_repair_changes_nothing() {
    let fixture = Fixture::build(10, false);
    let store = common::open(&fixture.path());
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.records, fixture.live.len());
    assert_eq!(report.index_entries, 4 * fixture.live.len());
    assert_eq!(report.seal, SealStatus::Current);
    assert!(!report.records_mismatch && report.quarantined == 0);

    let repaired = store.repair().unwrap();
    assert_eq!(repaired.records_kept, fixture.live.len());
    assert!(repaired.quarantined.is_empty() && repaired.duplicates.is_empty());
    assert_eq!(
        (repaired.index_entries_removed, repaired.index_entries_added),
        (0, 0)
    );
    assert_eq!(repaired.lost_commits, 0);
    assert_reads(&store, &fixture.live.values().collect::<Vec<_>>());
}

#[test]
fn a_damaged_record_is_named_quarantined_and_the_rest_keeps_working() {
    let fixture = Fixture::build(10, false);
    let path = fixture.path();
    let mut garbage = vec![1u8];
    garbage.extend_from_slice(&[0x42; 80]);
    with_sled(&path, |db| {
        db.open_tree("records")
            .unwrap()
            .insert("3", garbage)
            .unwrap()
    });

    // The records no longer add up to what was committed: a normal open says so.
    let err = common::try_open(&path, common::PASSPHRASE).unwrap_err();
    assert!(err.to_string().contains("do not add up"), "{err}");

    let store = recover(&path);
    let report = store.verify().unwrap();
    assert_eq!(report.damaged_records, vec!["3".to_string()]);
    assert!(report.records_mismatch && !report.is_clean());
    let damaged_entries = report.index_issues.iter().filter(|i| i.id == "3");
    assert!(damaged_entries
        .clone()
        .all(|i| i.problem == IndexProblem::DamagedRecord));
    assert_eq!(damaged_entries.count(), 4);

    // The damaged record is an error by every path; the others read as saved.
    let three = &fixture.live["3"];
    assert!(matches!(
        store.find_token_by_id("3"),
        Err(Error::Corrupt { .. })
    ));
    for query in queries(three) {
        assert!(matches!(
            store.find_token(&query),
            Err(Error::Corrupt { .. })
        ));
    }
    let others: Vec<&Token> = fixture
        .live
        .iter()
        .filter(|(id, _)| *id != "3")
        .map(|e| e.1)
        .collect();
    for token in &others {
        let id = token.id.as_deref().unwrap();
        assert_eq!(store.find_token_by_id(id).unwrap().as_ref(), Some(*token));
    }
    let err = store.get_tokens().unwrap_err();
    assert!(
        matches!(err, Error::Corrupt { .. }) && err.to_string().contains("\"3\""),
        "{err}"
    );

    let repaired = store.repair().unwrap();
    assert_eq!(repaired.quarantined, vec!["3".to_string()]);
    assert_eq!(repaired.records_kept, others.len());
    assert_eq!(repaired.index_entries_removed, 4);
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.quarantined, 1);
    assert_reads(&store, &others);
    drop(store);

    // Repaired, the store opens normally again, and the damaged id is never handed out again.
    let store = common::open(&path);
    assert_reads(&store, &others);
    let mut fresh = common::token(99);
    store.save_token(&mut fresh).unwrap();
    assert_ne!(fresh.id.as_deref(), Some("3"));
}

#[test]
fn dangling_wrong_malformed_and_missing_index_entries_are_reported_and_fixed() {
    let fixture = Fixture::build(10, false);
    let path = fixture.path();
    with_sled(&path, |db| {
        let users = db.open_tree("index.user_name").unwrap();
        users.insert([7u8; 32], "999").unwrap();
        users.insert([8u8; 32], "bad\u{1}id").unwrap();
        let access = db.open_tree("index.access_token").unwrap();
        access
            .insert(fault::index_key_of(db, "index.access_token", "1"), "2")
            .unwrap();
        let refresh = db.open_tree("index.refresh_token").unwrap();
        refresh
            .remove(fault::index_key_of(db, "index.refresh_token", "5"))
            .unwrap();
    });

    // Index damage loses no record: the store opens, and verify lists each problem.
    let store = common::open(&path);
    let report = store.verify().unwrap();
    let issue = |index: &'static str, id: &str, problem| IndexIssue {
        index,
        id: id.into(),
        problem,
    };
    let mut issues = report.index_issues.clone();
    issues.sort_by(|a, b| (a.index, &a.id).cmp(&(b.index, &b.id)));
    assert_eq!(
        issues,
        vec![
            issue("access_token", "1", IndexProblem::Missing),
            issue("access_token", "2", IndexProblem::WrongRecord),
            issue("refresh_token", "5", IndexProblem::Missing),
            issue("user_name", "999", IndexProblem::Dangling),
            issue("user_name", "bad\u{1}id", IndexProblem::Malformed),
        ]
    );
    assert!(!report.is_clean());

    // The misdirected entry is an error, never token 2; the removed one is a miss.
    let one = &fixture.live["1"];
    let by_access = Token {
        access_token: one.access_token.clone(),
        ..Token::default()
    };
    assert!(matches!(
        store.find_token(&by_access),
        Err(Error::Corrupt { .. })
    ));
    let five = &fixture.live["5"];
    let by_refresh = &queries(five)[2];
    assert!(by_refresh.refresh_token.is_some());
    assert_eq!(store.find_token(by_refresh).unwrap(), None);

    let repaired = store.repair().unwrap();
    assert_eq!(repaired.index_entries_removed, 3);
    assert_eq!(repaired.index_entries_added, 2);
    assert!(repaired.quarantined.is_empty());
    assert!(store.verify().unwrap().is_clean());
    assert_reads(&store, &fixture.live.values().collect::<Vec<_>>());
}

#[test]
fn commits_lost_by_the_engine_are_counted_and_acknowledged_by_repair() {
    let mut fixture = Fixture::build(6, false);
    let path = fixture.path();
    let older = tempfile::tempdir().unwrap();
    fault::copy_dir(&path.join("db"), older.path());
    let before: Vec<Token> = fixture.live.values().cloned().collect();

    // Three more commits, then the database goes back to before them, as when sled drops the
    // tail of its log.
    let store = common::open(&path);
    fixture.save(&store, common::token(50));
    fixture.rotate(&store, "2");
    fixture.delete(&store, "4");
    drop(store);
    fs::remove_dir_all(path.join("db")).unwrap();
    fault::copy_dir(older.path(), &path.join("db"));

    let err = common::try_open(&path, common::PASSPHRASE).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("3 committed change(s) are missing"),
        "{err}"
    );

    let store = recover(&path);
    let report = store.verify().unwrap();
    assert_eq!(report.seal, SealStatus::Ahead { missing_commits: 3 });
    assert!(!report.is_clean());
    drop(store);
    // Opening for recovery changes nothing: a normal open still refuses.
    assert!(common::try_open(&path, common::PASSPHRASE).is_err());

    let store = recover(&path);
    assert_eq!(store.repair().unwrap().lost_commits, 3);
    drop(store);
    let store = common::open(&path);
    assert!(store.verify().unwrap().is_clean());
    assert_eq!(store.get_tokens().unwrap(), before);
}

#[test]
fn a_seal_that_lags_the_database_is_not_a_loss() {
    let mut fixture = Fixture::build(4, false);
    let path = fixture.path();
    let seal = path.join("tokenvault.seal");
    let older_seal = fs::read(&seal).unwrap();

    // Commits made, and the seal left behind them: a crash between commit and seal.
    let store = common::open(&path);
    fixture.save(&store, common::token(40));
    fixture.rotate(&store, "1");
    drop(store);
    fs::write(&seal, &older_seal).unwrap();

    // Opening takes it for what it is, and brings the seal up to date.
    let store = common::open(&path);
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.seal, SealStatus::Current);
    assert_reads(&store, &fixture.live.values().collect::<Vec<_>>());
    drop(store);

    // Buffered writes leave the seal behind until a flush; verify calls that lagging, and clean.
    let store = common::open_buffered(&path);
    fixture.save(&store, common::token(41));
    let report = store.verify().unwrap();
    assert_eq!(report.seal, SealStatus::Lagging);
    assert!(report.is_clean(), "{report:?}");
    store.flush().unwrap();
    assert_eq!(store.verify().unwrap().seal, SealStatus::Current);
}
