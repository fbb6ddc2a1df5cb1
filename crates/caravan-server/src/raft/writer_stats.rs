//! Counters of the log writer's group commit: how many transactions it
//! made (each with one fsync, unless it held only a commit mark), how many
//! entries they carried and how long the writer was busy writing and
//! syncing. Entries per fsync is the figure
//! that says whether group commit is working; busy time against wall time
//! says whether the disk or something before it is the bottleneck.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Shared between the writer and whoever reports the figures.
#[derive(Debug, Default)]
pub struct WriterStats {
    batches: AtomicU64,
    unsynced: AtomicU64,
    ops: AtomicU64,
    entries: AtomicU64,
    max_entries: AtomicU64,
    busy_micros: AtomicU64,
}

/// The counters at one moment (all totals since the log was opened).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterFigures {
    /// Transactions committed.
    pub batches: u64,
    /// Of those, the ones committed without an fsync (only a commit mark).
    pub unsynced: u64,
    /// Queued writes (appends, votes, commit marks, truncations, purges).
    pub ops: u64,
    /// Log entries appended.
    pub entries: u64,
    /// The most entries one transaction carried.
    pub max_entries: u64,
    /// Time spent writing and syncing, in microseconds.
    pub busy_micros: u64,
}

impl WriterStats {
    /// One transaction of `ops` queued writes carrying `entries` entries,
    /// `synced` or not, took `busy`.
    pub fn record(&self, ops: usize, entries: usize, synced: bool, busy: Duration) {
        let entries = entries as u64;
        self.batches.fetch_add(1, Ordering::Relaxed);
        if !synced {
            self.unsynced.fetch_add(1, Ordering::Relaxed);
        }
        self.ops.fetch_add(ops as u64, Ordering::Relaxed);
        self.entries.fetch_add(entries, Ordering::Relaxed);
        self.max_entries.fetch_max(entries, Ordering::Relaxed);
        self.busy_micros.fetch_add(
            u64::try_from(busy.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub fn figures(&self) -> WriterFigures {
        WriterFigures {
            batches: self.batches.load(Ordering::Relaxed),
            unsynced: self.unsynced.load(Ordering::Relaxed),
            ops: self.ops.load(Ordering::Relaxed),
            entries: self.entries.load(Ordering::Relaxed),
            max_entries: self.max_entries.load(Ordering::Relaxed),
            busy_micros: self.busy_micros.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::log_store::LogStore;
    use crate::raft::memory_disk::MemoryDisk;
    use crate::raft::types::{Entry, LogId, RaftRequest, Vote};
    use caravan_state::Command;
    use openraft::storage::{IOFlushed, RaftLogStorage};
    use openraft::RaftLogReader;

    fn entry(index: u64) -> Entry {
        Entry {
            log_id: LogId::new_term_index(1, index),
            payload: openraft::EntryPayload::Normal(RaftRequest(Command::AclPolicyDelete {
                names: vec![format!("p-{index}")],
            })),
        }
    }

    /// Waits (without a time limit of its own) until the writer has
    /// committed `batches` transactions.
    async fn written(store: &LogStore, batches: u64) -> WriterFigures {
        loop {
            let figures = store.writer_figures();
            if figures.batches >= batches {
                return figures;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// A batch holding only the commit mark is not synced: a crash loses
    /// the mark (never an acknowledged entry), and the next synced batch
    /// makes it durable.
    #[tokio::test(start_paused = true)]
    async fn a_lone_commit_mark_is_not_synced() {
        let disk = MemoryDisk::new();
        let mut store = LogStore::in_memory(disk.clone()).unwrap();
        store.save_vote(&Vote::new(1, 1)).await.unwrap();
        store
            .append((1..=3).map(entry), IOFlushed::noop())
            .await
            .unwrap();
        let before = written(&store, 2).await;
        assert_eq!((before.entries, before.unsynced), (3, 0));
        store
            .save_committed(Some(LogId::new_term_index(1, 3)))
            .await
            .unwrap();
        let figures = written(&store, 3).await;
        assert_eq!(figures.unsynced, 1, "{figures:?}");
        drop(store);

        let mut store = LogStore::in_memory(disk.clone()).unwrap();
        assert_eq!(store.read_committed().await.unwrap(), None, "mark lost");
        let entries = store.try_get_log_entries(1..=3).await.unwrap();
        assert_eq!(entries, (1..=3).map(entry).collect::<Vec<_>>());

        // Followed by a synced batch, the mark survives the crash.
        let committed = Some(LogId::new_term_index(1, 3));
        store.save_committed(committed).await.unwrap();
        store.save_vote(&Vote::new(1, 1)).await.unwrap();
        drop(store);
        let mut store = LogStore::in_memory(disk).unwrap();
        assert_eq!(store.read_committed().await.unwrap(), committed);
    }

    /// The same rule on redb: the unsynced mark is in the file once a
    /// synced transaction follows it.
    #[tokio::test]
    async fn a_redb_commit_mark_is_kept_by_the_next_synced_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        let mut store = LogStore::open(&path).unwrap();
        store.save_vote(&Vote::new(1, 1)).await.unwrap();
        let committed = Some(LogId::new_term_index(1, 0));
        store.save_committed(committed).await.unwrap();
        let figures = written(&store, 2).await;
        assert_eq!((figures.batches, figures.unsynced), (2, 1));
        store.save_vote(&Vote::new(2, 1)).await.unwrap();
        drop(store);
        let store = loop {
            match LogStore::open(&path) {
                Ok(store) => break store,
                // The writer thread may still hold the file a moment.
                Err(error) if error.to_string().contains("already open") => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(error) => panic!("{error}"),
            }
        };
        let mut store = store;
        assert_eq!(store.read_committed().await.unwrap(), committed);
        assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(2, 1)));
    }

    #[test]
    fn batches_add_up() {
        let stats = WriterStats::default();
        stats.record(3, 2, true, Duration::from_micros(250));
        stats.record(1, 0, false, Duration::from_micros(20));
        stats.record(1, 7, true, Duration::from_micros(100));
        assert_eq!(
            stats.figures(),
            WriterFigures {
                batches: 3,
                unsynced: 1,
                ops: 5,
                entries: 9,
                max_entries: 7,
                busy_micros: 370,
            }
        );
    }
}
