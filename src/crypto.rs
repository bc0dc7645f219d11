//! The key hierarchy, record sealing and the keyed hashes of the indexes.
//!
//! ```text
//! passphrase ──Argon2id(salt, KdfParams)──▶ KEK ──AES-256-GCM wrap──▶ data key (random, 256 bits)
//! data key ──HKDF-SHA256("tokenvault/v1/record")──────▶ record key (AES-256-GCM)
//!          ──HKDF-SHA256("tokenvault/v1/index/<field>")▶ one HMAC-SHA256 key per index
//!          ──HKDF-SHA256("tokenvault/v1/seal")─────────▶ HMAC key of the commit seal
//! ```
//!
//! Changing the passphrase re-wraps the data key and touches nothing else. Every key lives in a
//! buffer that is zeroized when dropped.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::Error;
use crate::token::Indexed;

/// A 256-bit key that is zeroized when dropped.
pub(crate) type Key = Zeroizing<[u8; 32]>;

/// Length of an AES-GCM nonce.
pub(crate) const NONCE_LEN: usize = 12;
/// Length of an AES-GCM tag.
pub(crate) const TAG_LEN: usize = 16;
/// Length of a wrapped data key: the key and its tag.
pub(crate) const WRAPPED_LEN: usize = 32 + TAG_LEN;

/// Argon2id cost parameters, stored in the store's header.
///
/// The default, 64 MiB of memory, 3 passes and 4 lanes, is RFC 9106's second recommended option
/// and derives a key in well under a second in a release build.
///
/// # Security considerations
///
/// Anything below the default makes guessing the passphrase from a copy of the store's files
/// cheaper. Small values (say 1024 KiB and 1 pass) are accepted so that tests run fast; they are
/// insecure and must not be used for real tokens. Values above the ceilings
/// ([`KdfParams::MAX_MEMORY_KIB`], [`KdfParams::MAX_ITERATIONS`], [`KdfParams::MAX_PARALLELISM`],
/// [`KdfParams::MAX_WORK`]) are refused, both when a store is created and when one is opened,
/// so that a crafted header cannot make `open` exhaust memory or run for minutes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Number of passes over the memory.
    pub iterations: u32,
    /// Number of lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    fn default() -> Self {
        KdfParams {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 4,
        }
    }
}

impl KdfParams {
    /// The most memory a store may ask for: 1 GiB.
    pub const MAX_MEMORY_KIB: u32 = 1024 * 1024;
    /// The most passes a store may ask for.
    pub const MAX_ITERATIONS: u32 = 16;
    /// The most lanes a store may ask for.
    pub const MAX_PARALLELISM: u32 = 16;
    /// The most work, `memory_kib * iterations`, a store may ask for: 1 GiB four times over.
    pub const MAX_WORK: u64 = 4 * 1024 * 1024;

    /// Checks the parameters against Argon2's minimums and the ceilings; the error names the
    /// parameter and its allowed range.
    pub(crate) fn check(&self) -> Result<(), String> {
        let p = self.parallelism;
        if !(1..=Self::MAX_PARALLELISM).contains(&p) {
            return Err(format!(
                "kdf parallelism {p} is outside 1..={}",
                Self::MAX_PARALLELISM
            ));
        }
        let m = self.memory_kib;
        if m < 8 * p || m > Self::MAX_MEMORY_KIB {
            return Err(format!(
                "kdf memory {m} KiB is outside {}..={} KiB",
                8 * p,
                Self::MAX_MEMORY_KIB
            ));
        }
        let t = self.iterations;
        if !(1..=Self::MAX_ITERATIONS).contains(&t) {
            return Err(format!(
                "kdf iterations {t} is outside 1..={}",
                Self::MAX_ITERATIONS
            ));
        }
        if u64::from(m) * u64::from(t) > Self::MAX_WORK {
            return Err(format!(
                "kdf memory times iterations is {}; the ceiling is {}",
                u64::from(m) * u64::from(t),
                Self::MAX_WORK
            ));
        }
        Ok(())
    }

    /// Derives the key-encryption key from a passphrase. The parameters must have passed
    /// [`KdfParams::check`].
    pub(crate) fn derive(&self, passphrase: &[u8], salt: &[u8]) -> Result<Key, Error> {
        let params = argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| Error::InvalidOptions {
                reason: format!("kdf parameters: {e}"),
            })?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut kek = Key::default();
        argon
            .hash_password_into(passphrase, salt, kek.as_mut())
            .map_err(|e| Error::InvalidOptions {
                reason: format!("key derivation: {e}"),
            })?;
        Ok(kek)
    }
}

/// Fills a buffer from the operating system's CSPRNG.
pub(crate) fn random<const N: usize>() -> Result<[u8; N], Error> {
    let mut buf = [0u8; N];
    getrandom::getrandom(&mut buf).map_err(|e| {
        Error::io(
            "reading the system random source",
            "getrandom",
            std::io::Error::other(e),
        )
    })?;
    Ok(buf)
}

/// A fresh random data key.
pub(crate) fn new_data_key() -> Result<Key, Error> {
    Ok(Zeroizing::new(random::<32>()?))
}

/// Wraps the data key under the key-encryption key; `aad` binds it to the header around it.
pub(crate) fn wrap(
    kek: &Key,
    nonce: &[u8; NONCE_LEN],
    data_key: &Key,
    aad: &[u8],
) -> Result<[u8; WRAPPED_LEN], Error> {
    let cipher = Aes256Gcm::new(kek.as_ref().into());
    let payload = Payload {
        msg: data_key.as_ref(),
        aad,
    };
    let sealed = cipher
        .encrypt(Nonce::from_slice(nonce), payload)
        .map_err(|_| Error::corrupt("the data key could not be wrapped"))?;
    sealed
        .try_into()
        .map_err(|_| Error::corrupt("the wrapped data key has the wrong length"))
}

/// Unwraps the data key; `None` when the key-encryption key (so the passphrase) is wrong or the
/// wrapped bytes were altered.
pub(crate) fn unwrap(
    kek: &Key,
    nonce: &[u8; NONCE_LEN],
    wrapped: &[u8],
    aad: &[u8],
) -> Option<Key> {
    let cipher = Aes256Gcm::new(kek.as_ref().into());
    let plain = Zeroizing::new(
        cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: wrapped, aad })
            .ok()?,
    );
    let mut key = Key::default();
    key.copy_from_slice(plain.get(..32)?);
    Some(key)
}

/// The working keys of an open store, all derived from the data key.
pub(crate) struct Keys {
    record: Aes256Gcm,
    index: [Key; 4],
    seal: Key,
}

impl Keys {
    pub(crate) fn derive(data_key: &Key) -> Keys {
        let hkdf = Hkdf::<Sha256>::new(None, data_key.as_ref());
        let expand = |label: &str| {
            let mut key = Key::default();
            // 32 bytes is far below HKDF-SHA256's output limit, so expand cannot fail.
            let _ = hkdf.expand(label.as_bytes(), key.as_mut());
            key
        };
        let record_key = expand("tokenvault/v1/record");
        let index =
            Indexed::ALL.map(|field| expand(&format!("tokenvault/v1/index/{}", field.name())));
        Keys {
            record: Aes256Gcm::new(record_key.as_ref().into()),
            index,
            seal: expand("tokenvault/v1/seal"),
        }
    }

    /// The keyed hash a value is indexed under: HMAC-SHA256 under the index's own key.
    pub(crate) fn index_hash(&self, field: Indexed, value: &str) -> [u8; 32] {
        hmac(&self.index[field as usize], &[value.as_bytes()])
    }

    /// The MAC of the commit seal for one generation.
    pub(crate) fn seal_mac(&self, generation: u64) -> [u8; 32] {
        hmac(
            &self.seal,
            &[b"tokenvault/v1/generation", &generation.to_le_bytes()],
        )
    }

    /// The MAC stored in the database that ties it to this data key.
    pub(crate) fn store_check(&self) -> [u8; 32] {
        hmac(&self.seal, &[b"tokenvault/v1/store"])
    }

    /// Encrypts an encoded record under a fresh random nonce, bound to its id.
    ///
    /// Layout: format version (1 byte), nonce (12 bytes), ciphertext and tag.
    pub(crate) fn seal_record(&self, id: &str, plain: &[u8]) -> Result<Vec<u8>, Error> {
        let nonce = random::<NONCE_LEN>()?;
        let aad = record_aad(id);
        let sealed = self
            .record
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .map_err(|_| Error::invalid("the record is too large to encrypt"))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(RECORD_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Authenticates and decrypts a stored record; `None` when it was not sealed under this key
    /// for this id, or was altered. The plaintext is zeroized when dropped.
    pub(crate) fn open_record(&self, id: &str, stored: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let (&version, rest) = stored.split_first()?;
        if version != RECORD_VERSION || rest.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let aad = record_aad(id);
        let plain = self.record.decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: &aad,
            },
        );
        plain.ok().map(Zeroizing::new)
    }
}

/// The format version of a sealed record, also bound into its associated data.
const RECORD_VERSION: u8 = 1;

fn record_aad(id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(24 + id.len());
    aad.extend_from_slice(b"tokenvault/v1/record\0");
    aad.push(RECORD_VERSION);
    aad.extend_from_slice(id.as_bytes());
    aad
}

/// Compares two byte strings in time that depends only on their lengths.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hmac(key: &Key, parts: &[&[u8]]) -> [u8; 32] {
    // HMAC pads a short key with zeros to the hash's block size; doing it here gives the
    // infallible fixed-size constructor, with the same result as `new_from_slice`.
    let mut block = Zeroizing::new([0u8; 64]);
    block[..32].copy_from_slice(key.as_ref());
    let mut mac = <Hmac<Sha256> as KeyInit>::new(block.as_ref().into());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::derive(&Zeroizing::new([7u8; 32]))
    }

    #[test]
    fn a_record_opens_only_under_its_own_id() {
        let keys = keys();
        let sealed = keys.seal_record("1", b"payload").unwrap();
        assert_eq!(
            keys.open_record("1", &sealed).unwrap().as_slice(),
            b"payload"
        );
        assert!(keys.open_record("2", &sealed).is_none());
    }

    #[test]
    fn any_altered_byte_fails_to_open() {
        let keys = keys();
        let sealed = keys.seal_record("1", b"payload").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(keys.open_record("1", &bad).is_none(), "byte {i}");
        }
        assert!(keys.open_record("1", &sealed[..sealed.len() - 1]).is_none());
        assert!(keys.open_record("1", &[]).is_none());
    }

    #[test]
    fn indexes_have_independent_keys() {
        let keys = keys();
        let user = keys.index_hash(Indexed::UserName, "v");
        let access = keys.index_hash(Indexed::AccessToken, "v");
        assert_ne!(user, access);
        assert_eq!(user, keys.index_hash(Indexed::UserName, "v"));
    }

    #[test]
    fn wrapped_key_needs_the_right_kek_and_header() {
        let data = new_data_key().unwrap();
        let kek = Zeroizing::new([1u8; 32]);
        let nonce = [2u8; NONCE_LEN];
        let wrapped = wrap(&kek, &nonce, &data, b"header").unwrap();
        assert_eq!(unwrap(&kek, &nonce, &wrapped, b"header").unwrap(), data);
        assert!(unwrap(&Zeroizing::new([3u8; 32]), &nonce, &wrapped, b"header").is_none());
        assert!(unwrap(&kek, &nonce, &wrapped, b"other").is_none());
    }

    #[test]
    fn kdf_ceilings_are_enforced() {
        assert!(KdfParams::default().check().is_ok());
        let huge = KdfParams {
            memory_kib: u32::MAX,
            ..KdfParams::default()
        };
        assert!(huge.check().is_err());
        let slow = KdfParams {
            iterations: 1000,
            ..KdfParams::default()
        };
        assert!(slow.check().is_err());
        let wide = KdfParams {
            parallelism: 0,
            ..KdfParams::default()
        };
        assert!(wide.check().is_err());
    }
}
