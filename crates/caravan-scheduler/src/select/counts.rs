//! Per-node allocation counts of the job being placed.

use caravan_api_types::job::Job;

/// This job's allocations on one node, per group position, kept inline
/// (a map per node cost a cache miss per node scored).
#[derive(Debug, Default)]
pub(super) struct GroupCounts {
    inline: [u32; 4],
    rest: Vec<u32>,
    pub(super) total: u32,
}

impl GroupCounts {
    pub(super) fn get(&self, position: Option<usize>) -> u32 {
        match position {
            Some(p) if p < 4 => self.inline[p],
            Some(p) => self.rest.get(p - 4).copied().unwrap_or(0),
            None => 0,
        }
    }

    pub(super) fn add(&mut self, position: Option<usize>, delta: i64) {
        let apply = |count: &mut u32| *count = count.saturating_add_signed(delta as i32);
        apply(&mut self.total);
        match position {
            Some(p) if p < 4 => apply(&mut self.inline[p]),
            Some(p) => {
                if self.rest.len() <= p - 4 {
                    self.rest.resize(p - 3, 0);
                }
                apply(&mut self.rest[p - 4]);
            }
            None => {}
        }
    }
}

pub(super) fn group_position(job: &Job, name: &str) -> Option<usize> {
    job.task_groups.iter().position(|g| g.name == name)
}
