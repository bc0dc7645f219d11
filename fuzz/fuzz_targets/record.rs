//! Stored record bytes, as an attacker or a damaged disk could leave them.
//!
//! The first input byte picks the mode. Even: the rest is taken as a sealed record and opened
//! under the fixed test key, which must refuse it (or, for a genuine seed, decode it) without
//! panicking. Odd: the rest is sealed first, so that the decoder behind the authentication check
//! sees arbitrary plaintext. Either way, the id before the first `0xff` byte is the id the record
//! is opened for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenvault::fuzzing::{decode_record, encode_record, open_record, seal_record};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let split = rest.iter().position(|&b| b == 0xff).unwrap_or(rest.len());
    let id = String::from_utf8_lossy(&rest[..split]);
    let body = rest.get(split + 1..).unwrap_or_default();
    let opened = if mode.is_multiple_of(2) {
        open_record(&id, body)
    } else {
        sealed_round_trip(&id, body)
    };
    if let Some(token) = opened {
        check_reencodes(&token);
    }
});

/// Seals `plain` for `id`: it must open for `id` only, to exactly what the decoder makes of it.
fn sealed_round_trip(id: &str, plain: &[u8]) -> Option<tokenvault::Token> {
    let sealed = seal_record(id, plain);
    let opened = open_record(id, &sealed);
    assert_eq!(opened, decode_record(plain), "opening changed what decodes");
    let other = format!("{id}x");
    assert!(
        open_record(&other, &sealed).is_none(),
        "a record opened under another id"
    );
    opened
}

/// Whatever decodes re-encodes to bytes that decode to the same token.
fn check_reencodes(token: &tokenvault::Token) {
    let bytes = encode_record(token).expect("a decoded token encodes");
    assert_eq!(
        decode_record(&bytes).as_ref(),
        Some(token),
        "re-encoding changed the token"
    );
}
