//! Making writes durable: what sled 0.34's own `flush()` does not.
//!
//! sled's `flush()` writes its buffers and then calls `sync_file_range`, which neither persists
//! the disk's write cache nor the file's metadata, and never syncs the directory entries of the
//! files it creates (large values go to new files under `blobs/`, snapshots to new `snap.*`
//! files). [`EngineFiles::sync`] finishes the job after each flush: `fdatasync` on the log file,
//! `fsync` on every file that appeared since the last sync, and `fsync` on their directories.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::Error;

/// When a write call returns, relative to the data reaching stable storage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Every `save_token`, `delete_token`, `delete_tokens`, `purge_expired` and
    /// `change_passphrase` returns only once its change is on stable storage.
    #[default]
    Immediate,
    /// Writes return once they are committed in the storage engine's memory; they become
    /// durable on [`EncryptedStore::flush`](crate::EncryptedStore::flush), when the store is
    /// dropped, or when the engine's background flusher (every 500 ms) and the kernel get to
    /// them.
    ///
    /// # Security considerations
    ///
    /// Meant for bulk loads followed by one `flush()`. If the process dies without dropping the
    /// store (killed, aborted) or the machine loses power, writes since the last flush can be
    /// missing, including a rotated refresh token the OAuth server has already invalidated the
    /// old one for. Each write is still atomic: a crash never leaves half a save or an index out
    /// of step with its record.
    Buffered,
}

/// Creates a directory (and its parents) readable by the owner only.
pub(crate) fn create_private_dir(path: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

/// Opens (creating if needed) a file readable and writable by the owner only.
pub(crate) fn open_private_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Reads a whole file if it is at most `max` bytes long; `Ok(None)` when it is longer.
pub(crate) fn read_bounded(path: &Path, max: u64) -> io::Result<Option<Vec<u8>>> {
    let file = File::open(path)?;
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= max).then_some(bytes))
}

/// Syncs a directory, so that entries created or renamed in it survive a crash.
pub(crate) fn sync_dir(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(path)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Replaces `dir/name` atomically and durably: a crash leaves the old file or the new one.
pub(crate) fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), Error> {
    let tmp = dir.join(format!("{name}.tmp"));
    let target = dir.join(name);
    let write = || -> io::Result<()> {
        let mut file = open_private_file(&tmp)?;
        file.set_len(0)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, &target)?;
        sync_dir(dir)
    };
    write().map_err(|e| Error::io("writing", target.clone(), e))
}

/// The storage engine's files, and which of them are known to be durable.
pub(crate) struct EngineFiles {
    dir: PathBuf,
    log: File,
    synced: BTreeSet<PathBuf>,
}

impl EngineFiles {
    /// Takes note of the engine's directory; its first [`sync`](Self::sync) syncs every file.
    pub(crate) fn new(dir: &Path) -> Result<EngineFiles, Error> {
        let log_path = dir.join("db");
        let log = File::open(&log_path).map_err(|e| Error::io("opening", log_path, e))?;
        // Nothing is known to be synced yet, so the first `sync` (open's flush) syncs every file.
        Ok(EngineFiles {
            dir: dir.to_path_buf(),
            log,
            synced: BTreeSet::new(),
        })
    }

    /// Makes everything the engine has flushed durable. Call after `sled::Db::flush`.
    pub(crate) fn sync(&mut self) -> Result<(), Error> {
        self.log
            .sync_data()
            .map_err(|e| Error::io("syncing", self.dir.join("db"), e))?;
        let blobs = self.dir.join("blobs");
        let dir = self.dir.clone();
        self.sync_new_files(&dir)?;
        if blobs.is_dir() {
            self.sync_new_files(&blobs)?;
        }
        Ok(())
    }

    /// Syncs the files of `dir` not yet synced, then `dir` itself if any were new.
    fn sync_new_files(&mut self, dir: &Path) -> Result<(), Error> {
        let io_err = |e| Error::io("syncing the files in", dir, e);
        let mut fresh = false;
        for entry in fs::read_dir(dir).map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            let path = entry.path();
            if !entry.file_type().map_err(io_err)?.is_file() || self.synced.contains(&path) {
                continue;
            }
            match File::open(&path).and_then(|f| f.sync_all()) {
                Ok(()) => {}
                // A blob or snapshot the engine removed between listing and opening it.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("syncing", path, e)),
            }
            self.synced.insert(path);
            fresh = true;
        }
        if fresh {
            sync_dir(dir).map_err(io_err)?;
            self.synced.retain(|p| p.exists());
        }
        Ok(())
    }
}
