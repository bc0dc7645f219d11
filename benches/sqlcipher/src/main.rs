//! The SQLCipher peer: `serve <dir>` answers tokenvault-compare's commands on a keyed SQLCipher
//! database in `dir`; `probe <dir> <tokens>` measures the memory of opening it and looking up.
//!
//! A binary of its own because SQLCipher and SQLite export the same symbols.

use std::process::ExitCode;

use bench_common::sql::{Flavour, Sql};

fn main() -> ExitCode {
    let run = bench_common::peer_main(|dir| Ok(Box::new(Sql::new(Flavour::Sqlcipher, None, dir)?)));
    match run {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sqlcipher-peer: {e}");
            ExitCode::FAILURE
        }
    }
}
