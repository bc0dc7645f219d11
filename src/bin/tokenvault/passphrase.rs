//! Where a passphrase comes from: a file, an environment variable, or the terminal.
//!
//! Never from a command-line argument, never echoed, never printed. Every buffer this module
//! fills is zeroized when dropped. (The environment variable's own copy in the process's
//! environment is outside its reach: prefer a file or the prompt on shared machines.)

use std::fs::File;
use std::io::{IsTerminal, Read};
use std::path::Path;

use zeroize::Zeroizing;

use crate::failure::Failure;

/// A passphrase, zeroized when dropped.
pub type Secret = Zeroizing<Vec<u8>>;

/// The environment variable holding the store's passphrase.
pub const ENV_CURRENT: &str = "TOKENVAULT_PASSPHRASE";
/// The environment variable holding the new passphrase for `passwd`.
pub const ENV_NEW: &str = "TOKENVAULT_NEW_PASSPHRASE";

/// Passphrase files longer than this are refused: they are not passphrase files.
const MAX_FILE_LEN: usize = 4096;

/// Where one passphrase may come from, in order of preference.
pub struct Source<'a> {
    /// The file named on the command line, if any.
    pub file: Option<&'a Path>,
    /// The environment variable to look at when there is no file.
    pub env: &'static str,
    /// The option that names the file, for the error when nothing is available.
    pub flag: &'static str,
    /// What the prompt asks for.
    pub prompt: &'static str,
}

impl Source<'_> {
    /// The passphrase that opens an existing store: asked once on a terminal.
    pub fn existing(&self) -> Result<Secret, Failure> {
        self.obtain(false)
    }

    /// A passphrase being chosen: on a terminal it is asked twice, and must match.
    pub fn chosen(&self) -> Result<Secret, Failure> {
        self.obtain(true)
    }

    fn obtain(&self, confirm: bool) -> Result<Secret, Failure> {
        if let Some(file) = self.file {
            return read_file(file);
        }
        if let Some(value) = std::env::var_os(self.env) {
            let value = value.into_string().map_err(|_| {
                Failure::new(format!(
                    "{} is not valid UTF-8; use {} instead",
                    self.env, self.flag
                ))
            })?;
            return Ok(Zeroizing::new(value.into_bytes()));
        }
        if !std::io::stdin().is_terminal() {
            return Err(Failure::new(format!(
                "no passphrase: pass {} FILE or set {} (there is no terminal to ask on)",
                self.flag, self.env
            )));
        }
        let first = prompt(&format!("{}: ", self.prompt))?;
        if confirm {
            let second = prompt(&format!("{} (again): ", self.prompt))?;
            if first != second {
                return Err(Failure::new(
                    "the passphrases do not match; nothing was changed",
                ));
            }
        }
        Ok(first)
    }
}

/// Reads a passphrase file, dropping one trailing newline (`\n` or `\r\n`).
fn read_file(path: &Path) -> Result<Secret, Failure> {
    let failed = |e: std::io::Error| {
        Failure::new(format!(
            "cannot read the passphrase file {}: {e}",
            path.display()
        ))
    };
    // Allocated at full size up front, so reading never moves the secret and leaves a copy.
    let mut bytes = Zeroizing::new(Vec::with_capacity(MAX_FILE_LEN + 2));
    File::open(path)
        .and_then(|f| f.take(MAX_FILE_LEN as u64 + 1).read_to_end(&mut bytes))
        .map_err(failed)?;
    if bytes.len() > MAX_FILE_LEN {
        return Err(Failure::new(format!(
            "the passphrase file {} is over {MAX_FILE_LEN} bytes; is it the right file?",
            path.display()
        )));
    }
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    Ok(bytes)
}

fn prompt(text: &str) -> Result<Secret, Failure> {
    let typed = rpassword::prompt_password(text)
        .map_err(|e| Failure::new(format!("cannot read the passphrase from the terminal: {e}")))?;
    Ok(Zeroizing::new(typed.into_bytes()))
}
