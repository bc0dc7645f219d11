//! Loading imported rows into a store: every row is checked before anything is written, then
//! the good ones go in a few large commits with buffered durability and a single flush at the end.
//!
//! A row is refused when it is malformed, when the store could not hold it, when it repeats an
//! id or unique value of an earlier row, or when it conflicts with a stored token (same id,
//! user name or token value) and replacing was not asked for.

use std::collections::{BTreeSet, HashMap};

use indicatif::ProgressBar;
use tokenvault::{EncryptedStore, Error, Token, TokenStore, MAX_FIELD_LEN, MAX_ID_LEN};
use zeroize::Zeroizing;

use crate::import::{Place, Row};

/// A row that cannot be imported, and why (never quoting a value).
pub struct Problem {
    pub place: Place,
    pub reason: String,
    /// True when the row is fine in itself but collides with a stored token.
    pub conflict: bool,
}

/// A row to write, with the ids of the stored tokens it replaces.
pub struct Accepted {
    token: Zeroizing<Token>,
    replaces: Vec<String>,
}

/// What checking the rows found.
pub struct Plan {
    pub accepted: Vec<Accepted>,
    pub problems: Vec<Problem>,
}

/// What writing did.
pub struct Outcome {
    pub imported: usize,
    pub replaced: usize,
}

/// The values no two tokens may share.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Unique {
    Id,
    UserName,
    AccessToken,
    RefreshToken,
    GrantToken,
}

impl Unique {
    fn name(self) -> &'static str {
        match self {
            Unique::Id => "id",
            Unique::UserName => "user_name",
            Unique::AccessToken => "access_token",
            Unique::RefreshToken => "refresh_token",
            Unique::GrantToken => "grant_token",
        }
    }
}

fn unique_values(token: &Token) -> impl Iterator<Item = (Unique, &str)> {
    [
        (Unique::Id, &token.id),
        (Unique::UserName, &token.user_name),
        (Unique::AccessToken, &token.access_token),
        (Unique::RefreshToken, &token.refresh_token),
        (Unique::GrantToken, &token.grant_token),
    ]
    .into_iter()
    .filter_map(|(field, value)| value.as_deref().map(|v| (field, v)))
}

/// Checks every row against the store's rules, the earlier rows and the stored tokens.
pub fn plan(rows: Vec<Row>, stored: &[Token], replace: bool) -> Plan {
    let verdicts = {
        // Keyed by borrowed values: no extra copy of a secret is made for the checks.
        let holders: HashMap<(Unique, &str), &str> = stored
            .iter()
            .flat_map(|t| {
                let id = t.id.as_deref().unwrap_or_default();
                unique_values(t).map(move |key| (key, id))
            })
            .collect();
        let mut seen = HashMap::new();
        rows.iter()
            .map(|row| match &row.token {
                Err(reason) => Err((reason.clone(), false)),
                Ok(token) => check(token, row.place, &holders, &mut seen, replace),
            })
            .collect::<Vec<_>>()
    };
    let mut plan = Plan {
        accepted: Vec::new(),
        problems: Vec::new(),
    };
    for (row, verdict) in rows.into_iter().zip(verdicts) {
        let place = row.place;
        let (reason, conflict) = match (row.token, verdict) {
            (Ok(token), Ok(replaces)) => {
                plan.accepted.push(Accepted { token, replaces });
                continue;
            }
            (_, Err(refusal)) => refusal,
            // A row that failed to read is refused above; kept for completeness.
            (Err(reason), Ok(_)) => (reason, false),
        };
        plan.problems.push(Problem {
            place,
            reason,
            conflict,
        });
    }
    plan
}

/// Why a row is refused, and whether only a conflict with the store is in the way.
type Refusal = (String, bool);

/// Checks one row; on success records its values as taken and returns the ids of the stored
/// tokens it will replace.
fn check<'a>(
    token: &'a Token,
    place: Place,
    holders: &HashMap<(Unique, &str), &str>,
    seen: &mut HashMap<(Unique, &'a str), Place>,
    replace: bool,
) -> Result<Vec<String>, Refusal> {
    validate(token).map_err(|reason| (reason, false))?;
    for key in unique_values(token) {
        if let Some(earlier) = seen.get(&key) {
            return Err((
                format!("its {} repeats the one on {earlier}", key.0.name()),
                false,
            ));
        }
    }
    let mut replaces: Vec<String> = Vec::new();
    for key in unique_values(token) {
        let Some(&holder) = holders.get(&key) else {
            continue;
        };
        if !replace {
            let reason = match key.0 {
                Unique::Id => format!("conflict: a stored token has the id {holder:?}"),
                field => format!(
                    "conflict: its {} is already held by the stored token with id {holder:?}",
                    field.name()
                ),
            };
            return Err((reason, true));
        }
        if !replaces.iter().any(|id| id == holder) {
            replaces.push(holder.to_string());
        }
    }
    seen.extend(unique_values(token).map(|key| (key, place)));
    Ok(replaces)
}

/// What the store would refuse, found before anything is written.
fn validate(token: &Token) -> Result<(), String> {
    if let Some(id) = &token.id {
        if id.len() > MAX_ID_LEN {
            return Err(format!("its id is over {MAX_ID_LEN} bytes"));
        }
        if id.chars().any(char::is_control) {
            return Err("its id contains a control character".into());
        }
    }
    let fields = [
        ("user_name", &token.user_name),
        ("client_id", &token.client_id),
        ("client_secret", &token.client_secret),
        ("refresh_token", &token.refresh_token),
        ("access_token", &token.access_token),
        ("grant_token", &token.grant_token),
        ("redirect_url", &token.redirect_url),
        ("api_domain", &token.api_domain),
    ];
    for (name, value) in fields {
        if value.as_ref().is_some_and(|v| v.len() > MAX_FIELD_LEN) {
            return Err(format!("its {name} is over {MAX_FIELD_LEN} bytes"));
        }
    }
    let usable = [
        &token.refresh_token,
        &token.access_token,
        &token.grant_token,
    ];
    if usable.iter().all(|v| v.is_none()) {
        return Err("it has no refresh, access or grant token".into());
    }
    Ok(())
}

/// How many tokens go into one commit: enough that the cost of a commit is shared out; sled's
/// transactions get slower per write as they grow, so larger is not faster.
const CHUNK: usize = 256;

/// Writes the accepted rows: first deletes every stored token a row replaces, then saves the rows
/// in chunks of one commit each, those with an id first, so that ids the store assigns to the
/// others cannot take an id a later row brings. Stops at the first error, returning it with how
/// many tokens were written before it.
pub fn write(
    store: &EncryptedStore,
    mut accepted: Vec<Accepted>,
    bar: &ProgressBar,
) -> Result<Outcome, (Error, Outcome)> {
    accepted.sort_by_key(|a| a.token.id.is_none());
    let mut outcome = Outcome {
        imported: 0,
        replaced: 0,
    };
    // All deletes come before any save, so none can touch a token this import wrote.
    let replaced: BTreeSet<&String> = accepted.iter().flat_map(|a| &a.replaces).collect();
    for id in replaced {
        match store.delete_token(id) {
            Ok(()) => outcome.replaced += 1,
            // Two rows can replace the same stored token.
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err((e, outcome)),
        }
    }
    let mut tokens: Zeroizing<Vec<Token>> = Zeroizing::new(
        accepted
            .iter_mut()
            .map(|a| std::mem::take(&mut *a.token))
            .collect(),
    );
    for chunk in tokens.chunks_mut(CHUNK) {
        if let Err(e) = store.save_tokens(chunk) {
            return Err((e, outcome));
        }
        outcome.imported += chunk.len();
        bar.inc(chunk.len() as u64);
    }
    Ok(outcome)
}
