//! What the comparison's processes share: the tokens ([`data`]), the interface every store is
//! measured through and its line protocol ([`proto`]), the SQL peers ([`sql`]) and the memory
//! probe.

pub mod data;
pub mod proto;
pub mod sql;

use proto::{Backend, Result};

/// How many lookups the memory probe makes after opening.
pub const PROBE_LOOKUPS: u64 = 100_000;

/// Peak and current resident memory of this process in KiB (`VmHWM`, `VmRSS`).
pub fn memory_kib() -> Result<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let field = |name: &str| -> Result<u64> {
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .ok_or_else(|| format!("{name} is missing from /proc/self/status"))?;
        let kib = line.trim().trim_end_matches("kB").trim();
        Ok(kib.parse()?)
    };
    Ok((field("VmHWM:")?, field("VmRSS:")?))
}

/// The memory probe, run in a fresh process: opens an existing store of `n` tokens, makes
/// [`PROBE_LOOKUPS`] lookups by user name, and returns the line `memory <peak KiB> <current
/// KiB>` for the parent to read.
pub fn probe(backend: &mut dyn Backend, n: u64) -> Result<String> {
    backend.attach(n)?;
    // In batches, so that the queries the harness prepares add little to what is measured.
    let batch = 1000;
    for first in (0..PROBE_LOOKUPS).step_by(batch as usize) {
        backend.lookups(
            data::Path::UserName,
            first,
            batch.min(PROBE_LOOKUPS - first),
        )?;
    }
    let (peak, current) = memory_kib()?;
    Ok(format!("memory {peak} {current}"))
}

/// Parses the line [`probe`] returns into peak and current KiB.
pub fn parse_probe(line: &str) -> Result<(u64, u64)> {
    let mut words = line.split_whitespace();
    if words.next() != Some("memory") {
        return Err(format!("not a memory line: {line:?}").into());
    }
    let mut number = || -> Result<u64> { Ok(words.next().ok_or("a number is missing")?.parse()?) };
    Ok((number()?, number()?))
}

/// The main of a peer binary: `serve <dir>` answers the protocol on stdin and stdout; `probe
/// <dir> <n>` prints the memory probe's line.
pub fn peer_main(make: impl FnOnce(&std::path::Path) -> Result<Box<dyn Backend>>) -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: serve <dir> | probe <dir> <tokens>";
    let dir = std::path::Path::new(args.get(1).ok_or(usage)?);
    match args.first().map(String::as_str) {
        Some("serve") => {
            let mut backend = make(dir)?;
            let stdin = std::io::stdin().lock();
            proto::serve(backend.as_mut(), stdin, std::io::stdout().lock());
            Ok(())
        }
        Some("probe") => {
            let n = args.get(2).ok_or(usage)?.parse()?;
            println!("{}", probe(make(dir)?.as_mut(), n)?);
            Ok(())
        }
        _ => Err(usage.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::{Command, Write};

    #[test]
    fn commands_survive_the_wire() {
        let commands = [
            Command::Load(10),
            Command::Attach(7),
            Command::Lookups(data::Path::GrantToken, 3, 100),
            Command::Scan,
            Command::Writes(Write::Update, 5, 9),
            Command::Reopen(true),
            Command::Reopen(false),
            Command::Rekey,
        ];
        for command in commands {
            assert_eq!(Command::parse(&command.line()).ok(), Some(command));
        }
        assert!(Command::parse("lookups nothing 1 2").is_err());
    }

    #[test]
    fn memory_is_read_from_proc() {
        let (peak, current) = memory_kib().expect("linux /proc");
        assert!(peak >= current && current > 0);
        assert_eq!(parse_probe("memory 5 4").ok(), Some((5, 4)));
    }
}
