//! The FSM: applies committed entries to the state store, and takes and
//! installs snapshots (kept as a file beside the log).

use std::io::{self, Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use caravan_state::{State, StateStore};
use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};

use crate::memory_disk::MemoryDisk;
use crate::raft_types::{
    LogId, RaftResponse, Snapshot, SnapshotData, SnapshotMeta, StoredMembership, TypeConfig,
};

const SNAPSHOT_FILE: &str = "state.snap";

#[derive(Default)]
struct Applied {
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

/// The bytes of a snapshot: a header line with Raft's metadata, then the
/// serialised state.
#[derive(Serialize, Deserialize)]
struct SnapshotHeader {
    meta: SnapshotMeta,
}

/// Where snapshots are kept.
#[derive(Clone)]
pub enum SnapshotPlace {
    /// A file in this directory.
    Dir(PathBuf),
    /// An in-memory disk (simulations).
    Memory(MemoryDisk),
}

struct Shared {
    store: Arc<StateStore>,
    applied: Mutex<Applied>,
    place: SnapshotPlace,
    current: Mutex<Option<(SnapshotMeta, Arc<Vec<u8>>)>>,
}

/// openraft's view of the state store. Clones share everything.
#[derive(Clone)]
pub struct StateMachine {
    shared: Arc<Shared>,
}

impl StateMachine {
    /// Opens the state machine, restoring the state from the last snapshot
    /// in `dir` if there is one; openraft then replays the log after it.
    pub fn open(dir: &Path, store: Arc<StateStore>) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Self::open_at(SnapshotPlace::Dir(dir.to_path_buf()), store)
    }

    /// Opens the state machine with snapshots kept at `place`.
    pub fn open_at(place: SnapshotPlace, store: Arc<StateStore>) -> io::Result<Self> {
        let existing = match &place {
            SnapshotPlace::Dir(dir) => {
                let path = dir.join(SNAPSHOT_FILE);
                if path.exists() {
                    Some(std::fs::read(&path)?)
                } else {
                    None
                }
            }
            SnapshotPlace::Memory(disk) => disk.image().snapshot.clone(),
        };
        let machine = Self {
            shared: Arc::new(Shared {
                store,
                applied: Mutex::new(Applied::default()),
                place,
                current: Mutex::new(None),
            }),
        };
        if let Some(bytes) = existing {
            let meta = machine.restore(&bytes)?;
            *lock(&machine.shared.current) = Some((meta, Arc::new(bytes)));
        }
        Ok(machine)
    }

    /// The Raft index this machine has applied up to.
    pub fn last_applied(&self) -> Option<LogId> {
        lock(&self.shared.applied).last_applied
    }

    /// The index and term of the last snapshot taken or installed.
    pub fn snapshot_log_id(&self) -> Option<LogId> {
        lock(&self.shared.current)
            .as_ref()
            .and_then(|(meta, _)| meta.last_log_id)
    }

    fn restore(&self, bytes: &[u8]) -> io::Result<SnapshotMeta> {
        let (meta, state) = split_snapshot(bytes)?;
        let mut applied = lock(&self.shared.applied);
        self.shared.store.restore(state).map_err(io::Error::other)?;
        applied.last_applied = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        Ok(meta)
    }

    fn persist(&self, bytes: &[u8]) -> io::Result<()> {
        let dir = match &self.shared.place {
            SnapshotPlace::Dir(dir) => dir,
            SnapshotPlace::Memory(disk) => {
                disk.image().snapshot = Some(bytes.to_vec());
                return Ok(());
            }
        };
        let temporary = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, dir.join(SNAPSHOT_FILE))?;
        std::fs::File::open(dir)?.sync_all()
    }

    /// Runs file work off the async threads; in-memory work runs inline
    /// (a simulation must not involve real threads).
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        match self.shared.place {
            SnapshotPlace::Memory(_) => work(),
            SnapshotPlace::Dir(_) => tokio::task::spawn_blocking(work)
                .await
                .map_err(io::Error::other)?,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn encode(meta: &SnapshotMeta, state: &State) -> io::Result<Vec<u8>> {
    let mut bytes =
        serde_json::to_vec(&SnapshotHeader { meta: meta.clone() }).map_err(io::Error::other)?;
    bytes.push(b'\n');
    serde_json::to_writer(&mut bytes, state).map_err(io::Error::other)?;
    Ok(bytes)
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let (state, meta) = {
            let applied = lock(&self.shared.applied);
            let meta = SnapshotMeta {
                last_log_id: applied.last_applied,
                last_membership: applied.membership.clone(),
            };
            (self.shared.store.snapshot(), meta)
        };
        let machine = self.clone();
        let file_meta = meta.clone();
        let writer = machine.clone();
        let bytes = machine
            .blocking(move || -> io::Result<Vec<u8>> {
                let bytes = encode(&file_meta, &state)?;
                writer.persist(&bytes)?;
                Ok(bytes)
            })
            .await?;
        *lock(&self.shared.current) = Some((meta.clone(), Arc::new(bytes.clone())));
        Ok(Snapshot {
            meta,
            snapshot: Cursor::new(bytes),
        })
    }
}

/// Splits snapshot bytes into Raft's metadata and the serialised state.
pub fn split_snapshot(bytes: &[u8]) -> io::Result<(SnapshotMeta, &[u8])> {
    let split = bytes
        .iter()
        .position(|byte| *byte == b'\n')
        .ok_or_else(|| io::Error::other("corrupt snapshot: no header"))?;
    let header: SnapshotHeader =
        serde_json::from_slice(&bytes[..split]).map_err(io::Error::other)?;
    Ok((header.meta, &bytes[split + 1..]))
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let applied = lock(&self.shared.applied);
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            let index = entry.log_id.index;
            let response = {
                let mut applied = lock(&self.shared.applied);
                let response = match entry.payload {
                    EntryPayload::Blank => {
                        self.shared.store.note_index(index);
                        RaftResponse(None)
                    }
                    EntryPayload::Normal(request) => {
                        RaftResponse(Some(self.shared.store.apply(index, &request.0)))
                    }
                    EntryPayload::Membership(membership) => {
                        applied.membership = StoredMembership::new(Some(entry.log_id), membership);
                        self.shared.store.note_index(index);
                        RaftResponse(None)
                    }
                };
                applied.last_applied = Some(entry.log_id);
                response
            };
            if let Some(responder) = responder {
                responder.send(response);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        let bytes = snapshot.into_inner();
        let stored = self.restore(&bytes)?;
        if stored.last_log_id != meta.last_log_id {
            return Err(io::Error::other(
                "snapshot header does not match the metadata Raft sent",
            ));
        }
        let machine = self.clone();
        let to_persist = bytes.clone();
        self.blocking(move || machine.persist(&to_persist)).await?;
        *lock(&self.shared.current) = Some((meta.clone(), Arc::new(bytes)));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        Ok(lock(&self.shared.current)
            .as_ref()
            .map(|(meta, bytes)| Snapshot {
                meta: meta.clone(),
                snapshot: Cursor::new(bytes.as_ref().clone()),
            }))
    }
}
