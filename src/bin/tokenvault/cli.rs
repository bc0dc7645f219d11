//! The command line as `tokenvault --help` describes it.
//!
//! No option takes a passphrase as its value: a value on the command line is visible to every
//! user of the machine (in `ps`) and lands in shell history.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Look into, import into and maintain a tokenvault store of encrypted OAuth tokens.
#[derive(Debug, Parser)]
#[command(name = "tokenvault", version)]
#[command(
    after_help = "The passphrase is read from --passphrase-file, else from the \
    TOKENVAULT_PASSPHRASE environment variable, else asked for on the terminal without echo."
)]
pub struct Cli {
    /// Read the store's passphrase from FILE (one trailing newline is ignored).
    #[arg(long, global = true, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new, empty store (asks for the passphrase twice on a terminal).
    Init {
        /// The store's directory; it must not exist yet, or be empty.
        path: PathBuf,
        #[command(flatten)]
        kdf: KdfArgs,
    },

    /// List the tokens: ids, user names, client ids, which tokens each holds, and expiry.
    ///
    /// Token values and client secrets are never shown.
    List {
        /// The store's directory.
        path: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },

    /// Show one token, its secrets masked.
    Show {
        /// The store's directory.
        path: PathBuf,
        /// The token's id, as `list` shows it.
        id: String,
        /// Show the secrets in full.
        #[arg(long)]
        reveal: bool,
    },

    /// Delete one token.
    Delete {
        /// The store's directory.
        path: PathBuf,
        /// The token's id, as `list` shows it.
        id: String,
    },

    /// Delete the tokens whose access token expired and that hold nothing to renew it with.
    PurgeExpired {
        /// The store's directory.
        path: PathBuf,
    },

    /// Change the store's passphrase (the new one is asked twice on a terminal).
    Passwd {
        /// The store's directory.
        path: PathBuf,
        /// Read the new passphrase from FILE instead of TOKENVAULT_NEW_PASSPHRASE or a prompt.
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
    },

    /// Check every record, index entry and the commit seal; exits with 1 when damage is found.
    Verify {
        /// The store's directory.
        path: PathBuf,
    },

    /// Rebuild the indexes, quarantine damaged records and acknowledge lost commits.
    Repair {
        /// The store's directory.
        path: PathBuf,
    },

    /// Import tokens from the Zoho SDK's plaintext stores, or from an `export --reveal`.
    Import(ImportArgs),

    /// Print every token; secrets are masked unless --reveal.
    Export {
        /// The store's directory.
        path: PathBuf,
        /// The output format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
        format: ExportFormat,
        /// Print the secrets in full, so that the output can be imported again.
        #[arg(long)]
        reveal: bool,
    },
}

/// The key-derivation cost of a new store.
#[derive(Debug, Args)]
pub struct KdfArgs {
    /// Argon2id memory in KiB [default: 65536].
    #[arg(long, value_name = "KIB")]
    pub kdf_memory: Option<u32>,
    /// Argon2id passes over the memory [default: 3].
    #[arg(long, value_name = "N")]
    pub kdf_iterations: Option<u32>,
    /// Argon2id lanes [default: 4, or fewer when --kdf-memory is below 32 KiB].
    #[arg(long, value_name = "N")]
    pub kdf_parallelism: Option<u32>,
}

/// `import`'s arguments.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The store's directory.
    pub path: PathBuf,
    /// What FILE is.
    #[arg(long, value_enum)]
    pub from: Source,
    /// The file to import from.
    pub file: PathBuf,
    /// The table to read, with --from sqlite [default: oauthtoken].
    #[arg(long, value_name = "NAME")]
    pub table: Option<String>,
    /// Import the valid rows and skip the others (each is still reported).
    #[arg(long)]
    pub skip_invalid: bool,
    /// Overwrite the stored tokens that an imported one conflicts with.
    #[arg(long)]
    pub replace: bool,
}

/// Where `import` reads from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Source {
    /// The Zoho SDK FileStore's CSV file (10 columns, or the older 9).
    ZohoCsv,
    /// A SQLite database with the SDK users' `oauthtoken` table.
    Sqlite,
    /// The output of `tokenvault export --reveal`.
    Json,
}

/// What `export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// One JSON document holding every token.
    Json,
}
