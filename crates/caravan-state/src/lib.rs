//! Caravan's replicated state, as Nomad's state store: in-memory tables
//! rebuilt from a snapshot plus the Raft log, each table carrying the Raft
//! index of its last change.
//!
//! Readers take an `Arc` of the current [`State`]; its tables are persistent
//! maps ([`IndexedTable`], with declared secondary indexes), so a writer
//! clones it cheaply, applies a batch of commands and swaps the new version
//! in once. Readers never block the writer and never see half a batch.
//! Blocking queries register [`Watch`]es on the [`WatchKey`]s they read (a
//! table, a row, an index value); a batch fires only the keys it touched.

pub mod codec;
mod command;
pub mod job_commands;
pub mod nodes;
pub mod snapshot;
mod state;
pub mod table;
pub mod watch;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch as channel;

pub use command::{Command, CommandResult};
pub use snapshot::{SectionError, SectionSink, StateRestore};
pub use state::jobs::{
    new_eval, nonexistent_namespace, ns_key, version_key, AllocsTable, EvalsTable,
    JobSummariesTable, JobVersionsTable, JobsTable, ALLOCS_BY_EVAL, ALLOCS_BY_JOB, EVALS_BY_JOB,
    EVALS_BY_STATUS, JOBS_BY_PARENT, JOBS_BY_TYPE, JOB_TRACKED_VERSIONS, VERSIONS_BY_JOB,
};
pub use state::{
    secret_digest, secrets_equal, AclPoliciesTable, AclTokensTable, NodesTable, State, Table,
    ALLOCS_BY_NODE, TOKENS_BY_SECRET_DIGEST,
};
pub use table::{Index, IndexedTable, Schema, Touched};
pub use watch::{Watch, WatchKey};

use watch::Registry;

/// Why a snapshot could not be read back, or a wait for one ran out.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("corrupt state snapshot: {0}")]
    CorruptSnapshot(#[from] serde_json::Error),
    #[error("timed out waiting for the state to reach index {wanted} (applied: {applied})")]
    Timeout { wanted: u64, applied: u64 },
}

/// The live state plus the watches blocking queries wait on.
pub struct StateStore {
    current: RwLock<Arc<State>>,
    /// Per-table channels carrying the table's index (what the drainer and
    /// other whole-table loops follow).
    watches: BTreeMap<Table, channel::Sender<u64>>,
    /// Watches keyed by what a reader read.
    keyed: Arc<Registry>,
    /// The published state's latest index, for [`StateStore::snapshot_at_least`].
    latest: channel::Sender<u64>,
    /// How many times a new state was published.
    publishes: AtomicU64,
}

impl Default for StateStore {
    fn default() -> Self {
        Self::new()
    }
}

/// Writes applied to a private copy of the state, published (and their
/// watches fired) at once by [`WriteBatch::commit`]; dropped uncommitted,
/// they are discarded. The FSM is the only writer, so batches are
/// serialised by construction.
#[must_use = "a batch changes nothing until committed"]
pub struct WriteBatch<'a> {
    store: &'a StateStore,
    next: State,
    touched: Touched,
    changed: bool,
}

impl WriteBatch<'_> {
    /// Applies one committed command at Raft `index`.
    pub fn apply(&mut self, index: u64, command: &Command) -> CommandResult {
        let result = self.next.apply(index, command, &mut self.touched);
        self.next.note_index(index);
        self.changed = true;
        result
    }

    /// Records that Raft `index` was applied without changing any table
    /// (blank and membership entries), so the state's index keeps up.
    pub fn note_index(&mut self, index: u64) {
        self.next.note_index(index);
        self.changed = true;
    }

    /// The keys the batch has touched so far.
    pub fn touched(&self) -> &Touched {
        &self.touched
    }

    /// Publishes the batch's state and fires the watches of what it
    /// touched, once for the whole batch. Returns how many keyed waiters
    /// woke.
    pub fn commit(self) -> usize {
        if !self.changed {
            return 0;
        }
        self.store.publish(self.next, &self.touched)
    }
}

impl StateStore {
    pub fn new() -> Self {
        let watches = Table::ALL
            .iter()
            .map(|table| (*table, channel::channel(0).0))
            .collect();
        Self {
            current: RwLock::new(Arc::new(State::default())),
            watches,
            keyed: Arc::new(Registry::default()),
            latest: channel::channel(0).0,
            publishes: AtomicU64::new(0),
        }
    }

    /// A consistent view of the whole state at one index.
    pub fn snapshot(&self) -> Arc<State> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// A snapshot whose latest index is at least `index`, waiting up to
    /// `timeout` for the FSM to apply that far (for readers and schedulers
    /// that must see a write they know was committed).
    pub async fn snapshot_at_least(
        &self,
        index: u64,
        timeout: Duration,
    ) -> Result<Arc<State>, StateError> {
        let mut latest = self.latest.subscribe();
        let reached = tokio::time::timeout(timeout, latest.wait_for(|latest| *latest >= index))
            .await
            .is_ok_and(|waited| waited.is_ok());
        match reached {
            true => Ok(self.snapshot()),
            false => Err(StateError::Timeout {
                wanted: index,
                applied: self.snapshot().latest_index(),
            }),
        }
    }

    /// Starts a batch of writes on a copy of the current state.
    pub fn batch(&self) -> WriteBatch<'_> {
        WriteBatch {
            store: self,
            next: (*self.snapshot()).clone(),
            touched: Touched::new(),
            changed: false,
        }
    }

    /// Applies committed commands in order as one batch: one publish, one
    /// firing of the watches of everything they touched.
    pub fn apply_batch<'c>(
        &self,
        entries: impl IntoIterator<Item = (u64, &'c Command)>,
    ) -> Vec<CommandResult> {
        let mut batch = self.batch();
        let results = entries
            .into_iter()
            .map(|(index, command)| batch.apply(index, command))
            .collect();
        batch.commit();
        results
    }

    /// Applies one committed command at Raft `index` (a batch of one).
    pub fn apply(&self, index: u64, command: &Command) -> CommandResult {
        let mut batch = self.batch();
        let result = batch.apply(index, command);
        batch.commit();
        result
    }

    /// Records that Raft `index` was applied without changing any table.
    pub fn note_index(&self, index: u64) {
        let mut batch = self.batch();
        batch.note_index(index);
        batch.commit();
    }

    /// Serialises the whole state as JSON (the version 1 and 2 snapshots'
    /// body; version 3 writes sections, see [`snapshot`]).
    pub fn to_snapshot_bytes(&self) -> Result<Vec<u8>, StateError> {
        Ok(serde_json::to_vec(&*self.snapshot())?)
    }

    /// Replaces the whole state with a JSON snapshot's (its indexes
    /// rebuilt) and wakes every watcher.
    pub fn restore(&self, bytes: &[u8]) -> Result<(), StateError> {
        let restored: State = serde_json::from_slice(bytes)?;
        self.install(restored);
        Ok(())
    }

    /// Replaces the whole state with `state` (rebuilt apart from the live
    /// one, from a snapshot) and wakes every watcher.
    pub fn install(&self, state: State) {
        let mut touched = Touched::new();
        for table in Table::ALL {
            touched.table(*table);
        }
        self.swap(state, &touched);
        self.keyed.fire_all();
    }

    /// A receiver that changes whenever `table`'s index moves.
    pub fn watch(&self, table: Table) -> channel::Receiver<u64> {
        match self.watches.get(&table) {
            Some(sender) => sender.subscribe(),
            // Every table has a sender; this arm only keeps the type total.
            None => channel::channel(0).1,
        }
    }

    /// Registers a waiter on `keys`: it fires once a published write
    /// touches any of them. Register before reading the snapshot.
    pub fn watch_keys(&self, keys: &[WatchKey]) -> Watch {
        self.keyed.register(keys)
    }

    /// Keyed waiters woken so far (each counted once per firing).
    pub fn woken_waiters(&self) -> u64 {
        self.keyed.woken()
    }

    /// Keyed waiters registered right now.
    pub fn registered_waiters(&self) -> usize {
        self.keyed.registered()
    }

    /// How many states were published so far (one per batch).
    pub fn publishes(&self) -> u64 {
        self.publishes.load(Ordering::Relaxed)
    }

    fn publish(&self, next: State, touched: &Touched) -> usize {
        self.swap(next, touched);
        self.keyed.fire(touched)
    }

    /// Swaps `next` in, then moves the per-table channels and the latest
    /// index (readers woken by them must find the new state).
    fn swap(&self, next: State, touched: &Touched) {
        let indexes: Vec<(Table, u64)> = touched
            .tables()
            .map(|table| (table, next.table_index(table)))
            .collect();
        let latest = next.latest_index();
        match self.current.write() {
            Ok(mut guard) => *guard = Arc::new(next),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(next),
        }
        self.publishes.fetch_add(1, Ordering::Relaxed);
        for (table, index) in indexes {
            if let Some(sender) = self.watches.get(&table) {
                sender.send_replace(index);
            }
        }
        self.latest.send_replace(latest);
    }
}

#[cfg(test)]
mod tests;
