//! The measurement schedule: every operation runs in rounds, and in each round every store runs
//! one batch, starting with a different store each time. Load from the other tenants of a shared
//! machine then falls on all stores alike, and the median over rounds discards the rounds it hit
//! hardest.

use std::time::Duration;

use bench_common::data::Path;
use bench_common::proto::{Backend, Result, Write};

use crate::vault::Vault;

/// The stores, in column order: the main table shows the first four, the second opinions the
/// rest.
pub const COLUMNS: [&str; 6] = [
    "tokenvault",
    "floor (sled)",
    "SQLite",
    "SQLCipher",
    "floor, atomic",
    "SQLite, 1 GiB cache",
];

/// Each column's name in ratio headers.
pub const SHORT: [&str; 6] = [
    "tv",
    "floor",
    "SQLite",
    "SQLCipher",
    "atomic floor",
    "cached SQLite",
];

/// A measured value per column; `None` where a store has no such operation.
pub type Values = [Option<f64>; 6];

/// How many rounds and batches each operation gets.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Lookups per path before the measured ones, so that every store serves from its steady
    /// state rather than from whatever the load left in memory.
    pub warmup: u64,
    pub lookup_rounds: u64,
    pub lookup_batch: u64,
    pub scan_rounds: u64,
    pub buffered_rounds: u64,
    pub buffered_batch: u64,
    pub durable_rounds: u64,
    pub durable_batch: u64,
    pub open_rounds: u64,
    pub rekey_rounds: u64,
}

impl Plan {
    /// Enough repetitions for medians that hold still to a few percent on a quiet machine.
    pub fn full(n: u64) -> Plan {
        Plan {
            warmup: n,
            lookup_rounds: 31,
            lookup_batch: 2000,
            scan_rounds: if n >= 1_000_000 { 3 } else { 7 },
            buffered_rounds: 31,
            buffered_batch: 50,
            durable_rounds: 21,
            durable_batch: 10,
            open_rounds: 5,
            rekey_rounds: 3,
        }
    }

    /// A smoke run: every code path, few repetitions.
    pub fn quick() -> Plan {
        Plan {
            warmup: 100,
            lookup_rounds: 5,
            lookup_batch: 20,
            scan_rounds: 2,
            buffered_rounds: 3,
            buffered_batch: 5,
            durable_rounds: 3,
            durable_batch: 2,
            open_rounds: 2,
            rekey_rounds: 2,
        }
    }

    /// How many tokens the updates touch; they must all be distinct stored tokens.
    pub fn updates(&self) -> u64 {
        self.buffered_rounds * self.buffered_batch + self.durable_rounds * self.durable_batch
    }
}

/// tokenvault and the stores it is compared with.
pub struct Contenders {
    pub vault: Vault,
    /// The stores of columns 1 and up.
    pub others: [Box<dyn Backend>; 5],
}

impl Contenders {
    fn get(&mut self, column: usize) -> &mut dyn Backend {
        match column {
            0 => &mut self.vault,
            c => self.others[c - 1].as_mut(),
        }
    }

    /// Runs `rounds` rounds of `step`, each call covering `ops` operations; returns each store's
    /// median time per operation in seconds.
    fn rounds(
        &mut self,
        rounds: u64,
        ops: u64,
        mut step: impl FnMut(&mut dyn Backend, u64) -> Result<Option<Duration>>,
    ) -> Result<Values> {
        let mut samples: [Vec<f64>; 6] = Default::default();
        for round in 0..rounds {
            for turn in 0..COLUMNS.len() {
                let column = (turn + round as usize) % COLUMNS.len();
                let took = step(self.get(column), round)
                    .map_err(|e| format!("{}: {e}", COLUMNS[column]))?;
                if let Some(took) = took {
                    samples[column].push(took.as_secs_f64() / ops as f64);
                }
            }
        }
        Ok(samples.map(median))
    }

    /// Loads `n` tokens into each store in turn; returns the time per token.
    pub fn load(&mut self, n: u64) -> Result<Values> {
        self.rounds(1, n, |b, _| b.load(n).map(Some))
    }

    /// Median time of one lookup on `path`, after [`Plan::warmup`] lookups.
    pub fn lookups(&mut self, plan: &Plan, path: Path) -> Result<Values> {
        let base = Path::ALL.iter().position(|&p| p == path).unwrap_or(0) as u64 * (1 << 40);
        let chunk = 10_000;
        for first in (0..plan.warmup).step_by(chunk as usize) {
            let count = chunk.min(plan.warmup - first);
            self.rounds(1, count, |b, _| {
                b.lookups(path, base + first, count).map(Some)
            })?;
        }
        let (batch, base) = (plan.lookup_batch, base + plan.warmup);
        self.rounds(plan.lookup_rounds, batch, |b, round| {
            b.lookups(path, base + round * batch, batch).map(Some)
        })
    }

    /// Closes and opens every store, untimed: lookups then run on a store as an application
    /// that opens it finds it, not as the load left it.
    pub fn reopen_buffered(&mut self) -> Result<()> {
        self.rounds(1, 1, |b, _| b.reopen(false).map(Some))
            .map(|_| ())
    }

    /// Median time of reading every token.
    pub fn scan(&mut self, plan: &Plan) -> Result<Values> {
        self.rounds(plan.scan_rounds, 1, |b, _| b.scan().map(Some))
    }

    /// Median time of one save; `next` is the first unused save number of this kind.
    pub fn writes(
        &mut self,
        kind: Write,
        rounds: u64,
        batch: u64,
        next: &mut u64,
    ) -> Result<Values> {
        let first = *next;
        *next += rounds * batch;
        self.rounds(rounds, batch, |b, round| {
            b.writes(kind, first + round * batch, batch).map(Some)
        })
    }

    /// Median time of opening, durable writes from then on.
    pub fn reopen(&mut self, plan: &Plan) -> Result<Values> {
        self.rounds(plan.open_rounds, 1, |b, _| b.reopen(true).map(Some))
    }

    /// Median time of changing the passphrase. Ends on the passphrase it started with, which the
    /// memory probes open the stores with.
    pub fn rekey(&mut self, plan: &Plan) -> Result<Values> {
        let values = self.rounds(plan.rekey_rounds, 1, |b, _| b.rekey())?;
        if plan.rekey_rounds % 2 == 1 {
            self.rounds(1, 1, |b, _| b.rekey())?;
        }
        Ok(values)
    }
}

/// The median of the samples; `None` for none.
pub fn median(mut samples: Vec<f64>) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(f64::total_cmp);
    let mid = samples.len() / 2;
    Some(if samples.len() % 2 == 1 {
        samples[mid]
    } else {
        (samples[mid - 1] + samples[mid]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }
}
