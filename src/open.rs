//! Opening a store: options, the directory's layout, locking, creation and the loss check.
//!
//! A store is a directory holding:
//!
//! * `tokenvault.header`: format version, KDF parameters, salt, wrapped data key;
//! * `tokenvault.lock`: the advisory lock that keeps a second handle out;
//! * `tokenvault.seal`: the commit seal (see the `seal` module);
//! * `db/`: the sled database.
//!
//! The header is written first and is what makes a directory a store: an empty (or missing)
//! directory is initialized, one that holds anything else is refused and left untouched.

use std::fs::{self, File, TryLockError};
use std::io;
use std::path::Path;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crate::crypto::{self, KdfParams, Key, Keys};
use crate::durability::{self, Durability, EngineFiles};
use crate::engine::{self, guarded, Engine, Released};
use crate::error::Error;
use crate::header::{self, Header};
use crate::seal::{self, SealFile, Sealed};
use crate::store::{check_passphrase, EncryptedStore, Writer};

const LOCK_FILE: &str = "tokenvault.lock";

/// Options for opening or creating an [`EncryptedStore`].
///
/// ```no_run
/// use tokenvault::{Durability, KdfParams, OpenOptions};
///
/// let store = OpenOptions::new()
///     .kdf(KdfParams::default())
///     .durability(Durability::Immediate)
///     .open("tokens", "correct horse battery staple")?;
/// # Ok::<(), tokenvault::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    kdf: KdfParams,
    durability: Durability,
    recover: bool,
}

impl OpenOptions {
    /// The defaults: [`KdfParams::default`], [`Durability::Immediate`], no recovery.
    pub fn new() -> Self {
        Self::default()
    }

    /// The key-derivation cost for a store this call creates. An existing store keeps the
    /// parameters in its header.
    ///
    /// # Security considerations
    ///
    /// See [`KdfParams`]: anything below the default makes passphrase guessing cheaper.
    pub fn kdf(&mut self, kdf: KdfParams) -> &mut Self {
        self.kdf = kdf;
        self
    }

    /// When writes become durable; see [`Durability`].
    ///
    /// # Security considerations
    ///
    /// [`Durability::Buffered`] can lose the last writes when the process is killed or the
    /// power fails before a flush; use it for bulk loads that end with [`EncryptedStore::flush`].
    pub fn durability(&mut self, durability: Durability) -> &mut Self {
        self.durability = durability;
        self
    }

    /// Opens a store even when its commit seal says committed changes are missing (or the seal
    /// itself is damaged), so that [`EncryptedStore::verify`] and [`EncryptedStore::repair`]
    /// can look at and salvage what is left. The seal is left as it is until `repair` runs, so
    /// the loss keeps being reported to normal opens.
    pub fn recover(&mut self, recover: bool) -> &mut Self {
        self.recover = recover;
        self
    }

    /// Opens the store at `path`, creating it when `path` does not exist or is an empty
    /// directory. On Unix a created directory has mode 0700 and the files 0600.
    ///
    /// # Errors
    ///
    /// * [`Error::WrongPassphrase`]: the passphrase does not unwrap the store's key.
    /// * [`Error::Locked`]: another process or handle has the store open.
    /// * [`Error::Corrupt`]: `path` holds something other than a tokenvault store (it is left
    ///   untouched), or the store's files are damaged, or committed changes are missing from
    ///   them (the message says how many; see [`OpenOptions::recover`]).
    /// * [`Error::UnsupportedFormat`]: the store was written by a newer format version.
    /// * [`Error::InvalidOptions`]: creating a store with an empty passphrase or KDF parameters
    ///   outside the allowed range.
    /// * [`Error::Io`]: the file system refused.
    pub fn open(
        &self,
        path: impl AsRef<Path>,
        passphrase: impl AsRef<[u8]>,
    ) -> Result<EncryptedStore, Error> {
        open(self, path.as_ref(), passphrase.as_ref())
    }
}

/// What a directory holds.
#[derive(PartialEq, Eq)]
enum Layout {
    Store,
    Empty,
    Foreign,
}

fn open(options: &OpenOptions, path: &Path, passphrase: &[u8]) -> Result<EncryptedStore, Error> {
    prepare_dir(path)?;
    if layout(path)? == Layout::Foreign {
        return Err(foreign(path));
    }
    let lock = take_lock(path)?;

    // Looked at again under the lock: another process may have created the store meanwhile.
    let (header, data_key) = match layout(path)? {
        Layout::Store => unlock(path, passphrase)?,
        Layout::Empty => create_header(options, path, passphrase)?,
        Layout::Foreign => return Err(foreign(path)),
    };
    let keys = Keys::derive(&data_key);
    // Everything here reads what sled recovered from its files, which may be damaged.
    let (engine, sealing) = guarded(|| {
        let engine = open_engine(path, &keys)?;
        let sealing = check_seal(options, path, &engine, &keys)?;
        Ok((engine, sealing))
    })?;
    let writer = Writer {
        files: EngineFiles::new(engine.dir())?,
        seal: SealFile::open(path)?,
        sealing,
    };
    let store = EncryptedStore {
        path: path.to_path_buf(),
        engine,
        keys,
        data_key,
        header: Mutex::new(header),
        durability: options.durability,
        writer: Mutex::new(writer),
        _released: Released::new(&path.join(engine::DIR_NAME)),
        _lock: lock,
    };
    store.flush()?;
    Ok(store)
}

fn foreign(path: &Path) -> Error {
    Error::corrupt(format!(
        "{} holds files that are not a tokenvault store; it was left untouched (choose an empty \
         or new directory)",
        path.display()
    ))
}

fn prepare_dir(path: &Path) -> Result<(), Error> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Error::corrupt(format!(
            "{} is a file, not a store directory",
            path.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => durability::create_private_dir(path)
            .map_err(|e| Error::io("creating the store directory", path, e)),
        Err(e) => Err(Error::io("looking at", path, e)),
    }
}

fn layout(path: &Path) -> Result<Layout, Error> {
    let io_err = |e| Error::io("listing", path, e);
    let mut layout = Layout::Empty;
    for entry in fs::read_dir(path).map_err(io_err)? {
        let name = entry.map_err(io_err)?.file_name();
        let name = name.to_string_lossy();
        if name == header::FILE_NAME {
            return Ok(Layout::Store);
        }
        // What a creation interrupted before its header was in place leaves behind.
        let leftover = name == LOCK_FILE
            || name == seal::FILE_NAME
            || name == format!("{}.tmp", header::FILE_NAME);
        if !leftover {
            layout = Layout::Foreign;
        }
    }
    Ok(layout)
}

/// How long a held lock is retried before the store is reported as locked.
///
/// A process that forks a child while it has a store open shares the lock with the child until
/// the child calls `exec`, a moment later; a handle closed just before such a fork can so look
/// held for a little while. A handle that is really open holds it far longer.
const LOCK_PATIENCE: Duration = Duration::from_millis(250);

fn take_lock(path: &Path) -> Result<File, Error> {
    let lock_path = path.join(LOCK_FILE);
    let file = durability::open_private_file(&lock_path)
        .map_err(|e| Error::io("opening the lock file", &lock_path, e))?;
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if started.elapsed() < LOCK_PATIENCE => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    path: path.to_path_buf(),
                })
            }
            Err(TryLockError::Error(e)) => return Err(Error::io("locking", lock_path, e)),
        }
    }
}

fn unlock(path: &Path, passphrase: &[u8]) -> Result<(Header, Key), Error> {
    let header = Header::read(path)?.ok_or_else(|| Error::corrupt("the header file vanished"))?;
    let data_key = header.unlock(passphrase)?;
    Ok((header, data_key))
}

fn create_header(
    options: &OpenOptions,
    path: &Path,
    passphrase: &[u8],
) -> Result<(Header, Key), Error> {
    check_passphrase(passphrase)?;
    let data_key = crypto::new_data_key()?;
    let header = Header::seal(options.kdf, passphrase, &data_key)?;
    // Sealed before the header makes the directory a store, so that every store has a seal: a
    // missing one is then always damage, never mistaken for a creation that was interrupted
    // (which, with a database that lost everything, would pass for a new empty store).
    SealFile::open(path)?.reset(&Keys::derive(&data_key), 0)?;
    header.write(path)?;
    Ok((header, data_key))
}

/// Opens the database and checks that it belongs to this store's data key.
fn open_engine(path: &Path, keys: &Keys) -> Result<Engine, Error> {
    let dir = path.join(engine::DIR_NAME);
    if !dir.exists() {
        if !matches!(SealFile::read(path, keys)?, Sealed::Missing | Sealed::At(0)) {
            return Err(Error::corrupt("the database directory db/ is missing"));
        }
        // sled would create it with the umask's mode; the store's own directory may be an
        // existing one that others can read, so the database gets a private one.
        durability::create_private_dir(&dir)
            .map_err(|e| Error::io("creating the database directory", &dir, e))?;
    }
    let engine = Engine::open(&dir)?;
    let expected = keys.store_check();
    match engine.store_mac()? {
        Some(mac) if crypto::ct_eq(&mac, &expected) => {}
        Some(_) => return Err(Error::corrupt("the database belongs to another store")),
        None if is_fresh(&engine)? => engine.set_store_mac(&expected)?,
        None => return Err(Error::corrupt("the database lacks its store check")),
    }
    Ok(engine)
}

fn is_fresh(engine: &Engine) -> Result<bool, Error> {
    Ok(engine.generation()? == 0 && engine.records.is_empty())
}

/// Compares the seal with the database. Returns whether the store keeps sealing commits.
fn check_seal(
    options: &OpenOptions,
    path: &Path,
    engine: &Engine,
    keys: &Keys,
) -> Result<bool, Error> {
    let generation = engine.generation()?;
    let problem = match SealFile::read(path, keys)? {
        Sealed::At(sealed) if sealed > generation => Some(format!(
            "{} committed change(s) are missing from the database files (sealed generation \
             {sealed}, found {generation})",
            sealed - generation
        )),
        Sealed::At(_) => None,
        Sealed::Missing => Some(format!(
            "the commit seal file {} is missing",
            seal::FILE_NAME
        )),
        Sealed::Damaged => Some("the commit seal fails authentication".to_string()),
    };
    let problem = match problem {
        None if !engine.records_match_digest()? => Some(
            "the records do not add up to the digest of the committed changes: committed \
             updates are missing from the database files (a blob file may have been deleted), \
             or records were changed outside the store"
                .to_string(),
        ),
        problem => problem,
    };
    match problem {
        None => Ok(true),
        Some(_) if options.recover => Ok(false),
        Some(what) => Err(Error::corrupt(what)),
    }
}
