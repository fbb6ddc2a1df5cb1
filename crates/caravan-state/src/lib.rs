//! Caravan's replicated state, as Nomad's state store: in-memory tables
//! rebuilt from a snapshot plus the Raft log, each table carrying the Raft
//! index of its last change.
//!
//! Readers take an `Arc` of the current [`State`]; its tables are persistent
//! maps, so a writer clones it cheaply, applies one command and swaps the new
//! version in. Readers never block the writer and never see half a write.
//! Each table has a watch channel that fires when its index moves, which is
//! what blocking queries wait on.

mod command;
pub mod nodes;
mod state;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

pub use command::{Command, CommandResult};
pub use state::{secret_digest, secrets_equal, State, Table};

/// Why a snapshot could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("corrupt state snapshot: {0}")]
    CorruptSnapshot(#[from] serde_json::Error),
}

/// The live state plus the watches blocking queries wait on.
pub struct StateStore {
    current: RwLock<Arc<State>>,
    watches: BTreeMap<Table, watch::Sender<u64>>,
}

impl Default for StateStore {
    fn default() -> Self {
        Self::new()
    }
}

impl StateStore {
    pub fn new() -> Self {
        let watches = Table::ALL
            .iter()
            .map(|table| (*table, watch::channel(0).0))
            .collect();
        Self {
            current: RwLock::new(Arc::new(State::default())),
            watches,
        }
    }

    /// A consistent view of the whole state at one index.
    pub fn snapshot(&self) -> Arc<State> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Applies one committed command at Raft `index`. The FSM is the only
    /// caller, so writes are serialised by construction.
    pub fn apply(&self, index: u64, command: &Command) -> CommandResult {
        let mut next = (*self.snapshot()).clone();
        let (result, touched) = next.apply(index, command);
        next.note_index(index);
        self.publish(next, &touched);
        result
    }

    /// Records that Raft `index` was applied without changing any table
    /// (blank and membership entries), so the state's index keeps up.
    pub fn note_index(&self, index: u64) {
        let mut next = (*self.snapshot()).clone();
        next.note_index(index);
        self.publish(next, &[]);
    }

    /// Serialises the whole state for a Raft snapshot.
    pub fn to_snapshot_bytes(&self) -> Result<Vec<u8>, StateError> {
        Ok(serde_json::to_vec(&*self.snapshot())?)
    }

    /// Replaces the whole state with a snapshot's and wakes every watcher.
    pub fn restore(&self, bytes: &[u8]) -> Result<(), StateError> {
        let restored: State = serde_json::from_slice(bytes)?;
        self.publish(restored, Table::ALL);
        Ok(())
    }

    /// A receiver that changes whenever `table`'s index moves.
    pub fn watch(&self, table: Table) -> watch::Receiver<u64> {
        match self.watches.get(&table) {
            Some(sender) => sender.subscribe(),
            // Every table has a sender; this arm only keeps the type total.
            None => watch::channel(0).1,
        }
    }

    fn publish(&self, next: State, touched: &[Table]) {
        let indexes: Vec<(Table, u64)> = touched
            .iter()
            .map(|table| (*table, next.table_index(*table)))
            .collect();
        match self.current.write() {
            Ok(mut guard) => *guard = Arc::new(next),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(next),
        }
        for (table, index) in indexes {
            if let Some(sender) = self.watches.get(&table) {
                sender.send_replace(index);
            }
        }
    }
}

#[cfg(test)]
mod tests;
