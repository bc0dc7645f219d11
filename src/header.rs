//! The store header: format version, KDF parameters, salt and the wrapped data key.
//!
//! It lives in its own small file beside the database so that opening (and telling a wrong
//! passphrase from damage) never depends on the storage engine, and so that a passphrase change
//! rewrites 147 bytes atomically whatever the number of tokens.
//!
//! Layout of format version 1, integers little-endian:
//!
//! | offset | length | field                                                   |
//! |-------:|-------:|---------------------------------------------------------|
//! |      0 |      8 | magic `TOKENVLT`                                        |
//! |      8 |      2 | format version (1)                                      |
//! |     10 |      1 | KDF algorithm (1: Argon2id, version 0x13)               |
//! |     11 |     12 | KDF memory (KiB), iterations, parallelism: three `u32`  |
//! |     23 |     32 | Argon2 salt                                             |
//! |     55 |     12 | nonce of the key wrap                                   |
//! |     67 |     48 | data key wrapped with AES-256-GCM, associated data 0..55 |
//! |    115 |     32 | SHA-256 of bytes 0..115 (unkeyed: detects damage only)  |
//!
//! Every later version keeps the magic, the version field and a trailing SHA-256 of everything
//! before it, so that a newer store is told apart from a damaged one.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::crypto::{self, KdfParams, Key, NONCE_LEN, WRAPPED_LEN};
use crate::durability;
use crate::error::Error;

/// The header's file name inside the store directory.
pub(crate) const FILE_NAME: &str = "tokenvault.header";
/// The newest on-disk format version this build reads and the one it writes.
pub const FORMAT_VERSION: u16 = 1;

const MAGIC: &[u8; 8] = b"TOKENVLT";
const KDF_ARGON2ID: u8 = 1;
const SALT_LEN: usize = 32;
const AAD_END: usize = 23 + SALT_LEN;
const BODY_END: usize = AAD_END + NONCE_LEN + WRAPPED_LEN;
const LEN: usize = BODY_END + 32;
/// Headers of future versions may grow, but never past this; larger files are not read.
const MAX_LEN: u64 = 4096;

/// A parsed header. Holds no secret: the data key in it is wrapped.
#[derive(Clone, Debug)]
pub(crate) struct Header {
    pub(crate) kdf: KdfParams,
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
    wrapped: [u8; WRAPPED_LEN],
}

impl Header {
    /// A header for a new data key under a new passphrase.
    pub(crate) fn seal(kdf: KdfParams, passphrase: &[u8], data_key: &Key) -> Result<Header, Error> {
        kdf.check()
            .map_err(|reason| Error::InvalidOptions { reason })?;
        let mut header = Header {
            kdf,
            salt: crypto::random()?,
            nonce: crypto::random()?,
            wrapped: [0; WRAPPED_LEN],
        };
        let kek = kdf.derive(passphrase, &header.salt)?;
        let aad = header.encode();
        header.wrapped = crypto::wrap(&kek, &header.nonce, data_key, &aad[..AAD_END])?;
        Ok(header)
    }

    /// Unwraps the data key; [`Error::WrongPassphrase`] when the passphrase does not fit.
    pub(crate) fn unlock(&self, passphrase: &[u8]) -> Result<Key, Error> {
        let kek = self.kdf.derive(passphrase, &self.salt)?;
        let aad = self.encode();
        crypto::unwrap(&kek, &self.nonce, &self.wrapped, &aad[..AAD_END])
            .ok_or(Error::WrongPassphrase)
    }

    pub(crate) fn encode(&self) -> [u8; LEN] {
        let mut out = [0u8; LEN];
        out[..8].copy_from_slice(MAGIC);
        out[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[10] = KDF_ARGON2ID;
        out[11..15].copy_from_slice(&self.kdf.memory_kib.to_le_bytes());
        out[15..19].copy_from_slice(&self.kdf.iterations.to_le_bytes());
        out[19..23].copy_from_slice(&self.kdf.parallelism.to_le_bytes());
        out[23..AAD_END].copy_from_slice(&self.salt);
        out[AAD_END..AAD_END + NONCE_LEN].copy_from_slice(&self.nonce);
        out[AAD_END + NONCE_LEN..BODY_END].copy_from_slice(&self.wrapped);
        let sum = Sha256::digest(&out[..BODY_END]);
        out[BODY_END..].copy_from_slice(&sum);
        out
    }

    /// Parses a header, checking in order: magic, version, checksum, KDF ceilings.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedFormat`] for an intact header of another version, [`Error::Corrupt`]
    /// for everything else that is wrong, including KDF parameters beyond the ceilings.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Header, Error> {
        if bytes.len() < 10 || &bytes[..8] != MAGIC {
            return Err(Error::corrupt("the header file is not a tokenvault header"));
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != FORMAT_VERSION {
            return Err(if checksum_matches(bytes) {
                Error::UnsupportedFormat {
                    found: version,
                    supported: FORMAT_VERSION,
                }
            } else {
                Error::corrupt("the header fails its checksum")
            });
        }
        if bytes.len() != LEN || !checksum_matches(bytes) {
            return Err(Error::corrupt("the header fails its checksum"));
        }
        if bytes[10] != KDF_ARGON2ID {
            return Err(Error::corrupt(
                "the header names an unknown key-derivation function",
            ));
        }
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let kdf = KdfParams {
            memory_kib: u32_at(11),
            iterations: u32_at(15),
            parallelism: u32_at(19),
        };
        kdf.check()
            .map_err(|reason| Error::corrupt(format!("the header asks for {reason}")))?;
        let mut header = Header {
            kdf,
            salt: [0; SALT_LEN],
            nonce: [0; NONCE_LEN],
            wrapped: [0; WRAPPED_LEN],
        };
        header.salt.copy_from_slice(&bytes[23..AAD_END]);
        header
            .nonce
            .copy_from_slice(&bytes[AAD_END..AAD_END + NONCE_LEN]);
        header
            .wrapped
            .copy_from_slice(&bytes[AAD_END + NONCE_LEN..BODY_END]);
        Ok(header)
    }

    /// Reads the header from a store directory; `None` when there is no header file.
    pub(crate) fn read(dir: &Path) -> Result<Option<Header>, Error> {
        let path = dir.join(FILE_NAME);
        let bytes = match durability::read_bounded(&path, MAX_LEN) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Err(Error::corrupt("the header file is larger than any header")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("reading the header", path, e)),
        };
        Header::decode(&bytes).map(Some)
    }

    /// Replaces the header file atomically and durably.
    pub(crate) fn write(&self, dir: &Path) -> Result<(), Error> {
        durability::replace_file(dir, FILE_NAME, &self.encode())
    }
}

fn checksum_matches(bytes: &[u8]) -> bool {
    if bytes.len() < 10 + 32 {
        return false;
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    Sha256::digest(body).as_slice() == sum
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfParams = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    fn header() -> (Header, Key) {
        let key = crypto::new_data_key().unwrap();
        (Header::seal(FAST, b"pass", &key).unwrap(), key)
    }

    #[test]
    fn round_trip_and_unlock() {
        let (header, key) = header();
        let parsed = Header::decode(&header.encode()).unwrap();
        assert_eq!(parsed.unlock(b"pass").unwrap(), key);
        assert!(matches!(
            parsed.unlock(b"wrong"),
            Err(Error::WrongPassphrase)
        ));
    }

    #[test]
    fn every_flipped_bit_is_damage_or_a_wrong_passphrase_never_success() {
        let (header, _) = header();
        let bytes = header.encode();
        for i in 0..bytes.len() * 8 {
            let mut bad = bytes;
            bad[i / 8] ^= 1 << (i % 8);
            match Header::decode(&bad) {
                Err(Error::Corrupt { .. }) => {}
                other => panic!("bit {i}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_newer_version_is_unsupported_not_corrupt() {
        let (header, _) = header();
        let mut bytes = header.encode().to_vec();
        bytes[8..10].copy_from_slice(&2u16.to_le_bytes());
        let sum = Sha256::digest(&bytes[..BODY_END]);
        bytes[BODY_END..].copy_from_slice(&sum);
        assert!(matches!(
            Header::decode(&bytes),
            Err(Error::UnsupportedFormat {
                found: 2,
                supported: 1
            })
        ));
    }

    #[test]
    fn a_huge_kdf_is_refused_before_deriving() {
        let (mut header, _) = header();
        header.kdf.memory_kib = u32::MAX;
        let err = Header::decode(&header.encode()).unwrap_err();
        assert!(err.to_string().contains("kdf memory"), "{err}");
    }
}
