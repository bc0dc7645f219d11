//! The storage engine underneath: sled trees, atomic change sets, and a boundary for its panics.
//!
//! Trees: `records` maps a record id to its sealed record; `index.<field>` maps the keyed hash of
//! a value to the id of the record that holds it; `quarantine` keeps, as raw bytes, records that
//! `repair` moved out of the way; `meta` holds the commit generation, the id
//! counter, the records digest and a MAC that ties the database to the header's data key.
//! Nothing in any tree is a secret in the clear.
//!
//! The records digest is the XOR, over every record, of SHA-256(id length, id, stored bytes),
//! kept up to date by every commit in the same transaction. sled skips, without an error, a log
//! entry whose blob file (where it keeps large pages) is missing, and applies the entries after
//! it: a page of records silently goes back to an older version while the generation counter
//! carries on. The digest is how `open` and `verify` notice.
//!
//! sled 0.34.7 is beta and can panic on damaged files. Every call into it from the store goes
//! through [`guarded`], which turns a panic into [`Error::Corrupt`] so that the process stays
//! usable; the store handle that saw it refuses further work.

use std::fs::{File, TryLockError};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;

use crate::error::{from_sled, Error};
use crate::token::Indexed;

/// The database directory's name inside the store directory.
pub(crate) const DIR_NAME: &str = "db";

const GENERATION: &[u8] = b"generation";
pub(crate) const NEXT_ID: &[u8] = b"next_id";
const STORE_MAC: &[u8] = b"store_mac";
const RECORDS_DIGEST: &[u8] = b"records_digest";

/// Runs `f`, turning a panic inside it (sled's, on damaged files) into [`Error::Corrupt`].
pub(crate) fn guarded<T>(f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(Error::corrupt(
            "the database engine failed on damaged data in its files",
        ))
    })
}

/// Which tree a change goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TreeId {
    Records,
    Index(Indexed),
    Meta,
    Quarantine,
}

/// One write of a change set: an insert, or a removal when `value` is `None`.
#[derive(Debug)]
pub(crate) struct Change {
    pub(crate) tree: TreeId,
    pub(crate) key: Vec<u8>,
    pub(crate) value: Option<Vec<u8>>,
}

impl Change {
    pub(crate) fn put(tree: TreeId, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Change {
            tree,
            key: key.into(),
            value: Some(value.into()),
        }
    }

    pub(crate) fn remove(tree: TreeId, key: impl Into<Vec<u8>>) -> Self {
        Change {
            tree,
            key: key.into(),
            value: None,
        }
    }

    /// Sets the id counter.
    pub(crate) fn next_id(counter: u64) -> Self {
        Change::put(TreeId::Meta, NEXT_ID, counter.to_le_bytes())
    }
}

/// The open sled database and its trees.
pub(crate) struct Engine {
    pub(crate) db: sled::Db,
    pub(crate) records: sled::Tree,
    pub(crate) indexes: [sled::Tree; 4],
    pub(crate) quarantine: sled::Tree,
    meta: sled::Tree,
    dir: PathBuf,
}

impl Engine {
    /// Opens (or creates) the database in `dir` with sled's default settings, so that sled's own
    /// tools can open it too.
    pub(crate) fn open(dir: &Path) -> Result<Engine, Error> {
        wait_for_release(dir);
        guarded(|| {
            let db = sled::Config::new()
                .path(dir)
                .open()
                .map_err(|e| from_sled(e, dir))?;
            let tree = |name: &str| db.open_tree(name).map_err(|e| from_sled(e, dir));
            let indexes = [
                tree("index.user_name")?,
                tree("index.access_token")?,
                tree("index.refresh_token")?,
                tree("index.grant_token")?,
            ];
            Ok(Engine {
                records: tree("records")?,
                indexes,
                meta: tree("meta")?,
                quarantine: tree("quarantine")?,
                db,
                dir: dir.to_path_buf(),
            })
        })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn index(&self, field: Indexed) -> &sled::Tree {
        &self.indexes[field as usize]
    }

    pub(crate) fn tree(&self, tree: TreeId) -> &sled::Tree {
        match tree {
            TreeId::Records => &self.records,
            TreeId::Index(field) => self.index(field),
            TreeId::Meta => &self.meta,
            TreeId::Quarantine => &self.quarantine,
        }
    }

    pub(crate) fn sled_err(&self, err: sled::Error) -> Error {
        from_sled(err, &self.dir)
    }

    /// The number of commits made to this database.
    pub(crate) fn generation(&self) -> Result<u64, Error> {
        self.meta_u64(GENERATION)
    }

    /// The smallest number the next assigned id may have.
    pub(crate) fn next_id(&self) -> Result<u64, Error> {
        Ok(self.meta_u64(NEXT_ID)?.max(1))
    }

    fn meta_u64(&self, key: &[u8]) -> Result<u64, Error> {
        let value = self.meta.get(key).map_err(|e| self.sled_err(e))?;
        decode_counter(key, value.as_deref())
    }

    /// The MAC that ties this database to a data key, if one was written.
    pub(crate) fn store_mac(&self) -> Result<Option<sled::IVec>, Error> {
        self.meta.get(STORE_MAC).map_err(|e| self.sled_err(e))
    }

    pub(crate) fn set_store_mac(&self, mac: &[u8]) -> Result<(), Error> {
        self.commit(&[Change::put(TreeId::Meta, STORE_MAC, mac)])
            .map(|_| ())
    }

    /// Whether the records add up to the digest the commits kept.
    pub(crate) fn records_match_digest(&self) -> Result<bool, Error> {
        let stored = self
            .meta
            .get(RECORDS_DIGEST)
            .map_err(|e| self.sled_err(e))?;
        let wellformed = stored.as_ref().is_none_or(|d| d.len() == 32);
        Ok(wellformed && self.records_digest()? == decode_digest(stored.as_deref()))
    }

    /// Makes the digest the one of the records as they are: for `repair`, once the records that
    /// are left are all the store has.
    pub(crate) fn reset_records_digest(&self) -> Result<u64, Error> {
        let digest = self.records_digest()?;
        self.commit(&[Change::put(TreeId::Meta, RECORDS_DIGEST, digest)])
    }

    fn records_digest(&self) -> Result<[u8; 32], Error> {
        let mut digest = [0u8; 32];
        for entry in self.records.iter() {
            let (key, value) = entry.map_err(|e| self.sled_err(e))?;
            xor_record(&mut digest, &key, &value);
        }
        Ok(digest)
    }

    /// Sets the generation to at least `generation`, atomically with nothing else.
    pub(crate) fn raise_generation(&self, generation: u64) -> Result<u64, Error> {
        let current = self.generation()?;
        if generation <= current {
            return Ok(current);
        }
        let set = Change::put(TreeId::Meta, GENERATION, (generation - 1).to_le_bytes());
        self.commit(&[set])
    }

    /// Applies every change in one transaction and increments the generation with them.
    /// Returns the new generation. Nothing is applied when an error is returned.
    ///
    /// Not durable by itself: flush and sync afterwards for that.
    pub(crate) fn commit(&self, changes: &[Change]) -> Result<u64, Error> {
        let trees = (
            &self.records,
            &self.indexes[0],
            &self.indexes[1],
            &self.indexes[2],
            &self.indexes[3],
            &self.meta,
            &self.quarantine,
        );
        let transaction = || {
            trees.transaction(
                |(records, user, access, refresh, grant, meta, quarantine)| {
                    let indexes = [user, access, refresh, grant];
                    let mut delta = [0u8; 32];
                    for change in changes {
                        if change.tree == TreeId::Records {
                            if let Some(old) = records.get(&change.key)? {
                                xor_record(&mut delta, &change.key, &old);
                            }
                            if let Some(new) = &change.value {
                                xor_record(&mut delta, &change.key, new);
                            }
                        }
                        let tree = match change.tree {
                            TreeId::Records => records,
                            TreeId::Index(field) => indexes[field as usize],
                            TreeId::Meta => meta,
                            TreeId::Quarantine => quarantine,
                        };
                        apply(tree, change)?;
                    }
                    // Read after the changes, so that a change setting the digest is built on.
                    let mut digest = decode_digest(meta.get(RECORDS_DIGEST)?.as_deref());
                    xor(&mut digest, &delta);
                    meta.insert(RECORDS_DIGEST, &digest)?;
                    let current = meta.get(GENERATION)?;
                    let Some(generation) = decode_u64(current.as_deref()) else {
                        return Err(ConflictableTransactionError::Abort(()));
                    };
                    let next = generation.saturating_add(1);
                    meta.insert(GENERATION, &next.to_le_bytes())?;
                    Ok(next)
                },
            )
        };
        guarded(|| match transaction() {
            Ok(generation) => Ok(generation),
            Err(TransactionError::Abort(())) => Err(Error::corrupt("the generation counter")),
            Err(TransactionError::Storage(e)) => Err(self.sled_err(e)),
        })
    }
}

fn apply(
    tree: &TransactionalTree,
    change: &Change,
) -> Result<(), ConflictableTransactionError<()>> {
    match &change.value {
        Some(value) => tree.insert(change.key.as_slice(), value.as_slice())?,
        None => tree.remove(change.key.as_slice())?,
    };
    Ok(())
}

/// Waits, briefly, until no one holds the lock sled takes on its log file.
///
/// sled lets go of the log file (and so of its lock) only when the last of its I/O threads
/// drops its handle to it, which can be just after the `Db` that used it was dropped. Waits, up
/// to ten seconds, until the lock is free. The caller holds the store's lock file, so no other
/// handle has the store open and a held lock here is such a straggler; a lock that outlasts the
/// wait is left for sled to report.
fn wait_for_release(dir: &Path) {
    let Ok(log) = File::open(dir.join("db")) else {
        return;
    };
    for _ in 0..1000 {
        match log.try_lock() {
            Ok(()) => {
                let _ = log.unlock();
                return;
            }
            Err(TryLockError::WouldBlock) => thread::sleep(Duration::from_millis(10)),
            Err(TryLockError::Error(_)) => return,
        }
    }
}

/// Dropped after the [`Engine`] and before the store's lock file: waits until sled's threads
/// have let go of the database, so that whoever takes the store's lock next finds it free.
pub(crate) struct Released {
    dir: PathBuf,
}

impl Released {
    pub(crate) fn new(dir: &Path) -> Self {
        Released {
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for Released {
    fn drop(&mut self) {
        wait_for_release(&self.dir);
    }
}

/// Adds a record to (or takes it out of) a records digest.
fn xor_record(digest: &mut [u8; 32], key: &[u8], value: &[u8]) {
    let mut hash = Sha256::new();
    hash.update((key.len() as u64).to_le_bytes());
    hash.update(key);
    hash.update(value);
    xor(digest, &hash.finalize().into());
}

fn xor(digest: &mut [u8; 32], other: &[u8; 32]) {
    digest.iter_mut().zip(other).for_each(|(d, o)| *d ^= o);
}

/// A digest is absent (no records yet: zero) or 32 bytes; a malformed one reads as zero here,
/// and `records_match_digest` reports it.
fn decode_digest(value: Option<&[u8]>) -> [u8; 32] {
    value.and_then(|v| v.try_into().ok()).unwrap_or([0; 32])
}

/// Decodes the counter stored under `key` in the `meta` tree; a malformed one is damage.
pub(crate) fn decode_counter(key: &[u8], value: Option<&[u8]>) -> Result<u64, Error> {
    decode_u64(value)
        .ok_or_else(|| Error::corrupt(format!("the {} counter", String::from_utf8_lossy(key))))
}

/// A counter is absent (zero) or eight little-endian bytes.
fn decode_u64(value: Option<&[u8]>) -> Option<u64> {
    match value {
        None => Some(0),
        Some(bytes) => Some(u64::from_le_bytes(bytes.try_into().ok()?)),
    }
}
