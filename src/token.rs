//! The token record and the SDK's rules for matching and merging tokens.
//!
//! These rules are shared by every store: which field a partial token is looked up by, how a
//! stored token fills in what a caller left out, what a valid token is, and how ids are assigned.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::error::Error;

/// The longest id accepted, in bytes.
pub const MAX_ID_LEN: usize = 255;

/// The longest value accepted for any string field other than the id, in bytes.
///
/// OAuth tokens, including JWT-style access tokens, are a few KiB at most; the limit keeps every
/// record small enough to stay in the storage engine's log and bounds what a decoder allocates.
pub const MAX_FIELD_LEN: usize = 64 * 1024;

/// An OAuth token as the SDKs persist it.
///
/// Every field is optional, and an empty string counts as absent everywhere: stores normalize
/// `Some("")` to `None` before they look at a token. `expiry_time` is Unix epoch milliseconds.
///
/// # Security considerations
///
/// `Debug` prints which fields are present but never the value of `client_secret`, `client_id`,
/// `user_name` or any token. `Token` does not zeroize itself on drop (so that struct-update
/// syntax and moving fields out keep working); call [`Zeroize::zeroize`] on tokens you hold for
/// long. The stores zeroize every copy they make themselves.
#[derive(Clone, Default, PartialEq, Eq, Zeroize, Serialize, Deserialize)]
pub struct Token {
    /// The record id: the SDK's file store uses sequential decimal strings.
    pub id: Option<String>,
    /// The user the token belongs to (usually an e-mail address).
    pub user_name: Option<String>,
    /// The OAuth client id.
    pub client_id: Option<String>,
    /// The OAuth client secret.
    pub client_secret: Option<String>,
    /// The long-lived refresh token.
    pub refresh_token: Option<String>,
    /// The short-lived access token.
    pub access_token: Option<String>,
    /// The one-time grant token (authorization code).
    pub grant_token: Option<String>,
    /// When the access token expires, in Unix epoch milliseconds.
    pub expiry_time: Option<i64>,
    /// The OAuth redirect URL.
    pub redirect_url: Option<String>,
    /// The API domain the token is valid for.
    pub api_domain: Option<String>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "<hidden>");
        f.debug_struct("Token")
            .field("id", &self.id)
            .field("user_name", &hidden(&self.user_name))
            .field("client_id", &hidden(&self.client_id))
            .field("client_secret", &hidden(&self.client_secret))
            .field("refresh_token", &hidden(&self.refresh_token))
            .field("access_token", &hidden(&self.access_token))
            .field("grant_token", &hidden(&self.grant_token))
            .field("expiry_time", &self.expiry_time)
            .field("redirect_url", &self.redirect_url)
            .field("api_domain", &self.api_domain)
            .finish_non_exhaustive()
    }
}

/// A field with a secondary index: each of its values belongs to at most one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Indexed {
    UserName,
    AccessToken,
    RefreshToken,
    GrantToken,
}

impl Indexed {
    pub(crate) const ALL: [Indexed; 4] = [
        Indexed::UserName,
        Indexed::AccessToken,
        Indexed::RefreshToken,
        Indexed::GrantToken,
    ];

    /// The field's name as the SDKs spell it; used in errors and as a key-derivation label.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Indexed::UserName => "user_name",
            Indexed::AccessToken => "access_token",
            Indexed::RefreshToken => "refresh_token",
            Indexed::GrantToken => "grant_token",
        }
    }

    pub(crate) fn get(self, token: &Token) -> Option<&str> {
        let value = match self {
            Indexed::UserName => &token.user_name,
            Indexed::AccessToken => &token.access_token,
            Indexed::RefreshToken => &token.refresh_token,
            Indexed::GrantToken => &token.grant_token,
        };
        value.as_deref()
    }
}

impl Token {
    /// Turns every `Some("")` into `None`: the SDKs treat an empty string as no value.
    pub(crate) fn normalize(&mut self) {
        for field in self.strings_mut() {
            if field.as_deref() == Some("") {
                *field = None;
            }
        }
    }

    /// Fills each absent field from `stored`; fields already set are kept.
    pub(crate) fn fill_from(&mut self, stored: &Token) {
        for (mine, theirs) in self.strings_mut().into_iter().zip(stored.strings()) {
            if mine.is_none() {
                mine.clone_from(theirs);
            }
        }
        if self.expiry_time.is_none() {
            self.expiry_time = stored.expiry_time;
        }
    }

    /// [`fill_from`](Self::fill_from), moving the values out of `stored` instead of copying
    /// them. For a stored token about to be dropped, this saves an allocation and a copy per
    /// field on every lookup; what is left in `stored` is the values this token already had.
    pub(crate) fn fill_from_owned(&mut self, stored: &mut Token) {
        for (mine, theirs) in self.strings_mut().into_iter().zip(stored.strings_mut()) {
            if mine.is_none() {
                *mine = theirs.take();
            }
        }
        if self.expiry_time.is_none() {
            self.expiry_time = stored.expiry_time;
        }
    }

    /// True when the token carries something to authenticate with.
    pub(crate) fn has_credential(&self) -> bool {
        self.refresh_token.is_some() || self.grant_token.is_some() || self.access_token.is_some()
    }

    /// True when the access token expired at `now_ms` and nothing can renew it.
    pub(crate) fn is_dead(&self, now_ms: i64) -> bool {
        let expired = self.expiry_time.is_some_and(|t| t <= now_ms);
        expired && self.refresh_token.is_none() && self.grant_token.is_none()
    }

    /// Rejects ids and values the store cannot hold, naming the field but never its value.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if let Some(id) = &self.id {
            validate_id(id)?;
        }
        for (name, value) in FIELD_NAMES.iter().zip(self.strings()).skip(1) {
            let len = value.as_ref().map_or(0, String::len);
            if len > MAX_FIELD_LEN {
                return Err(Error::invalid(format!(
                    "{name} is {len} bytes; the limit is {MAX_FIELD_LEN}"
                )));
            }
        }
        Ok(())
    }

    fn strings(&self) -> [&Option<String>; 9] {
        [
            &self.id,
            &self.user_name,
            &self.client_id,
            &self.client_secret,
            &self.refresh_token,
            &self.access_token,
            &self.grant_token,
            &self.redirect_url,
            &self.api_domain,
        ]
    }

    fn strings_mut(&mut self) -> [&mut Option<String>; 9] {
        [
            &mut self.id,
            &mut self.user_name,
            &mut self.client_id,
            &mut self.client_secret,
            &mut self.refresh_token,
            &mut self.access_token,
            &mut self.grant_token,
            &mut self.redirect_url,
            &mut self.api_domain,
        ]
    }
}

const FIELD_NAMES: [&str; 9] = [
    "id",
    "user_name",
    "client_id",
    "client_secret",
    "refresh_token",
    "access_token",
    "grant_token",
    "redirect_url",
    "api_domain",
];

/// Checks an id given by a caller: 1 to [`MAX_ID_LEN`] bytes, no control characters.
pub(crate) fn validate_id(id: &str) -> Result<(), Error> {
    if id.is_empty() {
        return Err(Error::invalid("the id is empty"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(Error::invalid(format!(
            "the id is {} bytes; the limit is {MAX_ID_LEN}",
            id.len()
        )));
    }
    if id.chars().any(char::is_control) {
        return Err(Error::invalid("the id contains a control character"));
    }
    Ok(())
}

/// Which index a partial token is looked up by, following the SDK's priority:
///
/// 1. `user_name`, when set;
/// 2. otherwise, when `client_id` and `client_secret` are both absent, `access_token`;
/// 3. otherwise, when both are set, `grant_token` if set, else `refresh_token`.
///
/// `None` when the token has no usable key. Expects a normalized token.
pub(crate) fn lookup_key(query: &Token) -> Option<(Indexed, &str)> {
    let pick = |field: Indexed| field.get(query).map(|value| (field, value));
    if query.user_name.is_some() {
        return pick(Indexed::UserName);
    }
    match (&query.client_id, &query.client_secret) {
        (None, None) => pick(Indexed::AccessToken),
        (Some(_), Some(_)) => pick(Indexed::GrantToken).or_else(|| pick(Indexed::RefreshToken)),
        _ => None,
    }
}

/// The error for a new token with nothing to authenticate with.
pub(crate) fn missing_credential() -> Error {
    Error::invalid("a new token needs a refresh, grant or access token")
}

/// The error for a new token without an id when the caller has taken the largest number.
pub(crate) fn ids_used_up() -> Error {
    Error::invalid("no sequential id is left to assign; give the token an id of its own")
}

/// Parses an id as the store assigns them: a canonical decimal number (no sign, no leading zero).
pub(crate) fn sequential_number(id: &str) -> Option<u64> {
    let n: u64 = id.parse().ok()?;
    (n.to_string() == id).then_some(n)
}

/// The id counter after a record was inserted under `id`: ids are never reused, and a number the
/// caller took is skipped.
pub(crate) fn next_after(counter: u64, id: &str) -> u64 {
    match sequential_number(id) {
        Some(n) if n >= counter => n.saturating_add(1),
        _ => counter,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(user: &str, id: &str, secret: &str) -> Token {
        Token {
            user_name: Some(user.into()),
            client_id: Some(id.into()),
            client_secret: Some(secret.into()),
            refresh_token: Some("r".into()),
            grant_token: Some("g".into()),
            access_token: Some("a".into()),
            ..Token::default()
        }
    }

    #[test]
    fn filling_by_moving_gives_what_filling_by_copying_gives() {
        let stored = Token {
            expiry_time: Some(5),
            client_id: Some("stored client".into()),
            ..token("alice", "7", "stored secret")
        };
        let query = Token {
            client_secret: Some("query secret".into()),
            ..Token::default()
        };
        let mut copied = query.clone();
        copied.fill_from(&stored);
        let mut moved = query;
        let mut leftover = stored.clone();
        moved.fill_from_owned(&mut leftover);
        assert_eq!(moved, copied);
        assert_eq!(moved.client_secret.as_deref(), Some("query secret"));
        // Only the value the query kept its own of stays behind, to be zeroized with the rest.
        assert_eq!(
            leftover,
            Token {
                client_secret: Some("stored secret".into()),
                expiry_time: Some(5),
                ..Token::default()
            }
        );
    }

    #[test]
    fn lookup_priority_follows_the_sdk() {
        let t = token("u", "c", "s");
        assert_eq!(lookup_key(&t), Some((Indexed::UserName, "u")));

        let t = Token {
            user_name: None,
            ..token("u", "c", "s")
        };
        assert_eq!(lookup_key(&t), Some((Indexed::GrantToken, "g")));

        let t = Token {
            user_name: None,
            grant_token: None,
            ..token("u", "c", "s")
        };
        assert_eq!(lookup_key(&t), Some((Indexed::RefreshToken, "r")));

        let t = Token {
            user_name: None,
            client_id: None,
            client_secret: None,
            ..token("", "", "")
        };
        assert_eq!(lookup_key(&t), Some((Indexed::AccessToken, "a")));

        let t = Token {
            user_name: None,
            client_secret: None,
            ..token("u", "c", "s")
        };
        assert_eq!(lookup_key(&t), None);
    }

    #[test]
    fn debug_hides_secrets() {
        let shown = format!("{:?}", token("alice@example.com", "client-id", "s3cret"));
        for secret in [
            "alice@example.com",
            "client-id",
            "s3cret",
            "\"r\"",
            "\"g\"",
            "\"a\"",
        ] {
            assert!(!shown.contains(secret), "{shown} shows {secret}");
        }
    }

    #[test]
    fn ids_are_sequential_and_skip_taken_numbers() {
        assert_eq!(next_after(1, "1"), 2);
        assert_eq!(next_after(5, "3"), 5);
        assert_eq!(next_after(5, "9"), 10);
        assert_eq!(next_after(5, "09"), 5);
        assert_eq!(next_after(5, "abc"), 5);
        assert_eq!(next_after(1, &u64::MAX.to_string()), u64::MAX);
    }

    #[test]
    fn validation_names_the_field_not_the_value() {
        let long = "x".repeat(MAX_FIELD_LEN + 1);
        let t = Token {
            refresh_token: Some(long.clone()),
            ..Token::default()
        };
        let msg = t.validate().unwrap_err().to_string();
        assert!(msg.contains("refresh_token") && !msg.contains(&long));
        assert!(validate_id(&"9".repeat(MAX_ID_LEN + 1)).is_err());
        assert!(validate_id("a\0b").is_err());
        assert!(validate_id("1").is_ok());
    }
}
