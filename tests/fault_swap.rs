//! Stored bytes moved between records and between index entries, with sled directly: every read
//! of an affected id or value is `Error::Corrupt`, never the other record's data.
//!
//! Records are sealed with their id as associated data, and a lookup checks that the record it
//! reaches holds the value it was asked for; these tests are what breaks if either check goes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/fault.rs"]
mod fault;

use tokenvault::{EncryptedStore, Error, Token, TokenStore};

// `recover`: a record rewritten outside the store makes the records disagree with their
// digest, which a normal open refuses.
use fault::{index_key_of, queries, recover, with_sled, Fixture};

const INDEXES: [&str; 4] = [
    "index.user_name",
    "index.access_token",
    "index.refresh_token",
    "index.grant_token",
];

fn assert_corrupt<T: std::fmt::Debug>(result: Result<T, Error>, what: &str) {
    assert!(
        matches!(result, Err(Error::Corrupt { .. })),
        "{what}: {result:?}"
    );
}

/// Every path to `token` fails as damage.
fn assert_unreadable(store: &EncryptedStore, token: &Token) {
    let id = token.id.as_deref().unwrap();
    assert_corrupt(
        store.find_token_by_id(id),
        &format!("find_token_by_id({id})"),
    );
    for query in queries(token) {
        assert_corrupt(store.find_token(&query), &format!("find_token for {id}"));
    }
}

fn assert_readable(store: &EncryptedStore, token: &Token) {
    let id = token.id.as_deref().unwrap();
    assert_eq!(store.find_token_by_id(id).unwrap().as_ref(), Some(token));
    for query in queries(token) {
        assert_eq!(
            store.find_token(&query).unwrap().as_ref(),
            Some(token),
            "{id}"
        );
    }
}

#[test]
fn a_record_copied_over_another_is_damage_not_the_other_record() {
    let fixture = Fixture::build(6, false);
    let path = fixture.path();
    with_sled(&path, |db| {
        let records = db.open_tree("records").unwrap();
        let two = records.get("2").unwrap().unwrap();
        records.insert("5", two).unwrap();
    });
    assert_corrupt(common::try_open(&path, common::PASSPHRASE), "normal open");
    let store = recover(&path);
    assert_unreadable(&store, &fixture.live["5"]);
    assert_readable(&store, &fixture.live["2"]);
    let err = store.get_tokens().unwrap_err();
    assert!(err.to_string().contains("\"5\""), "{err}");
    assert_eq!(
        store.verify().unwrap().damaged_records,
        vec!["5".to_string()]
    );
}

#[test]
fn two_records_exchanged_are_both_damage() {
    let fixture = Fixture::build(6, false);
    let path = fixture.path();
    with_sled(&path, |db| {
        let records = db.open_tree("records").unwrap();
        let one = records.get("1").unwrap().unwrap();
        let three = records.get("3").unwrap().unwrap();
        records.insert("1", three).unwrap();
        records.insert("3", one).unwrap();
    });
    let store = recover(&path);
    assert_unreadable(&store, &fixture.live["1"]);
    assert_unreadable(&store, &fixture.live["3"]);
    assert_readable(&store, &fixture.live["2"]);
    let report = store.repair().unwrap();
    assert_eq!(report.quarantined, vec!["1".to_string(), "3".to_string()]);
    assert!(store.verify().unwrap().is_clean());
}

#[test]
fn a_record_copied_to_a_new_id_or_from_another_store_is_damage() {
    let fixture = Fixture::build(4, false);
    let other = Fixture::build(4, false);
    let path = fixture.path();
    let foreign = with_sled(&other.path(), |db| {
        db.open_tree("records").unwrap().get("2").unwrap().unwrap()
    });
    with_sled(&path, |db| {
        let records = db.open_tree("records").unwrap();
        let one = records.get("1").unwrap().unwrap();
        records.insert("77", one).unwrap();
        records.insert("2", foreign).unwrap();
    });
    let store = recover(&path);
    assert_corrupt(store.find_token_by_id("77"), "a copy under a new id");
    // The same id and the same passphrase, but another store's data key.
    assert_unreadable(&store, &fixture.live["2"]);
    assert_readable(&store, &fixture.live["1"]);
    let mut damaged = store.verify().unwrap().damaged_records;
    damaged.sort();
    assert_eq!(damaged, vec!["2".to_string(), "77".to_string()]);
}

#[test]
fn an_index_entry_pointed_at_another_record_is_damage_in_every_index() {
    let fixture = Fixture::build(6, false);
    for index in INDEXES {
        let (_dir, path) = fixture.copy();
        with_sled(&path, |db| {
            let key = index_key_of(db, index, "1");
            db.open_tree(index).unwrap().insert(key, "2").unwrap();
        });
        // Index entries are derived data: the records still add up, so the store opens.
        let store = common::open(&path);
        let query = queries(&fixture.live["1"])
            .into_iter()
            .find(|q| lookup_index(q) == index)
            .unwrap();
        assert_corrupt(store.find_token(&query), index);
        assert_readable(&store, &fixture.live["2"]);
        assert_eq!(
            store.find_token_by_id("1").unwrap().as_ref(),
            Some(&fixture.live["1"])
        );
    }
}

#[test]
fn two_index_entries_exchanged_are_damage_in_every_index() {
    let fixture = Fixture::build(6, false);
    for index in INDEXES {
        let (_dir, path) = fixture.copy();
        with_sled(&path, |db| {
            let tree = db.open_tree(index).unwrap();
            let (three, five) = (index_key_of(db, index, "3"), index_key_of(db, index, "5"));
            tree.insert(three, "5").unwrap();
            tree.insert(five, "3").unwrap();
        });
        let store = common::open(&path);
        for id in ["3", "5"] {
            let query = queries(&fixture.live[id])
                .into_iter()
                .find(|q| lookup_index(q) == index)
                .unwrap();
            assert_corrupt(store.find_token(&query), &format!("{index} of {id}"));
        }
        let repaired = store.repair().unwrap();
        assert_eq!(
            (repaired.index_entries_removed, repaired.index_entries_added),
            (2, 2)
        );
        assert_readable(&store, &fixture.live["3"]);
        assert_readable(&store, &fixture.live["5"]);
    }
}

/// The index a query from `queries` is looked up by.
fn lookup_index(query: &Token) -> &'static str {
    if query.user_name.is_some() {
        INDEXES[0]
    } else if query.client_id.is_none() {
        INDEXES[1]
    } else if query.grant_token.is_some() {
        INDEXES[3]
    } else {
        INDEXES[2]
    }
}

/// An older sealed copy of the same record authenticates, so only the records digest can tell
/// it from the current one: a normal open refuses the store.
#[test]
fn an_older_copy_of_a_record_put_back_is_refused_at_open() {
    let mut fixture = Fixture::build(4, false);
    let path = fixture.path();
    let old = with_sled(&path, |db| {
        db.open_tree("records").unwrap().get("2").unwrap().unwrap()
    });
    let store = common::open(&path);
    fixture.rotate(&store, "2");
    drop(store);
    with_sled(&path, |db| {
        db.open_tree("records").unwrap().insert("2", old).unwrap()
    });

    let err = common::try_open(&path, common::PASSPHRASE).unwrap_err();
    assert!(err.to_string().contains("do not add up"), "{err}");
    let report = recover(&path).verify().unwrap();
    assert!(report.records_mismatch && !report.is_clean(), "{report:?}");
}
