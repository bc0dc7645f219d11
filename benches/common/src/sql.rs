//! The SQL peers: a token table as SDK users keep one, in SQLite or SQLCipher.
//!
//! One connection, one table of the ten token columns as text, the id as primary key and a
//! unique index on each looked-up column; every statement prepared once and taken from the
//! connection's statement cache before the clock starts. `journal_mode=WAL`; durable writes run
//! with `synchronous=FULL`, buffered ones with `synchronous=OFF`. Everything else is left at the
//! library's defaults, as applications run it, including a page cache of 2 MiB; a variant with
//! a page cache of 1 GiB (sled's default cache size) shows how much of the difference that is.
//! SQLCipher runs with its defaults (PBKDF2-HMAC-SHA512 key derivation, AES-256 pages
//! authenticated with HMAC-SHA512).
//!
//! Which of the two a binary links is chosen by its rusqlite feature; [`Sql`] checks at every
//! open that the library it got is the one it was asked to measure.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::data::{id_of, lookup_index, record, Path, Record};
use crate::proto::{Backend, Result, Write};

const COLUMNS: &str = "id, user_name, client_id, client_secret, refresh_token, access_token, \
                       grant_token, expiry_time, redirect_url, api_domain";

const SCHEMA: &str = "
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY, user_name TEXT, client_id TEXT, client_secret TEXT,
        refresh_token TEXT, access_token TEXT, grant_token TEXT, expiry_time TEXT,
        redirect_url TEXT, api_domain TEXT
    );
    CREATE UNIQUE INDEX tokens_user_name ON tokens (user_name);
    CREATE UNIQUE INDEX tokens_access_token ON tokens (access_token);
    CREATE UNIQUE INDEX tokens_refresh_token ON tokens (refresh_token);
    CREATE UNIQUE INDEX tokens_grant_token ON tokens (grant_token);
";

const UPDATE: &str =
    "UPDATE tokens SET access_token = ?2, refresh_token = ?3, expiry_time = ?4 WHERE id = ?1";

/// The two passphrases a keyed database alternates between on [`Backend::rekey`].
const PASSPHRASES: [&str; 2] = ["bench passphrase one", "bench passphrase two"];

/// Which library the binary is expected to link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// SQLite, plaintext.
    Sqlite,
    /// SQLCipher, keyed.
    Sqlcipher,
}

/// A token table in one database file.
pub struct Sql {
    flavour: Flavour,
    /// `PRAGMA cache_size` in KiB, when not the default.
    cache_kib: Option<i64>,
    path: PathBuf,
    conn: Option<Connection>,
    n: u64,
    passphrase: usize,
}

impl Sql {
    /// A database at `dir/tokens.db`, not yet created, with the default page cache or one of
    /// `cache_kib`.
    pub fn new(flavour: Flavour, cache_kib: Option<i64>, dir: &std::path::Path) -> Result<Sql> {
        std::fs::create_dir_all(dir)?;
        Ok(Sql {
            flavour,
            cache_kib,
            path: dir.join("tokens.db"),
            conn: None,
            n: 0,
            passphrase: 0,
        })
    }

    fn conn(&self) -> Result<&Connection> {
        Ok(self.conn.as_ref().ok_or("the database is not open")?)
    }

    fn open(&mut self, durable: bool) -> Result<Duration> {
        self.conn = None;
        let start = Instant::now();
        let conn = Connection::open(&self.path)?;
        if self.flavour == Flavour::Sqlcipher {
            conn.pragma_update(None, "key", PASSPHRASES[self.passphrase])?;
        }
        // Reading the schema makes SQLCipher derive its key and check it, so it is in the time.
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })?;
        let took = start.elapsed();
        self.configure(&conn, durable)?;
        self.conn = Some(conn);
        Ok(took)
    }

    fn configure(&self, conn: &Connection, durable: bool) -> Result<()> {
        let cipher: Option<String> = conn
            .query_row("PRAGMA cipher_version", [], |r| r.get(0))
            .optional()?;
        match (self.flavour, cipher) {
            (Flavour::Sqlite, None) | (Flavour::Sqlcipher, Some(_)) => {}
            (flavour, found) => {
                return Err(format!("measuring {flavour:?} but linked cipher {found:?}").into())
            }
        }
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if mode != "wal" {
            return Err(format!("journal_mode is {mode}, not wal").into());
        }
        conn.pragma_update(None, "synchronous", if durable { "FULL" } else { "OFF" })?;
        if let Some(kib) = self.cache_kib {
            // A negative size is in KiB rather than pages.
            conn.pragma_update(None, "cache_size", -kib)?;
        }
        Ok(())
    }

    fn lookup(&self, path: Path, values: &[String]) -> Result<(Duration, usize)> {
        let column = if path == Path::Id { "id" } else { path.name() };
        let sql = format!("SELECT {COLUMNS} FROM tokens WHERE {column} = ?1");
        let mut stmt = self.conn()?.prepare_cached(&sql)?;
        let mut hits = 0;
        let start = Instant::now();
        for value in values {
            if let Some(found) = stmt.query_row([value], to_record).optional()? {
                black_box(&found);
                hits += 1;
            }
        }
        Ok((start.elapsed(), hits))
    }

    fn insert(&self, records: &[Record]) -> Result<Duration> {
        let sql = format!(
            "INSERT INTO tokens ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        );
        let mut stmt = self.conn()?.prepare_cached(&sql)?;
        let start = Instant::now();
        for r in records {
            stmt.execute(params![
                r.id,
                r.user_name,
                r.client_id,
                r.client_secret,
                r.refresh_token,
                r.access_token,
                r.grant_token,
                r.expiry_time.map(|t| t.to_string()),
                r.redirect_url,
                r.api_domain,
            ])?;
        }
        Ok(start.elapsed())
    }

    fn update(&self, records: &[Record]) -> Result<Duration> {
        let mut stmt = self.conn()?.prepare_cached(UPDATE)?;
        let start = Instant::now();
        for r in records {
            let expiry = r.expiry_time.map(|t| t.to_string());
            let changed = stmt.execute(params![r.id, r.access_token, r.refresh_token, expiry])?;
            if changed != 1 {
                return Err("an update found no row".into());
            }
        }
        Ok(start.elapsed())
    }
}

fn to_record(row: &Row<'_>) -> rusqlite::Result<Record> {
    let expiry: Option<String> = row.get(7)?;
    Ok(Record {
        id: row.get(0)?,
        user_name: row.get(1)?,
        client_id: row.get(2)?,
        client_secret: row.get(3)?,
        refresh_token: row.get(4)?,
        access_token: row.get(5)?,
        grant_token: row.get(6)?,
        expiry_time: expiry.and_then(|t| t.parse().ok()),
        redirect_url: row.get(8)?,
        api_domain: row.get(9)?,
    })
}

/// The records saves `first..first + count` of a kind write, for a store of `n` tokens.
pub fn write_records(kind: Write, n: u64, first: u64, count: u64) -> Vec<Record> {
    (first..first + count)
        .map(|k| match kind {
            Write::Insert => record(n + k, 0),
            Write::Update => record(k, 1),
        })
        .collect()
}

/// The values lookups `first..first + count` on `path` ask for, in a store of `n` tokens.
pub fn lookup_values(path: Path, n: u64, first: u64, count: u64) -> Vec<String> {
    (first..first + count)
        .map(|j| {
            let i = lookup_index(j, n);
            match path {
                Path::Id => id_of(i),
                _ => path.value(&record(i, 0)).unwrap_or_default().to_string(),
            }
        })
        .collect()
}

/// Tokens are generated and loaded this many at a time, one commit each: what the CLI's import
/// commits at once. Generating them stays untimed without holding a million in memory.
pub const LOAD_CHUNK: u64 = 256;

impl Backend for Sql {
    fn load(&mut self, n: u64) -> Result<Duration> {
        let _ = std::fs::remove_file(&self.path);
        self.open(false)?;
        self.conn()?.execute_batch(SCHEMA)?;
        let mut took = Duration::ZERO;
        for chunk in (0..n).step_by(LOAD_CHUNK as usize) {
            let end = (chunk + LOAD_CHUNK).min(n);
            let records: Vec<Record> = (chunk..end).map(|i| record(i, 0)).collect();
            let start = Instant::now();
            self.conn()?.execute_batch("BEGIN")?;
            let inserts = self.insert(&records)?;
            self.conn()?.execute_batch("COMMIT")?;
            took += start.elapsed();
            black_box(inserts);
        }
        self.n = n;
        Ok(took)
    }

    fn attach(&mut self, n: u64) -> Result<Duration> {
        self.n = n;
        self.open(true)
    }

    fn lookups(&mut self, path: Path, first: u64, count: u64) -> Result<Duration> {
        let values = lookup_values(path, self.n, first, count);
        let (took, hits) = self.lookup(path, &values)?;
        if hits != values.len() {
            return Err(format!("{} of {count} lookups missed", values.len() - hits).into());
        }
        Ok(took)
    }

    fn scan(&mut self) -> Result<Duration> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM tokens"))?;
        let start = Instant::now();
        let all = stmt
            .query_map([], to_record)?
            .collect::<rusqlite::Result<Vec<Record>>>()?;
        let took = start.elapsed();
        if (all.len() as u64) < self.n {
            return Err("the scan found fewer rows than were loaded".into());
        }
        Ok(took)
    }

    fn writes(&mut self, kind: Write, first: u64, count: u64) -> Result<Duration> {
        let records = write_records(kind, self.n, first, count);
        match kind {
            Write::Insert => self.insert(&records),
            Write::Update => self.update(&records),
        }
    }

    fn reopen(&mut self, durable: bool) -> Result<Duration> {
        self.open(durable)
    }

    fn rekey(&mut self) -> Result<Option<Duration>> {
        if self.flavour == Flavour::Sqlite {
            return Ok(None);
        }
        let next = 1 - self.passphrase;
        let start = Instant::now();
        self.conn()?
            .pragma_update(None, "rekey", PASSPHRASES[next])?;
        let took = start.elapsed();
        self.passphrase = next;
        Ok(Some(took))
    }
}
