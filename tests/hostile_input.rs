//! Hostile values through the API: huge values and ids, NUL and control characters, odd ids and
//! extreme expiry times. Each is stored faithfully or refused with `InvalidToken`, never a
//! panic, and the store is intact afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/fault.rs"]
mod fault;

use tokenvault::{EncryptedStore, Error, Token, TokenStore, MAX_FIELD_LEN, MAX_ID_LEN};

/// Stands in for "a billion characters": big enough that a per-byte pass over it before the
/// length check, or a copy into the database, would be plain in the test's time and memory,
/// while the test itself stays cheap (a billion bytes, cloned by `save_token`, would need 2 GB
/// on a machine other tests share).
const HUGE: usize = 100 * 1024 * 1024;

/// Sets the `i`th string field other than the id.
fn with_field(i: usize, value: String) -> Token {
    let mut token = Token {
        access_token: Some(format!("1000.ACCESS.field{i}")),
        ..Token::default()
    };
    let field = match i {
        0 => &mut token.user_name,
        1 => &mut token.client_id,
        2 => &mut token.client_secret,
        3 => &mut token.refresh_token,
        4 => &mut token.access_token,
        5 => &mut token.grant_token,
        6 => &mut token.redirect_url,
        _ => &mut token.api_domain,
    };
    *field = Some(value);
    token
}

/// Saves a token, checks it reads back as saved by every path, and returns it.
fn save_and_check(store: &EncryptedStore, mut token: Token) -> Token {
    store.save_token(&mut token).unwrap();
    let id = token.id.clone().unwrap();
    assert_eq!(store.find_token_by_id(&id).unwrap().as_ref(), Some(&token));
    for query in fault::queries(&token) {
        assert_eq!(
            store.find_token(&query).unwrap().as_ref(),
            Some(&token),
            "{id:?}"
        );
    }
    token
}

fn assert_invalid<T: std::fmt::Debug>(result: Result<T, Error>, what: &str) {
    assert!(
        matches!(result, Err(Error::InvalidToken { .. })),
        "{what}: {result:?}"
    );
}

/// The store holds exactly `saved`, verifies clean, and does so again after a reopen.
fn assert_intact(store: EncryptedStore, path: &std::path::Path, saved: &[Token]) {
    let mut saved = saved.to_vec();
    saved.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(store.get_tokens().unwrap(), saved);
    assert!(store.verify().unwrap().is_clean());
    drop(store);
    let store = common::open(path);
    assert_eq!(store.get_tokens().unwrap(), saved);
    assert!(store.verify().unwrap().is_clean());
}

#[test]
fn values_up_to_the_limit_are_kept_exactly_and_longer_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    let mut saved = Vec::new();
    for i in 0..8 {
        // The longest value allowed, ending in a multi-byte character exactly at the limit.
        let value = format!("{}é", "v".repeat(MAX_FIELD_LEN - 2));
        assert_eq!(value.len(), MAX_FIELD_LEN);
        saved.push(save_and_check(&store, with_field(i, value)));
        for len in [MAX_FIELD_LEN + 1, 1 << 20, 16 << 20] {
            let mut token = with_field(i, "x".repeat(len));
            let err = store.save_token(&mut token).unwrap_err();
            assert!(
                matches!(err, Error::InvalidToken { .. }),
                "field {i}, {len} bytes: {err:?}"
            );
            // The message names the field, never the value.
            assert!(err.to_string().len() < 200, "{err}");
            assert_eq!(token.id, None, "a refused token was changed");
        }
    }
    assert_intact(store, dir.path(), &saved);
}

#[test]
fn nul_control_and_unicode_characters_in_values_are_kept_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    let odd = [
        "\0",
        "a\0b",
        "\0\0\0trailing",
        "line\nbreak\r\n",
        "\u{7}\u{1b}[31mred",
        "\u{feff}bom",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ✓",
        "\u{10ffff}",
        " ",
    ];
    let mut saved = Vec::new();
    for (n, value) in odd.iter().enumerate() {
        let token = Token {
            user_name: Some(format!("{value}{n}")),
            client_id: Some(value.to_string()),
            client_secret: Some(format!("{n}{value}")),
            refresh_token: Some(format!("r{n}{value}")),
            access_token: Some(format!("a{n}{value}")),
            grant_token: Some(format!("g{n}{value}")),
            redirect_url: Some(value.to_string()),
            api_domain: Some(value.to_string()),
            expiry_time: Some(n as i64),
            id: None,
        };
        saved.push(save_and_check(&store, token));
    }
    // A value that differs only after a NUL is another value.
    let query = Token {
        user_name: Some("a\0c1".into()),
        ..Token::default()
    };
    assert_eq!(store.find_token(&query).unwrap(), None);
    assert_intact(store, dir.path(), &saved);
}

#[test]
fn ids_no_token_can_have_are_refused_by_every_operation() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    let saved = vec![save_and_check(&store, common::token(1))];
    let too_long_multibyte = "é".repeat(MAX_ID_LEN / 2 + 1);
    let bad = [
        "a\0b".to_string(),
        "\n".to_string(),
        "1\t".to_string(),
        "\u{7f}".to_string(),
        "\u{85}".to_string(),
        "9".repeat(MAX_ID_LEN + 1),
        too_long_multibyte,
    ];
    for id in &bad {
        let mut token = Token {
            id: Some(id.clone()),
            ..common::token(2)
        };
        assert_invalid(store.save_token(&mut token), "save_token");
        assert_invalid(store.find_token_by_id(id), "find_token_by_id");
        assert_invalid(store.delete_token(id), "delete_token");
    }
    // An empty id is no id: lookups by it are refused, a save gets a new one.
    assert_invalid(store.find_token_by_id(""), "find_token_by_id(\"\")");
    assert_invalid(store.delete_token(""), "delete_token(\"\")");
    let mut blank = Token {
        id: Some(String::new()),
        ..common::token(3)
    };
    store.save_token(&mut blank).unwrap();
    assert_eq!(blank.id.as_deref(), Some("2"));
    assert_intact(store, dir.path(), &[saved, vec![blank]].concat());
}

#[test]
fn odd_but_valid_ids_are_kept_apart_and_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    let longest_multibyte = format!("{}x", "é".repeat((MAX_ID_LEN - 1) / 2));
    let ids = [
        "0".to_string(),
        "00".to_string(),
        "01".to_string(),
        "-1".to_string(),
        "+1".to_string(),
        " 1".to_string(),
        "1 ".to_string(),
        "1e3".to_string(),
        "é".to_string(),
        "9".repeat(MAX_ID_LEN),
        longest_multibyte,
        "18446744073709551616".to_string(),
    ];
    let mut saved = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        assert!(id.len() <= MAX_ID_LEN);
        let token = Token {
            id: Some(id.clone()),
            ..common::token(n as u32 + 10)
        };
        saved.push(save_and_check(&store, token));
    }
    // None of them is "1", and none took the counter's place.
    assert_eq!(store.find_token_by_id("1").unwrap(), None);
    let mut next = common::token(99);
    store.save_token(&mut next).unwrap();
    assert_eq!(
        next.id.as_deref(),
        Some("1"),
        "an odd id moved the id counter"
    );
    saved.push(next);
    assert_intact(store, dir.path(), &saved);
}

#[test]
fn a_hundred_megabyte_id_or_value_is_refused_cheaply() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    let saved = vec![save_and_check(&store, common::token(1))];
    let huge = "7".repeat(HUGE);

    let mut token = Token {
        id: Some(huge.clone()),
        ..common::token(2)
    };
    let err = store.save_token(&mut token).unwrap_err();
    assert!(matches!(err, Error::InvalidToken { .. }), "{err:?}");
    assert!(err.to_string().len() < 200, "the error quotes the id");
    assert_invalid(store.find_token_by_id(&huge), "find_token_by_id");
    assert_invalid(store.delete_token(&huge), "delete_token");

    let mut token = Token {
        user_name: Some(huge.clone()),
        ..common::token(3)
    };
    assert_invalid(store.save_token(&mut token), "a huge user name");
    // Lookups by a value no token can hold find nothing.
    let query = Token {
        user_name: Some(huge),
        ..Token::default()
    };
    assert_eq!(store.find_token(&query).unwrap(), None);
    assert_intact(store, dir.path(), &saved);
}

#[test]
fn extreme_expiry_times_are_kept_and_purged_without_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    let dead = |n: u32, expiry: i64| Token {
        refresh_token: None,
        grant_token: None,
        expiry_time: Some(expiry),
        ..common::token(n)
    };
    for (n, expiry) in [(1, i64::MIN), (2, -1), (3, 0), (4, i64::MAX)] {
        save_and_check(&store, dead(n, expiry));
    }
    assert_eq!(store.purge_expired(i64::MIN).unwrap(), 1);
    assert_eq!(store.purge_expired(0).unwrap(), 2);
    assert_eq!(store.purge_expired(i64::MAX).unwrap(), 1);
    assert_intact(store, dir.path(), &[]);
}
