//! A disk held in memory, for deterministic simulations: what a server
//! "persisted" survives a simulated crash because the simulation keeps the
//! `MemoryDisk`, and nothing touches the real filesystem. The Raft log's
//! group-commit writer is the same one redb uses (`log_store`), run as a
//! task of the simulated host rather than on a thread.
//!
//! Like a real disk it tells written data from synced data: the Raft log's
//! writes land in `logs` and `meta` (the page cache) and survive a crash
//! only once [`DiskImage::sync`] (the fsync) has run. Opening a log on the
//! disk is a restart after a crash (power loss): [`DiskImage::crash`]
//! drops every unsynced write first. The snapshot is written atomically
//! and synced at once, as `caravan_files::write_private_atomic` does.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Default, Clone)]
struct Synced {
    logs: BTreeMap<u64, Vec<u8>>,
    meta: HashMap<String, Vec<u8>>,
}

#[derive(Default)]
pub(crate) struct DiskImage {
    /// Log entries as written (not necessarily synced).
    pub logs: BTreeMap<u64, Vec<u8>>,
    /// Vote, commit mark, purge mark as written.
    pub meta: HashMap<String, Vec<u8>>,
    pub snapshot: Option<Vec<u8>>,
    synced: Synced,
    /// Log entries and meta records crashes have lost so far.
    lost: usize,
}

impl DiskImage {
    /// The fsync: everything written so far survives a crash.
    pub(crate) fn sync(&mut self) {
        self.synced = Synced {
            logs: self.logs.clone(),
            meta: self.meta.clone(),
        };
    }

    /// A crash: the writes not synced are gone.
    pub(crate) fn crash(&mut self) {
        let mut lost = 0;
        lost += self
            .logs
            .iter()
            .filter(|(index, bytes)| self.synced.logs.get(index) != Some(bytes))
            .count();
        lost += self
            .synced
            .logs
            .keys()
            .filter(|index| !self.logs.contains_key(index))
            .count();
        lost += self
            .meta
            .iter()
            .filter(|(key, value)| self.synced.meta.get(*key) != Some(value))
            .count();
        self.lost += lost;
        self.logs = self.synced.logs.clone();
        self.meta = self.synced.meta.clone();
    }
}

/// Shared handle to an in-memory disk.
#[derive(Clone, Default)]
pub struct MemoryDisk {
    image: Arc<Mutex<DiskImage>>,
}

impl MemoryDisk {
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn image(&self) -> MutexGuard<'_, DiskImage> {
        match self.image.lock() {
            Ok(image) => image,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// How many written but unsynced log records (entries, truncations,
    /// purges, votes, commit marks) crashes have thrown away so far.
    pub fn lost_to_crashes(&self) -> usize {
        self.image().lost
    }

    /// Whether something was written but not yet synced: a crash now
    /// would lose it. Lets a simulation crash a server in that window.
    pub fn has_unsynced(&self) -> bool {
        let image = self.image();
        image.logs != image.synced.logs || image.meta != image.synced.meta
    }
}

/// Where a server keeps its Raft log and snapshots.
#[derive(Clone, Default)]
pub enum Storage {
    /// redb and snapshot files under the server's data dir.
    #[default]
    Disk,
    /// In memory (simulations).
    Memory(MemoryDisk),
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Storage::Disk => write!(f, "Disk"),
            Storage::Memory(_) => write!(f, "Memory"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_loses_what_was_not_synced() {
        let disk = MemoryDisk::new();
        {
            let mut image = disk.image();
            image.logs.insert(1, b"one".to_vec());
            image.meta.insert("vote".into(), b"v1".to_vec());
            image.sync();
        }
        assert!(!disk.has_unsynced());
        {
            let mut image = disk.image();
            image.logs.insert(2, b"two".to_vec());
            image.logs.remove(&1);
            image.meta.insert("vote".into(), b"v2".to_vec());
            image.snapshot = Some(b"snap".to_vec());
        }
        assert!(disk.has_unsynced());
        {
            let mut image = disk.image();
            image.crash();
        }
        let image = disk.image();
        assert_eq!(image.logs.keys().copied().collect::<Vec<_>>(), vec![1]);
        assert_eq!(image.meta["vote"], b"v1");
        assert_eq!(image.snapshot.as_deref(), Some(&b"snap"[..]));
        drop(image);
        assert_eq!(disk.lost_to_crashes(), 3);
    }
}
