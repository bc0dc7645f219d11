//! OAuth tokens encrypted at rest in an embedded, indexed, crash-safe store.
//!
//! OAuth client SDKs (the Zoho CRM SDKs are the model) persist tokens through six operations:
//! the [`TokenStore`] trait. [`EncryptedStore`] implements them on an embedded sled database
//! opened with a passphrase:
//!
//! * every token is sealed with AES-256-GCM under a key that Argon2id derives from the
//!   passphrase (through a wrapped data key, so changing the passphrase is instant);
//! * user names, access, refresh and grant tokens are indexed by keyed hashes, so every lookup
//!   is a direct index hit and no value is ever written in the clear;
//! * each save or delete is one atomic transaction, synced to stable storage before it returns;
//! * damage to the files is detected and reported, never returned as data, and
//!   [`EncryptedStore::repair`] salvages what authenticates.
//!
//! [`MemoryStore`] implements the same contract in memory, as a reference.
//!
//! # Examples
//!
//! ```
//! use tokenvault::{KdfParams, OpenOptions, Token, TokenStore};
//!
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("tokens");
//! // Tiny KDF parameters keep this example fast; they are insecure: keep the default.
//! let fast = KdfParams { memory_kib: 1024, iterations: 1, parallelism: 1 };
//! let store = OpenOptions::new().kdf(fast).open(&path, "correct horse battery staple")?;
//!
//! let mut token = Token {
//!     user_name: Some("alice@example.com".into()),
//!     client_id: Some("1000.CLIENT".into()),
//!     client_secret: Some("s3cret".into()),
//!     refresh_token: Some("1000.refresh".into()),
//!     access_token: Some("1000.access".into()),
//!     expiry_time: Some(1_900_000_000_000),
//!     ..Token::default()
//! };
//! store.save_token(&mut token)?;
//! assert_eq!(token.id.as_deref(), Some("1"));
//!
//! // The SDK looks tokens up with a partial token and gets the full one back.
//! let query = Token { user_name: Some("alice@example.com".into()), ..Token::default() };
//! let found = store.find_token(&query)?.expect("saved above");
//! assert_eq!(found.refresh_token.as_deref(), Some("1000.refresh"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Security
//!
//! See `SECURITY.md` in the repository for the threat model, the key hierarchy and the on-disk
//! format.

// The store has no need for unsafe code; its dependencies carry what they need.
#![forbid(unsafe_code)]
// Every public item states its contract.
#![deny(missing_docs)]

mod check;
mod codec;
mod contract;
mod crypto;
mod durability;
mod engine;
mod error;
mod header;
mod memory;
mod open;
mod seal;
mod staged;
mod store;
mod token;

pub use check::{IndexIssue, IndexProblem, RepairReport, SealStatus, VerifyReport};
pub use contract::TokenStore;
pub use crypto::KdfParams;
pub use durability::Durability;
pub use error::Error;
pub use header::FORMAT_VERSION;
pub use memory::MemoryStore;
pub use open::OpenOptions;
pub use store::EncryptedStore;
pub use token::{Token, MAX_FIELD_LEN, MAX_ID_LEN};

/// Compiles and runs the README's Rust example with the doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// Internals exposed to the fuzz targets only (built with `--cfg fuzzing`).
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    use crate::crypto::Keys;
    use zeroize::Zeroizing;

    /// Parses bytes as a store header, as `open` does.
    pub fn parse_header(bytes: &[u8]) -> Result<(), crate::Error> {
        crate::header::Header::decode(bytes).map(|_| ())
    }

    /// Opens bytes as a sealed record under a fixed key and decodes what authenticates.
    pub fn open_record(id: &str, sealed: &[u8]) -> Option<crate::Token> {
        let keys = Keys::derive(&Zeroizing::new([0x5a; 32]));
        let plain = keys.open_record(id, sealed)?;
        crate::codec::decode(&plain).ok()
    }

    /// Seals bytes under the same fixed key, so a fuzzer can reach the decoder behind the
    /// authentication check.
    pub fn seal_record(id: &str, plain: &[u8]) -> Vec<u8> {
        let keys = Keys::derive(&Zeroizing::new([0x5a; 32]));
        keys.seal_record(id, plain).unwrap_or_default()
    }

    /// Decodes bytes as a record, without authentication.
    pub fn decode_record(bytes: &[u8]) -> Option<crate::Token> {
        crate::codec::decode(bytes).ok()
    }

    /// Encodes a token as a record, so a fuzzer can check that what decodes re-encodes to a
    /// record that decodes to the same token.
    pub fn encode_record(token: &crate::Token) -> Option<Vec<u8>> {
        crate::codec::encode(token).ok().map(|bytes| bytes.to_vec())
    }

    /// Parses bytes as a store header and returns the KDF parameters `open` would derive with.
    pub fn parse_header_kdf(bytes: &[u8]) -> Result<crate::KdfParams, crate::Error> {
        crate::header::Header::decode(bytes).map(|header| header.kdf)
    }
}
