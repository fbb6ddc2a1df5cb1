//! The FSM: applies committed entries to the state store, and takes and
//! installs snapshots (kept as a file beside the log; the format is in
//! [`crate::raft::snapshot`]).

use std::io::{self, BufReader, BufWriter, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use caravan_state::{State, StateStore};
use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};

use crate::raft::memory_disk::MemoryDisk;
use crate::raft::snapshot::{self, Loaded};
use crate::raft::types::{
    LogId, RaftResponse, Snapshot, SnapshotData, SnapshotMeta, StoredMembership, TypeConfig,
};

/// The snapshot directory beside the Raft log, in the server's data dir.
pub const SNAPSHOT_DIR: &str = "snapshots";
/// The snapshot's file name inside the snapshot directory.
pub const SNAPSHOT_FILE: &str = "state.snap";

#[derive(Default)]
struct Applied {
    last_applied: Option<LogId>,
    membership: StoredMembership,
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
    /// The metadata of the snapshot kept at `place` (its bytes stay there,
    /// not in memory).
    current: Mutex<Option<SnapshotMeta>>,
}

/// openraft's view of the state store. Clones share everything.
#[derive(Clone)]
pub struct StateMachine {
    shared: Arc<Shared>,
}

impl StateMachine {
    /// Opens the state machine, restoring the state from the last snapshot
    /// in `dir` if there is one; openraft then replays the log after it.
    /// The directory is made `0700` and the file is `0600`. A snapshot that
    /// fails its checksum is an error naming the file, never loaded.
    pub fn open(dir: &Path, store: Arc<StateStore>) -> io::Result<Self> {
        caravan_files::create_private_dir(dir)?;
        caravan_files::remove_temporaries(&dir.join(SNAPSHOT_FILE))?;
        Self::open_at(SnapshotPlace::Dir(dir.to_path_buf()), store)
    }

    /// Opens the state machine with snapshots kept at `place`. The snapshot
    /// is read once, as a stream, and verified as it is read.
    pub fn open_at(place: SnapshotPlace, store: Arc<StateStore>) -> io::Result<Self> {
        let (loaded, name) = match &place {
            SnapshotPlace::Dir(dir) => {
                let path = dir.join(SNAPSHOT_FILE);
                let name = path.display().to_string();
                let loaded = match std::fs::File::open(&path) {
                    Ok(file) => {
                        caravan_files::set_mode(&path, caravan_files::PRIVATE_FILE_MODE)?;
                        Some(snapshot::read(BufReader::new(file), None))
                    }
                    Err(error) if error.kind() == io::ErrorKind::NotFound => None,
                    Err(error) => {
                        return Err(io::Error::new(
                            error.kind(),
                            format!("failed to read {name}: {error}"),
                        ))
                    }
                };
                (loaded, name)
            }
            SnapshotPlace::Memory(disk) => (
                disk.image()
                    .snapshot
                    .as_deref()
                    .map(|bytes| snapshot::read(bytes, None)),
                "the in-memory snapshot".into(),
            ),
        };
        let machine = Self {
            shared: Arc::new(Shared {
                store,
                applied: Mutex::new(Applied::default()),
                place,
                current: Mutex::new(None),
            }),
        };
        if let Some(loaded) = loaded {
            let loaded = loaded.map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("data loss: {name}: {error}; refusing to start from it"),
                )
            })?;
            let meta = loaded.meta.clone();
            machine.install(loaded, &name);
            *lock(&machine.shared.current) = Some(meta);
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
            .and_then(|meta| meta.last_log_id)
    }

    /// Swaps a verified snapshot's state in for the live one.
    fn install(&self, loaded: Loaded, name: &str) {
        for section in &loaded.skipped {
            tracing::warn!(
                snapshot = name,
                section,
                "skipped a snapshot section this version does not know (written by a newer \
                 version)"
            );
        }
        let mut applied = lock(&self.shared.applied);
        self.shared.store.install(loaded.state);
        applied.last_applied = loaded.meta.last_log_id;
        applied.membership = loaded.meta.last_membership;
    }

    /// Writes `state` as the current snapshot at the snapshot place and
    /// returns it, ready to be read from its start.
    fn write_snapshot(&self, meta: &SnapshotMeta, state: &State) -> io::Result<SnapshotData> {
        match &self.shared.place {
            SnapshotPlace::Dir(dir) => {
                let mut file =
                    caravan_files::write_private_atomic_with(&dir.join(SNAPSHOT_FILE), |file| {
                        snapshot::write(BufWriter::with_capacity(1 << 16, file), meta, state)
                            .map(|_| ())
                    })?;
                file.seek(SeekFrom::Start(0))?;
                Ok(SnapshotData::File(file))
            }
            SnapshotPlace::Memory(disk) => {
                let bytes = snapshot::write(Vec::new(), meta, state)?;
                disk.image().snapshot = Some(bytes.clone());
                Ok(SnapshotData::from(bytes))
            }
        }
    }

    /// Keeps a snapshot that arrived from a leader (already verified) as
    /// the current one: its bytes as they came, or, from a leader of an
    /// older version, the state rewritten in the current format.
    fn keep_received(&self, data: SnapshotData, loaded: &Loaded) -> io::Result<()> {
        if loaded.version != snapshot::SNAPSHOT_VERSION {
            return self.write_snapshot(&loaded.meta, &loaded.state).map(|_| ());
        }
        match (&self.shared.place, data) {
            (SnapshotPlace::Memory(disk), data) => {
                disk.image().snapshot = Some(data.into_bytes()?);
                Ok(())
            }
            (SnapshotPlace::Dir(dir), SnapshotData::Bytes(bytes)) => {
                caravan_files::write_private_atomic(&dir.join(SNAPSHOT_FILE), bytes.get_ref())
            }
            (SnapshotPlace::Dir(dir), SnapshotData::File(mut source)) => {
                source.seek(SeekFrom::Start(0))?;
                caravan_files::write_private_atomic_with(&dir.join(SNAPSHOT_FILE), |file| {
                    io::copy(&mut source, file).map(|_| ())
                })
                .map(|_| ())
            }
        }
    }

    /// The kept snapshot, opened at its start, and its metadata (read from
    /// it, so the two always belong together).
    fn open_current(&self) -> io::Result<Option<(SnapshotMeta, SnapshotData)>> {
        let mut data = match &self.shared.place {
            SnapshotPlace::Dir(dir) => match std::fs::File::open(dir.join(SNAPSHOT_FILE)) {
                Ok(file) => SnapshotData::File(file),
                Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(error) => return Err(error),
            },
            SnapshotPlace::Memory(disk) => match disk.image().snapshot.clone() {
                Some(bytes) => SnapshotData::from(bytes),
                None => return Ok(None),
            },
        };
        let meta = snapshot::read_meta(BufReader::new(&mut data))?;
        data.seek(SeekFrom::Start(0))?;
        Ok(Some((meta, data)))
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
        let data = self
            .blocking(move || machine.write_snapshot(&file_meta, &state))
            .await?;
        *lock(&self.shared.current) = Some(meta.clone());
        Ok(Snapshot {
            meta,
            snapshot: data,
        })
    }
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
        // The whole batch is applied to one copy of the state, published
        // (and its watches fired) once; writers hear back after that, so a
        // reader they tell sees their write.
        let mut batch = self.shared.store.batch();
        let mut last_applied = None;
        let mut membership = None;
        let mut responders = Vec::new();
        let mut failed = None;
        loop {
            let (entry, responder) = match entries.try_next().await {
                Ok(Some(next)) => next,
                Ok(None) => break,
                Err(error) => {
                    failed = Some(error);
                    break;
                }
            };
            let index = entry.log_id.index;
            let response = match entry.payload {
                EntryPayload::Blank => {
                    batch.note_index(index);
                    RaftResponse(None)
                }
                EntryPayload::Normal(request) => RaftResponse(Some(batch.apply(index, &request.0))),
                EntryPayload::Membership(changed) => {
                    membership = Some(StoredMembership::new(Some(entry.log_id), changed));
                    batch.note_index(index);
                    RaftResponse(None)
                }
            };
            last_applied = Some(entry.log_id);
            responders.push((responder, response));
        }
        {
            let mut applied = lock(&self.shared.applied);
            batch.commit();
            if let Some(membership) = membership {
                applied.membership = membership;
            }
            if last_applied.is_some() {
                applied.last_applied = last_applied;
            }
        }
        for (responder, response) in responders {
            if let Some(responder) = responder {
                responder.send(response);
            }
        }
        match failed {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        // Decoded into a new state and verified whole before anything
        // changes: a damaged snapshot leaves the live state and the kept
        // file as they were.
        let machine = self.clone();
        let expected = meta.clone();
        let loaded = self
            .blocking(move || {
                let mut data = snapshot;
                data.seek(SeekFrom::Start(0))?;
                let loaded = snapshot::read(BufReader::new(&mut data), Some(&expected)).map_err(
                    |error| {
                        io::Error::new(
                            error.kind(),
                            format!("the snapshot from the leader: {error}"),
                        )
                    },
                )?;
                machine.keep_received(data, &loaded)?;
                Ok(loaded)
            })
            .await?;
        self.install(loaded, "the snapshot from the leader");
        *lock(&self.shared.current) = Some(meta.clone());
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let machine = self.clone();
        let current = self.blocking(move || machine.open_current()).await?;
        Ok(current.map(|(meta, snapshot)| Snapshot { meta, snapshot }))
    }
}

#[cfg(test)]
#[path = "state_machine_tests.rs"]
pub(crate) mod tests;
