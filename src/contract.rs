//! The token-store contract of the OAuth SDKs.

use crate::error::Error;
use crate::token::Token;

/// The six operations an OAuth SDK persists tokens through.
///
/// Implementations follow the Zoho SDKs' rules exactly; [`EncryptedStore`](crate::EncryptedStore)
/// and [`MemoryStore`](crate::MemoryStore) give identical results for every sequence of calls.
///
/// * An empty string counts as an absent value everywhere.
/// * [`find_token`](TokenStore::find_token) looks a partial token up by one field, chosen in
///   this order: `user_name` when set; otherwise `access_token` when `client_id` and
///   `client_secret` are both absent; otherwise, when both are set, `grant_token` if set, else
///   `refresh_token`. The result is the query with its absent fields filled from the stored
///   token.
/// * User name, access token, refresh token and grant token are each unique across tokens.
/// * Tokens are listed in ascending byte order of their ids.
///
/// The trait is object-safe, and implementations are `Send + Sync`, so one store can serve a
/// whole application as `Arc<dyn TokenStore>`.
pub trait TokenStore: Send + Sync {
    /// Finds the stored token that `query` points at, and returns `query` completed from it.
    ///
    /// `Ok(None)` when the query has no usable key or nothing matches.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] when the matching record or its index entry is damaged.
    fn find_token(&self, query: &Token) -> Result<Option<Token>, Error>;

    /// Inserts or updates a token, and leaves `token` holding exactly what was stored.
    ///
    /// When `token.id` is set it names the record; otherwise the record is found as
    /// [`find_token`](TokenStore::find_token) would find it. A match is updated: the token's
    /// absent fields are filled from the stored one, then the record is replaced. Otherwise the
    /// token is inserted under its own id, or under a new one (`"1"`, `"2"`, ...) that is written
    /// into `token.id`; ids are never reused.
    ///
    /// # Errors
    ///
    /// * [`Error::InvalidToken`] when a new token carries no refresh, grant or access token, or a
    ///   value is over the size limits, or a new token has no id and the caller has taken the
    ///   largest sequential one (`"18446744073709551615"`).
    /// * [`Error::Conflict`] when another token holds the same user name or token value.
    ///
    /// Nothing is written when an error is returned.
    fn save_token(&self, token: &mut Token) -> Result<(), Error>;

    /// Deletes the token with this id.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown id; [`Error::InvalidToken`] for an id no token can
    /// have (empty, over 255 bytes, or with control characters).
    fn delete_token(&self, id: &str) -> Result<(), Error>;

    /// Returns every token, in ascending byte order of their ids.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] naming the first damaged record, rather than a partial list.
    fn get_tokens(&self) -> Result<Vec<Token>, Error>;

    /// Deletes every token. Ids already handed out are still never reused.
    fn delete_tokens(&self) -> Result<(), Error>;

    /// Returns the token with this id, if any.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidToken`] for an id no token can have; [`Error::Corrupt`] when the record
    /// is damaged.
    fn find_token_by_id(&self, id: &str) -> Result<Option<Token>, Error>;
}
