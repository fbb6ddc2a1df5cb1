//! A disk held in memory, for deterministic simulations: what a server
//! "persisted" survives a simulated crash because the simulation keeps the
//! `MemoryDisk`, and nothing touches the real filesystem or threads.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Default)]
pub(crate) struct DiskImage {
    pub logs: BTreeMap<u64, Vec<u8>>,
    pub meta: HashMap<String, Vec<u8>>,
    pub snapshot: Option<Vec<u8>>,
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
