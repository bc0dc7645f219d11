//! The one error type of the crate.
//!
//! Every message says what failed and what the caller can do about it. No message ever contains a
//! passphrase, a key, a token value, a client id or secret, or a user name: the only values that
//! appear are record ids (which the caller chose or the store assigned, and which are stored in
//! the clear), paths, and counts.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Everything that can go wrong when opening or using a store.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The passphrase does not open this store.
    ///
    /// The header is intact (its checksum matches), but the data key does not unwrap under the
    /// key derived from this passphrase. An attacker who edits the KDF parameters and also fixes
    /// the header's unkeyed checksum produces this error too.
    WrongPassphrase,

    /// Another process, or another handle in this process, has the store open.
    Locked {
        /// The store's directory.
        path: PathBuf,
    },

    /// Stored bytes failed authentication or decoding, or the store's files are not all there.
    ///
    /// `what` names the damaged part: the header, the database files, a record id, an index, or
    /// the commit seal. Run [`EncryptedStore::verify`](crate::EncryptedStore::verify) to see
    /// everything that is damaged, and [`EncryptedStore::repair`](crate::EncryptedStore::repair)
    /// to salvage the rest.
    Corrupt {
        /// Which part of the store is damaged, and how.
        what: String,
    },

    /// The store was written by a newer (or unknown) version of the on-disk format.
    UnsupportedFormat {
        /// The format version found in the header.
        found: u16,
        /// The newest format version this build reads.
        supported: u16,
    },

    /// No record has this id.
    NotFound {
        /// The id that was asked for.
        id: String,
    },

    /// The token was rejected before anything was written.
    InvalidToken {
        /// Why, naming the field but never its value.
        reason: String,
    },

    /// Another record already holds this user name or token value; nothing was written.
    Conflict {
        /// The field whose value is taken (`user_name`, `access_token`, ...).
        field: &'static str,
        /// The id of the record that holds it.
        held_by: String,
    },

    /// An option passed to [`OpenOptions`](crate::OpenOptions) is out of range.
    InvalidOptions {
        /// Which option, and its allowed range.
        reason: String,
    },

    /// An operating-system I/O call failed.
    Io {
        /// What the store was doing.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn corrupt(what: impl Into<String>) -> Self {
        Error::Corrupt { what: what.into() }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Error::InvalidToken {
            reason: reason.into(),
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::WrongPassphrase => {
                f.write_str("wrong passphrase: the store's key does not unwrap with it")
            }
            Error::Locked { path } => write!(
                f,
                "store is in use by another process or handle: {}; close it and retry",
                path.display()
            ),
            Error::Corrupt { what } => write!(
                f,
                "store is damaged: {what}; run verify to see the damage and repair to salvage \
                 the rest"
            ),
            Error::UnsupportedFormat { found, supported } => write!(
                f,
                "unsupported store format version {found} (this build reads up to {supported}); \
                 upgrade tokenvault"
            ),
            Error::NotFound { id } => write!(f, "no token with id {id:?}"),
            Error::InvalidToken { reason } => write!(f, "invalid token: {reason}"),
            Error::Conflict { field, held_by } => write!(
                f,
                "conflict: the {field} is already held by the token with id {held_by:?}; delete \
                 or update that token first"
            ),
            Error::InvalidOptions { reason } => write!(f, "invalid option: {reason}"),
            Error::Io { op, path, source } => {
                write!(f, "i/o error while {op} {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Maps an error of the storage engine. Its I/O errors stay I/O errors; everything else it
/// reports (its own corruption checks, "reportable bugs") is damage to its files.
pub(crate) fn from_sled(err: sled::Error, path: &std::path::Path) -> Error {
    match err {
        sled::Error::Io(source) => Error::io("accessing the database in", path, source),
        sled::Error::Corruption { .. } => Error::corrupt("the database files fail their checksums"),
        other => Error::corrupt(format!("the database engine reported: {other}")),
    }
}
