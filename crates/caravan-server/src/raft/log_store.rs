//! The Raft log on disk, in redb, with group commit.
//!
//! openraft hands us appends without waiting for earlier ones to be durable.
//! A single writer thread takes every queued write (appends, votes, commit
//! marks, truncations, purges) in call order, puts them in one redb
//! transaction with one fsync, and only then reports them durable. Under
//! concurrent load many client writes share an fsync, which is what lets
//! the write rate exceed the disk's fsync rate.
//!
//! Opening the log also checks it against the snapshot beside it and
//! refuses to start when acknowledged writes would be missing: see
//! [`check_against_snapshot`].
//!
//! Entries are also kept in memory from the moment `append` is called (the
//! log between snapshots is bounded by the snapshot policy), so replication
//! and the state machine read without touching the disk.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};

use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use crate::raft::memory_disk::{DiskImage, MemoryDisk};
use crate::raft::state_machine::{split_snapshot, SNAPSHOT_DIR, SNAPSHOT_FILE};
use crate::raft::types::{Entry, LogId, SnapshotMeta, TypeConfig, Vote};

const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("logs");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_PURGED: &str = "last_purged";
/// Upper bound on operations folded into one transaction.
const MAX_BATCH: usize = 4096;

#[derive(Default)]
struct LogCache {
    vote: Option<Vote>,
    committed: Option<LogId>,
    last_purged: Option<LogId>,
    entries: BTreeMap<u64, Entry>,
}

enum WriteOp {
    Append {
        entries: Vec<(u64, Vec<u8>)>,
        done: IOFlushed<TypeConfig>,
    },
    Meta {
        key: &'static str,
        value: Vec<u8>,
        done: Option<oneshot::Sender<Result<(), String>>>,
    },
    TruncateFrom {
        index: u64,
        done: oneshot::Sender<Result<(), String>>,
    },
    PurgeUpTo {
        index: u64,
        purged: Vec<u8>,
        done: oneshot::Sender<Result<(), String>>,
    },
}

/// Where writes go: the group-commit thread in front of redb, or straight
/// into an in-memory disk (simulations).
enum Writer {
    Thread(Mutex<mpsc::Sender<WriteOp>>),
    Memory(MemoryDisk),
}

struct Shared {
    cache: Mutex<LogCache>,
    writer: Writer,
}

/// The Raft log storage. Clones share the same log.
#[derive(Clone)]
pub struct LogStore {
    shared: Arc<Shared>,
}

fn storage_error(error: impl std::fmt::Display) -> io::Error {
    io::Error::other(error.to_string())
}

impl LogStore {
    /// Opens (or creates) the log at `path` and loads it into memory. The
    /// file is `0600`. The snapshot the state machine keeps beside it
    /// (`snapshots/state.snap` in the same directory) is read too, and
    /// the two must agree (see [`check_against_snapshot`]); otherwise the
    /// error, starting `data loss: <file>`, says what is missing.
    pub fn open(path: &Path) -> io::Result<Self> {
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let snapshot_path = dir.join(SNAPSHOT_DIR).join(SNAPSHOT_FILE);
        let snapshot_name = snapshot_path.display().to_string();
        let log_name = path.display().to_string();
        let snapshot = match std::fs::read(&snapshot_path) {
            Ok(bytes) => Some(
                split_snapshot(&bytes)
                    .map_err(|error| data_loss(&snapshot_name, error))?
                    .0,
            ),
            Err(error) if error.kind() == io::ErrorKind::NotFound => None,
            Err(error) => {
                return Err(io::Error::new(
                    error.kind(),
                    format!("failed to read {snapshot_name}: {error}"),
                ))
            }
        };
        let has_log = std::fs::metadata(path).is_ok_and(|metadata| metadata.len() > 0);
        if let (false, Some(index)) = (has_log, snapshot_index(snapshot.as_ref())) {
            return Err(data_loss(
                &log_name,
                format!(
                    "the Raft log is missing or empty, but the snapshot {snapshot_name} \
                     (up to index {index}) exists: starting from the snapshot alone would \
                     lose the writes acknowledged after it and the stored vote and term; \
                     restore the file, or remove {} to start this server afresh",
                    dir.display()
                ),
            ));
        }
        caravan_files::ensure_private_file(path)?;
        let db = Database::create(path).map_err(|error| in_file(&log_name, error))?;
        {
            let txn = db
                .begin_write()
                .map_err(|error| in_file(&log_name, error))?;
            txn.open_table(LOGS)
                .map_err(|error| in_file(&log_name, error))?;
            txn.open_table(META)
                .map_err(|error| in_file(&log_name, error))?;
            txn.commit().map_err(|error| in_file(&log_name, error))?;
        }
        let cache = load(&db).map_err(|error| in_file(&log_name, error))?;
        check_against_snapshot(&cache, snapshot.as_ref(), &log_name, &snapshot_name)?;
        let (sender, receiver) = mpsc::channel();
        std::thread::Builder::new()
            .name("raft-log-writer".to_string())
            .spawn(move || writer_loop(db, receiver))?;
        Ok(Self {
            shared: Arc::new(Shared {
                cache: Mutex::new(cache),
                writer: Writer::Thread(Mutex::new(sender)),
            }),
        })
    }

    /// A log kept on an in-memory disk, written synchronously.
    pub fn in_memory(disk: MemoryDisk) -> io::Result<Self> {
        let (cache, snapshot) = {
            let image = disk.image();
            let snapshot = match &image.snapshot {
                Some(bytes) => Some(
                    split_snapshot(bytes)
                        .map_err(|error| data_loss("the in-memory snapshot", error))?
                        .0,
                ),
                None => None,
            };
            (load_image(&image)?, snapshot)
        };
        check_against_snapshot(
            &cache,
            snapshot.as_ref(),
            "the in-memory log",
            "the in-memory snapshot",
        )?;
        Ok(Self {
            shared: Arc::new(Shared {
                cache: Mutex::new(cache),
                writer: Writer::Memory(disk),
            }),
        })
    }

    fn cache(&self) -> MutexGuard<'_, LogCache> {
        match self.shared.cache.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn send(&self, op: WriteOp) -> io::Result<()> {
        match &self.shared.writer {
            Writer::Thread(sender) => {
                let sender = match sender.lock() {
                    Ok(guard) => guard,
                    Err(poisoned) => poisoned.into_inner(),
                };
                sender
                    .send(op)
                    .map_err(|_| io::Error::other("the raft log writer has stopped"))
            }
            Writer::Memory(disk) => {
                apply_to_image(&mut disk.image(), &op);
                complete(op, &Ok(()));
                Ok(())
            }
        }
    }

    /// The id of the last entry in the log (or the last purged one).
    pub fn last_log_id(&self) -> Option<LogId> {
        let cache = self.cache();
        cache
            .entries
            .values()
            .next_back()
            .map(|entry| entry.log_id)
            .or(cache.last_purged)
    }

    async fn wait(receiver: oneshot::Receiver<Result<(), String>>) -> io::Result<()> {
        receiver
            .await
            .map_err(|_| io::Error::other("the raft log writer has stopped"))?
            .map_err(io::Error::other)
    }
}

fn data_loss(file: &str, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("data loss: {file}: {why}"),
    )
}

fn in_file(file: &str, error: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{file}: {error}"))
}

fn snapshot_index(snapshot: Option<&SnapshotMeta>) -> Option<u64> {
    snapshot
        .and_then(|meta| meta.last_log_id)
        .map(|log_id| log_id.index)
}

/// The rule is that a server never starts with acknowledged writes
/// missing. Given the log as loaded and the snapshot beside it:
///
/// - a snapshot exists but the log holds no vote: the log file is new or
///   was emptied (every server that has a snapshot has voted or accepted a
///   leader first), so the entries after the snapshot and the term are
///   gone;
/// - the log was compacted up to index P but the snapshot is missing or
///   ends before P: openraft purges only what a stored snapshot covers,
///   so the entries up to P exist nowhere.
///
/// A log behind its snapshot is fine otherwise (a follower that installed
/// a snapshot), as is a log with no snapshot (never compacted).
fn check_against_snapshot(
    cache: &LogCache,
    snapshot: Option<&SnapshotMeta>,
    log_name: &str,
    snapshot_name: &str,
) -> io::Result<()> {
    let snapshot_index = snapshot_index(snapshot);
    if let (None, Some(index)) = (cache.vote, snapshot_index) {
        return Err(data_loss(
            log_name,
            format!(
                "the Raft log holds no vote or term (it is new or was emptied), but the \
                 snapshot {snapshot_name} (up to index {index}) exists: the writes \
                 acknowledged after the snapshot would be lost"
            ),
        ));
    }
    if let Some(purged) = cache.last_purged {
        if snapshot_index.is_none_or(|index| index < purged.index) {
            let found = match snapshot_index {
                Some(index) => format!("ends at index {index}"),
                None => "is missing".to_string(),
            };
            return Err(data_loss(
                snapshot_name,
                format!(
                    "the Raft log {log_name} was compacted up to index {}, but the snapshot \
                     that must cover those entries {found}: acknowledged writes would be lost",
                    purged.index
                ),
            ));
        }
    }
    Ok(())
}

fn load(db: &Database) -> io::Result<LogCache> {
    let txn = db.begin_read().map_err(storage_error)?;
    let meta = txn.open_table(META).map_err(storage_error)?;
    let read_meta = |key: &str| -> io::Result<Option<Vec<u8>>> {
        Ok(meta
            .get(key)
            .map_err(storage_error)?
            .map(|value| value.value().to_vec()))
    };
    let mut cache = LogCache::default();
    if let Some(bytes) = read_meta(KEY_VOTE)? {
        cache.vote = Some(serde_json::from_slice(&bytes).map_err(storage_error)?);
    }
    if let Some(bytes) = read_meta(KEY_COMMITTED)? {
        cache.committed = serde_json::from_slice(&bytes).map_err(storage_error)?;
    }
    if let Some(bytes) = read_meta(KEY_PURGED)? {
        cache.last_purged = serde_json::from_slice(&bytes).map_err(storage_error)?;
    }
    let logs = txn.open_table(LOGS).map_err(storage_error)?;
    for item in logs.iter().map_err(storage_error)? {
        let (index, value) = item.map_err(storage_error)?;
        let entry: Entry = serde_json::from_slice(value.value()).map_err(storage_error)?;
        cache.entries.insert(index.value(), entry);
    }
    Ok(cache)
}

fn load_image(image: &DiskImage) -> io::Result<LogCache> {
    fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
        serde_json::from_slice(bytes).map_err(storage_error)
    }
    let mut cache = LogCache::default();
    if let Some(bytes) = image.meta.get(KEY_VOTE) {
        cache.vote = Some(decode(bytes)?);
    }
    if let Some(bytes) = image.meta.get(KEY_COMMITTED) {
        cache.committed = decode(bytes)?;
    }
    if let Some(bytes) = image.meta.get(KEY_PURGED) {
        cache.last_purged = decode(bytes)?;
    }
    for (index, bytes) in &image.logs {
        cache.entries.insert(*index, decode(bytes)?);
    }
    Ok(cache)
}

fn apply_to_image(image: &mut DiskImage, op: &WriteOp) {
    match op {
        WriteOp::Append { entries, .. } => {
            for (index, bytes) in entries {
                image.logs.insert(*index, bytes.clone());
            }
        }
        WriteOp::Meta { key, value, .. } => {
            image.meta.insert(key.to_string(), value.clone());
        }
        WriteOp::TruncateFrom { index, .. } => {
            drop(image.logs.split_off(index));
        }
        WriteOp::PurgeUpTo { index, purged, .. } => {
            image.logs = image.logs.split_off(&(index + 1));
            image.meta.insert(KEY_PURGED.to_string(), purged.clone());
        }
    }
}

/// Tells whoever waits on `op` how its write went.
fn complete(op: WriteOp, outcome: &Result<(), String>) {
    match op {
        WriteOp::Append { done, .. } => {
            done.io_completed(outcome.clone().map_err(io::Error::other));
        }
        WriteOp::Meta { done, .. } => {
            if let Some(done) = done {
                let _ = done.send(outcome.clone());
            }
        }
        WriteOp::TruncateFrom { done, .. } | WriteOp::PurgeUpTo { done, .. } => {
            let _ = done.send(outcome.clone());
        }
    }
}

fn writer_loop(db: Database, receiver: mpsc::Receiver<WriteOp>) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let outcome = write_batch(&db, &batch).map_err(|error| error.to_string());
        if let Err(error) = &outcome {
            tracing::error!(%error, "raft log write failed");
        }
        for op in batch {
            complete(op, &outcome);
        }
    }
}

fn write_batch(db: &Database, batch: &[WriteOp]) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        let mut logs = txn.open_table(LOGS)?;
        let mut meta = txn.open_table(META)?;
        for op in batch {
            match op {
                WriteOp::Append { entries, .. } => {
                    for (index, bytes) in entries {
                        logs.insert(*index, bytes.as_slice())?;
                    }
                }
                WriteOp::Meta { key, value, .. } => {
                    meta.insert(*key, value.as_slice())?;
                }
                WriteOp::TruncateFrom { index, .. } => {
                    logs.retain_in(*index.., |_, _| false)?;
                }
                WriteOp::PurgeUpTo { index, purged, .. } => {
                    logs.retain_in(..=*index, |_, _| false)?;
                    meta.insert(KEY_PURGED, purged.as_slice())?;
                }
            }
        }
    }
    txn.commit()?;
    Ok(())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        Ok(self
            .cache()
            .entries
            .range(range)
            .map(|(_, entry)| entry.clone())
            .collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.cache().vote)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let cache = self.cache();
        let last = cache
            .entries
            .values()
            .next_back()
            .map(|entry| entry.log_id)
            .or(cache.last_purged);
        Ok(LogState {
            last_purged_log_id: cache.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let value = serde_json::to_vec(vote).map_err(storage_error)?;
        let (done, receiver) = oneshot::channel();
        self.send(WriteOp::Meta {
            key: KEY_VOTE,
            value,
            done: Some(done),
        })?;
        Self::wait(receiver).await?;
        self.cache().vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        let value = serde_json::to_vec(&committed).map_err(storage_error)?;
        self.cache().committed = committed;
        // Not waited for: a lost commit mark only means replaying a little
        // less on restart, and the writer keeps it in order with appends.
        self.send(WriteOp::Meta {
            key: KEY_COMMITTED,
            value,
            done: None,
        })
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.cache().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        {
            let mut cache = self.cache();
            for entry in entries {
                let index = entry.log_id.index;
                encoded.push((index, serde_json::to_vec(&entry).map_err(storage_error)?));
                cache.entries.insert(index, entry);
            }
        }
        self.send(WriteOp::Append {
            entries: encoded,
            done: callback,
        })
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |log_id| log_id.index + 1);
        drop(self.cache().entries.split_off(&from));
        let (done, receiver) = oneshot::channel();
        self.send(WriteOp::TruncateFrom { index: from, done })?;
        Self::wait(receiver).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        {
            let mut cache = self.cache();
            let kept = cache.entries.split_off(&(log_id.index + 1));
            cache.entries = kept;
            cache.last_purged = Some(log_id);
        }
        let purged = serde_json::to_vec(&Some(log_id)).map_err(storage_error)?;
        let (done, receiver) = oneshot::channel();
        self.send(WriteOp::PurgeUpTo {
            index: log_id.index,
            purged,
            done,
        })?;
        Self::wait(receiver).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::state_machine::tests::snapshot_bytes;

    /// Opens again once the previous handle's writer thread let go.
    fn reopen(path: &Path) -> io::Result<LogStore> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match LogStore::open(path) {
                Err(error)
                    if error.to_string().contains("already open")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => return other,
            }
        }
    }

    fn place_snapshot(dir: &Path, index: u64) -> std::path::PathBuf {
        let snapshots = dir.join(SNAPSHOT_DIR);
        std::fs::create_dir_all(&snapshots).unwrap();
        let path = snapshots.join(SNAPSHOT_FILE);
        std::fs::write(&path, snapshot_bytes(index)).unwrap();
        path
    }

    fn error_of(result: io::Result<LogStore>) -> String {
        match result {
            Ok(_) => panic!("opened a log that lost data"),
            Err(error) => error.to_string(),
        }
    }

    #[cfg(unix)]
    #[test]
    fn the_log_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        let store = LogStore::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        drop(store);
        // A file left looser by an older version is tightened.
        caravan_files::set_mode(&path, 0o644).unwrap();
        drop(reopen(&path).unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_missing_log_beside_a_snapshot_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        place_snapshot(dir.path(), 12);
        let path = dir.path().join("raft.redb");
        let error = error_of(LogStore::open(&path));
        assert!(
            error.starts_with(&format!("data loss: {}", path.display())),
            "{error}"
        );
        assert!(error.contains("index 12"), "{error}");
        assert!(!path.exists(), "the refused start must not create the log");
        // An emptied file is the same.
        std::fs::write(&path, b"").unwrap();
        let error = error_of(LogStore::open(&path));
        assert!(error.starts_with("data loss: "), "{error}");
    }

    #[test]
    fn a_new_log_beside_a_snapshot_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        drop(LogStore::open(&path).unwrap());
        place_snapshot(dir.path(), 3);
        let error = error_of(reopen(&path));
        assert!(
            error.starts_with(&format!("data loss: {}", path.display())),
            "{error}"
        );
        assert!(error.contains("no vote"), "{error}");
    }

    #[test]
    fn a_damaged_snapshot_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let snapshot = place_snapshot(dir.path(), 3);
        let mut bytes = std::fs::read(&snapshot).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x04;
        std::fs::write(&snapshot, bytes).unwrap();
        let error = error_of(LogStore::open(&dir.path().join("raft.redb")));
        assert!(
            error.starts_with(&format!("data loss: {}", snapshot.display())),
            "{error}"
        );
        assert!(error.contains("checksum mismatch"), "{error}");
    }

    #[tokio::test]
    async fn a_log_compacted_past_its_snapshot_is_refused() {
        let disk = MemoryDisk::new();
        let mut store = LogStore::in_memory(disk.clone()).unwrap();
        store.save_vote(&Vote::new(2, 1)).await.unwrap();
        store.purge(LogId::new_term_index(2, 20)).await.unwrap();
        drop(store);
        // No snapshot at all.
        let error = error_of(LogStore::in_memory(disk.clone()));
        assert!(error.contains("compacted up to index 20"), "{error}");
        assert!(error.contains("is missing"), "{error}");
        // A snapshot that ends before the compaction.
        disk.image().snapshot = Some(snapshot_bytes(15));
        let error = error_of(LogStore::in_memory(disk.clone()));
        assert!(error.contains("ends at index 15"), "{error}");
        // One that covers it is fine, and so is one ahead of the log.
        disk.image().snapshot = Some(snapshot_bytes(20));
        assert!(LogStore::in_memory(disk.clone()).is_ok());
        disk.image().snapshot = Some(snapshot_bytes(40));
        assert!(LogStore::in_memory(disk.clone()).is_ok());
    }

    #[tokio::test]
    async fn a_voted_log_beside_its_snapshot_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        let mut store = LogStore::open(&path).unwrap();
        store.save_vote(&Vote::new(1, 1)).await.unwrap();
        drop(store);
        place_snapshot(dir.path(), 5);
        let mut store = reopen(&path).unwrap();
        assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(1, 1)));
    }
}
