//! The commit seal: detects commits that the storage engine silently lost.
//!
//! sled treats a log entry that fails its checksum as the end of the log, and drops everything
//! after it without an error. To notice, every commit increments a generation counter inside the
//! database, and after the commit is durable the store records that generation, with a MAC under
//! a key derived from the data key, in `tokenvault.seal` beside the database. At open, a seal
//! ahead of the database means committed changes are missing.
//!
//! The seal is written only after the database's copy of the generation is durable, so it may lag
//! behind the database (after a crash between the two) but never leads it. The file holds two
//! 40-byte slots, `generation (u64 LE) || HMAC-SHA256`, written alternately. Both must
//! authenticate: a spoiled slot may have been the newer one, and trusting the other would then
//! hide the loss of the commits in between. A write torn by a power loss (unlikely: the whole
//! file sits in one disk sector) is therefore reported as damage, and `repair` finds nothing
//! lost.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::crypto::{self, Keys};
use crate::durability;
use crate::error::Error;

/// The seal's file name inside the store directory.
pub(crate) const FILE_NAME: &str = "tokenvault.seal";
const SLOT_LEN: usize = 8 + 32;

/// What the seal file says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sealed {
    /// There is no seal file.
    Missing,
    /// A slot does not authenticate, or the file is not two slots long.
    Damaged,
    /// The newest generation the seal vouches for.
    At(u64),
}

/// The open seal file.
pub(crate) struct SealFile {
    path: PathBuf,
    file: File,
}

impl SealFile {
    /// Reads the seal in `dir` without creating or changing anything.
    pub(crate) fn read(dir: &Path, keys: &Keys) -> Result<Sealed, Error> {
        let path = dir.join(FILE_NAME);
        let mut bytes = Vec::new();
        match File::open(&path) {
            Ok(file) => file.take(2 * SLOT_LEN as u64).read_to_end(&mut bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Sealed::Missing),
            Err(e) => Err(e),
        }
        .map_err(|e| Error::io("reading", path, e))?;
        // An empty file is one `open` created and nothing was sealed into yet (a store opened
        // for recovery without its seal, or a crash before the first seal): there is no seal.
        if bytes.is_empty() {
            return Ok(Sealed::Missing);
        }
        if bytes.len() != 2 * SLOT_LEN {
            return Ok(Sealed::Damaged);
        }
        let slots: Option<Vec<u64>> = bytes
            .chunks_exact(SLOT_LEN)
            .map(|s| parse(s, keys))
            .collect();
        Ok(slots
            .and_then(|s| s.into_iter().max())
            .map_or(Sealed::Damaged, Sealed::At))
    }

    /// Opens (creating if needed) the seal file for writing.
    pub(crate) fn open(dir: &Path) -> Result<SealFile, Error> {
        let path = dir.join(FILE_NAME);
        let file =
            durability::open_private_file(&path).map_err(|e| Error::io("opening", &path, e))?;
        Ok(SealFile { path, file })
    }

    /// Records `generation` in its slot. With `sync`, returns once it is durable.
    ///
    /// Call only once the database's copy of `generation` is durable.
    pub(crate) fn write(&mut self, keys: &Keys, generation: u64, sync: bool) -> Result<(), Error> {
        self.write_slot(generation % 2, keys, generation)?;
        if sync {
            self.sync()?;
        }
        Ok(())
    }

    /// Makes the slots written so far durable.
    pub(crate) fn sync(&self) -> Result<(), Error> {
        self.file
            .sync_data()
            .map_err(|e| Error::io("syncing", self.path.clone(), e))
    }

    /// Writes `generation` into both slots, durably: used to start afresh after a repair, when
    /// the other slot may hold a generation the database no longer reaches.
    pub(crate) fn reset(&mut self, keys: &Keys, generation: u64) -> Result<(), Error> {
        self.write_slot(0, keys, generation)?;
        self.write_slot(1, keys, generation)?;
        self.sync()
    }

    fn write_slot(&mut self, index: u64, keys: &Keys, generation: u64) -> Result<(), Error> {
        let mut slot = [0u8; SLOT_LEN];
        slot[..8].copy_from_slice(&generation.to_le_bytes());
        slot[8..].copy_from_slice(&keys.seal_mac(generation));
        let mut write = || -> io::Result<()> {
            self.file.seek(SeekFrom::Start(index * SLOT_LEN as u64))?;
            self.file.write_all(&slot)
        };
        write().map_err(|e| Error::io("writing", self.path.clone(), e))
    }
}

fn parse(slot: &[u8], keys: &Keys) -> Option<u64> {
    let (generation, mac) = slot.split_at(8);
    let generation = u64::from_le_bytes(generation.try_into().ok()?);
    crypto::ct_eq(&keys.seal_mac(generation), mac).then_some(generation)
}
