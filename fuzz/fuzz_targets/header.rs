//! Store header bytes, including well-formed headers with KDF parameters far past the ceilings.
//!
//! Parsing must refuse anything it cannot use with a typed error and never panic; whatever it
//! accepts must ask for no more key-derivation work than `KdfParams::MAX_*` allow, so that a
//! crafted header cannot make `open` allocate gigabytes or run for minutes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenvault::fuzzing::parse_header_kdf;
use tokenvault::{Error, KdfParams};

fuzz_target!(|data: &[u8]| {
    match parse_header_kdf(data) {
        Ok(kdf) => check_within_ceilings(kdf),
        Err(Error::Corrupt { .. } | Error::UnsupportedFormat { .. }) => {}
        Err(other) => panic!("a header was refused with an unexpected error: {other:?}"),
    }
});

fn check_within_ceilings(kdf: KdfParams) {
    assert!(kdf.memory_kib <= KdfParams::MAX_MEMORY_KIB, "{kdf:?}");
    assert!(kdf.iterations <= KdfParams::MAX_ITERATIONS, "{kdf:?}");
    assert!(kdf.parallelism <= KdfParams::MAX_PARALLELISM, "{kdf:?}");
    let work = u64::from(kdf.memory_kib) * u64::from(kdf.iterations);
    assert!(work <= KdfParams::MAX_WORK, "{kdf:?}");
}
