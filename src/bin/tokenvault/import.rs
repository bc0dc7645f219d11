//! Reading the plaintext token stores people migrate from: the Zoho SDK FileStore's CSV, the
//! SQLite `oauthtoken` table SDK users write by hand, and `tokenvault export --reveal` output.
//!
//! A reader fails as a whole only when the file cannot be read or is not of the kind claimed
//! (wrong header, no such table). A bad row becomes a [`Row`] holding the reason, so that every
//! bad row can be reported at once. Reasons name the column, never its value.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde::Deserialize;
use tokenvault::Token;
use zeroize::Zeroizing;

use crate::failure::Failure;

/// Where a row was found, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// The line of a CSV file the row starts on (the header is line 1).
    Line(u64),
    /// The SQLite rowid.
    Rowid(i64),
    /// The position in an export's token list, from 1.
    Entry(usize),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Line(n) => write!(f, "line {n}"),
            Place::Rowid(n) => write!(f, "rowid {n}"),
            Place::Entry(n) => write!(f, "token #{n}"),
        }
    }
}

/// One row of the source: a token, or why it could not be read.
pub struct Row {
    pub place: Place,
    pub token: Result<Zeroizing<Token>, String>,
}

/// A column of the SDK's token tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Column {
    Id,
    UserName,
    ClientId,
    ClientSecret,
    RefreshToken,
    AccessToken,
    GrantToken,
    ExpiryTime,
    RedirectUrl,
    ApiDomain,
}

impl Column {
    /// Every column but `api_domain`, which the SDK's older files lack.
    const REQUIRED: [Column; 9] = [
        Column::Id,
        Column::UserName,
        Column::ClientId,
        Column::ClientSecret,
        Column::RefreshToken,
        Column::AccessToken,
        Column::GrantToken,
        Column::ExpiryTime,
        Column::RedirectUrl,
    ];

    /// The column a header name stands for. The FileStore writes `redirect_uri`; the SQLite
    /// schema says `redirect_url`. Both mean the same field.
    fn named(name: &str) -> Option<Column> {
        Some(match name.to_ascii_lowercase().as_str() {
            "id" => Column::Id,
            "user_name" => Column::UserName,
            "client_id" => Column::ClientId,
            "client_secret" => Column::ClientSecret,
            "refresh_token" => Column::RefreshToken,
            "access_token" => Column::AccessToken,
            "grant_token" => Column::GrantToken,
            "expiry_time" => Column::ExpiryTime,
            "redirect_uri" | "redirect_url" => Column::RedirectUrl,
            "api_domain" => Column::ApiDomain,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Column::Id => "id",
            Column::UserName => "user_name",
            Column::ClientId => "client_id",
            Column::ClientSecret => "client_secret",
            Column::RefreshToken => "refresh_token",
            Column::AccessToken => "access_token",
            Column::GrantToken => "grant_token",
            Column::ExpiryTime => "expiry_time",
            Column::RedirectUrl => "redirect_url",
            Column::ApiDomain => "api_domain",
        }
    }

    /// Stores `value` (absent when empty) in its field of `token`.
    fn set(self, token: &mut Token, value: &str) -> Result<(), String> {
        let value = (!value.is_empty()).then(|| value.to_string());
        let field = match self {
            Column::Id => &mut token.id,
            Column::UserName => &mut token.user_name,
            Column::ClientId => &mut token.client_id,
            Column::ClientSecret => &mut token.client_secret,
            Column::RefreshToken => &mut token.refresh_token,
            Column::AccessToken => &mut token.access_token,
            Column::GrantToken => &mut token.grant_token,
            Column::RedirectUrl => &mut token.redirect_url,
            Column::ApiDomain => &mut token.api_domain,
            Column::ExpiryTime => {
                token.expiry_time = value.as_deref().map(parse_expiry).transpose()?;
                return Ok(());
            }
        };
        *field = value;
        Ok(())
    }
}

/// The SDK writes expiry times as decimal milliseconds since the Unix epoch.
fn parse_expiry(text: &str) -> Result<i64, String> {
    text.trim()
        .parse::<i64>()
        .map_err(|_| "expiry_time is not a whole number of milliseconds".to_string())
}

/// Which column each position holds, checked against the SDK's columns.
fn columns<'a>(
    names: impl Iterator<Item = &'a str>,
    ignore_unknown: bool,
) -> Result<Vec<Option<Column>>, String> {
    let mut columns = Vec::new();
    for (n, name) in names.enumerate() {
        let column = Column::named(name.trim());
        if column.is_none() && !ignore_unknown {
            // The name itself is not quoted: a file without a header has a secret here.
            return Err(format!("column {} is not one of the SDK's", n + 1));
        }
        if column.is_some() && columns.contains(&column) {
            return Err(format!("column {} repeats an earlier one", n + 1));
        }
        columns.push(column);
    }
    if let Some(missing) = Column::REQUIRED
        .iter()
        .find(|c| !columns.contains(&Some(**c)))
    {
        return Err(format!("there is no {} column", missing.name()));
    }
    Ok(columns)
}

/// Reads a whole file into a buffer that is zeroized when dropped.
fn read_secret_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, Failure> {
    let failed = |e| Failure::new(format!("cannot read {}: {e}", path.display()));
    let mut file = File::open(path).map_err(failed)?;
    let len = file.metadata().map_err(failed)?.len();
    // Sized up front so the buffer never moves and leaves a copy of the secrets behind.
    let mut bytes = Zeroizing::new(Vec::with_capacity(usize::try_from(len).unwrap_or(0) + 1));
    file.read_to_end(&mut bytes).map_err(failed)?;
    Ok(bytes)
}

/// Reads the Zoho SDK FileStore's CSV: a header row, then one token a row, absent values as
/// empty fields, quoting as Python's `csv` module does it.
pub fn zoho_csv(path: &Path) -> Result<Vec<Row>, Failure> {
    let bytes = read_secret_file(path)?;
    let body = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(body);
    let mut records = reader.byte_records();
    let not_filestore = |why: String| {
        Failure::new(format!(
            "{} is not a Zoho SDK FileStore CSV: {why}; its first line must be \
             id,user_name,client_id,client_secret,refresh_token,access_token,grant_token,\
             expiry_time,redirect_uri[,api_domain]",
            path.display()
        ))
    };
    let header = match records.next() {
        Some(header) => header.map_err(|e| csv_failure(path, &e))?,
        None => return Err(not_filestore("it is empty".into())),
    };
    let names: Vec<&str> = header
        .iter()
        .map(|n| std::str::from_utf8(n).unwrap_or(""))
        .collect();
    let columns = columns(names.into_iter(), false).map_err(not_filestore)?;

    let mut rows = Vec::new();
    let mut lines = LineCounter::default();
    for record in records {
        let record = record.map_err(|e| csv_failure(path, &e))?;
        let byte = record.position().map_or(0, csv::Position::byte);
        let line = lines.line_at(body, byte);
        rows.push(Row {
            place: Place::Line(line),
            token: csv_token(&columns, &record),
        });
    }
    Ok(rows)
}

/// Line numbers from byte offsets. The csv crate's own line count lags by one after a `\r\n`
/// line end, which is what Python's `csv` writes, so lines are counted here instead.
#[derive(Default)]
struct LineCounter {
    offset: usize,
    newlines: u64,
}

impl LineCounter {
    /// The line of the first byte at or after `byte` that is not a line end: where the record
    /// that the csv crate says starts at `byte` really starts. Offsets must not decrease.
    fn line_at(&mut self, body: &[u8], byte: u64) -> u64 {
        let mut start = usize::try_from(byte).unwrap_or(usize::MAX).min(body.len());
        while matches!(body.get(start), Some(b'\r' | b'\n')) {
            start += 1;
        }
        let from = self.offset.min(start);
        self.newlines += body[from..start].iter().filter(|&&b| b == b'\n').count() as u64;
        self.offset = start;
        self.newlines + 1
    }
}

fn csv_token(
    columns: &[Option<Column>],
    record: &csv::ByteRecord,
) -> Result<Zeroizing<Token>, String> {
    if record.len() != columns.len() {
        return Err(format!(
            "has {} fields; the header has {}",
            record.len(),
            columns.len()
        ));
    }
    let mut token = Zeroizing::new(Token::default());
    for (column, field) in columns.iter().zip(record.iter()) {
        let Some(column) = column else { continue };
        let text = std::str::from_utf8(field)
            .map_err(|_| format!("the {} field is not valid UTF-8", column.name()))?;
        column.set(&mut token, text)?;
    }
    Ok(token)
}

/// The csv crate's errors can quote the file's bytes; only the kind and the place are kept.
fn csv_failure(path: &Path, err: &csv::Error) -> Failure {
    let at = err
        .position()
        .map_or(String::new(), |p| format!(" at line {}", p.line()));
    let why = match err.kind() {
        csv::ErrorKind::Io(e) => e.to_string(),
        _ => "malformed CSV".to_string(),
    };
    Failure::new(format!("cannot read {}{at}: {why}", path.display()))
}

/// The name of the table SDK users create by hand.
pub const DEFAULT_TABLE: &str = "oauthtoken";

/// Reads the rows of an SDK-style token table from a SQLite database, opened read-only.
pub fn sqlite(path: &Path, table: &str) -> Result<Vec<Row>, Failure> {
    if !is_identifier(table) {
        return Err(Failure::new(
            "the table name must be a plain identifier: letters, digits and underscores, not \
             starting with a digit",
        ));
    }
    if !path.is_file() {
        return Err(Failure::new(format!("{} is not a file", path.display())));
    }
    let failed = |e: rusqlite::Error| sqlite_failure(path, &e);
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(failed)?;
    let wanted = sqlite_columns(&conn, path, table)?;

    // Every name in this statement is the checked identifier or a column name that matched one
    // of the SDK's (so letters, underscores and at most spaces), quoted; no data is spliced in.
    let list: Vec<String> = wanted
        .iter()
        .map(|(_, name)| format!("\"{}\"", name.replace('"', "\"\"")))
        .collect();
    let sql = format!(
        "SELECT rowid, {} FROM \"{table}\" ORDER BY rowid",
        list.join(", ")
    );
    let mut statement = conn.prepare(&sql).map_err(failed)?;
    let mut cursor = statement.query([]).map_err(failed)?;
    let mut rows = Vec::new();
    while let Some(row) = cursor.next().map_err(failed)? {
        let rowid: i64 = row.get(0).map_err(failed)?;
        rows.push(Row {
            place: Place::Rowid(rowid),
            token: sqlite_token(&wanted, row),
        });
    }
    Ok(rows)
}

fn sqlite_failure(path: &Path, err: &rusqlite::Error) -> Failure {
    Failure::new(format!(
        "cannot read the SQLite database {}: {err}",
        path.display()
    ))
}

/// The SDK columns of `table`, with their names as the schema spells them.
fn sqlite_columns(
    conn: &Connection,
    path: &Path,
    table: &str,
) -> Result<Vec<(Column, String)>, Failure> {
    // Looked up with the table name as a bound parameter.
    let names: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info(?1)")
        .and_then(|mut s| s.query_map([table], |r| r.get(0))?.collect())
        .map_err(|e| sqlite_failure(path, &e))?;
    if names.is_empty() {
        return Err(Failure::new(format!(
            "{} has no table {table}",
            path.display()
        )));
    }
    let columns = columns(names.iter().map(String::as_str), true).map_err(|why| {
        Failure::new(format!(
            "the table {table} in {} is not the SDK's: {why}",
            path.display()
        ))
    })?;
    Ok(columns
        .into_iter()
        .zip(names)
        .filter_map(|(c, name)| c.map(|c| (c, name)))
        .collect())
}

fn sqlite_token(
    wanted: &[(Column, String)],
    row: &rusqlite::Row,
) -> Result<Zeroizing<Token>, String> {
    let mut token = Zeroizing::new(Token::default());
    for (n, (column, _)) in wanted.iter().enumerate() {
        let unreadable = || format!("the {} column cannot be read", column.name());
        let value = row.get_ref(n + 1).map_err(|_| unreadable())?;
        let text = match value {
            ValueRef::Null => Zeroizing::new(String::new()),
            ValueRef::Text(bytes) => Zeroizing::new(
                std::str::from_utf8(bytes)
                    .map_err(|_| format!("the {} column is not valid UTF-8", column.name()))?
                    .to_string(),
            ),
            // Declared TEXT, but SQLite keeps what it is given: accept whole numbers.
            ValueRef::Integer(n) => Zeroizing::new(n.to_string()),
            ValueRef::Real(x) if x.fract() == 0.0 && x.abs() < 9.0e18 => {
                Zeroizing::new((x as i64).to_string())
            }
            ValueRef::Real(_) | ValueRef::Blob(_) => {
                return Err(format!(
                    "the {} column holds neither text nor a number",
                    column.name()
                ))
            }
        };
        column.set(&mut token, &text)?;
    }
    Ok(token)
}

/// True for `[A-Za-z_][A-Za-z0-9_]*`, at most 128 bytes: safe to quote into SQL as a name.
fn is_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    first_ok && name.len() <= 128 && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The document `export` writes.
#[derive(Deserialize)]
struct Export {
    format: String,
    version: u32,
    masked: bool,
    tokens: Vec<Token>,
}

/// What identifies an export, and its version.
pub const EXPORT_FORMAT: &str = "tokenvault-export";
pub const EXPORT_VERSION: u32 = 1;

/// Reads an export written by `tokenvault export --reveal`.
pub fn json(path: &Path) -> Result<Vec<Row>, Failure> {
    let bytes = read_secret_file(path)?;
    // serde_json's messages can quote the offending value: keep only its kind and place.
    let export: Export = serde_json::from_slice(&bytes).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Io => "a read error",
            serde_json::error::Category::Syntax => "a syntax error",
            serde_json::error::Category::Data => "a value of the wrong kind",
            serde_json::error::Category::Eof => "an early end",
        };
        Failure::new(format!(
            "{} is not a tokenvault export: {what} at line {}, column {}",
            path.display(),
            e.line(),
            e.column()
        ))
    })?;
    if export.format != EXPORT_FORMAT || export.version != EXPORT_VERSION {
        return Err(Failure::new(format!(
            "{} is not a version {EXPORT_VERSION} tokenvault export",
            path.display()
        )));
    }
    if export.masked {
        return Err(Failure::new(format!(
            "{} was exported with its secrets masked; export again with --reveal to import it",
            path.display()
        )));
    }
    Ok(export
        .tokens
        .into_iter()
        .enumerate()
        .map(|(n, token)| Row {
            place: Place::Entry(n + 1),
            token: Ok(without_empty_strings(token)),
        })
        .collect())
}

/// An empty string means "absent" to the SDKs, as an empty CSV field does.
fn without_empty_strings(token: Token) -> Zeroizing<Token> {
    let mut token = Zeroizing::new(token);
    let t: &mut Token = &mut token;
    let fields = [
        &mut t.id,
        &mut t.user_name,
        &mut t.client_id,
        &mut t.client_secret,
        &mut t.refresh_token,
        &mut t.access_token,
        &mut t.grant_token,
        &mut t.redirect_url,
        &mut t.api_domain,
    ];
    for field in fields {
        if field.as_deref() == Some("") {
            *field = None;
        }
    }
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_exclude_everything_sql_could_interpret() {
        assert!(is_identifier("oauthtoken"));
        assert!(is_identifier("_tokens_2"));
        for bad in ["", "2tokens", "a b", "a\"b", "t;drop table x", "a-b", "é"] {
            assert!(!is_identifier(bad), "{bad}");
        }
        assert!(!is_identifier(&"a".repeat(129)));
    }

    #[test]
    fn a_header_naming_a_secret_is_reported_by_position() {
        let err = columns(["id", "1000.secret"].into_iter(), false).unwrap_err();
        assert_eq!(err, "column 2 is not one of the SDK's");
    }
}
