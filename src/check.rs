//! Checking a store for damage, and salvaging what authenticates.

use std::collections::{BTreeMap, BTreeSet};

use crate::engine::{guarded, Change, TreeId};
use crate::error::Error;
use crate::seal::Sealed;
use crate::store::{record_id, EncryptedStore, Plain, Writer};
use crate::token::{self, Indexed};

/// What is wrong with an index entry, or with a record's place in an index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IndexProblem {
    /// The entry points at an id no record has.
    Dangling,
    /// The entry points at a record that fails authentication.
    DamagedRecord,
    /// The entry points at a record that does not hold the indexed value.
    WrongRecord,
    /// The entry's stored id is not a valid id.
    Malformed,
    /// The record holds a value that the index does not lead to.
    Missing,
    /// The record holds a value that another record holds too, so only one can be indexed.
    Duplicate,
}

/// One problem found in an index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexIssue {
    /// The index's field: `user_name`, `access_token`, `refresh_token` or `grant_token`.
    pub index: &'static str,
    /// The record id involved (as stored, lossily decoded when malformed).
    pub id: String,
    /// What is wrong.
    pub problem: IndexProblem,
}

/// How the commit seal compares with the database.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SealStatus {
    /// The seal vouches for the database's current generation.
    #[default]
    Current,
    /// The seal is behind the database: normal after a crash or before a buffered flush.
    Lagging,
    /// The seal is ahead: commits that were made are missing from the database.
    Ahead {
        /// How many commits are missing.
        missing_commits: u64,
    },
    /// The seal file is missing.
    Missing,
    /// The seal file is damaged: a slot does not authenticate, or the file was cut short.
    Damaged,
}

/// What [`EncryptedStore::verify`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Records that authenticate and decode.
    pub records: usize,
    /// Ids of records that fail authentication or decoding.
    pub damaged_records: Vec<String>,
    /// Index entries looked at, over all four indexes.
    pub index_entries: usize,
    /// Everything wrong with the indexes.
    pub index_issues: Vec<IndexIssue>,
    /// Records held in quarantine by an earlier repair.
    pub quarantined: usize,
    /// The commit seal against the database.
    pub seal: SealStatus,
    /// The records do not add up to the digest that every commit keeps with them: updates the
    /// engine recorded as committed are missing from the records (for example because a blob
    /// file of the engine was deleted), or records were changed outside the store.
    pub records_mismatch: bool,
}

impl VerifyReport {
    /// True when nothing is damaged, no index is out of step and no commit is missing.
    pub fn is_clean(&self) -> bool {
        self.damaged_records.is_empty()
            && self.index_issues.is_empty()
            && matches!(self.seal, SealStatus::Current | SealStatus::Lagging)
            && !self.records_mismatch
    }
}

/// What [`EncryptedStore::repair`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepairReport {
    /// Records that authenticate and stay.
    pub records_kept: usize,
    /// Ids of the records moved into quarantine.
    pub quarantined: Vec<String>,
    /// Index entries removed because they led nowhere or to the wrong record.
    pub index_entries_removed: usize,
    /// Index entries written because a record lacked them.
    pub index_entries_added: usize,
    /// Values that more than one record holds: only the record with the smallest id is indexed.
    pub duplicates: Vec<IndexIssue>,
    /// Commits the seal vouched for that the database no longer has, now acknowledged.
    pub lost_commits: u64,
}

/// The records of a store, sorted into those that authenticate and those that do not.
struct Census {
    good: BTreeMap<String, Plain>,
    bad: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Where each indexed value should lead: `(field, keyed hash)` to record id.
type Wanted = BTreeMap<(usize, [u8; 32]), String>;

impl EncryptedStore {
    /// Authenticates every record and every index entry, and compares the commit seal with the
    /// database. Changes nothing; writes wait while it runs.
    ///
    /// # Errors
    ///
    /// Damage is reported in the [`VerifyReport`], not as an error; errors are for I/O failures
    /// and for a database the engine cannot read at all.
    pub fn verify(&self) -> Result<VerifyReport, Error> {
        guarded(|| {
            let _writer = self.writer();
            let census = self.census()?;
            let (wanted, duplicates) = self.wanted(&census);
            let mut report = VerifyReport {
                records: census.good.len(),
                damaged_records: census.bad.iter().map(|(k, _)| lossy(k)).collect(),
                quarantined: self.engine.quarantine.len(),
                seal: self.seal_status()?,
                records_mismatch: !self.engine.records_match_digest()?,
                ..VerifyReport::default()
            };
            let damaged: BTreeSet<&str> =
                report.damaged_records.iter().map(String::as_str).collect();
            let mut found = BTreeSet::new();
            for field in Indexed::ALL {
                for entry in self.engine.index(field).iter() {
                    let (hash, id) = entry.map_err(|e| self.engine.sled_err(e))?;
                    report.index_entries += 1;
                    let id = lossy(&id);
                    let key = (field as usize, hash_key(&hash));
                    if wanted.get(&key) == Some(&id) {
                        found.insert(key);
                        continue;
                    }
                    let problem = match () {
                        _ if token::validate_id(&id).is_err() => IndexProblem::Malformed,
                        _ if damaged.contains(id.as_str()) => IndexProblem::DamagedRecord,
                        _ if census.good.contains_key(&id) => IndexProblem::WrongRecord,
                        _ => IndexProblem::Dangling,
                    };
                    report.index_issues.push(IndexIssue {
                        index: field.name(),
                        id,
                        problem,
                    });
                }
            }
            for ((field, hash), id) in &wanted {
                if !found.contains(&(*field, *hash)) {
                    let index = Indexed::ALL[*field].name();
                    let issue = IndexIssue {
                        index,
                        id: id.clone(),
                        problem: IndexProblem::Missing,
                    };
                    report.index_issues.push(issue);
                }
            }
            report.index_issues.extend(duplicates);
            Ok(report)
        })
    }

    /// Rebuilds the four indexes from the records that authenticate, moves the records that do
    /// not into a quarantine tree (kept as raw bytes, never deleted), and, when the commit seal
    /// said commits were lost or the records did not add up to their digest, acknowledges the
    /// loss: the digest is recomputed from the records that are left and the store is sealed
    /// afresh. The salvage is one atomic commit, made durable before returning; a crash before
    /// the digest and seal are updated leaves a store that still asks for a repair.
    ///
    /// Afterwards [`verify`](Self::verify) is clean and the store opens normally. What was lost
    /// stays lost: repair salvages what is left, it cannot bring back what the files no longer
    /// hold.
    ///
    /// # Errors
    ///
    /// I/O failures, and a database the engine cannot read at all; nothing is changed then.
    pub fn repair(&self) -> Result<RepairReport, Error> {
        guarded(|| {
            let mut writer = self.writer();
            let census = self.census()?;
            let (wanted, duplicates) = self.wanted(&census);
            let mut report = RepairReport {
                records_kept: census.good.len(),
                duplicates,
                ..RepairReport::default()
            };
            let mut changes = self.quarantine_changes(&census, &mut report)?;
            self.index_changes(&wanted, &mut changes, &mut report)?;
            let counter = self.engine.next_id()?;
            let ids = census
                .good
                .keys()
                .cloned()
                .chain(census.bad.iter().map(|(k, _)| lossy(k)));
            let next = ids.fold(counter, |n, id| token::next_after(n, &id));
            if next != counter {
                changes.push(Change::next_id(next));
            }
            // Counted before the repair's own commit, which moves the generation on by one.
            report.lost_commits = self.lost_commits()?;
            self.engine.commit(&changes)?;
            self.engine.reset_records_digest()?;
            self.reseal(&mut writer, report.lost_commits)?;
            Ok(report)
        })
    }

    /// Reads and sorts every record.
    fn census(&self) -> Result<Census, Error> {
        let mut census = Census {
            good: BTreeMap::new(),
            bad: Vec::new(),
        };
        for entry in self.engine.records.iter() {
            let (key, sealed) = entry.map_err(|e| self.engine.sled_err(e))?;
            match record_id(&key).and_then(|id| Ok((self.decrypt(&id, &sealed)?, id))) {
                Ok((token, id)) => {
                    census.good.insert(id, token);
                }
                Err(_) => census.bad.push((key.to_vec(), sealed.to_vec())),
            }
        }
        Ok(census)
    }

    /// The index entries the good records call for; a value held twice goes to the smaller id.
    fn wanted(&self, census: &Census) -> (Wanted, Vec<IndexIssue>) {
        let mut wanted = Wanted::new();
        let mut duplicates = Vec::new();
        for (id, token) in &census.good {
            for field in Indexed::ALL {
                let Some(value) = field.get(token) else {
                    continue;
                };
                let key = (field as usize, self.keys.index_hash(field, value));
                match wanted.entry(key) {
                    std::collections::btree_map::Entry::Occupied(_) => {
                        let problem = IndexProblem::Duplicate;
                        duplicates.push(IndexIssue {
                            index: field.name(),
                            id: id.clone(),
                            problem,
                        });
                    }
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        slot.insert(id.clone());
                    }
                }
            }
        }
        (wanted, duplicates)
    }

    fn quarantine_changes(
        &self,
        census: &Census,
        report: &mut RepairReport,
    ) -> Result<Vec<Change>, Error> {
        let generation = self.engine.generation()?;
        let mut changes = Vec::new();
        for (key, sealed) in &census.bad {
            // The generation keeps a record quarantined twice from overwriting its first copy.
            let mut quarantine_key = key.clone();
            quarantine_key.push(0);
            quarantine_key.extend_from_slice(&generation.to_be_bytes());
            changes.push(Change::put(
                TreeId::Quarantine,
                quarantine_key,
                sealed.clone(),
            ));
            changes.push(Change::remove(TreeId::Records, key.clone()));
            report.quarantined.push(lossy(key));
        }
        Ok(changes)
    }

    /// Removes the index entries that are not wanted and adds the wanted ones that are missing.
    fn index_changes(
        &self,
        wanted: &Wanted,
        changes: &mut Vec<Change>,
        report: &mut RepairReport,
    ) -> Result<(), Error> {
        let mut present = BTreeSet::new();
        for field in Indexed::ALL {
            for entry in self.engine.index(field).iter() {
                let (hash, id) = entry.map_err(|e| self.engine.sled_err(e))?;
                let key = (field as usize, hash_key(&hash));
                if wanted.get(&key).map(String::as_bytes) == Some(&id[..]) {
                    present.insert(key);
                } else {
                    changes.push(Change::remove(TreeId::Index(field), hash.to_vec()));
                    report.index_entries_removed += 1;
                }
            }
        }
        for ((field, hash), id) in wanted {
            if !present.contains(&(*field, *hash)) {
                let tree = TreeId::Index(Indexed::ALL[*field]);
                changes.push(Change::put(tree, hash.to_vec(), id.as_bytes()));
                report.index_entries_added += 1;
            }
        }
        Ok(())
    }

    /// How many commits the seal vouches for beyond the database.
    fn lost_commits(&self) -> Result<u64, Error> {
        let generation = self.engine.generation()?;
        Ok(match crate::seal::SealFile::read(&self.path, &self.keys)? {
            Sealed::At(sealed) if sealed > generation => sealed - generation,
            _ => 0,
        })
    }

    /// Makes the repair durable and seals the store afresh, above the `lost` commits the old
    /// seal vouched for beyond the database before the repair.
    fn reseal(&self, writer: &mut Writer, lost: u64) -> Result<(), Error> {
        let generation = self.engine.generation()?;
        // Start above anything the old seal vouched for, so its leftovers can never lead.
        let generation = self.engine.raise_generation(generation + lost + 1)?;
        self.sync(writer)?;
        writer.seal.reset(&self.keys, generation)?;
        writer.sealing = true;
        Ok(())
    }

    fn seal_status(&self) -> Result<SealStatus, Error> {
        let generation = self.engine.generation()?;
        Ok(match crate::seal::SealFile::read(&self.path, &self.keys)? {
            Sealed::Missing => SealStatus::Missing,
            Sealed::Damaged => SealStatus::Damaged,
            Sealed::At(s) if s > generation => SealStatus::Ahead {
                missing_commits: s - generation,
            },
            Sealed::At(s) if s < generation => SealStatus::Lagging,
            Sealed::At(_) => SealStatus::Current,
        })
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An index key as a fixed array; a key of another length (damage) maps to all zeros, which no
/// wanted entry has.
fn hash_key(bytes: &[u8]) -> [u8; 32] {
    bytes.try_into().unwrap_or([0; 32])
}
