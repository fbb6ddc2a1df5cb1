//! The machine's usage as `/v1/client/stats` answers it (Nomad's
//! `HostStats`): memory from `/proc/meminfo`, each CPU's split from two
//! readings of `/proc/stat` a short window apart, and the disks from
//! `/proc/mounts` and statvfs.

use std::path::Path;

use serde::Serialize;

use crate::stats::SAMPLE_WINDOW;
use crate::Client;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostMemoryStats {
    pub total: u64,
    pub available: u64,
    /// Total less free, buffers and page cache.
    pub used: u64,
    pub free: u64,
}

/// One CPU's time over the window, in percent.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostCpuStats {
    #[serde(rename = "CPU")]
    pub cpu: String,
    pub user: f64,
    pub system: f64,
    pub idle: f64,
    /// Everything but idle.
    pub total: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostDiskStats {
    pub device: String,
    pub mountpoint: String,
    pub size: u64,
    pub used: u64,
    pub available: u64,
    pub used_percent: f64,
    pub inodes_used_percent: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostStats {
    pub memory: HostMemoryStats,
    #[serde(rename = "CPU")]
    pub cpu: Vec<HostCpuStats>,
    /// The CPU used over the window, in MHz across all cores.
    #[serde(rename = "CPUTicksConsumed")]
    pub cpu_ticks_consumed: f64,
    pub disk_stats: Vec<HostDiskStats>,
    /// The filesystem holding the allocation directories.
    pub alloc_dir_stats: HostDiskStats,
    /// No devices are fingerprinted yet: always empty.
    pub device_stats: Vec<serde_json::Value>,
    /// Seconds since boot.
    pub uptime: u64,
    pub timestamp: i64,
}

impl Client {
    /// The machine's usage now (takes [`SAMPLE_WINDOW`] to measure CPUs).
    pub async fn host_stats(&self) -> HostStats {
        let before = cpu_times(&read("/proc/stat"));
        tokio::time::sleep(SAMPLE_WINDOW).await;
        let after = cpu_times(&read("/proc/stat"));
        let mhz = self
            .node()
            .attributes
            .get("cpu.frequency")
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or(0.0);
        let cpu = cpu_percents(&before, &after);
        let mounts = read("/proc/mounts");
        HostStats {
            memory: memory(&read("/proc/meminfo")),
            cpu_ticks_consumed: cpu.iter().map(|cpu| cpu.total / 100.0 * mhz).sum(),
            cpu,
            disk_stats: physical_mounts(&mounts, &read("/proc/filesystems"))
                .into_iter()
                .filter_map(|(device, point)| disk(&device, &point))
                .collect(),
            alloc_dir_stats: alloc_dir_disk(&mounts, &self.options.alloc_dir),
            device_stats: Vec::new(),
            uptime: read("/proc/uptime")
                .split_whitespace()
                .next()
                .and_then(|seconds| seconds.parse::<f64>().ok())
                .map_or(0, |seconds| seconds as u64),
            timestamp: chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default(),
        }
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn memory(meminfo: &str) -> HostMemoryStats {
    let field = |key: &str| {
        meminfo
            .lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|value| value.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    let (total, free) = (field("MemTotal"), field("MemFree"));
    HostMemoryStats {
        total,
        available: field("MemAvailable"),
        used: total
            .saturating_sub(free)
            .saturating_sub(field("Buffers"))
            .saturating_sub(field("Cached")),
        free,
    }
}

/// One CPU's counters from `/proc/stat`: (user, system, idle, total).
type CpuTimes = (String, [u64; 4]);

/// The per-CPU lines (`cpu0`, `cpu1`, ...; not the `cpu` sum).
fn cpu_times(stat: &str) -> Vec<CpuTimes> {
    stat.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let name = fields.next()?;
            if !name.starts_with("cpu") || name == "cpu" {
                return None;
            }
            let values: Vec<u64> = fields.filter_map(|value| value.parse().ok()).collect();
            let value = |index: usize| values.get(index).copied().unwrap_or(0);
            // user nice system idle iowait irq softirq steal (guest time
            // is already in user).
            let user = value(0) + value(1);
            let system = value(2) + value(5) + value(6);
            let idle = value(3) + value(4);
            let total = user + system + idle + value(7);
            Some((name.to_string(), [user, system, idle, total]))
        })
        .collect()
}

fn cpu_percents(before: &[CpuTimes], after: &[CpuTimes]) -> Vec<HostCpuStats> {
    after
        .iter()
        .map(|(name, now)| {
            let then = before
                .iter()
                .find(|(earlier, _)| earlier == name)
                .map_or([0; 4], |(_, times)| *times);
            let delta = |index: usize| now[index].saturating_sub(then[index]) as f64;
            let total = delta(3);
            let percent = |part: f64| match total > 0.0 {
                true => part / total * 100.0,
                false => 0.0,
            };
            let idle = match total > 0.0 {
                true => percent(delta(2)),
                false => 100.0,
            };
            HostCpuStats {
                cpu: name.clone(),
                user: percent(delta(0)),
                system: percent(delta(1)),
                idle,
                total: 100.0 - idle,
            }
        })
        .collect()
}

/// (device, mount point) of the mounts whose filesystem is on a device
/// (not `nodev` in `/proc/filesystems`), each mount point once.
fn physical_mounts(mounts: &str, filesystems: &str) -> Vec<(String, String)> {
    let virtual_types: Vec<&str> = filesystems
        .lines()
        .filter_map(|line| line.strip_prefix("nodev"))
        .map(str::trim)
        .collect();
    let mut found: Vec<(String, String)> = Vec::new();
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [device, point, kind, ..] = fields[..] else {
            continue;
        };
        let point = unescape(point);
        if virtual_types.contains(&kind) || found.iter().any(|(_, seen)| *seen == point) {
            continue;
        }
        found.push((device.to_string(), point));
    }
    found
}

/// `/proc/mounts` writes spaces, tabs, newlines and backslashes in octal.
fn unescape(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

fn disk(device: &str, point: &str) -> Option<HostDiskStats> {
    let stats = nix::sys::statvfs::statvfs(point).ok()?;
    let fragment = stats.fragment_size();
    let size = stats.blocks() * fragment;
    let used = stats.blocks().saturating_sub(stats.blocks_free()) * fragment;
    let available = stats.blocks_available() * fragment;
    let used_inodes = stats.files().saturating_sub(stats.files_free());
    let ratio = |part: u64, whole: u64| match whole {
        0 => 0.0,
        whole => part as f64 / whole as f64 * 100.0,
    };
    Some(HostDiskStats {
        device: device.to_string(),
        mountpoint: point.to_string(),
        size,
        used,
        available,
        // As df counts it: of what unprivileged users may use.
        used_percent: ratio(used, used + available),
        inodes_used_percent: ratio(used_inodes, stats.files()),
    })
}

/// The filesystem holding `alloc_dir` (or its nearest existing parent).
fn alloc_dir_disk(mounts: &str, alloc_dir: &Path) -> HostDiskStats {
    let Some(existing) = alloc_dir.ancestors().find(|dir| dir.exists()) else {
        return HostDiskStats::default();
    };
    let mount = mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            Some((fields.next()?.to_string(), unescape(fields.next()?)))
        })
        .filter(|(_, point)| existing.starts_with(point))
        .max_by_key(|(_, point)| point.len());
    let (device, point) = mount.unwrap_or_default();
    let mut stats = disk(&device, &existing.display().to_string()).unwrap_or_default();
    stats.mountpoint = point;
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_read_in_bytes() {
        let meminfo = "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    600 kB\nBuffers:          50 kB\nCached:          250 kB\n";
        assert_eq!(
            memory(meminfo),
            HostMemoryStats {
                total: 1_024_000,
                available: 614_400,
                used: 614_400,
                free: 102_400,
            }
        );
    }

    #[test]
    fn cpu_percents_come_from_the_difference_of_two_readings() {
        let before = cpu_times("cpu  1 1 1 1\ncpu0 100 0 50 800 0 0 0 0\nintr 5\n");
        let after = cpu_times("cpu  2 2 2 2\ncpu0 130 10 60 900 10 0 0 0\n");
        assert_eq!(before.len(), 1);
        let cpu = &cpu_percents(&before, &after)[0];
        assert_eq!(cpu.cpu, "cpu0");
        assert!((cpu.user - 25.0).abs() < 1e-9, "{cpu:?}");
        assert!((cpu.system - 6.25).abs() < 1e-9, "{cpu:?}");
        assert!((cpu.idle - 68.75).abs() < 1e-9, "{cpu:?}");
        assert!((cpu.total - 31.25).abs() < 1e-9, "{cpu:?}");
    }

    #[test]
    fn only_device_backed_mounts_are_disks() {
        let filesystems = "nodev\tsysfs\nnodev\tproc\n\text4\nnodev\toverlay\n";
        let mounts = "proc /proc proc rw 0 0\n/dev/sda1 /data\\040dir ext4 rw 0 0\n/dev/sda1 /data\\040dir ext4 rw 0 0\noverlay / overlay rw 0 0\n";
        assert_eq!(
            physical_mounts(mounts, filesystems),
            [("/dev/sda1".to_string(), "/data dir".to_string())]
        );
    }

    #[test]
    fn the_alloc_dir_disk_is_the_deepest_mount_holding_it() {
        let dir = tempfile::tempdir().unwrap();
        let mounts = "rootfs / ext4 rw 0 0\nother /nowhere ext4 rw 0 0\n";
        let stats = alloc_dir_disk(mounts, &dir.path().join("not/yet"));
        assert_eq!(stats.mountpoint, "/");
        assert_eq!(stats.device, "rootfs");
        assert!(stats.size > 0);
    }

    #[test]
    fn the_shape_is_nomads() {
        let json = serde_json::to_value(HostStats::default()).unwrap();
        for key in [
            "Memory",
            "CPU",
            "CPUTicksConsumed",
            "DiskStats",
            "AllocDirStats",
            "DeviceStats",
            "Uptime",
            "Timestamp",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
        assert!(json["AllocDirStats"].get("InodesUsedPercent").is_some());
    }
}
