//! The tokens every store is loaded with, the same in every process.
//!
//! Token `i` is a pure function of `i` (and of its rotation `version`), so a child process can
//! generate exactly the tokens its parent asks about without any of them crossing the pipe. The
//! values are shaped like Zoho's (`1000.` followed by hex) and random-looking, so that no store
//! gains from keys that arrive in sorted order.

use std::fmt::Write;

/// A token as the benchmarks handle it: the ten columns of the SDK's token table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// The record id: the store's sequential decimal ids, `i + 1` for token `i`.
    pub id: Option<String>,
    /// The user the token belongs to.
    pub user_name: Option<String>,
    /// The OAuth client id.
    pub client_id: Option<String>,
    /// The OAuth client secret.
    pub client_secret: Option<String>,
    /// The refresh token.
    pub refresh_token: Option<String>,
    /// The access token.
    pub access_token: Option<String>,
    /// The grant token.
    pub grant_token: Option<String>,
    /// Expiry of the access token, Unix epoch milliseconds.
    pub expiry_time: Option<i64>,
    /// The OAuth redirect URL.
    pub redirect_url: Option<String>,
    /// The API domain.
    pub api_domain: Option<String>,
}

/// A lookup path of the `TokenStore` contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// `find_token` with a user name.
    UserName,
    /// `find_token` with an access token only.
    AccessToken,
    /// `find_token` with client id, client secret and refresh token.
    RefreshToken,
    /// `find_token` with client id, client secret and grant token.
    GrantToken,
    /// `find_token_by_id`.
    Id,
}

impl Path {
    /// Every path, in the order the table shows them.
    pub const ALL: [Path; 5] = [
        Path::UserName,
        Path::AccessToken,
        Path::RefreshToken,
        Path::GrantToken,
        Path::Id,
    ];

    /// The name used on the wire and in the table.
    pub fn name(self) -> &'static str {
        match self {
            Path::UserName => "user_name",
            Path::AccessToken => "access_token",
            Path::RefreshToken => "refresh_token",
            Path::GrantToken => "grant_token",
            Path::Id => "id",
        }
    }

    /// The path with this name.
    pub fn from_name(name: &str) -> Option<Path> {
        Path::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The value a query on this path carries for `record`.
    pub fn value(self, record: &Record) -> Option<&str> {
        let value = match self {
            Path::UserName => &record.user_name,
            Path::AccessToken => &record.access_token,
            Path::RefreshToken => &record.refresh_token,
            Path::GrantToken => &record.grant_token,
            Path::Id => &record.id,
        };
        value.as_deref()
    }
}

/// SplitMix64's finalizer: a fast bijective mix of a 64-bit value.
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The id the stores give token `i`: they number inserts from 1, in load order.
pub fn id_of(i: u64) -> String {
    (i + 1).to_string()
}

/// Which stored token the `j`-th lookup of a run asks for, among `n`: spread at random, the same
/// for every store.
pub fn lookup_index(j: u64, n: u64) -> u64 {
    mix(j ^ 0x5eed_1007) % n
}

/// Token `i` after `version` rotations of its access and refresh tokens, with its id.
pub fn record(i: u64, version: u64) -> Record {
    let rotating = |field: u64| hex_token(i, field, version);
    Record {
        id: Some(id_of(i)),
        user_name: Some(format!("user{i}.{:08x}@example.com", mix(i) as u32)),
        client_id: Some(format!("1000.{}", &upper(hex(i, 1, 0, 32))[..30])),
        client_secret: Some(hex(i, 2, 0, 48)[..42].to_string()),
        refresh_token: Some(rotating(3)),
        access_token: Some(rotating(4)),
        grant_token: Some(hex_token(i, 5, 0)),
        expiry_time: Some(1_900_000_000_000 + (i as i64) * 1000 + version as i64),
        redirect_url: Some("https://app.example.com/oauth/callback".into()),
        api_domain: Some("https://www.zohoapis.com".into()),
    }
}

/// `1000.` and two groups of 32 hex digits: 70 characters, like a Zoho token.
fn hex_token(i: u64, field: u64, version: u64) -> String {
    let mut token = String::with_capacity(70);
    token.push_str("1000.");
    token.push_str(&hex(i, field, version, 32));
    token.push('.');
    token.push_str(&hex(i, field + 100, version, 32));
    token
}

/// `len` (a multiple of 16) hex digits derived from the token, field and version.
fn hex(i: u64, field: u64, version: u64, len: usize) -> String {
    let mut out = String::with_capacity(len);
    let base = mix(i) ^ mix(field.wrapping_mul(0x1000_0001) ^ version.wrapping_mul(0x7777));
    for chunk in 0..(len / 16) as u64 {
        // Writing to a String cannot fail.
        let _ = write!(out, "{:016x}", mix(base ^ mix(chunk)));
    }
    out
}

fn upper(s: String) -> String {
    s.to_ascii_uppercase()
}

/// The 32-byte index key the floor files `value` under: the shape of the store's keyed hashes,
/// without the cryptography (FNV-1a, spread by [`mix`]).
pub fn floor_key(value: &str) -> [u8; 32] {
    let fnv = value.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let mut key = [0u8; 32];
    for (n, chunk) in key.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&mix(fnv ^ n as u64).to_le_bytes());
    }
    key
}

/// The bytes the floor stores for a record: each field length-prefixed, plus the 29 bytes a
/// sealed record adds (version, nonce, tag), so that both write and read records of one size.
pub fn floor_bytes(record: &Record) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    let strings = [
        &record.id,
        &record.user_name,
        &record.client_id,
        &record.client_secret,
        &record.refresh_token,
        &record.access_token,
        &record.grant_token,
        &record.redirect_url,
        &record.api_domain,
    ];
    for field in strings {
        let bytes = field.as_deref().unwrap_or_default().as_bytes();
        out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out.extend_from_slice(&record.expiry_time.unwrap_or_default().to_le_bytes());
    out.resize(out.len() + 29, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_deterministic_distinct_and_rotate_only_what_a_refresh_changes() {
        assert_eq!(record(7, 0), record(7, 0));
        assert_ne!(record(7, 0).refresh_token, record(8, 0).refresh_token);
        let (old, new) = (record(7, 0), record(7, 1));
        assert_ne!(old.access_token, new.access_token);
        assert_ne!(old.refresh_token, new.refresh_token);
        assert_eq!(old.user_name, new.user_name);
        assert_eq!(old.grant_token, new.grant_token);
        assert_eq!(old.access_token.as_deref().map(str::len), Some(70));
    }

    #[test]
    fn lookups_spread_over_every_token() {
        let n = 1000;
        let mut seen = vec![false; n as usize];
        for j in 0..20 * n {
            seen[lookup_index(j, n) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn floor_records_are_as_large_as_sealed_ones() {
        // A sealed record is the bincode encoding (about 400 bytes here) plus 29.
        let len = floor_bytes(&record(1, 0)).len();
        assert!((400..480).contains(&len), "{len}");
    }
}
