//! Turning tokens and reports into text: the `list` table, `show`, JSON, masking and time.
//!
//! Every string that came from a store or an import file goes through [`printable`] before it
//! reaches a terminal, so that a crafted user name cannot smuggle escape sequences in.

use std::borrow::Cow;
use std::io::{self, Write};

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Serialize;
use tokenvault::{IndexIssue, RepairReport, SealStatus, Token, VerifyReport};
use zeroize::Zeroizing;

use crate::import::{EXPORT_FORMAT, EXPORT_VERSION};

/// What an absent value looks like in a table or in `show`.
const ABSENT: &str = "-";
/// Values shorter than this (in characters) are masked entirely: showing 8 of them would give
/// away too much of the secret.
const MASK_MIN_CHARS: usize = 20;

/// The first and last four characters of a secret, e.g. `1000…abcd`; a short one is all stars.
pub fn mask(value: &str) -> String {
    let count = value.chars().count();
    if count < MASK_MIN_CHARS {
        return "****".to_string();
    }
    let head: String = value.chars().take(4).collect();
    let tail: String = value.chars().skip(count - 4).collect();
    format!("{}…{}", printable(&head), printable(&tail))
}

/// `value` with control characters escaped (`\u{1b}`), safe to print on a terminal.
pub fn printable(value: &str) -> Cow<'_, str> {
    if !value.chars().any(char::is_control) {
        return Cow::Borrowed(value);
    }
    Cow::Owned(
        value
            .chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// An expiry time as local time, then relative to `now_ms`: `2030-03-17 17:46 UTC (in 12 min)`.
pub fn expiry(ms: i64, now_ms: i64) -> String {
    let relative = relative(ms, now_ms);
    match Timestamp::from_millisecond(ms) {
        Ok(at) => {
            let local = at.to_zoned(TimeZone::system());
            format!("{} ({relative})", local.strftime("%Y-%m-%d %H:%M %Z"))
        }
        // Outside the calendar's range: the raw value is all there is to show.
        Err(_) => format!("{ms} ms ({relative})"),
    }
}

/// `expired`, or how long until `ms`: `in 40 s`, `in 12 min`, `in 5 h`, `in 3 d`.
pub fn relative(ms: i64, now_ms: i64) -> String {
    let left = i128::from(ms) - i128::from(now_ms);
    if left <= 0 {
        return "expired".to_string();
    }
    let seconds = left / 1000;
    match seconds {
        0..=59 => format!("in {seconds} s"),
        60..=7199 => format!("in {} min", seconds / 60),
        7200..=172_799 => format!("in {} h", seconds / 3600),
        _ => format!("in {} d", seconds / 86_400),
    }
}

/// Ids in the order people count: decimal ids by value, then the others by their bytes.
pub fn sort_by_id(tokens: &mut [Token]) {
    tokens.sort_by(|a, b| id_key(a).cmp(&id_key(b)));
}

fn id_key(token: &Token) -> (bool, usize, &str) {
    let id = token.id.as_deref().unwrap_or_default();
    let decimal = !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && !id.starts_with('0');
    // Among decimal ids without leading zeros, the shorter is the smaller.
    (!decimal, if decimal { id.len() } else { 0 }, id)
}

/// The `list` table: one row per token, columns padded, no trailing spaces.
pub fn list_table(tokens: &[Token], now_ms: i64) -> String {
    let header = [
        "ID",
        "USER",
        "CLIENT ID",
        "REFRESH",
        "ACCESS",
        "GRANT",
        "EXPIRES",
    ];
    let mut rows = vec![header.map(String::from).to_vec()];
    for token in tokens {
        let flag = |v: &Option<String>| if v.is_some() { "yes" } else { "no" }.to_string();
        rows.push(vec![
            shown(&token.id),
            shown(&token.user_name),
            shown(&token.client_id),
            flag(&token.refresh_token),
            flag(&token.access_token),
            flag(&token.grant_token),
            token
                .expiry_time
                .map_or(ABSENT.to_string(), |ms| expiry(ms, now_ms)),
        ]);
    }
    table(&rows)
}

fn shown(value: &Option<String>) -> String {
    value
        .as_deref()
        .map_or(ABSENT.to_string(), |v| printable(v).into_owned())
}

/// Lays out rows in columns two spaces apart.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            line.push_str(&format!("{cell:<width$}  "));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// One token of `list --json`: the identifying columns, never a secret.
#[derive(Serialize)]
struct Listed<'a> {
    id: Option<&'a str>,
    user_name: Option<&'a str>,
    client_id: Option<&'a str>,
    has_refresh_token: bool,
    has_access_token: bool,
    has_grant_token: bool,
    /// Unix epoch milliseconds.
    expiry_time: Option<i64>,
    expired: Option<bool>,
}

/// `list --json`: an array of objects, one per token.
pub fn list_json(out: &mut dyn Write, tokens: &[Token], now_ms: i64) -> io::Result<()> {
    let listed: Vec<Listed> = tokens
        .iter()
        .map(|t| Listed {
            id: t.id.as_deref(),
            user_name: t.user_name.as_deref(),
            client_id: t.client_id.as_deref(),
            has_refresh_token: t.refresh_token.is_some(),
            has_access_token: t.access_token.is_some(),
            has_grant_token: t.grant_token.is_some(),
            expiry_time: t.expiry_time,
            expired: t.expiry_time.map(|ms| ms <= now_ms),
        })
        .collect();
    serde_json::to_writer_pretty(&mut *out, &listed)?;
    writeln!(out)
}

/// `show`: one field a line, secrets masked unless `reveal`.
pub fn show(token: &Token, now_ms: i64, reveal: bool) -> String {
    let secret = |v: &Option<String>| match v {
        Some(v) if reveal => printable(v).into_owned(),
        Some(v) => mask(v),
        None => ABSENT.to_string(),
    };
    let expiry_time = token.expiry_time.map_or(ABSENT.to_string(), |ms| {
        format!("{ms} = {}", expiry(ms, now_ms))
    });
    let lines = [
        ("id", shown(&token.id)),
        ("user_name", shown(&token.user_name)),
        ("client_id", shown(&token.client_id)),
        ("client_secret", secret(&token.client_secret)),
        ("refresh_token", secret(&token.refresh_token)),
        ("access_token", secret(&token.access_token)),
        ("grant_token", secret(&token.grant_token)),
        ("expiry_time", expiry_time),
        ("redirect_url", shown(&token.redirect_url)),
        ("api_domain", shown(&token.api_domain)),
    ];
    lines
        .iter()
        .map(|(name, value)| format!("{:<15}{value}\n", format!("{name}:")))
        .collect()
}

/// The secrets of a token masked, the rest as it is.
pub fn masked(token: &Token) -> Token {
    let hide = |v: &Option<String>| v.as_deref().map(mask);
    Token {
        client_secret: hide(&token.client_secret),
        refresh_token: hide(&token.refresh_token),
        access_token: hide(&token.access_token),
        grant_token: hide(&token.grant_token),
        ..token.clone()
    }
}

/// The document `export` writes and `import --from json` reads.
#[derive(Serialize)]
struct Export<'a> {
    format: &'static str,
    version: u32,
    /// True when the secrets are masked: such an export cannot be imported.
    masked: bool,
    tokens: &'a [Token],
}

/// `export --format json`: every token, its secrets masked unless `reveal`.
pub fn export_json(out: &mut dyn Write, tokens: &[Token], reveal: bool) -> io::Result<()> {
    let masked_tokens: Zeroizing<Vec<Token>>;
    let tokens = if reveal {
        tokens
    } else {
        masked_tokens = Zeroizing::new(tokens.iter().map(masked).collect());
        &masked_tokens[..]
    };
    let export = Export {
        format: EXPORT_FORMAT,
        version: EXPORT_VERSION,
        masked: !reveal,
        tokens,
    };
    serde_json::to_writer_pretty(&mut *out, &export)?;
    writeln!(out)
}

/// `verify`'s report, one fact a line.
pub fn verify_report(report: &VerifyReport) -> String {
    let mut out = format!(
        "records: {} authenticate, {} damaged\n",
        report.records,
        report.damaged_records.len()
    );
    for id in &report.damaged_records {
        out.push_str(&format!("  damaged record {:?}\n", printable(id)));
    }
    out.push_str(&format!(
        "index entries: {} checked, {} issue(s)\n",
        report.index_entries,
        report.index_issues.len()
    ));
    for issue in &report.index_issues {
        out.push_str(&format!("  {}\n", index_issue(issue)));
    }
    out.push_str(&format!("quarantined records: {}\n", report.quarantined));
    out.push_str(&format!("commit seal: {}\n", seal(report.seal)));
    out
}

fn index_issue(issue: &IndexIssue) -> String {
    use tokenvault::IndexProblem::*;
    let problem = match issue.problem {
        Dangling => "entry points at a record that does not exist",
        DamagedRecord => "entry points at a damaged record",
        WrongRecord => "entry points at a record that holds another value",
        Malformed => "entry holds a malformed id",
        Missing => "record's value has no entry",
        Duplicate => "record's value is held by another record too",
        _ => "unknown problem",
    };
    format!(
        "{} index, record {:?}: {problem}",
        issue.index,
        printable(&issue.id)
    )
}

fn seal(status: SealStatus) -> String {
    match status {
        SealStatus::Current => "current".into(),
        SealStatus::Lagging => "behind the database (normal after a crash)".into(),
        SealStatus::Ahead { missing_commits } => {
            format!("{missing_commits} committed change(s) are missing from the database")
        }
        SealStatus::Missing => "the seal file is missing".into(),
        SealStatus::Damaged => "the seal fails authentication".into(),
        _ => "in an unknown state".into(),
    }
}

/// `repair`'s report, one fact a line.
pub fn repair_report(report: &RepairReport) -> String {
    let mut out = format!("records kept: {}\n", report.records_kept);
    out.push_str(&format!(
        "records quarantined: {}\n",
        report.quarantined.len()
    ));
    for id in &report.quarantined {
        out.push_str(&format!("  quarantined record {:?}\n", printable(id)));
    }
    out.push_str(&format!(
        "index entries removed: {}\n",
        report.index_entries_removed
    ));
    out.push_str(&format!(
        "index entries added: {}\n",
        report.index_entries_added
    ));
    out.push_str(&format!("values held twice: {}\n", report.duplicates.len()));
    for issue in &report.duplicates {
        out.push_str(&format!("  {}\n", index_issue(issue)));
    }
    out.push_str(&format!(
        "lost commits acknowledged: {}\n",
        report.lost_commits
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_keeps_four_characters_each_side_of_long_values_only() {
        assert_eq!(mask("1000.abcdefghijklmnop.abcd"), "1000…abcd");
        assert_eq!(mask("short-secret"), "****");
        assert_eq!(mask("ééééxxxxxxxxxxxxxxxxéééé"), "éééé…éééé");
    }

    #[test]
    fn relative_times_round_down_and_expired_includes_now() {
        assert_eq!(relative(1_000, 1_000), "expired");
        assert_eq!(relative(0, 1_000), "expired");
        assert_eq!(relative(41_000, 1_000), "in 40 s");
        assert_eq!(relative(12 * 60_000 + 59_000, 0), "in 12 min");
        assert_eq!(relative(5 * 3_600_000, 0), "in 5 h");
        assert_eq!(relative(3 * 86_400_000, 0), "in 3 d");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("a\u{1b}[31mb"), "a\\u{1b}[31mb");
        assert_eq!(printable("plain"), "plain");
    }
}
