//! The encrypted, indexed store.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use zeroize::Zeroizing;

use crate::codec;
use crate::contract::TokenStore;
use crate::crypto::{KdfParams, Key, Keys};
use crate::durability::{Durability, EngineFiles};
use crate::engine::{guarded, Change, Engine, TreeId};
use crate::error::Error;
use crate::header::Header;
use crate::memory::{ids_used_up, missing_credential};
use crate::seal::SealFile;
use crate::token::{self, lookup_key, validate_id, Indexed, Token};

/// A stored token, zeroized when dropped.
pub(crate) type Plain = Zeroizing<Token>;

/// A [`TokenStore`] that keeps every token encrypted in an embedded database, opened with a
/// passphrase.
///
/// Open one with [`EncryptedStore::open`] or [`OpenOptions`](crate::OpenOptions). One handle
/// serves many threads at once: lookups run in parallel, writes are serialized. Only one handle,
/// in one process, can have a store open at a time.
///
/// Every lookup path is one keyed hash, one index read and one record read; nothing scans.
/// Records are sealed with AES-256-GCM and bound to their id; index keys are HMAC-SHA256 values,
/// so the files hold no token value, client id or secret, or user name in the clear.
///
/// Dropping the handle flushes and syncs what is pending; call [`EncryptedStore::flush`] to see
/// the errors of that.
pub struct EncryptedStore {
    pub(crate) path: PathBuf,
    pub(crate) engine: Engine,
    pub(crate) keys: Keys,
    pub(crate) data_key: Key,
    pub(crate) header: Mutex<Header>,
    pub(crate) durability: Durability,
    pub(crate) writer: Mutex<Writer>,
    /// Held for the handle's lifetime: the advisory lock that keeps other handles out.
    pub(crate) _lock: File,
}

/// What only the one writer at a time touches.
pub(crate) struct Writer {
    pub(crate) files: EngineFiles,
    pub(crate) seal: SealFile,
    /// False while a store opened for recovery has not been repaired: its seal stays as it was.
    pub(crate) sealing: bool,
}

/// The outcome of an index lookup.
// Short-lived and never stored, so the size of the found token does not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Located {
    Found(Plain),
    Absent,
    /// The index entry and the record disagree: damage, or a concurrent write in progress.
    Inconsistent(String),
}

impl std::fmt::Debug for EncryptedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedStore")
            .field("path", &self.path)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

impl EncryptedStore {
    /// Opens the store at `path` with default options, creating it when `path` does not exist
    /// or is an empty directory.
    ///
    /// See [`OpenOptions::open`](crate::OpenOptions::open) for the errors.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use tokenvault::{EncryptedStore, TokenStore};
    ///
    /// let store = EncryptedStore::open("tokens", "correct horse battery staple")?;
    /// let tokens = store.get_tokens()?;
    /// # Ok::<(), tokenvault::Error>(())
    /// ```
    pub fn open(path: impl AsRef<Path>, passphrase: impl AsRef<[u8]>) -> Result<Self, Error> {
        crate::OpenOptions::new().open(path, passphrase)
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key-derivation parameters the store's passphrase is protected with.
    pub fn kdf_params(&self) -> KdfParams {
        self.header().kdf
    }

    /// Replaces the passphrase. The data key is re-wrapped; no record is touched, so the cost
    /// does not depend on the number of tokens. The KDF parameters stay as they are.
    ///
    /// The new header is written to a temporary file, synced and renamed over the old one: a
    /// crash leaves either passphrase working, never neither. Durable on return whatever the
    /// [`Durability`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOptions`] for an empty passphrase; [`Error::Io`] when the header cannot
    /// be written.
    pub fn change_passphrase(&self, new_passphrase: impl AsRef<[u8]>) -> Result<(), Error> {
        let new_passphrase = new_passphrase.as_ref();
        check_passphrase(new_passphrase)?;
        let _writer = self.writer();
        let mut header = self.header();
        let fresh = Header::seal(header.kdf, new_passphrase, &self.data_key)?;
        fresh.write(&self.path)?;
        *header = fresh;
        Ok(())
    }

    /// Deletes the tokens that can no longer be used at `now_ms` (Unix epoch milliseconds): the
    /// access token has expired (`expiry_time <= now_ms`) and there is neither a refresh nor a
    /// grant token to get a new one. Returns how many were deleted, in one atomic commit.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] naming a damaged record; nothing is deleted then.
    pub fn purge_expired(&self, now_ms: i64) -> Result<usize, Error> {
        guarded(|| {
            let mut writer = self.writer();
            let mut changes = Vec::new();
            let mut count = 0;
            for entry in self.engine.records.iter() {
                let (key, sealed) = entry.map_err(|e| self.engine.sled_err(e))?;
                let token = self.decrypt(&record_id(&key)?, &sealed)?;
                if token.is_dead(now_ms) {
                    self.deletion(&token, &mut changes)?;
                    count += 1;
                }
            }
            if count > 0 {
                self.commit(&mut writer, &changes)?;
            }
            Ok(count)
        })
    }

    /// Makes every write so far durable, and brings the commit seal up to date.
    ///
    /// Needed only with [`Durability::Buffered`]; harmless otherwise.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when syncing fails; the writes may then not be durable.
    pub fn flush(&self) -> Result<(), Error> {
        guarded(|| {
            let mut writer = self.writer();
            self.sync(&mut writer)?;
            if writer.sealing {
                let generation = self.engine.generation()?;
                writer.seal.write(&self.keys, generation, true)?;
            }
            Ok(())
        })
    }

    pub(crate) fn writer(&self) -> MutexGuard<'_, Writer> {
        // Every write leaves the writer state consistent or returns early, so a poisoned lock
        // (a panic caught at the engine boundary) is safe to take over.
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn header(&self) -> MutexGuard<'_, Header> {
        self.header
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Flushes the engine and syncs what it wrote.
    pub(crate) fn sync(&self, writer: &mut Writer) -> Result<(), Error> {
        self.engine
            .db
            .flush()
            .map_err(|e| self.engine.sled_err(e))?;
        writer.files.sync()
    }

    /// Commits a change set, then makes it durable and seals it as the durability asks.
    pub(crate) fn commit(&self, writer: &mut Writer, changes: &[Change]) -> Result<u64, Error> {
        let generation = self.engine.commit(changes)?;
        if self.durability == Durability::Immediate {
            self.sync(writer)?;
            if writer.sealing {
                // Not synced here: the seal may lag the database, never lead it. It is synced
                // on flush and on drop.
                writer.seal.write(&self.keys, generation, false)?;
            }
        }
        Ok(generation)
    }

    /// Authenticates and decodes a stored record.
    pub(crate) fn decrypt(&self, id: &str, sealed: &[u8]) -> Result<Plain, Error> {
        let damaged = |why: &str| Error::corrupt(format!("record {id:?} {why}"));
        let plain = self
            .keys
            .open_record(id, sealed)
            .ok_or_else(|| damaged("fails authentication"))?;
        let token = Zeroizing::new(codec::decode(&plain).map_err(damaged)?);
        if token.id.as_deref() != Some(id) {
            return Err(damaged("holds another id"));
        }
        Ok(token)
    }

    /// Reads the record with this id.
    pub(crate) fn load(&self, id: &str) -> Result<Option<Plain>, Error> {
        let sealed = self
            .engine
            .records
            .get(id)
            .map_err(|e| self.engine.sled_err(e))?;
        sealed.map(|sealed| self.decrypt(id, &sealed)).transpose()
    }

    /// One keyed hash, one index read, one record read, and a check that they agree.
    pub(crate) fn locate(&self, field: Indexed, value: &str) -> Result<Located, Error> {
        let hash = self.keys.index_hash(field, value);
        let entry = self
            .engine
            .index(field)
            .get(hash)
            .map_err(|e| self.engine.sled_err(e))?;
        let Some(id) = entry else {
            return Ok(Located::Absent);
        };
        let Ok(id) = std::str::from_utf8(&id) else {
            return Ok(Located::Inconsistent(format!(
                "the {} index holds a malformed id",
                field.name()
            )));
        };
        Ok(match self.load(id)? {
            Some(token) if field.get(&token) == Some(value) => Located::Found(token),
            Some(_) => Located::Inconsistent(format!(
                "the {} index points at record {id:?}, which holds another value",
                field.name()
            )),
            None => Located::Inconsistent(format!(
                "the {} index points at record {id:?}, which does not exist",
                field.name()
            )),
        })
    }

    /// [`locate`](Self::locate), told apart from a write in progress: a disagreement is looked
    /// at again once no write is running, and is damage only if it persists.
    fn locate_settled(&self, field: Indexed, value: &str) -> Result<Option<Plain>, Error> {
        match self.locate(field, value)? {
            Located::Found(token) => Ok(Some(token)),
            Located::Absent => Ok(None),
            Located::Inconsistent(_) => {
                let _writer = self.writer();
                self.locate_locked(field, value)
            }
        }
    }

    /// [`locate`](Self::locate) for a caller that holds the writer lock.
    fn locate_locked(&self, field: Indexed, value: &str) -> Result<Option<Plain>, Error> {
        match self.locate(field, value)? {
            Located::Found(token) => Ok(Some(token)),
            Located::Absent => Ok(None),
            Located::Inconsistent(what) => Err(Error::corrupt(what)),
        }
    }

    /// The new id for an inserted token, and the counter after it.
    fn assign_id(&self, counter: u64) -> Result<String, Error> {
        let mut n = counter;
        loop {
            let id = n.to_string();
            if !self
                .engine
                .records
                .contains_key(&id)
                .map_err(|e| self.engine.sled_err(e))?
            {
                return Ok(id);
            }
            n = n.checked_add(1).ok_or_else(ids_used_up)?;
        }
    }

    /// Fails when another record holds one of the token's indexed values.
    fn check_conflicts(&self, token: &Token, id: &str) -> Result<(), Error> {
        for field in Indexed::ALL {
            let Some(value) = field.get(token) else {
                continue;
            };
            let hash = self.keys.index_hash(field, value);
            let holder = self
                .engine
                .index(field)
                .get(hash)
                .map_err(|e| self.engine.sled_err(e))?;
            if let Some(holder) = holder.filter(|h| h.as_ref() != id.as_bytes()) {
                let held_by = String::from_utf8_lossy(&holder).into_owned();
                return Err(Error::Conflict {
                    field: field.name(),
                    held_by,
                });
            }
        }
        Ok(())
    }

    /// The changes that store `token` (which has its id) in place of `old`.
    fn replacement(&self, token: &Token, old: Option<&Token>) -> Result<Vec<Change>, Error> {
        let id = token.id.as_deref().unwrap_or_default();
        let mut changes = Vec::with_capacity(9);
        for field in Indexed::ALL {
            let (before, after) = (old.and_then(|t| field.get(t)), field.get(token));
            if before == after {
                continue;
            }
            if let Some(before) = before {
                changes.push(Change::remove(
                    TreeId::Index(field),
                    self.keys.index_hash(field, before),
                ));
            }
            if let Some(after) = after {
                changes.push(Change::put(
                    TreeId::Index(field),
                    self.keys.index_hash(field, after),
                    id,
                ));
            }
        }
        let plain = codec::encode(token).map_err(Error::invalid)?;
        changes.push(Change::put(
            TreeId::Records,
            id,
            self.keys.seal_record(id, &plain)?,
        ));
        Ok(changes)
    }

    /// Appends the changes that delete `token`: its record, and each index entry that points
    /// at it (an entry pointing elsewhere belongs to another record and stays).
    fn deletion(&self, token: &Token, changes: &mut Vec<Change>) -> Result<(), Error> {
        let id = token.id.as_deref().unwrap_or_default();
        for field in Indexed::ALL {
            let Some(value) = field.get(token) else {
                continue;
            };
            let hash = self.keys.index_hash(field, value);
            let holder = self
                .engine
                .index(field)
                .get(hash)
                .map_err(|e| self.engine.sled_err(e))?;
            if holder.is_some_and(|h| h.as_ref() == id.as_bytes()) {
                changes.push(Change::remove(TreeId::Index(field), hash));
            }
        }
        changes.push(Change::remove(TreeId::Records, id));
        Ok(())
    }

    fn save(&self, token: &Token) -> Result<Token, Error> {
        let mut writer = self.writer();
        let stored = match &token.id {
            Some(id) => self.load(id)?,
            None => match lookup_key(token) {
                Some((field, value)) => self.locate_locked(field, value)?,
                None => None,
            },
        };
        let mut merged = Zeroizing::new(token.clone());
        match &stored {
            Some(stored) => merged.fill_from(stored),
            None if !merged.has_credential() => return Err(missing_credential()),
            None => {}
        }
        let counter = self.engine.next_id()?;
        let id = match merged.id.take() {
            Some(id) => id,
            None => self.assign_id(counter)?,
        };
        self.check_conflicts(&merged, &id)?;
        merged.id = Some(id);
        let mut changes = self.replacement(&merged, stored.as_deref())?;
        let next = token::next_after(counter, merged.id.as_deref().unwrap_or_default());
        if next != counter {
            changes.push(Change::next_id(next));
        }
        self.commit(&mut writer, &changes)?;
        Ok(std::mem::take(&mut *merged))
    }
}

impl TokenStore for EncryptedStore {
    fn find_token(&self, query: &Token) -> Result<Option<Token>, Error> {
        let mut query = Zeroizing::new(query.clone());
        query.normalize();
        let Some((field, value)) = lookup_key(&query) else {
            return Ok(None);
        };
        let stored = guarded(|| self.locate_settled(field, value))?;
        Ok(stored.map(|mut stored| {
            // `stored` is zeroized when dropped, with whatever the query did not take from it.
            query.fill_from_owned(&mut stored);
            std::mem::take(&mut *query)
        }))
    }

    fn save_token(&self, token: &mut Token) -> Result<(), Error> {
        let mut normalized = Zeroizing::new(token.clone());
        normalized.normalize();
        normalized.validate()?;
        *token = guarded(|| self.save(&normalized))?;
        Ok(())
    }

    fn delete_token(&self, id: &str) -> Result<(), Error> {
        validate_id(id)?;
        guarded(|| {
            let mut writer = self.writer();
            let token = self
                .load(id)?
                .ok_or_else(|| Error::NotFound { id: id.into() })?;
            let mut changes = Vec::with_capacity(5);
            self.deletion(&token, &mut changes)?;
            self.commit(&mut writer, &changes).map(|_| ())
        })
    }

    fn get_tokens(&self) -> Result<Vec<Token>, Error> {
        guarded(|| {
            let mut tokens = Vec::new();
            for entry in self.engine.records.iter() {
                let (key, sealed) = entry.map_err(|e| self.engine.sled_err(e))?;
                let mut token = self.decrypt(&record_id(&key)?, &sealed)?;
                tokens.push(std::mem::take(&mut *token));
            }
            Ok(tokens)
        })
    }

    fn delete_tokens(&self) -> Result<(), Error> {
        guarded(|| {
            let mut writer = self.writer();
            let mut changes = Vec::new();
            let trees = Indexed::ALL
                .map(|field| (TreeId::Index(field), self.engine.index(field)))
                .into_iter()
                .chain([(TreeId::Records, &self.engine.records)]);
            for (id, tree) in trees {
                for key in tree.iter().keys() {
                    let key = key.map_err(|e| self.engine.sled_err(e))?;
                    changes.push(Change::remove(id, key.to_vec()));
                }
            }
            self.commit(&mut writer, &changes).map(|_| ())
        })
    }

    fn find_token_by_id(&self, id: &str) -> Result<Option<Token>, Error> {
        validate_id(id)?;
        let token = guarded(|| self.load(id))?;
        Ok(token.map(|mut t| std::mem::take(&mut *t)))
    }
}

impl Drop for EncryptedStore {
    fn drop(&mut self) {
        // Best effort: errors here have no one to go to, and `flush` reports them to whoever
        // wants to know.
        let _ = self.flush();
    }
}

/// A record key as an id; record keys are always the UTF-8 ids they were stored under.
pub(crate) fn record_id(key: &[u8]) -> Result<String, Error> {
    String::from_utf8(key.to_vec()).map_err(|_| Error::corrupt("a record key is not a valid id"))
}

/// Refuses an empty passphrase: it would make the store's encryption a formality.
pub(crate) fn check_passphrase(passphrase: &[u8]) -> Result<(), Error> {
    if passphrase.is_empty() {
        return Err(Error::InvalidOptions {
            reason: "the passphrase is empty".into(),
        });
    }
    Ok(())
}
