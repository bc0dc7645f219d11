//! The encrypted, indexed store.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use zeroize::Zeroizing;

use crate::codec;
use crate::contract::TokenStore;
use crate::crypto::{KdfParams, Key, Keys};
use crate::durability::{Durability, EngineFiles};
use crate::engine::{guarded, Engine, Released, TreeId};
use crate::error::Error;
use crate::header::Header;
use crate::seal::SealFile;
use crate::staged::{Source, Staged};
use crate::token::{lookup_key, validate_id, Indexed, Token};

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
    /// Fields drop in order: this one, after `engine`, waits for sled to let go of its files.
    pub(crate) _released: Released,
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
            let mut staged = Staged::new(&self.engine);
            let mut count = 0;
            for entry in self.engine.records.iter() {
                let (key, sealed) = entry.map_err(|e| self.engine.sled_err(e))?;
                let token = self.decrypt(&record_id(&key)?, &sealed)?;
                if token.is_dead(now_ms) {
                    self.stage_deletion(&mut staged, &token)?;
                    count += 1;
                }
            }
            if count > 0 {
                self.commit(&mut writer, staged)?;
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
    pub(crate) fn commit(&self, writer: &mut Writer, staged: Staged) -> Result<u64, Error> {
        let generation = self.engine.commit(&staged.into_changes())?;
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
    pub(crate) fn load(&self, source: &impl Source, id: &str) -> Result<Option<Plain>, Error> {
        let sealed = source.get(TreeId::Records, id.as_bytes())?;
        sealed.map(|sealed| self.decrypt(id, &sealed)).transpose()
    }

    /// One keyed hash, one index read, one record read, and a check that they agree.
    pub(crate) fn locate(
        &self,
        source: &impl Source,
        field: Indexed,
        value: &str,
    ) -> Result<Located, Error> {
        let hash = self.keys.index_hash(field, value);
        let entry = source.get(TreeId::Index(field), &hash)?;
        let Some(id) = entry else {
            return Ok(Located::Absent);
        };
        let Ok(id) = std::str::from_utf8(&id) else {
            return Ok(Located::Inconsistent(format!(
                "the {} index holds a malformed id",
                field.name()
            )));
        };
        Ok(match self.load(source, id)? {
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
        match self.locate(&self.engine, field, value)? {
            Located::Found(token) => Ok(Some(token)),
            Located::Absent => Ok(None),
            Located::Inconsistent(_) => {
                let _writer = self.writer();
                self.locate_strict(&self.engine, field, value)
            }
        }
    }

    /// Saves many tokens in one atomic commit: each is saved exactly as
    /// [`save_token`](TokenStore::save_token) would save it after the ones before it, and each
    /// is left holding what was stored. Either all are saved or, on an error, none.
    ///
    /// sled makes every atomic commit write out its log buffer, so this is far faster than
    /// saving tokens one by one when loading many; with [`Durability::Immediate`] it is also
    /// one sync instead of one per token. The staged writes are held in memory until the
    /// commit, about a kilobyte per token: load very large sets in chunks.
    ///
    /// # Errors
    ///
    /// The first error any of the saves would give, with nothing written. For
    /// [`Error::InvalidToken`] the reason names the token's position in `tokens`.
    pub fn save_tokens(&self, tokens: &mut [Token]) -> Result<(), Error> {
        let mut normalized = Vec::with_capacity(tokens.len());
        for (i, token) in tokens.iter().enumerate() {
            let mut token = Zeroizing::new(token.clone());
            token.normalize();
            token.validate().map_err(|e| at_position(e, i))?;
            normalized.push(token);
        }
        let saved = guarded(|| {
            let mut writer = self.writer();
            let mut staged = Staged::new(&self.engine);
            let mut saved = Vec::with_capacity(normalized.len());
            for (i, token) in normalized.iter().enumerate() {
                saved.push(
                    self.stage_save(&mut staged, token)
                        .map_err(|e| at_position(e, i))?,
                );
            }
            self.commit(&mut writer, staged)?;
            Ok(saved)
        })?;
        for (token, saved) in tokens.iter_mut().zip(saved) {
            *token = saved;
        }
        Ok(())
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
        *token = guarded(|| {
            let mut writer = self.writer();
            let mut staged = Staged::new(&self.engine);
            let saved = self.stage_save(&mut staged, &normalized)?;
            self.commit(&mut writer, staged)?;
            Ok(saved)
        })?;
        Ok(())
    }

    fn delete_token(&self, id: &str) -> Result<(), Error> {
        validate_id(id)?;
        guarded(|| {
            let mut writer = self.writer();
            let token = self
                .load(&self.engine, id)?
                .ok_or_else(|| Error::NotFound { id: id.into() })?;
            let mut staged = Staged::new(&self.engine);
            self.stage_deletion(&mut staged, &token)?;
            self.commit(&mut writer, staged).map(|_| ())
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
            let mut staged = Staged::new(&self.engine);
            let trees = Indexed::ALL
                .map(TreeId::Index)
                .into_iter()
                .chain([TreeId::Records]);
            for tree in trees {
                for key in self.engine.tree(tree).iter().keys() {
                    staged.remove(tree, key.map_err(|e| self.engine.sled_err(e))?.to_vec());
                }
            }
            self.commit(&mut writer, staged).map(|_| ())
        })
    }

    fn find_token_by_id(&self, id: &str) -> Result<Option<Token>, Error> {
        validate_id(id)?;
        let token = guarded(|| self.load(&self.engine, id))?;
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

/// Says which token of a batch an [`Error::InvalidToken`] is about.
fn at_position(err: Error, position: usize) -> Error {
    match err {
        Error::InvalidToken { reason } => {
            Error::invalid(format!("token {position} of the batch: {reason}"))
        }
        other => other,
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
