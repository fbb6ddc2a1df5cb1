//! What the client keeps on disk about its allocations, so a restarted
//! client (even after SIGKILL) finds its tasks again instead of starting
//! them twice: per allocation one file `<state_dir>/allocs/<id>.json` with
//! the allocation as last received, and per task its driver handle, its
//! state and whether its run is complete.
//!
//! Each is saved before the step it makes possible: a start's attempt
//! before the driver is asked to start (so a client killed before the
//! handle was saved asks the driver to find that start instead of making a
//! second), and a task's exit and what follows from it before the driver
//! forgets the exit.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use caravan_api_types::alloc::{AllocDeploymentStatus, Allocation, TaskState};
use caravan_drivers::{StartAttempt, TaskHandle};
use serde::{Deserialize, Serialize};

/// One task as persisted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LocalTask {
    /// The running (or last run) instance, to recover.
    pub handle: Option<TaskHandle>,
    /// A start asked of the driver whose handle is not saved yet (the
    /// client was killed while it ran, if it is still set on restore).
    #[serde(default)]
    pub starting: Option<StartAttempt>,
    pub state: TaskState,
    /// The task is done for good: never started again (Nomad #5945).
    pub run_complete: bool,
}

/// One allocation as persisted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalAlloc {
    pub alloc: Allocation,
    pub tasks: BTreeMap<String, LocalTask>,
    /// The client's health verdict, once made (files saved before it
    /// existed read as none).
    #[serde(default)]
    pub health: Option<AllocDeploymentStatus>,
}

/// The directory of allocation state files.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join("allocs"),
        }
    }

    fn path(&self, alloc_id: &str) -> PathBuf {
        self.dir.join(format!("{alloc_id}.json"))
    }

    pub fn save(&self, local: &LocalAlloc) -> io::Result<()> {
        caravan_files::create_private_dir(&self.dir)?;
        let bytes = serde_json::to_vec(local).map_err(io::Error::other)?;
        caravan_files::write_private_atomic(&self.path(&local.alloc.id), &bytes)
    }

    pub fn remove(&self, alloc_id: &str) -> io::Result<()> {
        match std::fs::remove_file(self.path(alloc_id)) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }

    /// Every allocation saved; an unreadable file is logged and skipped
    /// (its tasks, if any still run, are then unknown to this client).
    pub fn load_all(&self) -> Vec<LocalAlloc> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut allocs = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|ext| ext.to_str()) != Some("json") {
                continue;
            }
            match std::fs::read(&path)
                .map_err(|error| error.to_string())
                .and_then(|bytes| {
                    serde_json::from_slice::<LocalAlloc>(&bytes).map_err(|error| error.to_string())
                }) {
                Ok(local) => allocs.push(local),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "skipping unreadable allocation state")
                }
            }
        }
        allocs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_allocations_load_back_and_removed_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path());
        let local = LocalAlloc {
            alloc: Allocation {
                id: "a1".to_string(),
                ..Allocation::default()
            },
            tasks: BTreeMap::from([(
                "web".to_string(),
                LocalTask {
                    run_complete: true,
                    ..LocalTask::default()
                },
            )]),
            health: None,
        };
        store.save(&local).unwrap();
        std::fs::write(dir.path().join("allocs/broken.json"), b"{").unwrap();
        assert_eq!(store.load_all(), vec![local]);
        store.remove("a1").unwrap();
        store.remove("a1").unwrap();
        assert!(store.load_all().is_empty());
    }
}
