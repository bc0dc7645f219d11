//! Why a command failed, as the one line `main` prints after `error: `.
//!
//! Messages are built from the library's errors (which never hold a secret) and from what the
//! tool itself knows: paths, ids, line numbers, field names. They never quote a value read from
//! a token, an import file or a passphrase source.

use std::fmt;
use std::io;
use std::path::Path;

use tokenvault::Error;

/// A failed command: a one-line message that says what to do. The exit code is 1.
#[derive(Debug)]
pub struct Failure(String);

impl Failure {
    /// A failure with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Failure(message.into())
    }

    /// A library error met while working on the store at `path`, with a hint naming the command
    /// that helps where there is one.
    pub fn store(err: Error, path: &Path) -> Self {
        let path = path.display();
        match err {
            Error::Corrupt { what } => Failure(format!(
                "store is damaged: {what}; run `tokenvault verify {path}` to see the damage and \
                 `tokenvault repair {path}` to salvage the rest"
            )),
            Error::NotFound { id } => Failure(format!(
                "no token with id {id:?}; run `tokenvault list {path}` to see the ids"
            )),
            other => Failure(other.to_string()),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Output that cannot be written (a closed pipe, a full disk).
impl From<io::Error> for Failure {
    fn from(err: io::Error) -> Self {
        Failure(format!("cannot write the output: {err}"))
    }
}
