//! Client garbage collection of terminal allocations (Nomad's client GC,
//! scheduling.md §8.6): every `gc_interval`, terminal allocations (every
//! task dead for good) are destroyed — runner, directory and saved state —
//! oldest first, while the client holds more than `gc_max_allocs`
//! allocations or the allocation directory's file system is fuller than
//! the disk or inode threshold. A live allocation is never collected.
//! Nomad's thresholds confuse users (#2448, #6160); each collection here is
//! logged with the rule that caused it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::runner::AllocManager;

/// When terminal allocations are collected.
#[derive(Debug, Clone, PartialEq)]
pub struct GcOptions {
    pub interval: Duration,
    pub max_allocs: usize,
    /// Percentages of the allocation directory's file system.
    pub disk_usage_threshold: f64,
    pub inode_usage_threshold: f64,
}

impl Default for GcOptions {
    /// Nomad's defaults.
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            max_allocs: 50,
            disk_usage_threshold: 80.0,
            inode_usage_threshold: 70.0,
        }
    }
}

/// A terminal allocation that may be collected, and when it ended (Unix
/// nanoseconds; 0 if unknown, which sorts first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub ended: i64,
}

/// Why an allocation is collected.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    TooMany { held: usize, limit: usize },
    DiskFull(String),
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooMany { held, limit } => {
                write!(
                    f,
                    "number of allocations ({held}) is over the limit ({limit})"
                )
            }
            Self::DiskFull(what) => f.write_str(what),
        }
    }
}

/// The next allocation to collect, if any: the oldest terminal one while
/// `held` is over the limit or `disk_full` says the disk is too full.
pub fn next(
    candidates: &mut Vec<Candidate>,
    held: usize,
    options: &GcOptions,
    disk_full: &mut dyn FnMut() -> Option<String>,
) -> Option<(Candidate, Reason)> {
    if candidates.is_empty() {
        return None;
    }
    let reason = if held > options.max_allocs {
        Reason::TooMany {
            held,
            limit: options.max_allocs,
        }
    } else {
        Reason::DiskFull(disk_full()?)
    };
    candidates.sort_by(|a, b| (b.ended, &b.id).cmp(&(a.ended, &a.id)));
    candidates.pop().map(|candidate| (candidate, reason))
}

/// `used` as a percentage of what the caller could have: used plus
/// available, as `df` counts it (blocks reserved for root are neither).
fn used_percent(used: u64, available: u64) -> f64 {
    match used.saturating_add(available) {
        0 => 0.0,
        whole => used as f64 / whole as f64 * 100.0,
    }
}

/// What is wrong with the disk holding `dir`, if it is over a threshold.
fn disk_pressure(dir: &Path, options: &GcOptions) -> Option<String> {
    let stats = nix::sys::statvfs::statvfs(dir).ok()?;
    let disk = used_percent(
        stats.blocks().saturating_sub(stats.blocks_free()),
        stats.blocks_available(),
    );
    let inodes = used_percent(
        stats.files().saturating_sub(stats.files_free()),
        stats.files_free(),
    );
    if disk > options.disk_usage_threshold {
        return Some(format!(
            "disk usage of {disk:.0}% is over the gc threshold of {:.0}%",
            options.disk_usage_threshold
        ));
    }
    (inodes > options.inode_usage_threshold).then(|| {
        format!(
            "inode usage of {inodes:.0}% is over the gc threshold of {:.0}%",
            options.inode_usage_threshold
        )
    })
}

/// Collects once: as many terminal allocations as the rules ask.
pub async fn collect_once(manager: &AllocManager, alloc_dir: &Path, options: &GcOptions) {
    let mut candidates = manager.collectable();
    let mut held = manager.len();
    let mut disk_full = || disk_pressure(alloc_dir, options);
    while let Some((candidate, reason)) = next(&mut candidates, held, options, &mut disk_full) {
        tracing::info!(alloc_id = %candidate.id, %reason, "garbage collecting allocation");
        match manager.collect(&candidate.id).await {
            Ok(()) => held = held.saturating_sub(1),
            Err(error) => {
                tracing::debug!(alloc_id = %candidate.id, %error, "not collected");
            }
        }
    }
}

/// Collects every `options.interval` until the task is dropped.
pub async fn run(manager: Arc<AllocManager>, alloc_dir: std::path::PathBuf, options: GcOptions) {
    let mut ticks = tokio::time::interval(options.interval.max(Duration::from_millis(100)));
    ticks.tick().await;
    loop {
        ticks.tick().await;
        collect_once(&manager, &alloc_dir, &options).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates() -> Vec<Candidate> {
        [("c", 30), ("a", 10), ("b", 20)]
            .iter()
            .map(|(id, ended)| Candidate {
                id: id.to_string(),
                ended: *ended,
            })
            .collect()
    }

    fn options(max_allocs: usize) -> GcOptions {
        GcOptions {
            max_allocs,
            ..GcOptions::default()
        }
    }

    #[test]
    fn over_the_limit_the_oldest_terminal_go_first() {
        let mut list = candidates();
        let mut healthy_disk = || None;
        let mut held = 5;
        let mut taken = Vec::new();
        while let Some((candidate, reason)) = next(&mut list, held, &options(3), &mut healthy_disk)
        {
            assert!(matches!(reason, Reason::TooMany { limit: 3, .. }));
            taken.push(candidate.id);
            held -= 1;
        }
        assert_eq!(taken, ["a", "b"]);
    }

    #[test]
    fn within_the_limit_only_a_full_disk_collects() {
        let mut list = candidates();
        assert!(next(&mut list, 3, &options(50), &mut || None).is_none());
        let mut full_twice = 2;
        let mut disk = || {
            full_twice -= 1;
            (full_twice >= 0).then(|| "disk usage of 95% is over".to_string())
        };
        let first = next(&mut list, 3, &options(50), &mut disk).unwrap();
        assert_eq!(first.0.id, "a");
        assert!(matches!(first.1, Reason::DiskFull(_)));
        assert_eq!(
            next(&mut list, 2, &options(50), &mut disk).unwrap().0.id,
            "b"
        );
        assert!(next(&mut list, 1, &options(50), &mut disk).is_none());
    }

    #[test]
    fn usage_is_counted_as_df_does() {
        // 33 GB used and 60 GB available on a 258 GB device with the rest
        // reserved: 36 %, not the 77 % a share of the whole would say.
        assert_eq!(used_percent(33, 60).round(), 35.0);
        assert_eq!(used_percent(0, 0), 0.0);
    }

    #[test]
    fn nothing_terminal_nothing_collected() {
        assert!(next(&mut Vec::new(), 100, &options(1), &mut || Some(
            "full".into()
        ))
        .is_none());
    }
}
