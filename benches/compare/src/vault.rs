//! tokenvault itself, through its public API only, with the default KDF.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bench_common::data::{id_of, Path, Record};
use bench_common::proto::{Backend, Result, Write};
use bench_common::sql::{lookup_values, write_records, LOAD_CHUNK};
use tokenvault::{Durability, EncryptedStore, KdfParams, OpenOptions, Token, TokenStore};

const PASSPHRASES: [&str; 2] = ["bench passphrase one", "bench passphrase two"];

/// An [`EncryptedStore`] in a directory of its own.
pub struct Vault {
    dir: PathBuf,
    store: Option<EncryptedStore>,
    n: u64,
    passphrase: usize,
}

impl Vault {
    pub fn new(dir: &std::path::Path) -> Vault {
        Vault {
            dir: dir.to_path_buf(),
            store: None,
            n: 0,
            passphrase: 0,
        }
    }

    fn store(&self) -> Result<&EncryptedStore> {
        Ok(self.store.as_ref().ok_or("the store is not open")?)
    }

    /// The KDF parameters the open store is protected with.
    pub fn kdf(&self) -> Result<KdfParams> {
        Ok(self.store()?.kdf_params())
    }

    fn open(&mut self, durable: bool) -> Result<Duration> {
        // Dropping flushes and releases the lock before the next open takes it.
        self.store = None;
        let durability = if durable {
            Durability::Immediate
        } else {
            Durability::Buffered
        };
        let start = Instant::now();
        let store = OpenOptions::new()
            .kdf(KdfParams::default())
            .durability(durability)
            .open(&self.dir, PASSPHRASES[self.passphrase])?;
        let took = start.elapsed();
        self.store = Some(store);
        Ok(took)
    }

    fn save_all(&self, tokens: &mut [Token]) -> Result<Duration> {
        let store = self.store()?;
        let start = Instant::now();
        for token in tokens.iter_mut() {
            store.save_token(token)?;
        }
        Ok(start.elapsed())
    }

    fn find_all(&self, queries: &[Token]) -> Result<(Duration, usize)> {
        let store = self.store()?;
        let mut hits = 0;
        let start = Instant::now();
        for query in queries {
            if let Some(found) = store.find_token(query)? {
                black_box(&found);
                hits += 1;
            }
        }
        Ok((start.elapsed(), hits))
    }

    fn find_all_by_id(&self, ids: &[String]) -> Result<(Duration, usize)> {
        let store = self.store()?;
        let mut hits = 0;
        let start = Instant::now();
        for id in ids {
            if let Some(found) = store.find_token_by_id(id)? {
                black_box(&found);
                hits += 1;
            }
        }
        Ok((start.elapsed(), hits))
    }
}

/// The token a store is given for a record. Inserts leave the id to the store, as the SDKs do.
fn token(record: &Record, with_id: bool) -> Token {
    let r = record.clone();
    Token {
        id: if with_id { r.id } else { None },
        user_name: r.user_name,
        client_id: r.client_id,
        client_secret: r.client_secret,
        refresh_token: r.refresh_token,
        access_token: r.access_token,
        grant_token: r.grant_token,
        expiry_time: r.expiry_time,
        redirect_url: r.redirect_url,
        api_domain: r.api_domain,
    }
}

/// The partial token the SDK looks a token up with on `path`.
fn query(path: Path, value: String) -> Token {
    let client = || (Some("1000.CLIENT".to_string()), Some("secret".to_string()));
    match path {
        Path::UserName => Token {
            user_name: Some(value),
            ..Token::default()
        },
        Path::AccessToken => Token {
            access_token: Some(value),
            ..Token::default()
        },
        Path::RefreshToken => {
            let (client_id, client_secret) = client();
            Token {
                client_id,
                client_secret,
                refresh_token: Some(value),
                ..Token::default()
            }
        }
        Path::GrantToken => {
            let (client_id, client_secret) = client();
            Token {
                client_id,
                client_secret,
                grant_token: Some(value),
                ..Token::default()
            }
        }
        Path::Id => Token {
            id: Some(value),
            ..Token::default()
        },
    }
}

impl Backend for Vault {
    fn load(&mut self, n: u64) -> Result<Duration> {
        self.open(false)?;
        let mut took = Duration::ZERO;
        for chunk in (0..n).step_by(LOAD_CHUNK as usize) {
            let end = (chunk + LOAD_CHUNK).min(n);
            let records = write_records(Write::Insert, 0, chunk, end - chunk);
            let mut tokens: Vec<Token> = records.iter().map(|r| token(r, false)).collect();
            let start = Instant::now();
            self.store()?.save_tokens(&mut tokens)?;
            took += start.elapsed();
            if tokens.last().and_then(|t| t.id.clone()) != Some(id_of(end - 1)) {
                return Err("the store assigned unexpected ids".into());
            }
        }
        let start = Instant::now();
        self.store()?.flush()?;
        self.n = n;
        Ok(took + start.elapsed())
    }

    fn attach(&mut self, n: u64) -> Result<Duration> {
        self.n = n;
        self.open(true)
    }

    fn lookups(&mut self, path: Path, first: u64, count: u64) -> Result<Duration> {
        let values = lookup_values(path, self.n, first, count);
        let (took, hits) = if path == Path::Id {
            self.find_all_by_id(&values)?
        } else {
            let queries: Vec<Token> = values.into_iter().map(|v| query(path, v)).collect();
            self.find_all(&queries)?
        };
        if hits as u64 != count {
            return Err(format!("{} of {count} lookups missed", count - hits as u64).into());
        }
        Ok(took)
    }

    fn scan(&mut self) -> Result<Duration> {
        let start = Instant::now();
        let all = self.store()?.get_tokens()?;
        let took = start.elapsed();
        if (all.len() as u64) < self.n {
            return Err("get_tokens returned fewer tokens than were loaded".into());
        }
        Ok(took)
    }

    fn writes(&mut self, kind: Write, first: u64, count: u64) -> Result<Duration> {
        let records = write_records(kind, self.n, first, count);
        let with_id = kind == Write::Update;
        let mut tokens: Vec<Token> = records.iter().map(|r| token(r, with_id)).collect();
        let took = self.save_all(&mut tokens)?;
        let ids_match = tokens.iter().zip(&records).all(|(t, r)| t.id == r.id);
        if !ids_match {
            return Err("a save landed under an unexpected id".into());
        }
        Ok(took)
    }

    fn reopen(&mut self, durable: bool) -> Result<Duration> {
        self.open(durable)
    }

    fn rekey(&mut self) -> Result<Option<Duration>> {
        let next = 1 - self.passphrase;
        let start = Instant::now();
        self.store()?.change_passphrase(PASSPHRASES[next])?;
        let took = start.elapsed();
        self.passphrase = next;
        Ok(Some(took))
    }
}
