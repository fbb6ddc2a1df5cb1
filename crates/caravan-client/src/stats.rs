//! Resource usage of allocations as `/v1/client/allocation/:id/stats`
//! answers it (Nomad's `AllocResourceUsage`): memory and CPU per task,
//! summed for the allocation. CPU percentages need an interval, so a
//! request reads every task twice, [`SAMPLE_WINDOW`] apart.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use caravan_drivers::TaskUsage;
use serde::Serialize;

/// How far apart the two readings a CPU rate is taken from are.
pub const SAMPLE_WINDOW: Duration = Duration::from_millis(250);

/// Without cgroups only the processes' resident memory is known.
const MEMORY_MEASURED: &[&str] = &["RSS"];
const CPU_MEASURED: &[&str] = &["System Mode", "User Mode", "Percent"];

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MemoryStats {
    #[serde(rename = "RSS")]
    pub rss: u64,
    pub cache: u64,
    pub swap: u64,
    pub usage: u64,
    pub max_usage: u64,
    pub kernel_usage: u64,
    pub kernel_max_usage: u64,
    pub measured: Vec<&'static str>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CpuStats {
    /// Percent of one core spent in the kernel.
    pub system_mode: f64,
    /// Percent of one core spent in user mode.
    pub user_mode: f64,
    /// The CPU used, in MHz (Nomad's unit for `cpu` resources).
    pub total_ticks: f64,
    pub throttled_periods: u64,
    pub throttled_time: u64,
    /// Percent of one core (above 100 with several busy cores).
    pub percent: f64,
    pub measured: Vec<&'static str>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResourceUsage {
    pub memory_stats: MemoryStats,
    pub cpu_stats: CpuStats,
    /// No devices are fingerprinted yet: always `null`.
    pub device_stats: Option<Vec<serde_json::Value>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskResourceUsage {
    pub resource_usage: ResourceUsage,
    /// UnixNano of the second reading.
    pub timestamp: i64,
    /// Per-process usage is not reported (Nomad leaves it `null` too).
    pub pids: Option<BTreeMap<String, ResourceUsage>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AllocResourceUsage {
    pub resource_usage: ResourceUsage,
    /// The running tasks only (one that is not running has no usage).
    pub tasks: BTreeMap<String, TaskResourceUsage>,
    pub timestamp: i64,
}

/// One task's usage from two readings `elapsed` apart; `mhz` is one core's
/// frequency (the node's `cpu.frequency`).
pub fn task_usage(
    before: &TaskUsage,
    after: &TaskUsage,
    elapsed: Duration,
    mhz: f64,
    timestamp: i64,
) -> TaskResourceUsage {
    let earlier: HashMap<i32, (f64, f64)> = before
        .processes
        .iter()
        .map(|process| (process.pid, (process.user_seconds, process.system_seconds)))
        .collect();
    // Per pid: a process born within the window spent all its time in it.
    let (user, system) = after
        .processes
        .iter()
        .fold((0.0, 0.0), |(user, system), process| {
            let (was_user, was_system) = earlier.get(&process.pid).copied().unwrap_or_default();
            (
                user + (process.user_seconds - was_user).max(0.0),
                system + (process.system_seconds - was_system).max(0.0),
            )
        });
    let seconds = elapsed.as_secs_f64();
    let percent_of = |cpu: f64| match seconds > 0.0 {
        true => cpu / seconds * 100.0,
        false => 0.0,
    };
    let (user_mode, system_mode) = (percent_of(user), percent_of(system));
    let percent = user_mode + system_mode;
    let rss = after.rss_bytes();
    TaskResourceUsage {
        resource_usage: ResourceUsage {
            memory_stats: MemoryStats {
                rss,
                usage: rss,
                measured: MEMORY_MEASURED.to_vec(),
                ..MemoryStats::default()
            },
            cpu_stats: CpuStats {
                system_mode,
                user_mode,
                total_ticks: percent / 100.0 * mhz,
                percent,
                measured: CPU_MEASURED.to_vec(),
                ..CpuStats::default()
            },
            device_stats: None,
        },
        timestamp,
        pids: None,
    }
}

/// The allocation's usage: its tasks' summed.
pub fn alloc_usage(
    tasks: BTreeMap<String, TaskResourceUsage>,
    timestamp: i64,
) -> AllocResourceUsage {
    let mut total = ResourceUsage {
        memory_stats: MemoryStats {
            measured: MEMORY_MEASURED.to_vec(),
            ..MemoryStats::default()
        },
        cpu_stats: CpuStats {
            measured: CPU_MEASURED.to_vec(),
            ..CpuStats::default()
        },
        device_stats: None,
    };
    for task in tasks.values() {
        let (memory, cpu) = (
            &task.resource_usage.memory_stats,
            &task.resource_usage.cpu_stats,
        );
        total.memory_stats.rss += memory.rss;
        total.memory_stats.usage += memory.usage;
        total.cpu_stats.system_mode += cpu.system_mode;
        total.cpu_stats.user_mode += cpu.user_mode;
        total.cpu_stats.total_ticks += cpu.total_ticks;
        total.cpu_stats.percent += cpu.percent;
    }
    AllocResourceUsage {
        resource_usage: total,
        tasks,
        timestamp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caravan_drivers::ProcessUsage;

    fn process(pid: i32, rss: u64, user: f64, system: f64) -> ProcessUsage {
        ProcessUsage {
            pid,
            rss_bytes: rss,
            user_seconds: user,
            system_seconds: system,
        }
    }

    #[test]
    fn rates_are_taken_per_process() {
        let before = TaskUsage {
            processes: vec![process(1, 10, 5.0, 1.0), process(2, 10, 100.0, 50.0)],
        };
        // 2 is gone (its past time must not count against the rest); 3 was
        // born within the window.
        let after = TaskUsage {
            processes: vec![process(1, 1000, 5.1, 1.05), process(3, 24, 0.05, 0.0)],
        };
        let usage = task_usage(&before, &after, Duration::from_millis(500), 2000.0, 7);
        let cpu = &usage.resource_usage.cpu_stats;
        assert!((cpu.user_mode - 30.0).abs() < 1e-6, "{cpu:?}");
        assert!((cpu.system_mode - 10.0).abs() < 1e-6, "{cpu:?}");
        assert!((cpu.percent - 40.0).abs() < 1e-6, "{cpu:?}");
        assert!((cpu.total_ticks - 800.0).abs() < 1e-6, "{cpu:?}");
        assert_eq!(usage.resource_usage.memory_stats.rss, 1024);
        assert_eq!(usage.timestamp, 7);
    }

    #[test]
    fn the_allocation_sums_its_tasks_in_nomads_shape() {
        let task = |rss: u64| {
            let after = TaskUsage {
                processes: vec![process(1, rss, 0.0, 0.0)],
            };
            task_usage(&TaskUsage::default(), &after, SAMPLE_WINDOW, 1000.0, 1)
        };
        let tasks = BTreeMap::from([("a".to_string(), task(100)), ("b".to_string(), task(50))]);
        let usage = alloc_usage(tasks, 2);
        assert_eq!(usage.resource_usage.memory_stats.rss, 150);
        let json = serde_json::to_value(&usage).unwrap();
        let memory = &json["ResourceUsage"]["MemoryStats"];
        assert_eq!(memory["RSS"], 150);
        assert_eq!(memory["Measured"], serde_json::json!(["RSS"]));
        assert_eq!(
            json["ResourceUsage"]["CpuStats"]["Measured"],
            serde_json::json!(["System Mode", "User Mode", "Percent"])
        );
        assert!(json["ResourceUsage"]["DeviceStats"].is_null());
        assert!(json["Tasks"]["a"]["Pids"].is_null());
        assert_eq!(
            json["Tasks"]["b"]["ResourceUsage"]["MemoryStats"]["Usage"],
            50
        );
        assert_eq!(json["Timestamp"], 2);
    }
}
