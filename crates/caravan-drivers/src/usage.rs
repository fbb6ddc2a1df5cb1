//! What a task's processes use, read from `/proc`: resident memory and the
//! CPU time spent so far. Counters are cumulative; the client turns two
//! readings into rates (a percentage needs an interval).

use std::collections::{BTreeMap, BTreeSet};

/// `/proc` reports CPU times in USER_HZ, which Linux fixes at 100 for
/// userspace on every architecture Caravan runs on (nix does not expose
/// `sysconf(_SC_CLK_TCK)` with the features this workspace enables).
const TICKS_PER_SECOND: f64 = 100.0;

/// What one process uses at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessUsage {
    pub pid: i32,
    pub rss_bytes: u64,
    /// CPU seconds spent in user mode since it started.
    pub user_seconds: f64,
    /// CPU seconds spent in the kernel since it started.
    pub system_seconds: f64,
}

/// What a task's processes use at one moment, per process: a rate is
/// taken per pid, so a process that exits between two readings does not
/// take its whole past CPU time off the sum.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskUsage {
    pub processes: Vec<ProcessUsage>,
}

impl TaskUsage {
    /// Resident memory of every process, summed.
    pub fn rss_bytes(&self) -> u64 {
        self.processes.iter().map(|process| process.rss_bytes).sum()
    }
}

/// The fields of `/proc/<pid>/stat` a measure needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sample {
    pid: i32,
    ppid: i32,
    pgrp: i32,
    session: i32,
    zombie: bool,
    utime: u64,
    stime: u64,
}

/// Parses one `stat` line; fields are counted from the last `)`, since the
/// command name may hold spaces and parentheses.
fn parse(line: &str) -> Option<Sample> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let rest: Vec<&str> = line.get(close + 1..)?.split_whitespace().collect();
    Some(Sample {
        pid: line[..open].trim().parse().ok()?,
        zombie: matches!(rest.first()?.chars().next()?, 'Z' | 'X' | 'x'),
        ppid: field(&rest, 4)?,
        pgrp: field(&rest, 5)?,
        session: field(&rest, 6)?,
        utime: field(&rest, 14)?,
        stime: field(&rest, 15)?,
    })
}

/// Field `n` (1-based, as `man proc` numbers them) of a `stat` line whose
/// fields from the third on are `rest`.
fn field<T: std::str::FromStr>(rest: &[&str], n: usize) -> Option<T> {
    rest.get(n.checked_sub(3)?)?.parse().ok()
}

/// `VmRSS` of `/proc/<pid>/status`, in bytes (kernel threads have none).
fn rss_bytes(status: &str) -> u64 {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// The processes of group `pgrp` in `session`, and every live descendant
/// of them (a child that moved to a group of its own is still the task's).
fn tree(samples: &[Sample], pgrp: i32, session: i32) -> BTreeSet<i32> {
    let mut members: BTreeSet<i32> = samples
        .iter()
        .filter(|sample| sample.pgrp == pgrp && sample.session == session)
        .map(|sample| sample.pid)
        .collect();
    let children: BTreeMap<i32, Vec<i32>> =
        samples.iter().fold(BTreeMap::new(), |mut map, sample| {
            map.entry(sample.ppid).or_default().push(sample.pid);
            map
        });
    let mut pending: Vec<i32> = members.iter().copied().collect();
    while let Some(pid) = pending.pop() {
        for child in children.get(&pid).into_iter().flatten() {
            if members.insert(*child) {
                pending.push(*child);
            }
        }
    }
    members
}

/// What the processes of group `pgrp` (in `session`) and their descendants
/// use now. Zombies have freed their memory and are left out.
pub fn group_usage(pgrp: i32, session: i32) -> TaskUsage {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return TaskUsage::default();
    };
    let samples: Vec<Sample> = entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            entry.file_name().to_str()?.parse::<i32>().ok()?;
            parse(&std::fs::read_to_string(entry.path().join("stat")).ok()?)
        })
        .collect();
    let members = tree(&samples, pgrp, session);
    let mut usage = TaskUsage::default();
    for sample in samples.iter().filter(|s| members.contains(&s.pid)) {
        if sample.zombie {
            continue;
        }
        let status = std::fs::read_to_string(format!("/proc/{}/status", sample.pid));
        usage.processes.push(ProcessUsage {
            pid: sample.pid,
            rss_bytes: status.map_or(0, |status| rss_bytes(&status)),
            user_seconds: sample.utime as f64 / TICKS_PER_SECOND,
            system_seconds: sample.stime as f64 / TICKS_PER_SECOND,
        });
    }
    usage
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(pid: i32, ppid: i32, pgrp: i32) -> Sample {
        Sample {
            pid,
            ppid,
            pgrp,
            session: 1,
            zombie: false,
            utime: 0,
            stime: 0,
        }
    }

    #[test]
    fn parses_times_after_an_odd_command_name() {
        let line =
            "42 (a (b) c) S 7 42 1 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 1 0 987654 1000 100";
        let parsed = parse(line).unwrap();
        assert_eq!(
            (parsed.pid, parsed.ppid, parsed.pgrp, parsed.session),
            (42, 7, 42, 1)
        );
        assert_eq!((parsed.utime, parsed.stime), (250, 30));
        assert!(!parsed.zombie);
    }

    #[test]
    fn rss_comes_from_vmrss_in_kib() {
        assert_eq!(rss_bytes("Name:\tsh\nVmRSS:\t    1234 kB\n"), 1234 * 1024);
        assert_eq!(rss_bytes("Name:\tkthreadd\n"), 0);
    }

    #[test]
    fn the_tree_holds_the_group_and_descendants_that_left_it() {
        let samples = [
            sample(10, 1, 10),
            sample(11, 10, 10),
            // Moved to a group of its own, still a descendant.
            sample(12, 11, 12),
            sample(13, 12, 12),
            // Unrelated.
            sample(20, 1, 20),
        ];
        let members: Vec<i32> = tree(&samples, 10, 1).into_iter().collect();
        assert_eq!(members, [10, 11, 12, 13]);
    }

    #[test]
    fn this_process_is_measured() {
        let pid = std::process::id() as i32;
        let own = crate::proc::stat(pid).unwrap();
        let usage = group_usage(own.pgrp, own.session);
        let own = usage.processes.iter().find(|process| process.pid == pid);
        assert!(own.is_some_and(|own| own.rss_bytes > 0), "{usage:?}");
    }
}
