//! Single flipped bits anywhere in a store's files: never a panic, never wrong data, never a
//! saved token silently missing, never a deleted one back.
//!
//! A store with a few dozen tokens (some rotated, some deleted, one large enough for a blob
//! file) is closed; then, for positions spread over every file it has (header, seal, sled's
//! `conf`, log and blobs), one bit is flipped in a fresh copy, which is opened and read through
//! every lookup path (see `common/fault.rs` for the checks). Copies that `open` refuses are
//! opened with `recover(true)` and repaired, which must leave a clean store holding only what was
//! saved. The outcome counts are printed (`--nocapture`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/fault.rs"]
mod fault;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use fault::{Fixture, Outcome, Salvage};

/// Flips per file at most: every byte of the small files, an even spread over the large ones.
const FLIPS_PER_FILE: usize = 160;

#[test]
fn a_flipped_bit_anywhere_is_reported_never_returned() {
    let fixture = Fixture::build(30, true);
    let files = fixture.files();
    assert!(
        files.iter().any(|f| f.starts_with("db/blobs")),
        "the fixture should have a blob file: {files:?}"
    );
    let mut outcomes: BTreeMap<(String, Outcome), usize> = BTreeMap::new();
    let mut salvages: BTreeMap<Salvage, usize> = BTreeMap::new();
    for file in &files {
        let len = fs::metadata(fixture.path().join(file)).unwrap().len() as usize;
        let step = len.div_ceil(FLIPS_PER_FILE).max(1);
        for (n, offset) in (0..len).step_by(step).enumerate() {
            let bit = (n % 8) as u8;
            let (outcome, salvage) = flip_and_inspect(&fixture, file, offset, bit);
            *outcomes.entry((group(file), outcome)).or_default() += 1;
            *salvages.entry(salvage).or_default() += 1;
        }
    }
    report(&outcomes, &salvages);
    let refused = |what: &str| {
        outcomes
            .iter()
            .any(|((file, outcome), _)| file == what && matches!(outcome, Outcome::Refused(_)))
    };
    // Damage to the header, the seal and the log must each be caught somewhere in the sweep: a
    // sweep in which nothing is ever refused would show that the flips did not land.
    for file in ["tokenvault.header", "tokenvault.seal", "db/db"] {
        assert!(refused(file), "no flip in {file} was refused");
    }
}

/// Flips one bit in a fresh copy and checks what the store makes of it.
fn flip_and_inspect(fixture: &Fixture, file: &Path, offset: usize, bit: u8) -> (Outcome, Salvage) {
    let (_dir, path) = fixture.copy();
    let target = path.join(file);
    let mut bytes = fs::read(&target).unwrap();
    bytes[offset] ^= 1 << bit;
    fs::write(&target, &bytes).unwrap();
    let what = format!("bit {bit} of byte {offset} in {}", file.display());
    let outcome = fault::inspect(fixture, &path, &what);
    let salvage = match outcome {
        Outcome::Refused("Corrupt") => fault::salvage(fixture, &path, &what),
        _ => Salvage::NotNeeded,
    };
    (outcome, salvage)
}

/// The file's name, with the blob's numeric name folded into one group.
fn group(file: &Path) -> String {
    if file.starts_with("db/blobs") {
        "db/blobs/*".into()
    } else {
        file.display().to_string()
    }
}

fn report(outcomes: &BTreeMap<(String, Outcome), usize>, salvages: &BTreeMap<Salvage, usize>) {
    println!("bit flips by file and outcome:");
    for ((file, outcome), count) in outcomes {
        println!("  {file:<20} {outcome:?}: {count}");
    }
    println!("refused stores opened with recover(true) and repaired:");
    for (salvage, count) in salvages {
        println!("  {salvage:?}: {count}");
    }
}
