//! The FSM: applies committed entries to the state store, and takes and
//! installs snapshots (kept as a file beside the log).

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use caravan_state::{State, StateStore};
use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};

use sha2::{Digest, Sha256};

use crate::raft::memory_disk::MemoryDisk;
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

/// Raft's metadata, the snapshot's header line.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotHeader {
    meta: SnapshotMeta,
}

/// The first line of a snapshot in the current format (version 2):
///
/// ```text
/// CARAVAN-SNAPSHOT 2 sha256:<hex of SHA-256 over everything after this line>
/// {"meta":{...}}
/// <the serialised state>
/// ```
///
/// Version 1 (no checksum line, the file starts at the `{"meta":...}` line)
/// is still read, so data dirs of older versions open; the next snapshot
/// rewrites it as version 2.
const SNAPSHOT_MAGIC: &str = "CARAVAN-SNAPSHOT";
const SNAPSHOT_VERSION: u32 = 2;

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
    /// The directory is made `0700` and the file is `0600`. A snapshot that
    /// fails its checksum is an error naming the file, never loaded.
    pub fn open(dir: &Path, store: Arc<StateStore>) -> io::Result<Self> {
        caravan_files::create_private_dir(dir)?;
        caravan_files::remove_temporaries(&dir.join(SNAPSHOT_FILE))?;
        Self::open_at(SnapshotPlace::Dir(dir.to_path_buf()), store)
    }

    /// Opens the state machine with snapshots kept at `place`.
    pub fn open_at(place: SnapshotPlace, store: Arc<StateStore>) -> io::Result<Self> {
        let (existing, name) = match &place {
            SnapshotPlace::Dir(dir) => {
                let path = dir.join(SNAPSHOT_FILE);
                let bytes = match std::fs::read(&path) {
                    Ok(bytes) => {
                        caravan_files::set_mode(&path, caravan_files::PRIVATE_FILE_MODE)?;
                        Some(bytes)
                    }
                    Err(error) if error.kind() == io::ErrorKind::NotFound => None,
                    Err(error) => {
                        return Err(io::Error::new(
                            error.kind(),
                            format!("failed to read {}: {error}", path.display()),
                        ))
                    }
                };
                (bytes, path.display().to_string())
            }
            SnapshotPlace::Memory(disk) => (
                disk.image().snapshot.clone(),
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
        if let Some(bytes) = existing {
            let meta = machine.restore(&bytes, None).map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("data loss: {name}: {error}; refusing to start from it"),
                )
            })?;
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

    /// Replaces the state with the snapshot's, after checking its checksum
    /// (and, when Raft sent metadata with it, that the two agree).
    fn restore(&self, bytes: &[u8], expected: Option<&SnapshotMeta>) -> io::Result<SnapshotMeta> {
        let (meta, state) = split_snapshot(bytes)?;
        if let Some(expected) = expected {
            if expected.last_log_id != meta.last_log_id {
                return Err(corrupt(
                    "the snapshot header does not match the metadata Raft sent",
                ));
            }
        }
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
        caravan_files::write_private_atomic(&dir.join(SNAPSHOT_FILE), bytes)
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

/// Snapshot bytes in the current format: the checksum line, the header
/// line, the state.
fn encode(meta: &SnapshotMeta, state: &State) -> io::Result<Vec<u8>> {
    let mut body =
        serde_json::to_vec(&SnapshotHeader { meta: meta.clone() }).map_err(io::Error::other)?;
    body.push(b'\n');
    serde_json::to_writer(&mut body, state).map_err(io::Error::other)?;
    Ok(seal(&body))
}

/// Puts the version and checksum line in front of `body`.
fn seal(body: &[u8]) -> Vec<u8> {
    let first = format!(
        "{SNAPSHOT_MAGIC} {SNAPSHOT_VERSION} sha256:{}\n",
        sha256_hex(body)
    );
    let mut bytes = Vec::with_capacity(first.len() + body.len());
    bytes.extend_from_slice(first.as_bytes());
    bytes.extend_from_slice(body);
    bytes
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn corrupt(why: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("corrupt snapshot: {why}"),
    )
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

/// Splits snapshot bytes into Raft's metadata and the serialised state,
/// verifying the checksum first: bytes that fail it are an error, whether
/// they come from the disk or from a leader.
pub fn split_snapshot(bytes: &[u8]) -> io::Result<(SnapshotMeta, &[u8])> {
    let body = if bytes.starts_with(SNAPSHOT_MAGIC.as_bytes()) {
        verify(bytes)?
    } else if bytes.starts_with(b"{") {
        // Version 1: no checksum. The header must be exactly the old one,
        // so a damaged version 2 file cannot pass for a version 1 file.
        tracing::warn!("snapshot has no checksum (written by an older version)");
        bytes
    } else {
        return Err(corrupt("not a Caravan snapshot"));
    };
    let split = body
        .iter()
        .position(|byte| *byte == b'\n')
        .ok_or_else(|| corrupt("no header"))?;
    let header: SnapshotHeader = serde_json::from_slice(&body[..split]).map_err(corrupt)?;
    Ok((header.meta, &body[split + 1..]))
}

/// Checks the version and checksum line; returns what follows it.
fn verify(bytes: &[u8]) -> io::Result<&[u8]> {
    let split = bytes
        .iter()
        .position(|byte| *byte == b'\n')
        .ok_or_else(|| corrupt("no checksum line"))?;
    let line = std::str::from_utf8(&bytes[..split]).map_err(|_| corrupt("bad checksum line"))?;
    let mut words = line.split(' ');
    let (Some(SNAPSHOT_MAGIC), Some(version), Some(sum), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(corrupt(format!("bad checksum line {line:?}")));
    };
    if version != SNAPSHOT_VERSION.to_string() {
        return Err(corrupt(format!(
            "unsupported snapshot version {version:?} (this build reads {SNAPSHOT_VERSION})"
        )));
    }
    let expected = sum
        .strip_prefix("sha256:")
        .ok_or_else(|| corrupt(format!("bad checksum line {line:?}")))?;
    let body = &bytes[split + 1..];
    let actual = sha256_hex(body);
    if actual != expected {
        return Err(corrupt(format!(
            "checksum mismatch (the file says sha256 {expected}, its contents hash to {actual})"
        )));
    }
    Ok(body)
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
        let mut bytes = snapshot.into_inner();
        self.restore(&bytes, Some(meta))?;
        if !bytes.starts_with(SNAPSHOT_MAGIC.as_bytes()) {
            // From a leader of an older version: keep it with a checksum.
            bytes = seal(&bytes);
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Snapshot bytes (current format) of an empty state up to `index`.
    pub(crate) fn snapshot_bytes(index: u64) -> Vec<u8> {
        let meta = SnapshotMeta {
            last_log_id: Some(LogId::new_term_index(1, index)),
            last_membership: StoredMembership::default(),
        };
        encode(&meta, &StateStore::new().snapshot()).unwrap()
    }

    #[test]
    fn snapshots_round_trip_with_a_checksum() {
        let bytes = snapshot_bytes(7);
        assert!(bytes.starts_with(b"CARAVAN-SNAPSHOT 2 sha256:"));
        let (meta, state) = split_snapshot(&bytes).unwrap();
        assert_eq!(meta.last_log_id, Some(LogId::new_term_index(1, 7)));
        assert!(serde_json::from_slice::<State>(state).is_ok());
    }

    #[test]
    fn any_flipped_byte_fails_the_check() {
        let bytes = snapshot_bytes(7);
        let newline = bytes.iter().position(|byte| *byte == b'\n').unwrap();
        for position in [
            0,
            5,
            newline - 1,
            newline + 3,
            bytes.len() / 2,
            bytes.len() - 1,
        ] {
            let mut damaged = bytes.clone();
            damaged[position] ^= 0x01;
            assert!(
                split_snapshot(&damaged).is_err(),
                "a flip at {position} went unnoticed"
            );
        }
        let mut truncated = bytes.clone();
        truncated.truncate(bytes.len() - 1);
        let error = split_snapshot(&truncated).unwrap_err();
        assert!(error.to_string().contains("checksum mismatch"), "{error}");
        // A damaged magic cannot make a version 2 file pass as version 1.
        let mut brace = bytes.clone();
        brace[0] = b'{';
        assert!(split_snapshot(&brace).is_err());
    }

    #[test]
    fn other_versions_are_refused() {
        let bytes = snapshot_bytes(7);
        let text = String::from_utf8(bytes).unwrap();
        let future = text.replacen("CARAVAN-SNAPSHOT 2 ", "CARAVAN-SNAPSHOT 3 ", 1);
        let error = split_snapshot(future.as_bytes()).unwrap_err();
        assert!(error.to_string().contains("version"), "{error}");
    }

    #[test]
    fn version_1_snapshots_still_load() {
        let bytes = snapshot_bytes(7);
        let newline = bytes.iter().position(|byte| *byte == b'\n').unwrap();
        let legacy = &bytes[newline + 1..];
        assert!(legacy.starts_with(b"{\"meta\""));
        let (meta, _) = split_snapshot(legacy).unwrap();
        assert_eq!(meta.last_log_id, Some(LogId::new_term_index(1, 7)));
        // Sealing it gives the current format back.
        assert_eq!(seal(legacy), bytes);
        // A legacy header with anything more is not a legacy header.
        let mut extra = b"{\"meta\":null,\"x\":1}\n{}".to_vec();
        assert!(split_snapshot(&extra).is_err());
        extra.clear();
        assert!(split_snapshot(&extra).is_err());
    }

    #[test]
    fn a_damaged_snapshot_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SNAPSHOT_FILE);
        let mut bytes = snapshot_bytes(7);
        let last = bytes.len() - 2;
        bytes[last] ^= 0x20;
        std::fs::write(&path, &bytes).unwrap();
        let error = match StateMachine::open(dir.path(), Arc::new(StateStore::new())) {
            Ok(_) => panic!("a damaged snapshot was loaded"),
            Err(error) => error.to_string(),
        };
        assert!(error.starts_with("data loss: "), "{error}");
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(error.contains("checksum mismatch"), "{error}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn snapshots_are_written_private() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(SNAPSHOT_DIR);
        let mut machine = StateMachine::open(&dir, Arc::new(StateStore::new())).unwrap();
        let snapshot = machine.build_snapshot().await.unwrap();
        let path = dir.join(SNAPSHOT_FILE);
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&path), 0o600);
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(on_disk, snapshot.snapshot.into_inner());
        assert!(split_snapshot(&on_disk).is_ok());
        // And it loads again.
        let reopened = StateMachine::open(&dir, Arc::new(StateStore::new())).unwrap();
        assert_eq!(reopened.snapshot_log_id(), snapshot.meta.last_log_id);
    }

    #[tokio::test]
    async fn a_damaged_snapshot_from_a_leader_is_not_installed() {
        let disk = MemoryDisk::new();
        let mut machine = StateMachine::open_at(
            SnapshotPlace::Memory(disk.clone()),
            Arc::new(StateStore::new()),
        )
        .unwrap();
        let mut bytes = snapshot_bytes(9);
        let (meta, _) = split_snapshot(&bytes).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0x20;
        assert!(machine
            .install_snapshot(&meta, Cursor::new(bytes))
            .await
            .is_err());
        assert!(disk.image().snapshot.is_none());
        assert_eq!(machine.last_applied(), None);
    }
}
