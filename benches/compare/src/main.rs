//! tokenvault side by side with its floor (raw sled) and its peers (SQLite, SQLCipher), on the
//! same tokens and the same lookup paths, in one run. Start it with `bash benches/compare.sh`,
//! which builds this binary and the SQLCipher peer first.
//!
//! ```text
//! tokenvault-compare [--quick] [--sizes 10000,100000] [--peer PATH] [--dir DIR]
//! tokenvault-compare probe tokenvault|floor|sqlite|floor-atomic|sqlite-cached DIR TOKENS
//! ```
//!
//! Sizes default to 10,000 and 100,000 tokens, plus 1,000,000 when `TOKENVAULT_BENCH_MILLION=1`.
//! `--quick` runs every operation a few times on 2,000 tokens, to check the harness. Progress
//! goes to stderr; the table, the growth and the targets to stdout.

mod floor;
mod measure;
mod report;
mod vault;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use bench_common::data::Path;
use bench_common::proto::{Backend, Remote, Result, Write};
use bench_common::sql::{Flavour, Sql};

use floor::Floor;
use measure::{Contenders, Plan, Values};
use report::{Measured, Op, Row};
use vault::Vault;

/// The command line.
struct Options {
    sizes: Vec<u64>,
    quick: bool,
    peer: PathBuf,
    dir: Option<PathBuf>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options> {
        let million = std::env::var("TOKENVAULT_BENCH_MILLION").is_ok_and(|v| v == "1");
        let exe = std::env::current_exe()?;
        let mut options = Options {
            sizes: if million {
                vec![10_000, 100_000, 1_000_000]
            } else {
                vec![10_000, 100_000]
            },
            quick: false,
            peer: exe.with_file_name("sqlcipher-peer"),
            dir: None,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--quick" => {
                    options.quick = true;
                    options.sizes = vec![2_000];
                }
                "--sizes" => {
                    let list: std::result::Result<Vec<u64>, _> =
                        value()?.split(',').map(str::parse).collect();
                    options.sizes = list.map_err(|e| format!("--sizes: {e}"))?;
                }
                "--peer" => options.peer = value()?.into(),
                "--dir" => options.dir = Some(value()?.into()),
                other => return Err(format!("unknown argument {other:?}").into()),
            }
        }
        Ok(options)
    }

    fn plan(&self, n: u64) -> Plan {
        if self.quick {
            Plan::quick()
        } else {
            Plan::full(n)
        }
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokenvault-compare: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("probe") {
        return probe(&args[1..]);
    }
    let options = Options::parse(&args)?;
    let scratch = match &options.dir {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir()?,
    };
    let mut measured = Vec::new();
    for &n in &options.sizes {
        measured.push(measure(&options, n, &scratch.path().join(n.to_string()))?);
    }
    println!("{}", report::table(&measured, &report::MAIN));
    println!("Second opinions: the floor with atomic writes, SQLite with a 1 GiB page cache.\n");
    println!("{}", report::table(&measured, &report::SECOND));
    println!("{}", report::growth_text(&measured));
    println!("{}", report::targets(&measured));
    Ok(())
}

/// The child side of the memory probe for the stores this binary links.
fn probe(args: &[String]) -> Result<()> {
    let usage = "usage: probe tokenvault|floor|sqlite|floor-atomic|sqlite-cached DIR TOKENS";
    let [store, dir, n] = args else {
        return Err(usage.into());
    };
    let column = DIRS.iter().position(|d| d == store).ok_or(usage)?;
    // The parent passes the store's own directory; `local` wants the one above it.
    let dir = std::path::Path::new(dir);
    let mut backend: Box<dyn Backend> = match column {
        0 => Box::new(Vault::new(dir)),
        _ => local(column, dir.parent().ok_or(usage)?)?,
    };
    println!("{}", bench_common::probe(backend.as_mut(), n.parse()?)?);
    Ok(())
}

/// Each column's directory, and its name for `probe`.
const DIRS: [&str; 6] = [
    "tokenvault",
    "floor",
    "sqlite",
    "sqlcipher",
    "floor-atomic",
    "sqlite-cached",
];

/// The page cache of the second SQLite: 1 GiB, sled's default cache size.
const BIG_CACHE_KIB: i64 = 1024 * 1024;

/// The store of a column other than tokenvault's and SQLCipher's.
fn local(column: usize, dir: &std::path::Path) -> Result<Box<dyn Backend>> {
    let dir = dir.join(DIRS[column]);
    Ok(match DIRS[column] {
        "floor" => Box::new(Floor::new(&dir, false)),
        "floor-atomic" => Box::new(Floor::new(&dir, true)),
        "sqlite" => Box::new(Sql::new(Flavour::Sqlite, None, &dir)?),
        "sqlite-cached" => Box::new(Sql::new(Flavour::Sqlite, Some(BIG_CACHE_KIB), &dir)?),
        _ => return Err(format!("no local store for column {column}").into()),
    })
}

/// Every operation at one size.
fn measure(options: &Options, n: u64, dir: &std::path::Path) -> Result<Measured> {
    let plan = options.plan(n);
    if plan.updates() >= n {
        return Err(format!("{n} tokens are too few for {} updates", plan.updates()).into());
    }
    let mut c = Contenders {
        vault: Vault::new(&dir.join(DIRS[0])),
        others: [
            local(1, dir)?,
            local(2, dir)?,
            Box::new(Remote::spawn(&options.peer, &dir.join(DIRS[3]))?),
            local(4, dir)?,
            local(5, dir)?,
        ],
    };
    let mut rows = Vec::new();
    let mut row = |op: Op, values: Values| {
        eprintln!("  {op:?}: {values:?}");
        rows.push(Row { op, values });
    };
    eprintln!("{n} tokens: loading");
    let load = c.load(n)?;
    c.reopen_buffered()?;
    // The scans first: they also bring every record into the stores' caches, as the lookups'
    // warm-up does for the indexes.
    let scan = c.scan(&plan)?;
    for path in Path::ALL {
        row(Op::Lookup(path), c.lookups(&plan, path)?);
    }
    row(Op::Scan, scan);
    let (mut inserts, mut updates) = (0, 0);
    let (rounds, batch) = (plan.buffered_rounds, plan.buffered_batch);
    row(
        Op::Insert { durable: false },
        c.writes(Write::Insert, rounds, batch, &mut inserts)?,
    );
    row(
        Op::Update { durable: false },
        c.writes(Write::Update, rounds, batch, &mut updates)?,
    );
    row(Op::Open, c.reopen(&plan)?);
    let (rounds, batch) = (plan.durable_rounds, plan.durable_batch);
    row(
        Op::Insert { durable: true },
        c.writes(Write::Insert, rounds, batch, &mut inserts)?,
    );
    row(
        Op::Update { durable: true },
        c.writes(Write::Update, rounds, batch, &mut updates)?,
    );
    row(Op::Rekey, c.rekey(&plan)?);
    row(Op::Load, load);
    let kdf = c.vault.kdf()?;
    // Every store closes here, so that the probes can open them.
    drop(c);
    row(Op::Memory, memory(options, n, dir)?);
    Ok(Measured { n, rows, kdf })
}

/// Peak resident memory of a fresh process that opens each store and looks tokens up.
fn memory(options: &Options, n: u64, dir: &std::path::Path) -> Result<Values> {
    let exe = std::env::current_exe()?;
    let mut values = [None; 6];
    for (column, name) in DIRS.iter().enumerate() {
        let mut command = Command::new(if column == 3 { &options.peer } else { &exe });
        command.arg("probe");
        if column != 3 {
            command.arg(name);
        }
        let output = command.arg(dir.join(name)).arg(n.to_string()).output()?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(format!("memory probe of {name} failed: {stderr}").into());
        }
        let (peak, _) = bench_common::parse_probe(stdout.trim())?;
        values[column] = Some(peak as f64);
    }
    Ok(values)
}
