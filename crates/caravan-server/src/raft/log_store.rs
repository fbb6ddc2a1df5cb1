//! The Raft log on disk, in redb, with group commit.
//!
//! openraft hands us appends without waiting for earlier ones to be durable.
//! A single writer thread takes every queued write (appends, votes, commit
//! marks, truncations, purges) in call order, puts them in one redb
//! transaction with one fsync, and only then reports them durable. Under
//! concurrent load many client writes share an fsync, which is what lets
//! the write rate exceed the disk's fsync rate.
//!
//! The writer ([`writer_loop`]) is one function for both disks a log can
//! live on ([`Disk`]): redb in production, and the simulations' in-memory
//! disk, which loses what was written but not synced when a simulated
//! server crashes. Only writing a batch, syncing it and reading entries
//! back differ between the two, so the simulation runs the production
//! writer's batching, ordering and acknowledgement.
//!
//! Opening the log also checks it against the snapshot beside it and
//! refuses to start when acknowledged writes would be missing: see
//! [`check_against_snapshot`].
//!
//! The most recent entries are also kept in memory, from the moment
//! `append` is called: at most [`CACHE_MAX_ENTRIES`] entries and
//! [`CACHE_MAX_BYTES`] of encoded entries. The cache always holds a
//! contiguous tail of the log, so a read takes the part of its range
//! before the cache from redb (a lagging follower's replication, the
//! replay at start) and the rest from memory. Only entries the writer
//! has made durable are ever evicted, oldest first, so whatever is not
//! cached is in redb.
//!
//! Each entry is stored as a one-byte format version ([`ENTRY_FORMAT`])
//! followed by the entry's JSON. Values that start with `{` are the
//! unversioned JSON of older versions and are read as before; any other
//! version is refused with an error naming the index.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

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
/// At most this many entries are kept in memory.
pub const CACHE_MAX_ENTRIES: usize = 1024;
/// At most this many bytes of (encoded) entries are kept in memory.
pub const CACHE_MAX_BYTES: usize = 16 << 20;
/// redb's own page cache for the log file (its default is 1 GiB, which
/// would keep every page written in memory). Reads past the entry cache
/// are rare (a lagging follower, the replay at start), so this stays small.
pub const REDB_CACHE_BYTES: usize = 16 << 20;
/// The format version byte in front of every stored entry.
pub const ENTRY_FORMAT: u8 = 1;

struct Cached {
    entry: Entry,
    /// Its encoded size, what the cache's byte bound counts.
    bytes: usize,
    /// Whether the writer has made it durable (only those are evicted).
    durable: bool,
}

#[derive(Default)]
struct LogCache {
    vote: Option<Vote>,
    committed: Option<LogId>,
    last_purged: Option<LogId>,
    /// The last entry in the log, cached or not (`None` when the log holds
    /// no entry past the purged ones).
    last: Option<LogId>,
    /// A contiguous tail of the log: every entry from the first key to
    /// `last`. Entries before it are read from the disk.
    entries: BTreeMap<u64, Cached>,
    bytes: usize,
}

impl LogCache {
    fn insert(&mut self, entry: Entry, bytes: usize, durable: bool) {
        let index = entry.log_id.index;
        // An append after a conflict replaces the tail from its index on.
        self.drop_from(index);
        self.last = Some(entry.log_id);
        self.bytes += bytes;
        self.entries.insert(
            index,
            Cached {
                entry,
                bytes,
                durable,
            },
        );
    }

    /// Drops the cached entries from `index` on.
    fn drop_from(&mut self, index: u64) {
        for (_, cached) in self.entries.split_off(&index) {
            self.bytes -= cached.bytes;
        }
    }

    /// Drops the cached entries up to and including `index`.
    fn drop_up_to(&mut self, index: u64) {
        let kept = self.entries.split_off(&(index.saturating_add(1)));
        for cached in std::mem::replace(&mut self.entries, kept).into_values() {
            self.bytes -= cached.bytes;
        }
    }

    /// The first index the cache answers for; reads before it go to the disk.
    fn start(&self) -> u64 {
        match self.entries.keys().next() {
            Some(first) => *first,
            None => self.last.map_or(0, |last| last.index + 1),
        }
    }

    /// Marks these appended entries durable, then evicts what is over the
    /// bounds.
    fn made_durable(&mut self, log_ids: &[LogId]) {
        for log_id in log_ids {
            if let Some(cached) = self.entries.get_mut(&log_id.index) {
                if cached.entry.log_id == *log_id {
                    cached.durable = true;
                }
            }
        }
        self.evict();
    }

    /// Evicts the oldest durable entries while the cache is over a bound.
    fn evict(&mut self) {
        while self.entries.len() > CACHE_MAX_ENTRIES || self.bytes > CACHE_MAX_BYTES {
            let Some(mut first) = self.entries.first_entry() else {
                break;
            };
            if !first.get_mut().durable {
                break;
            }
            self.bytes -= first.remove().bytes;
        }
    }
}

/// An entry as stored: the format version byte, then its JSON.
pub fn encode_entry(entry: &Entry) -> io::Result<Vec<u8>> {
    let mut bytes = vec![ENTRY_FORMAT];
    serde_json::to_writer(&mut bytes, entry).map_err(storage_error)?;
    Ok(bytes)
}

/// Reads a stored entry; an unknown format version, a damaged entry or a
/// command this version cannot apply is an error naming the index.
pub fn decode_entry(index: u64, bytes: &[u8]) -> io::Result<Entry> {
    let json = match bytes.first() {
        Some(&ENTRY_FORMAT) => &bytes[1..],
        // Unversioned, from before the format byte.
        Some(b'{') => bytes,
        Some(version) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "raft log entry {index}: unknown entry format version {version} (this \
                     version reads format {ENTRY_FORMAT}); was it written by a newer Caravan?"
                ),
            ))
        }
        None => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("raft log entry {index}: empty value"),
            ))
        }
    };
    let entry: Entry = serde_json::from_slice(json).map_err(|error| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("raft log entry {index}: {error}"),
        )
    })?;
    if entry.log_id.index != index {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "raft log entry {index}: holds the entry for index {}",
                entry.log_id.index
            ),
        ));
    }
    Ok(entry)
}

enum WriteOp {
    Append {
        entries: Vec<(u64, Vec<u8>)>,
        log_ids: Vec<LogId>,
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

/// What the log is kept on: redb, or the simulations' in-memory disk. Both
/// sit behind the same writer ([`writer_loop`]); only these few methods
/// differ.
#[derive(Clone)]
enum Disk {
    Redb(Arc<Database>),
    Memory(MemoryDisk),
}

/// A batch written to the disk but not yet durable.
enum Unsynced {
    /// The open transaction: committing it is redb's fsync.
    Redb(Box<redb::WriteTransaction>),
    /// In the memory disk's page cache.
    Memory,
}

/// How long the in-memory disk's fsync takes (simulated time): a crash
/// meanwhile loses the batch being synced.
const MEMORY_FSYNC: std::time::Duration = std::time::Duration::from_millis(5);

impl Disk {
    /// Puts a batch on the disk, in order, without making it durable.
    fn write(&self, batch: &[WriteOp]) -> Result<Unsynced, String> {
        match self {
            Disk::Redb(db) => write_batch(db, batch)
                .map(|txn| Unsynced::Redb(Box::new(txn)))
                .map_err(|error| error.to_string()),
            Disk::Memory(disk) => {
                let mut image = disk.image();
                for op in batch {
                    apply_to_image(&mut image, op);
                }
                Ok(Unsynced::Memory)
            }
        }
    }

    /// Makes a written batch durable (the fsync).
    async fn sync(&self, unsynced: Unsynced) -> Result<(), String> {
        match (self, unsynced) {
            (_, Unsynced::Redb(txn)) => txn.commit().map_err(|error| error.to_string()),
            (Disk::Memory(disk), Unsynced::Memory) => {
                tokio::time::sleep(MEMORY_FSYNC).await;
                disk.image().sync();
                Ok(())
            }
            (Disk::Redb(_), Unsynced::Memory) => Err("a memory batch on redb".to_string()),
        }
    }

    /// Reads the entries `from..to` (all of them durable: only durable
    /// entries leave the cache).
    fn read(&self, from: u64, to: u64) -> io::Result<Vec<Entry>> {
        match self {
            Disk::Redb(db) => {
                let txn = db.begin_read().map_err(storage_error)?;
                let logs = txn.open_table(LOGS).map_err(storage_error)?;
                let mut entries = Vec::new();
                for item in logs.range(from..to).map_err(storage_error)? {
                    let (index, value) = item.map_err(storage_error)?;
                    entries.push(decode_entry(index.value(), value.value())?);
                }
                Ok(entries)
            }
            Disk::Memory(disk) => disk
                .image()
                .logs
                .range(from..to)
                .map(|(index, bytes)| decode_entry(*index, bytes))
                .collect(),
        }
    }
}

struct Shared {
    cache: Arc<Mutex<LogCache>>,
    /// The writer's queue.
    sender: tokio::sync::mpsc::UnboundedSender<WriteOp>,
    disk: Disk,
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
        let db = Database::builder()
            .set_cache_size(REDB_CACHE_BYTES)
            .create(path)
            .map_err(|error| in_file(&log_name, error))?;
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
        let cache = Arc::new(Mutex::new(cache));
        let disk = Disk::Redb(Arc::new(db));
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        {
            // Its own thread: redb's writes and fsync block.
            let writer = writer_loop(disk.clone(), Arc::clone(&cache), receiver);
            std::thread::Builder::new()
                .name("raft-log-writer".to_string())
                .spawn(move || futures::executor::block_on(writer))?;
        }
        Ok(Self {
            shared: Arc::new(Shared {
                cache,
                sender,
                disk,
            }),
        })
    }

    /// A log kept on an in-memory disk. Opening it is a restart after a
    /// crash: the disk's unsynced writes are dropped first. The writer
    /// ([`writer_loop`], the same as redb's) runs as a task on the current
    /// tokio runtime (a simulated host's under turmoil), not on a thread.
    pub fn in_memory(disk: MemoryDisk) -> io::Result<Self> {
        let (cache, snapshot) = {
            let mut image = disk.image();
            image.crash();
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
        let cache = Arc::new(Mutex::new(cache));
        let disk = Disk::Memory(disk);
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(writer_loop(disk.clone(), Arc::clone(&cache), receiver));
        Ok(Self {
            shared: Arc::new(Shared {
                cache,
                sender,
                disk,
            }),
        })
    }

    fn cache(&self) -> MutexGuard<'_, LogCache> {
        lock(&self.shared.cache)
    }

    /// How many entries the in-memory cache holds.
    pub fn cached_len(&self) -> usize {
        self.cache().entries.len()
    }

    /// How many bytes of encoded entries the in-memory cache holds.
    pub fn cached_bytes(&self) -> usize {
        self.cache().bytes
    }

    /// Reads the entries `from..to` from the disk (all of them durable:
    /// only durable entries leave the cache).
    fn read_disk(&self, from: u64, to: u64) -> io::Result<Vec<Entry>> {
        if from >= to {
            return Ok(Vec::new());
        }
        self.shared.disk.read(from, to)
    }

    fn send(&self, op: WriteOp) -> io::Result<()> {
        self.shared
            .sender
            .send(op)
            .map_err(|_| io::Error::other("the raft log writer has stopped"))
    }

    /// The id of the last entry in the log (or the last purged one).
    pub fn last_log_id(&self) -> Option<LogId> {
        let cache = self.cache();
        cache.last.or(cache.last_purged)
    }

    async fn wait(receiver: oneshot::Receiver<Result<(), String>>) -> io::Result<()> {
        receiver
            .await
            .map_err(|_| io::Error::other("the raft log writer has stopped"))?
            .map_err(io::Error::other)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
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
    let mut tail = Vec::new();
    for item in logs.iter().map_err(storage_error)?.rev() {
        let (index, value) = item.map_err(storage_error)?;
        tail.push((index.value(), value.value().to_vec()));
        if !fill_tail(&mut cache, &mut tail)? {
            break;
        }
    }
    Ok(cache)
}

/// Loading newest first: moves the entry just read into the cache, and
/// says whether the cache has room for an older one.
fn fill_tail(cache: &mut LogCache, tail: &mut Vec<(u64, Vec<u8>)>) -> io::Result<bool> {
    let Some((index, bytes)) = tail.pop() else {
        return Ok(true);
    };
    let entry = decode_entry(index, &bytes)?;
    if cache.last.is_none() {
        cache.last = Some(entry.log_id);
    }
    cache.bytes += bytes.len();
    cache.entries.insert(
        index,
        Cached {
            entry,
            bytes: bytes.len(),
            durable: true,
        },
    );
    Ok(cache.entries.len() < CACHE_MAX_ENTRIES && cache.bytes < CACHE_MAX_BYTES)
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
    let mut tail = Vec::new();
    for (index, bytes) in image.logs.iter().rev() {
        tail.push((*index, bytes.clone()));
        if !fill_tail(&mut cache, &mut tail)? {
            break;
        }
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

/// The group-commit writer, for redb and the memory disk alike: take every
/// queued write (up to [`MAX_BATCH`]), write them in call order, sync once,
/// and only then mark the entries durable and report the writes done. A
/// failed batch is reported failed to every write in it.
///
/// It is a future so that one function serves both disks. For redb it runs
/// on its own thread under `block_on` (redb's I/O and fsync block). Under a
/// simulation it runs as a task of the simulated host: a thread would work
/// in real time, outside turmoil's single-threaded scheduler, so when its
/// completions arrived relative to simulated steps would differ from run
/// to run and a seed would no longer replay, and a simulated crash would
/// not stop it mid-batch. As a task it is dropped with its host, so a
/// crash between a batch's write and its sync loses that batch.
async fn writer_loop(
    disk: Disk,
    cache: Arc<Mutex<LogCache>>,
    mut receiver: tokio::sync::mpsc::UnboundedReceiver<WriteOp>,
) {
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let outcome = match disk.write(&batch) {
            Ok(unsynced) => disk.sync(unsynced).await,
            Err(error) => Err(error),
        };
        match &outcome {
            Ok(()) => {
                let mut cache = lock(&cache);
                for op in &batch {
                    if let WriteOp::Append { log_ids, .. } = op {
                        cache.made_durable(log_ids);
                    }
                }
            }
            Err(error) => tracing::error!(%error, "raft log write failed"),
        }
        for op in batch {
            complete(op, &outcome);
        }
    }
}

/// A batch in one redb transaction, left open: the caller's commit is
/// the fsync.
fn write_batch(db: &Database, batch: &[WriteOp]) -> Result<redb::WriteTransaction, redb::Error> {
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
    Ok(txn)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        use std::ops::Bound;
        let from = match range.start_bound() {
            Bound::Included(start) => *start,
            Bound::Excluded(start) => start.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let to = match range.end_bound() {
            Bound::Included(end) => end.saturating_add(1),
            Bound::Excluded(end) => *end,
            Bound::Unbounded => u64::MAX,
        };
        let (start, cached) = {
            let cache = self.cache();
            // Nothing past the last entry (a truncated tail may still be on
            // the disk until the writer gets to it).
            let to = to.min(cache.last.map_or(0, |last| last.index + 1));
            let start = cache.start();
            let cached: Vec<Entry> = if from.max(start) < to {
                cache
                    .entries
                    .range(from.max(start)..to)
                    .map(|(_, cached)| cached.entry.clone())
                    .collect()
            } else {
                Vec::new()
            };
            (start.min(to), cached)
        };
        let mut entries = self.read_disk(from, start)?;
        entries.extend(cached);
        Ok(entries)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.cache().vote)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let cache = self.cache();
        Ok(LogState {
            last_purged_log_id: cache.last_purged,
            last_log_id: cache.last.or(cache.last_purged),
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
        let mut log_ids = Vec::new();
        {
            let mut cache = self.cache();
            for entry in entries {
                let index = entry.log_id.index;
                let bytes = encode_entry(&entry)?;
                log_ids.push(entry.log_id);
                cache.insert(entry, bytes.len(), false);
                encoded.push((index, bytes));
            }
        }
        self.send(WriteOp::Append {
            entries: encoded,
            log_ids,
            done: callback,
        })
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |log_id| log_id.index + 1);
        {
            let mut cache = self.cache();
            cache.drop_from(from);
            cache.last = last_log_id.filter(|log_id| {
                cache
                    .last_purged
                    .is_none_or(|purged| log_id.index > purged.index)
            });
        }
        let (done, receiver) = oneshot::channel();
        self.send(WriteOp::TruncateFrom { index: from, done })?;
        Self::wait(receiver).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        {
            let mut cache = self.cache();
            cache.drop_up_to(log_id.index);
            if cache.last.is_some_and(|last| last.index <= log_id.index) {
                cache.last = None;
            }
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

    fn entry(term: u64, index: u64, padding: usize) -> Entry {
        use crate::raft::types::RaftRequest;
        use caravan_state::Command;
        Entry {
            log_id: LogId::new_term_index(term, index),
            payload: openraft::EntryPayload::Normal(RaftRequest(Command::AclPolicyDelete {
                names: vec![format!("p-{term}-{index}-{}", "x".repeat(padding))],
            })),
        }
    }

    async fn append_range(store: &mut LogStore, term: u64, indexes: std::ops::Range<u64>) {
        let entries: Vec<Entry> = indexes.map(|index| entry(term, index, 16)).collect();
        store.append(entries, IOFlushed::noop()).await.unwrap();
    }

    /// Returns once every write sent before it is durable (the writer keeps
    /// them in order).
    async fn settle(store: &mut LogStore) {
        let vote = store.read_vote().await.unwrap().unwrap_or(Vote::new(1, 1));
        store.save_vote(&vote).await.unwrap();
    }

    async fn check_all(
        store: &mut LogStore,
        range: std::ops::RangeInclusive<u64>,
        term_of: impl Fn(u64) -> u64,
    ) {
        let entries = store.try_get_log_entries(range.clone()).await.unwrap();
        assert_eq!(entries.len() as u64, range.end() - range.start() + 1);
        for (entry_read, index) in entries.into_iter().zip(range) {
            assert_eq!(entry_read.log_id.index, index);
            assert_eq!(
                entry_read,
                entry(term_of(index), index, 16),
                "entry {index}"
            );
        }
    }

    fn assert_bounded(store: &LogStore) {
        assert!(
            store.cached_len() <= CACHE_MAX_ENTRIES,
            "{}",
            store.cached_len()
        );
        assert!(
            store.cached_bytes() <= CACHE_MAX_BYTES,
            "{}",
            store.cached_bytes()
        );
    }

    /// A log several times the cache: every entry reads back, from redb
    /// or the cache, after a conflict's truncation, a purge and a reopen.
    async fn a_large_log_reads_back(mut open: impl FnMut() -> LogStore, cover: impl FnOnce()) {
        let total = 4000;
        let mut store = open();
        store.save_vote(&Vote::new(1, 1)).await.unwrap();
        for chunk in 0..total / 100 {
            append_range(&mut store, 1, chunk * 100 + 1..chunk * 100 + 101).await;
        }
        settle(&mut store).await;
        assert_bounded(&store);
        assert_eq!(store.cached_len(), CACHE_MAX_ENTRIES);
        check_all(&mut store, 1..=total, |_| 1).await;
        // Odd ranges across the cache's edge.
        let edge = total - CACHE_MAX_ENTRIES as u64;
        let some = store.try_get_log_entries(edge - 3..edge + 3).await.unwrap();
        assert_eq!(some.len(), 6);
        assert_eq!(some[0].log_id.index, edge - 3);

        // A conflict: the tail from index 1000 (on disk only) is replaced
        // by entries of term 2.
        store
            .truncate_after(Some(LogId::new_term_index(1, 999)))
            .await
            .unwrap();
        assert_eq!(store.last_log_id(), Some(LogId::new_term_index(1, 999)));
        assert_eq!(store.cached_len(), 0);
        assert_eq!(store.cached_bytes(), 0);
        assert!(store.try_get_log_entries(1000..).await.unwrap().is_empty());
        append_range(&mut store, 2, 1000..1500).await;
        settle(&mut store).await;
        let term_of = |index: u64| if index >= 1000 { 2 } else { 1 };
        check_all(&mut store, 1..=1499, term_of).await;
        // A truncation inside the cache.
        store
            .truncate_after(Some(LogId::new_term_index(2, 1400)))
            .await
            .unwrap();
        assert_eq!(store.cached_len(), 401);
        check_all(&mut store, 1..=1400, term_of).await;

        // Compaction drops the old ones.
        store.purge(LogId::new_term_index(1, 600)).await.unwrap();
        check_all(&mut store, 601..=1400, term_of).await;
        let state = store.get_log_state().await.unwrap();
        assert_eq!(
            state.last_purged_log_id,
            Some(LogId::new_term_index(1, 600))
        );
        assert_eq!(state.last_log_id, Some(LogId::new_term_index(2, 1400)));
        drop(store);
        cover();

        // Reopened: the newest entries are cached again, the rest on disk.
        let mut store = open();
        assert_bounded(&store);
        assert_eq!(store.cached_len(), 800);
        check_all(&mut store, 601..=1400, term_of).await;
        append_range(&mut store, 3, 1401..3001).await;
        settle(&mut store).await;
        assert_bounded(&store);
        check_all(&mut store, 601..=3000, |index| {
            if index > 1400 {
                3
            } else {
                term_of(index)
            }
        })
        .await;
        // A purge past the last entry (a snapshot installed) empties it.
        store.purge(LogId::new_term_index(4, 4000)).await.unwrap();
        assert_eq!(store.cached_len(), 0);
        assert_eq!(store.last_log_id(), Some(LogId::new_term_index(4, 4000)));
    }

    #[tokio::test]
    async fn a_large_redb_log_reads_back_through_a_bounded_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        let root = dir.path().to_path_buf();
        a_large_log_reads_back(
            || reopen(&path).unwrap(),
            || drop(place_snapshot(&root, 5000)),
        )
        .await;
    }

    #[tokio::test]
    async fn a_large_in_memory_log_reads_back_through_a_bounded_cache() {
        let disk = MemoryDisk::new();
        let image = disk.clone();
        a_large_log_reads_back(
            || LogStore::in_memory(disk.clone()).unwrap(),
            move || image.image().snapshot = Some(snapshot_bytes(5000)),
        )
        .await;
    }

    fn rss_kib() -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// 10,000 node-register-sized (about 3 KB) entries: the cache stays at
    /// its bound. Prints the numbers (`--nocapture`).
    #[tokio::test]
    async fn ten_thousand_node_sized_entries_stay_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        let mut store = LogStore::open(&path).unwrap();
        store.save_vote(&Vote::new(1, 1)).await.unwrap();
        let before = rss_kib();
        let mut encoded = 0usize;
        for chunk in 0..100u64 {
            let entries: Vec<Entry> = (chunk * 100 + 1..chunk * 100 + 101)
                .map(|index| entry(1, index, 3000))
                .collect();
            encoded += entries
                .iter()
                .map(|entry| encode_entry(entry).unwrap().len())
                .sum::<usize>();
            store.append(entries, IOFlushed::noop()).await.unwrap();
        }
        settle(&mut store).await;
        let after = rss_kib();
        eprintln!(
            "10,000 entries, {encoded} bytes encoded: cache holds {} entries, {} bytes; \
             RSS {before:?} KiB before, {after:?} KiB after",
            store.cached_len(),
            store.cached_bytes()
        );
        assert_bounded(&store);
        assert_eq!(store.cached_len(), CACHE_MAX_ENTRIES);
        assert!(store.cached_bytes() < encoded / 9);
        let all = store.try_get_log_entries(1..=10_000).await.unwrap();
        assert_eq!(all.len(), 10_000);
    }

    #[test]
    fn entries_carry_a_format_version() {
        let written = entry(2, 9, 0);
        let bytes = encode_entry(&written).unwrap();
        assert_eq!(bytes[0], ENTRY_FORMAT);
        assert_eq!(decode_entry(9, &bytes).unwrap(), written);
        // Unversioned JSON of older versions still reads.
        assert_eq!(decode_entry(9, &bytes[1..]).unwrap(), written);
        // An unknown version is an error naming the index.
        let mut future = bytes.clone();
        future[0] = 7;
        let error = decode_entry(9, &future).unwrap_err().to_string();
        assert!(
            error.starts_with("raft log entry 9: unknown entry format version 7"),
            "{error}"
        );
        assert!(decode_entry(9, b"").is_err());
        // An entry stored under the wrong index is refused.
        let error = decode_entry(10, &bytes).unwrap_err().to_string();
        assert!(error.contains("holds the entry for index 9"), "{error}");
    }

    #[tokio::test]
    async fn an_unknown_command_in_the_log_is_an_error_naming_index_and_variant() {
        let disk = MemoryDisk::new();
        let mut store = LogStore::in_memory(disk.clone()).unwrap();
        store.save_vote(&Vote::new(1, 1)).await.unwrap();
        append_range(&mut store, 1, 1..3).await;
        drop(store);
        let json = String::from_utf8(encode_entry(&entry(1, 3, 0)).unwrap()[1..].to_vec()).unwrap();
        let future = json.replace(
            "\"AclPolicyDelete\":{\"names\"",
            "\"NodePoolUpsert\":{\"pools\"",
        );
        assert_ne!(future, json);
        let mut bytes = vec![ENTRY_FORMAT];
        bytes.extend_from_slice(future.as_bytes());
        disk.image().logs.insert(3, bytes);
        disk.image().sync();
        let error = error_of(LogStore::in_memory(disk.clone()));
        assert!(
            error.starts_with("raft log entry 3: unknown command \"NodePoolUpsert\""),
            "{error}"
        );
    }

    type RuntimeOneshot = <crate::raft::runtime::CaravanRuntime as openraft::AsyncRuntime>::Oneshot;

    fn flush_signal() -> (
        <RuntimeOneshot as openraft::rt::Oneshot>::Sender<io::Result<()>>,
        <RuntimeOneshot as openraft::rt::Oneshot>::Receiver<io::Result<()>>,
    ) {
        <RuntimeOneshot as openraft::rt::Oneshot>::channel()
    }

    /// The writer's protocol, on the memory disk: a batch is written, then
    /// synced, and only then acknowledged; a crash in between loses it.
    #[tokio::test(start_paused = true)]
    async fn a_crash_between_write_and_sync_loses_the_batch() {
        let disk = MemoryDisk::new();
        let mut store = LogStore::in_memory(disk.clone()).unwrap();
        store.save_vote(&Vote::new(1, 1)).await.unwrap();
        append_range(&mut store, 1, 1..4).await;
        settle(&mut store).await;
        let (sender, mut flushed) = flush_signal();
        store
            .append(vec![entry(1, 4, 16)], IOFlushed::signal(sender))
            .await
            .unwrap();
        // The writer takes the batch and writes it, then waits for the sync.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(disk.image().logs.contains_key(&4), "written");
        assert!(
            futures::FutureExt::now_or_never(&mut flushed).is_none(),
            "acknowledged before the sync"
        );
        // The server crashes now.
        drop(store);
        let mut store = LogStore::in_memory(disk.clone()).unwrap();
        assert_eq!(store.last_log_id(), Some(LogId::new_term_index(1, 3)));
        assert_eq!(disk.lost_to_crashes(), 1);
        check_all(&mut store, 1..=3, |_| 1).await;
        // Had the sync run, the entry would have been kept and acknowledged.
        let (sender, flushed) = flush_signal();
        store
            .append(vec![entry(1, 4, 16)], IOFlushed::signal(sender))
            .await
            .unwrap();
        flushed.await.unwrap().unwrap();
        drop(store);
        let store = LogStore::in_memory(disk.clone()).unwrap();
        assert_eq!(store.last_log_id(), Some(LogId::new_term_index(1, 4)));
    }
}
