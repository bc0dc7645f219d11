//! The comparison table, the growth of lookup times with the store's size, and the targets of
//! issue #4 checked against what was measured.

use std::fmt::Write as _;

use bench_common::data::Path;
use bench_common::sql::LOAD_CHUNK;
use tokenvault::KdfParams;

use crate::measure::{Values, COLUMNS, SHORT};

/// What a row measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Lookup(Path),
    Insert {
        durable: bool,
    },
    Update {
        durable: bool,
    },
    Load,
    Scan,
    Open,
    Rekey,
    /// Peak resident memory in KiB.
    Memory,
}

impl Op {
    fn name(self) -> String {
        let mode = |durable| if durable { "Immediate" } else { "Buffered" };
        match self {
            Op::Lookup(Path::Id) => "find_token_by_id".into(),
            Op::Lookup(path) => format!("find_token by {}", path.name()),
            Op::Insert { durable } => format!("save_token insert, {}", mode(durable)),
            Op::Update { durable } => format!("save_token update, {}", mode(durable)),
            Op::Load => format!("bulk load, per token (Buffered, {LOAD_CHUNK} a commit)"),
            Op::Scan => "get_tokens (every token)".into(),
            Op::Open => "open (default KDF)".into(),
            Op::Rekey => "change_passphrase".into(),
            Op::Memory => "peak RSS: open + 100,000 lookups".into(),
        }
    }
}

/// One operation at one size.
#[derive(Clone, Debug)]
pub struct Row {
    pub op: Op,
    pub values: Values,
}

/// Everything measured at one size.
#[derive(Clone, Debug)]
pub struct Measured {
    pub n: u64,
    pub rows: Vec<Row>,
    /// The KDF parameters of the store that was opened.
    pub kdf: KdfParams,
}

impl Measured {
    fn get(&self, op: Op) -> Values {
        self.rows
            .iter()
            .find(|r| r.op == op)
            .map_or([None; 6], |r| r.values)
    }
}

/// The columns of the main table: tokenvault, the floor and the two peers as applications run
/// them.
pub const MAIN: [usize; 4] = [0, 1, 2, 3];
/// The columns of the second table: tokenvault, the floor with atomic writes, SQLite with a
/// large cache.
pub const SECOND: [usize; 3] = [0, 4, 5];

/// The markdown table of every row at every size, for `columns` (tokenvault's first) and
/// tokenvault's ratio to each of the others.
pub fn table(measured: &[Measured], columns: &[usize]) -> String {
    let mut out = String::new();
    let names = columns.iter().map(|&c| COLUMNS[c].to_string());
    let ratios = columns[1..].iter().map(|&c| format!("tv/{}", SHORT[c]));
    let header: Vec<String> = ["operation".to_string(), "tokens".to_string()]
        .into_iter()
        .chain(names)
        .chain(ratios)
        .collect();
    line(&mut out, &header);
    line(
        &mut out,
        &header
            .iter()
            .enumerate()
            .map(|(i, _)| align(i))
            .collect::<Vec<_>>(),
    );
    for m in measured {
        for row in &m.rows {
            let mut cells = vec![row.op.name(), thousands(m.n)];
            cells.extend(columns.iter().map(|&c| value(row.op, row.values[c])));
            cells.extend(
                columns[1..]
                    .iter()
                    .map(|&c| ratio(row.values[0], row.values[c])),
            );
            line(&mut out, &cells);
        }
    }
    out
}

fn align(i: usize) -> String {
    if i == 0 { ":--" } else { "--:" }.to_string()
}

fn line(out: &mut String, cells: &[String]) {
    let _ = writeln!(out, "| {} |", cells.join(" | "));
}

fn value(op: Op, v: Option<f64>) -> String {
    match (op, v) {
        (_, None) => "n/a".into(),
        (Op::Memory, Some(kib)) => format!("{:.1} MiB", kib / 1024.0),
        (_, Some(seconds)) => duration(seconds),
    }
}

/// A duration with three significant digits in a fitting unit.
pub fn duration(seconds: f64) -> String {
    let (v, unit) = match seconds {
        s if s < 1e-6 => (s * 1e9, "ns"),
        s if s < 1e-3 => (s * 1e6, "us"),
        s if s < 1.0 => (s * 1e3, "ms"),
        s => (s, "s"),
    };
    let decimals = if v < 10.0 {
        2
    } else if v < 100.0 {
        1
    } else {
        0
    };
    format!("{v:.decimals$} {unit}")
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "n/a".into(),
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// How the lookup time on one path grows between two sizes.
#[derive(Clone, Copy, Debug)]
pub struct Growth {
    path: Path,
    from: u64,
    to: u64,
    /// tokenvault's time at `to` over its time at `from`.
    vault: Option<f64>,
    /// The same for the floor.
    floor: Option<f64>,
}

impl Growth {
    /// tokenvault's growth over the floor's.
    fn over(&self) -> Option<f64> {
        self.vault.zip(self.floor).map(|(v, f)| v / f)
    }
}

/// How lookup times grow from the smallest size measured to each larger one.
pub fn growth(measured: &[Measured]) -> Vec<Growth> {
    let (Some(small), rest) = measured
        .split_first()
        .map_or((None, &[][..]), |(f, r)| (Some(f), r))
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for large in rest {
        for path in Path::ALL {
            let (a, b) = (small.get(Op::Lookup(path)), large.get(Op::Lookup(path)));
            let grow = |c: usize| Some(b[c]? / a[c]?);
            out.push(Growth {
                path,
                from: small.n,
                to: large.n,
                vault: grow(0),
                floor: grow(1),
            });
        }
    }
    out
}

/// The growth section as text.
pub fn growth_text(measured: &[Measured]) -> String {
    let mut out = String::new();
    for g in growth(measured) {
        let _ = writeln!(
            out,
            "lookup growth {} -> {} tokens, {:<13} tokenvault {}, floor {}, tokenvault over floor {}",
            thousands(g.from),
            thousands(g.to),
            g.path.name(),
            factor(g.vault),
            factor(g.floor),
            factor(g.over()),
        );
    }
    out
}

fn factor(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.2}x"))
}

/// One checked target.
struct Check {
    what: String,
    measured: String,
    pass: Option<bool>,
}

/// The targets of issue #4, each with what was measured and whether it was met.
pub fn targets(measured: &[Measured]) -> String {
    let mut checks = Vec::new();
    let reference = measured.iter().find(|m| m.n == 100_000).or(measured.last());
    if let Some(m) = reference {
        lookup_checks(m, &mut checks);
        write_checks(m, &mut checks);
        open_checks(m, &mut checks);
    }
    for m in measured {
        let per_token = m.get(Op::Load)[0];
        let rate = per_token.map(|s| 1.0 / s);
        checks.push(Check {
            what: format!(
                "bulk load (Buffered, {LOAD_CHUNK} a commit) >= 50,000 tokens/s at {}",
                thousands(m.n)
            ),
            measured: rate.map_or("n/a".into(), |r| {
                format!("{} tokens/s", thousands(r as u64))
            }),
            pass: rate.map(|r| r >= 50_000.0),
        });
    }
    for g in growth(measured) {
        checks.push(Check {
            what: format!(
                "lookup growth by {} over floor growth <= 1.25 ({} -> {})",
                g.path.name(),
                thousands(g.from),
                thousands(g.to)
            ),
            measured: factor(g.over()),
            pass: g.over().map(|o| o <= 1.25),
        });
    }
    let mut out = String::new();
    for c in checks {
        let verdict = match c.pass {
            Some(true) => "PASS",
            Some(false) => "MISS",
            None => "n/a",
        };
        let _ = writeln!(out, "{verdict:<4}  {}: {}", c.what, c.measured);
    }
    out
}

fn lookup_checks(m: &Measured, checks: &mut Vec<Check>) {
    for path in Path::ALL {
        let v = m.get(Op::Lookup(path));
        let r = |c: usize| v[0].zip(v[c]).map(|(a, b)| a / b);
        let name = Op::Lookup(path).name();
        checks.push(Check {
            what: format!("{name} <= 1.5x floor at {}", thousands(m.n)),
            measured: factor(r(1)),
            pass: r(1).map(|x| x <= 1.5),
        });
        checks.push(Check {
            what: format!(
                "{name} faster than SQLite and SQLCipher at {}",
                thousands(m.n)
            ),
            measured: format!("{} and {}", factor(r(2)), factor(r(3))),
            pass: r(2).zip(r(3)).map(|(a, b)| a < 1.0 && b < 1.0),
        });
    }
}

fn write_checks(m: &Measured, checks: &mut Vec<Check>) {
    for op in [Op::Insert { durable: true }, Op::Update { durable: true }] {
        let v = m.get(op);
        let r = v[0].zip(v[1]).map(|(a, b)| a / b);
        checks.push(Check {
            what: format!(
                "{} <= 2x floor durable write at {}",
                op.name(),
                thousands(m.n)
            ),
            measured: factor(r),
            pass: r.map(|x| x <= 2.0),
        });
    }
}

fn open_checks(m: &Measured, checks: &mut Vec<Check>) {
    let open = m.get(Op::Open)[0];
    checks.push(Check {
        what: format!("open with the default KDF <= 1 s at {}", thousands(m.n)),
        measured: open.map_or("n/a".into(), duration),
        pass: open.map(|s| s <= 1.0),
    });
    let k = m.kdf;
    checks.push(Check {
        what: "KDF at least RFC 9106's second option (64 MiB, t=3, p=4)".into(),
        measured: format!(
            "{} MiB, t={}, p={}",
            k.memory_kib / 1024,
            k.iterations,
            k.parallelism
        ),
        pass: Some(k.memory_kib >= 64 * 1024 && k.iterations >= 3 && k.parallelism >= 4),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(duration(3.456e-6), "3.46 us");
        assert_eq!(duration(0.0123), "12.3 ms");
        assert_eq!(duration(1.5), "1.50 s");
        assert_eq!(ratio(Some(3.0), Some(2.0)), "1.50x");
        assert_eq!(ratio(Some(3.0), None), "n/a");
    }

    #[test]
    fn growth_compares_the_smallest_size_with_each_larger_one() {
        let at = |n, vault, floor| Measured {
            n,
            kdf: KdfParams::default(),
            rows: vec![Row {
                op: Op::Lookup(Path::UserName),
                values: [Some(vault), Some(floor), None, None, None, None],
            }],
        };
        let rows = growth(&[at(10, 1.0, 1.0), at(100, 3.0, 2.0)]);
        let g = rows[0];
        assert_eq!((g.path, g.from, g.to), (Path::UserName, 10, 100));
        assert_eq!(
            (g.vault, g.floor, g.over()),
            (Some(3.0), Some(2.0), Some(1.5))
        );
        assert!(targets(&[at(10, 1.0, 1.0), at(100, 3.0, 2.0)]).contains("MISS  lookup growth"));
    }
}
