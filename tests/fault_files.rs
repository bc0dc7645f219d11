//! Whole files damaged, missing or foreign: truncations, deletions, a directory that is not a
//! store, headers from the future or demanding absurd key-derivation work.
//!
//! Each case gets a typed error (or, where nothing was lost, a store that reads back exactly what
//! was saved), never a panic, and a directory that is not a store is left untouched.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/fault.rs"]
mod fault;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokenvault::{Error, KdfParams, TokenStore, FORMAT_VERSION};

use fault::{Fixture, Outcome, Salvage};

const HEADER: &str = "tokenvault.header";
const SEAL: &str = "tokenvault.seal";
/// Where the header's trailing SHA-256 starts, in format version 1.
const HEADER_BODY_END: usize = 115;

#[test]
fn every_file_truncated_to_several_lengths() {
    let fixture = Fixture::build(12, true);
    let mut outcomes: BTreeMap<(String, Outcome), usize> = BTreeMap::new();
    let mut salvages: BTreeMap<Salvage, usize> = BTreeMap::new();
    for file in fixture.files() {
        let len = fs::metadata(fixture.path().join(&file)).unwrap().len() as usize;
        let mut lengths = vec![0, 1, 40, len / 3, len / 2, len.saturating_sub(1)];
        lengths.retain(|&l| l < len);
        lengths.dedup();
        for keep in lengths {
            let (_dir, path) = fixture.copy();
            let target = path.join(&file);
            fs::OpenOptions::new()
                .write(true)
                .open(&target)
                .unwrap()
                .set_len(keep as u64)
                .unwrap();
            let what = format!("{} truncated to {keep} bytes", file.display());
            let outcome = fault::inspect(&fixture, &path, &what);
            if outcome == Outcome::Refused("Corrupt") {
                let salvage = fault::salvage(&fixture, &path, &what);
                *salvages.entry(salvage).or_default() += 1;
            }
            *outcomes
                .entry((file.display().to_string(), outcome))
                .or_default() += 1;
        }
    }
    println!("truncations by file and outcome:");
    for ((file, outcome), n) in &outcomes {
        println!("  {file:<20} {outcome:?}: {n}");
    }
    println!("refused copies, recovered and repaired: {salvages:?}");
    let count = |file: &str, outcome: Outcome| outcomes.get(&(file.into(), outcome)).copied();
    // Specific expectations, so that the sweep cannot pass by checking nothing: a truncated
    // header, log or seal is damage (a seal cut to one slot may have lost the newer one).
    assert_eq!(count(HEADER, Outcome::Refused("Corrupt")), Some(6));
    assert_eq!(count("db/db", Outcome::Refused("Corrupt")), Some(6));
    assert_eq!(count(SEAL, Outcome::Refused("Corrupt")), Some(6));
}

#[test]
fn an_empty_directory_becomes_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    let mut token = common::token(1);
    store.save_token(&mut token).unwrap();
    drop(store);
    assert!(dir.path().join(HEADER).is_file());
    assert_eq!(common::open(dir.path()).get_tokens().unwrap(), vec![token]);
}

#[test]
fn a_directory_of_other_files_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("notes.txt"), "not a store").unwrap();
    fs::create_dir(dir.path().join("db")).unwrap();
    fs::write(dir.path().join("db").join("db"), vec![0xA5; 4096]).unwrap();
    fs::write(dir.path().join("db").join("conf"), "segment_size: 8").unwrap();
    let before = snapshot(dir.path());
    let err = common::try_open(dir.path(), common::PASSPHRASE).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("left untouched"), "{err}");
    assert_eq!(snapshot(dir.path()), before, "the directory was changed");
}

#[test]
fn a_regular_file_is_not_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens");
    fs::write(&file, "plain file").unwrap();
    let err = common::try_open(&file, common::PASSPHRASE).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    assert_eq!(fs::read(&file).unwrap(), b"plain file");
}

#[test]
fn a_header_of_a_newer_format_is_unsupported_not_corrupt() {
    let fixture = Fixture::build(2, false);
    for extra in [0, 64] {
        let (_dir, path) = fixture.copy();
        let mut header = fs::read(path.join(HEADER)).unwrap();
        header.truncate(HEADER_BODY_END);
        header.extend(vec![7; extra]);
        header[8..10].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        let sum = Sha256::digest(&header);
        header.extend_from_slice(&sum);
        fs::write(path.join(HEADER), &header).unwrap();
        match common::try_open(&path, common::PASSPHRASE) {
            Err(Error::UnsupportedFormat { found, supported }) => {
                assert_eq!((found, supported), (FORMAT_VERSION + 1, FORMAT_VERSION));
            }
            other => panic!("a newer header ({extra} extra bytes) gave {other:?}"),
        }
    }
}

#[test]
fn a_header_demanding_gigabytes_of_kdf_memory_is_refused_before_deriving() {
    let fixture = Fixture::build(2, false);
    let demands = [
        (u32::MAX, 1, 1),
        (KdfParams::MAX_MEMORY_KIB + 1, 1, 1),
        (KdfParams::MAX_MEMORY_KIB, 16, 1),
        (1024, u32::MAX, 1),
        (1024, 1, u32::MAX),
        (0, 1, 1),
    ];
    for (memory_kib, iterations, parallelism) in demands {
        let (_dir, path) = fixture.copy();
        let mut header = fs::read(path.join(HEADER)).unwrap();
        header[11..15].copy_from_slice(&memory_kib.to_le_bytes());
        header[15..19].copy_from_slice(&iterations.to_le_bytes());
        header[19..23].copy_from_slice(&parallelism.to_le_bytes());
        let sum = Sha256::digest(&header[..HEADER_BODY_END]);
        header[HEADER_BODY_END..].copy_from_slice(&sum);
        fs::write(path.join(HEADER), &header).unwrap();
        // Deriving 4 TiB, or 16 passes over 1 GiB, would exhaust memory or run for minutes:
        // the refusal has to come from the ceilings, before Argon2 runs.
        let err = common::try_open(&path, common::PASSPHRASE).unwrap_err();
        assert!(
            matches!(err, Error::Corrupt { .. }),
            "{memory_kib}/{iterations}: {err:?}"
        );
        assert!(err.to_string().contains("kdf"), "{err}");
    }
}

#[test]
fn a_header_larger_than_any_header_is_not_read() {
    let fixture = Fixture::build(1, false);
    let (_dir, path) = fixture.copy();
    let mut header = fs::read(path.join(HEADER)).unwrap();
    header.resize(1 << 20, 0);
    fs::write(path.join(HEADER), &header).unwrap();
    let err = common::try_open(&path, common::PASSPHRASE).unwrap_err();
    assert!(err.to_string().contains("larger than any header"), "{err}");
}

#[test]
fn a_header_from_another_store_does_not_open_this_database() {
    let fixture = Fixture::build(3, false);
    let other = Fixture::build(3, false);
    let (_dir, path) = fixture.copy();
    fs::copy(other.path().join(HEADER), path.join(HEADER)).unwrap();
    let err = common::try_open(&path, common::PASSPHRASE).unwrap_err();
    assert!(err.to_string().contains("another store"), "{err}");
}

#[test]
fn a_deleted_seal_is_reported_and_repair_reseals() {
    let fixture = Fixture::build(5, false);
    let (_dir, path) = fixture.copy();
    fs::remove_file(path.join(SEAL)).unwrap();
    let err = common::try_open(&path, common::PASSPHRASE).unwrap_err();
    assert!(err.to_string().contains("seal file"), "{err}");
    assert_eq!(
        fault::salvage(&fixture, &path, "deleted seal"),
        Salvage::Repaired { intact: true }
    );
}

#[test]
fn a_seal_with_both_slots_damaged_is_reported() {
    let fixture = Fixture::build(5, false);
    let (_dir, path) = fixture.copy();
    let mut seal = fs::read(path.join(SEAL)).unwrap();
    seal[20] ^= 1;
    seal[60] ^= 1;
    fs::write(path.join(SEAL), &seal).unwrap();
    let err = common::try_open(&path, common::PASSPHRASE).unwrap_err();
    assert!(
        err.to_string().contains("seal fails authentication"),
        "{err}"
    );
    assert_eq!(
        fault::salvage(&fixture, &path, "damaged seal"),
        Salvage::Repaired { intact: true }
    );
}

#[test]
fn a_deleted_database_directory_is_reported_not_recreated_empty() {
    let fixture = Fixture::build(5, false);
    let (_dir, path) = fixture.copy();
    fs::remove_dir_all(path.join("db")).unwrap();
    let err = common::try_open(&path, common::PASSPHRASE).unwrap_err();
    assert!(err.to_string().contains("db/ is missing"), "{err}");
    assert!(
        !path.join("db").exists(),
        "open recreated an empty database"
    );
}

#[test]
fn every_file_deleted_in_turn() {
    let fixture = Fixture::build(8, true);
    for file in fixture.files() {
        let (_dir, path) = fixture.copy();
        fs::remove_file(path.join(&file)).unwrap();
        let what = format!("{} deleted", file.display());
        let outcome = fault::inspect(&fixture, &path, &what);
        let salvage = match outcome {
            Outcome::Refused("Corrupt") => fault::salvage(&fixture, &path, &what),
            _ => Salvage::NotNeeded,
        };
        println!("{what}: {outcome:?}, {salvage:?}");
        // Without its header the directory is no longer a store, and the data key is gone with
        // it. sled rewrites a missing `conf` with the defaults the store uses, and the lock file
        // holds nothing. Losing the log, a blob or the seal loses commits, which is reported,
        // and repair salvages what is left.
        let expected = match file.to_str().unwrap() {
            HEADER => (Outcome::Refused("Corrupt"), Salvage::Unopenable("Corrupt")),
            "tokenvault.lock" | "db/conf" => (Outcome::Intact, Salvage::NotNeeded),
            SEAL => (
                Outcome::Refused("Corrupt"),
                Salvage::Repaired { intact: true },
            ),
            _ => (
                Outcome::Refused("Corrupt"),
                Salvage::Repaired { intact: false },
            ),
        };
        assert_eq!((outcome, salvage), expected, "{what}");
    }
}

/// sled lets go of its log file's lock from a background thread, just after the handle that
/// used it is dropped; a reopen in that window used to fail with an I/O error. The window is
/// widest on a fast file system, so this runs on tmpfs where there is one.
#[test]
fn reopening_right_after_a_close_finds_the_store_free() {
    let shm = Path::new("/dev/shm");
    let builder = tempfile::Builder::new();
    let dir = if shm.is_dir() {
        builder.tempdir_in(shm)
    } else {
        builder.tempdir()
    }
    .unwrap();
    for round in 0..200 {
        let path = dir.path().join(round.to_string());
        drop(common::open(&path));
        let reopened = common::try_open(&path, common::PASSPHRASE);
        assert!(reopened.is_ok(), "round {round}: {reopened:?}");
        let mut token = common::token(round);
        reopened.unwrap().save_token(&mut token).unwrap();
        let again = common::try_open(&path, common::PASSPHRASE);
        assert!(again.is_ok(), "round {round}, after a write: {again:?}");
    }
}

/// Every path under `dir` with its contents (`None` for directories).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut entries = BTreeMap::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            entries.insert(path.clone(), None);
            entries.extend(snapshot(&path));
        } else {
            entries.insert(path.clone(), Some(fs::read(&path).unwrap()));
        }
    }
    entries
}

/// sled treats a damaged start of its log as the end of it, so the database can lose every
/// commit and look like one just created; without its seal too, the store used to open as a
/// new empty one (found by the `files` fuzz target). Every store is now sealed before its header
/// exists, so a missing seal is always damage.
#[test]
fn a_database_that_lost_everything_without_its_seal_is_not_a_new_store() {
    let fixture = Fixture::build(8, false);
    let (_dir, path) = fixture.copy();
    let mut log = fs::read(path.join("db/db")).unwrap();
    log[0] ^= 1;
    fs::write(path.join("db/db"), &log).unwrap();
    fs::remove_file(path.join(SEAL)).unwrap();
    let err = common::try_open(&path, common::PASSPHRASE).unwrap_err();
    assert!(err.to_string().contains("seal file"), "{err}");
    assert_eq!(
        fault::salvage(&fixture, &path, "lost log and seal"),
        Salvage::Repaired { intact: false }
    );
}

/// A creation interrupted after the seal but before the header leaves a directory that the next
/// open creates the store in.
#[test]
fn a_creation_interrupted_before_its_header_starts_again() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("tokenvault.lock"), b"").unwrap();
    fs::write(dir.path().join(SEAL), [0x33; 80]).unwrap();
    let store = common::open(dir.path());
    let mut token = common::token(1);
    store.save_token(&mut token).unwrap();
    drop(store);
    assert_eq!(common::open(dir.path()).get_tokens().unwrap(), vec![token]);
}

/// One spoiled slot of the seal may have been the newer one: trusting the other would hide the
/// loss of the last commit (found by the `files` fuzz target: a flipped seal byte plus a
/// damaged log tail opened with a deleted token back).
#[test]
fn a_seal_with_one_spoiled_slot_is_damage_even_when_the_other_fits() {
    let fixture = Fixture::build(5, false);
    for slot in 0..2 {
        let (_dir, path) = fixture.copy();
        let mut seal = fs::read(path.join(SEAL)).unwrap();
        seal[slot * 40 + 20] ^= 1;
        fs::write(path.join(SEAL), &seal).unwrap();
        let err = common::try_open(&path, common::PASSPHRASE).unwrap_err();
        assert!(
            err.to_string().contains("seal fails authentication"),
            "slot {slot}: {err}"
        );
        let what = format!("seal slot {slot} spoiled");
        assert_eq!(
            fault::salvage(&fixture, &path, &what),
            Salvage::Repaired { intact: true }
        );
    }
}
