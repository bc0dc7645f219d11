//! A plaintext, in-memory store: the reference the encrypted store is tested against.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::contract::TokenStore;
use crate::error::Error;
use crate::token::{
    self, ids_used_up, lookup_key, missing_credential, validate_id, Indexed, Token,
};

/// A [`TokenStore`] that keeps tokens in a map in memory, unencrypted, and scans it on every
/// lookup.
///
/// It exists as the obviously-correct reference for tests, and for applications that must not
/// persist tokens at all. It follows exactly the same rules as
/// [`EncryptedStore`](crate::EncryptedStore).
///
/// # Security considerations
///
/// Tokens are held in the clear in process memory and are not zeroized on drop.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    tokens: BTreeMap<String, Token>,
    next_id: u64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is consistent between statements, so a panic elsewhere cannot poison it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    fn find(&self, field: Indexed, value: &str) -> Option<&Token> {
        self.tokens.values().find(|t| field.get(t) == Some(value))
    }

    fn locate(&self, token: &Token) -> Option<&Token> {
        match &token.id {
            Some(id) => self.tokens.get(id),
            None => lookup_key(token).and_then(|(field, value)| self.find(field, value)),
        }
    }

    fn assign_id(&mut self) -> Result<String, Error> {
        let mut n = self.next_id.max(1);
        while self.tokens.contains_key(&n.to_string()) {
            n = n.checked_add(1).ok_or_else(ids_used_up)?;
        }
        Ok(n.to_string())
    }

    fn check_conflicts(&self, token: &Token, id: &str) -> Result<(), Error> {
        for field in Indexed::ALL {
            let Some(value) = field.get(token) else {
                continue;
            };
            if let Some(holder) = self.find(field, value).and_then(|t| t.id.as_deref()) {
                if holder != id {
                    return Err(Error::Conflict {
                        field: field.name(),
                        held_by: holder.into(),
                    });
                }
            }
        }
        Ok(())
    }
}

impl TokenStore for MemoryStore {
    fn find_token(&self, query: &Token) -> Result<Option<Token>, Error> {
        let mut query = query.clone();
        query.normalize();
        let state = self.state();
        let Some((field, value)) = lookup_key(&query) else {
            return Ok(None);
        };
        Ok(state.find(field, value).map(|stored| {
            query.fill_from(stored);
            query
        }))
    }

    fn save_token(&self, token: &mut Token) -> Result<(), Error> {
        let mut merged = token.clone();
        merged.normalize();
        merged.validate()?;
        let mut state = self.state();
        match state.locate(&merged) {
            Some(stored) => merged.fill_from(stored),
            None if !merged.has_credential() => return Err(missing_credential()),
            None => {}
        }
        let id = match &merged.id {
            Some(id) => id.clone(),
            None => state.assign_id()?,
        };
        state.check_conflicts(&merged, &id)?;
        state.next_id = token::next_after(state.next_id.max(1), &id);
        merged.id = Some(id.clone());
        state.tokens.insert(id, merged.clone());
        *token = merged;
        Ok(())
    }

    fn delete_token(&self, id: &str) -> Result<(), Error> {
        validate_id(id)?;
        match self.state().tokens.remove(id) {
            Some(_) => Ok(()),
            None => Err(Error::NotFound { id: id.into() }),
        }
    }

    fn get_tokens(&self) -> Result<Vec<Token>, Error> {
        Ok(self.state().tokens.values().cloned().collect())
    }

    fn delete_tokens(&self) -> Result<(), Error> {
        self.state().tokens.clear();
        Ok(())
    }

    fn find_token_by_id(&self, id: &str) -> Result<Option<Token>, Error> {
        validate_id(id)?;
        Ok(self.state().tokens.get(id).cloned())
    }
}

impl MemoryStore {
    /// Saves many tokens, all or none: the same rules as
    /// [`EncryptedStore::save_tokens`](crate::EncryptedStore::save_tokens).
    ///
    /// # Errors
    ///
    /// The first error any of the saves gives; the store is then as it was.
    pub fn save_tokens(&self, tokens: &mut [Token]) -> Result<(), Error> {
        let before = {
            let state = self.state();
            State {
                tokens: state.tokens.clone(),
                next_id: state.next_id,
            }
        };
        let mut saved = tokens.to_vec();
        for token in &mut saved {
            if let Err(err) = self.save_token(token) {
                *self.state() = before;
                return Err(err);
            }
        }
        tokens.clone_from_slice(&saved);
        Ok(())
    }

    /// Deletes the tokens that can no longer be used at `now_ms`; returns how many.
    ///
    /// The same rule as [`EncryptedStore::purge_expired`](crate::EncryptedStore::purge_expired).
    pub fn purge_expired(&self, now_ms: i64) -> usize {
        let mut state = self.state();
        let before = state.tokens.len();
        state.tokens.retain(|_, t| !t.is_dead(now_ms));
        before - state.tokens.len()
    }
}
