//! The floor: raw sled with the store's key shapes and no cryptography.
//!
//! Four index trees map a 32-byte key (see [`floor_key`]) to an id, and a records tree maps the
//! id to bytes of a sealed record's size (see [`floor_bytes`]). A lookup is one index get and one
//! record get, copied out; an id lookup is the record get alone. Keys are computed before the
//! clock starts, and nothing is decoded: this is the least any store on this engine can do. A
//! write is plain inserts and removals, no transaction; a durable one adds `flush` and an
//! `fdatasync` of the engine's log file, as the store's `Immediate` mode does.
//!
//! The atomic variant makes each save one sled transaction over the five trees, as the store
//! must to keep its indexes in step with its records across a crash: it shows what the engine
//! charges for atomicity alone.

use std::fs::File;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

use bench_common::data::{floor_bytes, floor_key, id_of, Path, Record};
use bench_common::proto::{Backend, Result, Write};
use bench_common::sql::{write_records, LOAD_CHUNK};

const INDEXED: [Path; 4] = [
    Path::UserName,
    Path::AccessToken,
    Path::RefreshToken,
    Path::GrantToken,
];

struct Open {
    db: sled::Db,
    records: sled::Tree,
    indexes: [sled::Tree; 4],
    log: File,
}

/// A sled database in a directory of its own.
pub struct Floor {
    dir: PathBuf,
    open: Option<Open>,
    /// Each save is one transaction.
    atomic: bool,
    durable: bool,
    n: u64,
}

/// One save, ready to apply: index puts, index removals and the record.
struct Save {
    id: String,
    bytes: Vec<u8>,
    put: Vec<(usize, [u8; 32])>,
    remove: Vec<(usize, [u8; 32])>,
}

impl Floor {
    pub fn new(dir: &std::path::Path, atomic: bool) -> Floor {
        Floor {
            dir: dir.to_path_buf(),
            open: None,
            atomic,
            durable: false,
            n: 0,
        }
    }

    fn db(&self) -> Result<&Open> {
        Ok(self.open.as_ref().ok_or("the database is not open")?)
    }

    fn open(&mut self, durable: bool) -> Result<Duration> {
        self.open = None;
        let start = Instant::now();
        let db = sled::Config::new().path(&self.dir).open()?;
        let tree = |name: &str| db.open_tree(name);
        let indexes = [
            tree("index.user_name")?,
            tree("index.access_token")?,
            tree("index.refresh_token")?,
            tree("index.grant_token")?,
        ];
        let records = tree("records")?;
        let took = start.elapsed();
        let log = File::open(self.dir.join("db"))?;
        self.open = Some(Open {
            db,
            records,
            indexes,
            log,
        });
        self.durable = durable;
        Ok(took)
    }

    fn apply(&self, saves: &[Save]) -> Result<Duration> {
        let db = self.db()?;
        let start = Instant::now();
        for save in saves {
            self.commit(db, std::slice::from_ref(save))?;
            if self.durable {
                db.db.flush()?;
                db.log.sync_data()?;
            }
        }
        Ok(start.elapsed())
    }

    /// Applies saves as one transaction (atomic) or as plain writes.
    fn commit(&self, db: &Open, saves: &[Save]) -> Result<()> {
        if self.atomic {
            transaction(db, saves)
        } else {
            saves.iter().try_for_each(|save| plain(db, save))
        }
    }
}

fn plain(db: &Open, save: &Save) -> Result<()> {
    for (tree, key) in &save.remove {
        db.indexes[*tree].remove(key)?;
    }
    for (tree, key) in &save.put {
        db.indexes[*tree].insert(key, save.id.as_bytes())?;
    }
    db.records
        .insert(save.id.as_bytes(), save.bytes.as_slice())?;
    Ok(())
}

fn transaction(db: &Open, saves: &[Save]) -> Result<()> {
    let [a, b, c, d] = &db.indexes;
    let trees = (&db.records, a, b, c, d);
    trees
        .transaction(|(records, a, b, c, d)| {
            let indexes = [a, b, c, d];
            for save in saves {
                for (tree, key) in &save.remove {
                    indexes[*tree].remove(&key[..])?;
                }
                for (tree, key) in &save.put {
                    indexes[*tree].insert(&key[..], save.id.as_bytes())?;
                }
                records.insert(save.id.as_bytes(), save.bytes.as_slice())?;
            }
            Ok::<(), ConflictableTransactionError<()>>(())
        })
        .map_err(|e| format!("a floor transaction failed: {e:?}"))?;
    Ok(())
}

fn insert(record: &Record) -> Save {
    let put = INDEXED
        .iter()
        .enumerate()
        .filter_map(|(tree, path)| path.value(record).map(|v| (tree, floor_key(v))))
        .collect();
    Save {
        id: record.id.clone().unwrap_or_default(),
        bytes: floor_bytes(record),
        put,
        remove: Vec::new(),
    }
}

/// A refresh of token `k`: its access and refresh tokens move to new index keys.
fn update(record: &Record, k: u64) -> Save {
    let old = bench_common::data::record(k, 0);
    let mut save = insert(record);
    save.put.retain(|&(tree, _)| matches!(tree, 1 | 2));
    save.remove = [(1, Path::AccessToken), (2, Path::RefreshToken)]
        .iter()
        .filter_map(|&(tree, path)| path.value(&old).map(|v| (tree, floor_key(v))))
        .collect();
    save
}

impl Backend for Floor {
    fn load(&mut self, n: u64) -> Result<Duration> {
        self.open(false)?;
        let mut took = Duration::ZERO;
        for chunk in (0..n).step_by(LOAD_CHUNK as usize) {
            let end = (chunk + LOAD_CHUNK).min(n);
            let saves: Vec<Save> = write_records(Write::Insert, 0, chunk, end - chunk)
                .iter()
                .map(insert)
                .collect();
            let start = Instant::now();
            self.commit(self.db()?, &saves)?;
            took += start.elapsed();
        }
        let start = Instant::now();
        let db = self.db()?;
        db.db.flush()?;
        db.log.sync_data()?;
        self.n = n;
        Ok(took + start.elapsed())
    }

    fn attach(&mut self, n: u64) -> Result<Duration> {
        self.n = n;
        self.open(true)
    }

    fn lookups(&mut self, path: Path, first: u64, count: u64) -> Result<Duration> {
        let db = self.db()?;
        let n = self.n;
        let indices = (first..first + count).map(|j| bench_common::data::lookup_index(j, n));
        let mut hits = 0u64;
        let took = if path == Path::Id {
            let ids: Vec<String> = indices.map(id_of).collect();
            let start = Instant::now();
            for id in &ids {
                if let Some(bytes) = db.records.get(id.as_bytes())? {
                    black_box(bytes.to_vec());
                    hits += 1;
                }
            }
            start.elapsed()
        } else {
            let tree = &db.indexes[INDEXED.iter().position(|&p| p == path).unwrap_or(0)];
            let keys: Vec<[u8; 32]> = indices
                .map(|i| floor_key(path.value(&bench_common::data::record(i, 0)).unwrap_or("")))
                .collect();
            let start = Instant::now();
            for key in &keys {
                let Some(id) = tree.get(key)? else { continue };
                if let Some(bytes) = db.records.get(id)? {
                    black_box(bytes.to_vec());
                    hits += 1;
                }
            }
            start.elapsed()
        };
        if hits != count {
            return Err(format!("{} of {count} lookups missed", count - hits).into());
        }
        Ok(took)
    }

    fn scan(&mut self) -> Result<Duration> {
        let db = self.db()?;
        let start = Instant::now();
        let mut all = Vec::new();
        for entry in db.records.iter() {
            let (_, bytes) = entry?;
            all.push(bytes.to_vec());
        }
        let took = start.elapsed();
        if (all.len() as u64) < self.n {
            return Err("the scan found fewer records than were loaded".into());
        }
        Ok(took)
    }

    fn writes(&mut self, kind: Write, first: u64, count: u64) -> Result<Duration> {
        let records = write_records(kind, self.n, first, count);
        let saves: Vec<Save> = match kind {
            Write::Insert => records.iter().map(insert).collect(),
            Write::Update => records
                .iter()
                .zip(first..)
                .map(|(r, k)| update(r, k))
                .collect(),
        };
        self.apply(&saves)
    }

    fn reopen(&mut self, durable: bool) -> Result<Duration> {
        self.open(durable)
    }

    fn rekey(&mut self) -> Result<Option<Duration>> {
        Ok(None)
    }
}
