//! `tokenvault`: look into, import into and maintain a store of encrypted OAuth tokens.
//!
//! Run `tokenvault --help`. Exit codes: 0 on success, 1 when a command fails (or `verify`
//! finds damage), 2 for a usage error.

mod cli;
mod commands;
mod failure;
mod import;
mod load;
mod passphrase;
mod render;

use std::io::{self, Write};
use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

fn main() -> ExitCode {
    // A panic's message could hold anything, so none is printed. The library turns panics of
    // its storage engine on damaged files into errors, which are reported as such; a panic that
    // reaches `catch_unwind` below is a bug and gets one fixed line.
    panic::set_hook(Box::new(|_| {}));
    let cli = cli::Cli::parse();
    check_usage(&cli);

    let mut out = io::BufWriter::new(io::stdout().lock());
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        let code = commands::run(cli, &mut out)?;
        out.flush()?;
        Ok::<_, failure::Failure>(code)
    }));
    match result {
        Ok(Ok(code)) => code,
        Ok(Err(failure)) => {
            let _ = out.flush();
            let _ = writeln!(io::stderr(), "error: {failure}");
            ExitCode::FAILURE
        }
        Err(_) => {
            let _ = out.flush();
            let _ = writeln!(
                io::stderr(),
                "error: internal error in tokenvault; please report it"
            );
            ExitCode::FAILURE
        }
    }
}

/// What clap's derive cannot say: exits with clap's usage error (code 2) on a mismatch.
fn check_usage(cli: &cli::Cli) {
    if let cli::Command::Import(args) = &cli.command {
        if args.table.is_some() && args.from != cli::Source::Sqlite {
            cli::Cli::command()
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    "--table goes with --from sqlite only",
                )
                .exit();
        }
    }
}
