//! Watches keyed by what a query read: a whole table, one row, or the rows
//! under one value of a secondary index. A write records the keys it
//! touched; once its batch is published the store fires exactly those, so a
//! write wakes only the waiters of what it changed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::state::Table;
use crate::table::Touched;

/// What a reader waits on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WatchKey {
    /// Any write to the table.
    Table(Table),
    /// The row with this key (its creation, change or removal).
    Row(Table, String),
    /// The rows filed under this value of the named index (e.g. the
    /// allocations of one node): a row joining, changing in or leaving it.
    Index(Table, &'static str, String),
}

impl From<Table> for WatchKey {
    fn from(table: Table) -> Self {
        WatchKey::Table(table)
    }
}

struct Waiter {
    fired: AtomicBool,
    notify: Notify,
}

#[derive(Default)]
struct Keys {
    next_id: u64,
    waiters: HashMap<WatchKey, HashMap<u64, Arc<Waiter>>>,
    /// Distinct registered waiters.
    registered: usize,
}

/// The keyed watches of a store.
#[derive(Default)]
pub(crate) struct Registry {
    keys: Mutex<Keys>,
    /// Waiters woken so far, each counted once however many of its keys fired.
    woken: AtomicU64,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Keys> {
        match self.keys.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub(crate) fn register(self: &Arc<Self>, keys: &[WatchKey]) -> Watch {
        let waiter = Arc::new(Waiter {
            fired: AtomicBool::new(false),
            notify: Notify::new(),
        });
        let mut guard = self.lock();
        let id = guard.next_id;
        guard.next_id += 1;
        guard.registered += 1;
        for key in keys {
            guard
                .waiters
                .entry(key.clone())
                .or_default()
                .insert(id, Arc::clone(&waiter));
        }
        Watch {
            registry: Arc::clone(self),
            id,
            keys: keys.to_vec(),
            waiter,
        }
    }

    /// Wakes every waiter on any of `touched`; returns how many woke.
    pub(crate) fn fire(&self, touched: &Touched) -> usize {
        let mut woken = 0;
        let mut guard = self.lock();
        for key in touched.iter() {
            let Some(waiters) = guard.waiters.remove(key) else {
                continue;
            };
            for waiter in waiters.values() {
                if !waiter.fired.swap(true, Ordering::AcqRel) {
                    waiter.notify.notify_one();
                    woken += 1;
                }
            }
        }
        drop(guard);
        self.woken.fetch_add(woken as u64, Ordering::Relaxed);
        woken
    }

    /// Wakes every waiter (a restore replaced everything).
    pub(crate) fn fire_all(&self) -> usize {
        let mut guard = self.lock();
        let all: Vec<_> = guard.waiters.drain().collect();
        drop(guard);
        let mut woken = 0;
        for (_, waiters) in all {
            for waiter in waiters.values() {
                if !waiter.fired.swap(true, Ordering::AcqRel) {
                    waiter.notify.notify_one();
                    woken += 1;
                }
            }
        }
        self.woken.fetch_add(woken as u64, Ordering::Relaxed);
        woken
    }

    pub(crate) fn woken(&self) -> u64 {
        self.woken.load(Ordering::Relaxed)
    }

    pub(crate) fn registered(&self) -> usize {
        self.lock().registered
    }
}

/// A registration on some keys; [`Watch::fired`] resolves once a write
/// touches any of them. Register before reading the state, so no write
/// between the read and the wait is missed. Dropping it unregisters it.
pub struct Watch {
    registry: Arc<Registry>,
    id: u64,
    keys: Vec<WatchKey>,
    waiter: Arc<Waiter>,
}

impl Watch {
    /// Resolves once a write touched one of the keys (at once if one has).
    pub async fn fired(&self) {
        loop {
            let notified = self.waiter.notify.notified();
            if self.waiter.fired.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// Whether a write touched one of the keys yet.
    pub fn has_fired(&self) -> bool {
        self.waiter.fired.load(Ordering::Acquire)
    }

    pub fn keys(&self) -> &[WatchKey] {
        &self.keys
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut guard = self.registry.lock();
        guard.registered -= 1;
        for key in &self.keys {
            if let Some(waiters) = guard.waiters.get_mut(key) {
                waiters.remove(&self.id);
                if waiters.is_empty() {
                    guard.waiters.remove(key);
                }
            }
        }
    }
}
