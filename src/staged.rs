//! Writes staged for one atomic commit, and the save and delete logic that stages them.
//!
//! Every write of the store, from one `save_token` to a bulk `save_tokens`, is worked out against
//! a [`Staged`] set: its reads see the writes staged before them, so a batch behaves exactly like
//! the same saves made one by one, and then the whole set is committed in one transaction. sled
//! 0.34 writes out its I/O buffer for every atomic batch, so one commit for many tokens is what
//! makes bulk loads fast.

use std::collections::BTreeMap;

use sled::IVec;
use zeroize::Zeroizing;

use crate::codec;
use crate::engine::{Change, Engine, TreeId};
use crate::error::Error;
use crate::store::{EncryptedStore, Plain};
use crate::token::{self, ids_used_up, lookup_key, missing_credential, Indexed, Token};

/// Where reads come from: the database as committed, or with staged writes on top.
pub(crate) trait Source {
    /// The value under `key` in `tree`.
    fn get(&self, tree: TreeId, key: &[u8]) -> Result<Option<IVec>, Error>;
}

impl Source for Engine {
    fn get(&self, tree: TreeId, key: &[u8]) -> Result<Option<IVec>, Error> {
        self.tree(tree).get(key).map_err(|e| self.sled_err(e))
    }
}

/// Writes not yet committed, one map per tree so that a lookup borrows its key; the last write
/// to a key wins.
pub(crate) struct Staged<'a> {
    engine: &'a Engine,
    writes: BTreeMap<TreeId, BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
}

impl Source for Staged<'_> {
    fn get(&self, tree: TreeId, key: &[u8]) -> Result<Option<IVec>, Error> {
        match self.writes.get(&tree).and_then(|writes| writes.get(key)) {
            Some(staged) => Ok(staged.as_deref().map(IVec::from)),
            None => self.engine.get(tree, key),
        }
    }
}

impl<'a> Staged<'a> {
    pub(crate) fn new(engine: &'a Engine) -> Self {
        Staged {
            engine,
            writes: BTreeMap::new(),
        }
    }

    pub(crate) fn put(&mut self, tree: TreeId, key: impl Into<Vec<u8>>, value: Vec<u8>) {
        self.writes
            .entry(tree)
            .or_default()
            .insert(key.into(), Some(value));
    }

    pub(crate) fn remove(&mut self, tree: TreeId, key: impl Into<Vec<u8>>) {
        self.writes
            .entry(tree)
            .or_default()
            .insert(key.into(), None);
    }

    /// The staged writes as one change set, in tree and key order.
    pub(crate) fn into_changes(self) -> Vec<Change> {
        let mut changes = Vec::new();
        for (tree, writes) in self.writes {
            changes.extend(
                writes
                    .into_iter()
                    .map(|(key, value)| Change { tree, key, value }),
            );
        }
        changes
    }

    fn next_id(&self) -> Result<u64, Error> {
        let stored = self.get(TreeId::Meta, crate::engine::NEXT_ID)?;
        crate::engine::decode_counter(crate::engine::NEXT_ID, stored.as_deref()).map(|n| n.max(1))
    }
}

impl EncryptedStore {
    /// Stages the save of a normalized, validated token, following the SDK's rules; returns the
    /// token as it will be stored.
    pub(crate) fn stage_save(&self, staged: &mut Staged, token: &Token) -> Result<Token, Error> {
        let stored = match &token.id {
            Some(id) => self.load(staged, id)?,
            None => match lookup_key(token) {
                Some((field, value)) => self.locate_strict(staged, field, value)?,
                None => None,
            },
        };
        let mut merged = Zeroizing::new(token.clone());
        match &stored {
            Some(stored) => merged.fill_from(stored),
            None if !merged.has_credential() => return Err(missing_credential()),
            None => {}
        }
        let counter = staged.next_id()?;
        let id = match merged.id.take() {
            Some(id) => id,
            None => assign_id(staged, counter)?,
        };
        self.check_conflicts(staged, &merged, &id)?;
        let next = token::next_after(counter, &id);
        if next != counter {
            staged.put(
                TreeId::Meta,
                crate::engine::NEXT_ID,
                next.to_le_bytes().to_vec(),
            );
        }
        merged.id = Some(id);
        self.stage_replacement(staged, &merged, stored.as_deref())?;
        Ok(std::mem::take(&mut *merged))
    }

    /// Stages the deletion of a stored token: its record, and each index entry that points at
    /// it (an entry pointing elsewhere belongs to another record and stays).
    pub(crate) fn stage_deletion(&self, staged: &mut Staged, token: &Token) -> Result<(), Error> {
        let id = token.id.as_deref().unwrap_or_default();
        for field in Indexed::ALL {
            let Some(value) = field.get(token) else {
                continue;
            };
            let hash = self.keys.index_hash(field, value);
            let holder = staged.get(TreeId::Index(field), &hash)?;
            if holder.is_some_and(|h| h.as_ref() == id.as_bytes()) {
                staged.remove(TreeId::Index(field), hash);
            }
        }
        staged.remove(TreeId::Records, id);
        Ok(())
    }

    /// Fails when another record holds one of the token's indexed values.
    fn check_conflicts(&self, staged: &Staged, token: &Token, id: &str) -> Result<(), Error> {
        for field in Indexed::ALL {
            let Some(value) = field.get(token) else {
                continue;
            };
            let holder = staged.get(TreeId::Index(field), &self.keys.index_hash(field, value))?;
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

    /// Stages `token` (which has its id) in place of `old`: the record and the index entries
    /// whose values changed.
    fn stage_replacement(
        &self,
        staged: &mut Staged,
        token: &Token,
        old: Option<&Token>,
    ) -> Result<(), Error> {
        let id = token.id.as_deref().unwrap_or_default();
        for field in Indexed::ALL {
            let (before, after) = (old.and_then(|t| field.get(t)), field.get(token));
            if before == after {
                continue;
            }
            if let Some(before) = before {
                staged.remove(TreeId::Index(field), self.keys.index_hash(field, before));
            }
            if let Some(after) = after {
                let hash = self.keys.index_hash(field, after);
                staged.put(TreeId::Index(field), hash, id.as_bytes().to_vec());
            }
        }
        let plain = codec::encode(token).map_err(Error::invalid)?;
        staged.put(TreeId::Records, id, self.keys.seal_record(id, &plain)?);
        Ok(())
    }

    /// [`locate`](Self::locate) where a disagreement between index and record is damage: for
    /// writers, which see no write in progress.
    pub(crate) fn locate_strict(
        &self,
        source: &impl Source,
        field: Indexed,
        value: &str,
    ) -> Result<Option<Plain>, Error> {
        use crate::store::Located;
        match self.locate(source, field, value)? {
            Located::Found(token) => Ok(Some(token)),
            Located::Absent => Ok(None),
            Located::Inconsistent(what) => Err(Error::corrupt(what)),
        }
    }
}

/// The smallest free id from the counter on.
fn assign_id(staged: &Staged, counter: u64) -> Result<String, Error> {
    let mut n = counter;
    loop {
        let id = n.to_string();
        if staged.get(TreeId::Records, id.as_bytes())?.is_none() {
            return Ok(id);
        }
        n = n.checked_add(1).ok_or_else(ids_used_up)?;
    }
}
