//! The life cycle of one token, end to end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use tokenvault::{Token, TokenStore};

#[test]
fn save_find_rotate_delete_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = common::open(&path);
    let mut t = common::token(1);
    store.save_token(&mut t).unwrap();
    assert_eq!(t.id.as_deref(), Some("1"));

    let by_user = Token {
        user_name: t.user_name.clone(),
        ..Token::default()
    };
    assert_eq!(
        store.find_token(&by_user).unwrap().unwrap().refresh_token,
        t.refresh_token
    );

    let mut rotated = Token {
        id: t.id.clone(),
        refresh_token: Some("new".into()),
        ..Token::default()
    };
    store.save_token(&mut rotated).unwrap();
    assert_eq!(rotated.user_name, t.user_name);
    let by_old = Token {
        client_id: t.client_id.clone(),
        client_secret: t.client_secret.clone(),
        refresh_token: t.refresh_token.clone(),
        ..Token::default()
    };
    let by_old = Token {
        grant_token: None,
        ..by_old
    };
    assert_eq!(store.find_token(&by_old).unwrap(), None);
    drop(store);

    let store = common::open(&path);
    assert_eq!(store.get_tokens().unwrap(), vec![rotated.clone()]);
    assert!(store.verify().unwrap().is_clean());
    store.delete_token("1").unwrap();
    assert!(store.get_tokens().unwrap().is_empty());
    let mut again = common::token(2);
    store.save_token(&mut again).unwrap();
    assert_eq!(again.id.as_deref(), Some("2"));
}
