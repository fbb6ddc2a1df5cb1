//! Allocation names, `<job>.<group>[<index>]`: new ones take the lowest free
//! index, scale-down takes the highest.

use std::collections::BTreeSet;
use std::sync::Arc;

use caravan_api_types::alloc::Allocation;

pub fn alloc_name(job: &str, group: &str, index: u64) -> String {
    format!("{job}.{group}[{index}]")
}

/// The indexes in use in one group.
#[derive(Debug)]
pub struct NameIndex {
    job: String,
    group: String,
    used: BTreeSet<u64>,
    /// Below this every index is used (the next search starts here).
    floor: u64,
}

impl NameIndex {
    pub fn new(job: &str, group: &str) -> Self {
        Self {
            job: job.to_string(),
            group: group.to_string(),
            used: BTreeSet::new(),
            floor: 0,
        }
    }

    pub fn mark(&mut self, alloc: &Allocation) {
        if let Some(index) = alloc.index() {
            self.used.insert(index);
        }
    }

    pub fn unmark(&mut self, alloc: &Allocation) {
        if let Some(index) = alloc.index() {
            self.used.remove(&index);
            self.floor = self.floor.min(index);
        }
    }

    /// The lowest free index's name, now marked used.
    pub fn next_name(&mut self) -> String {
        let mut index = self.floor;
        while self.used.contains(&index) {
            index += 1;
        }
        self.used.insert(index);
        self.floor = index + 1;
        alloc_name(&self.job, &self.group, index)
    }
}

fn key(alloc: &Allocation) -> (u64, &str) {
    (alloc.index().unwrap_or(u64::MAX), alloc.id.as_str())
}

pub fn sort_by_index_desc(allocs: &mut [Arc<Allocation>]) {
    allocs.sort_by(|a, b| key(b).cmp(&key(a)));
}

pub fn sort_by_index_asc(allocs: &mut [Arc<Allocation>]) {
    allocs.sort_by(|a, b| key(a).cmp(&key(b)));
}
