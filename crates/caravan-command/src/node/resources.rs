//! The resource sections of `node status`: what the node's allocations
//! hold and use, and what the host itself uses.

use caravan_api_types::alloc::Allocation;
use caravan_api_types::node::Node;
use caravan_sdk::Client;
use serde_json::Value;

use crate::alloc::{ibytes, megabytes};
use crate::ui;

/// What the node offers to allocations: its resources less reserved ones.
fn node_totals(node: &Node) -> (u64, u64, u64) {
    let offered = node.node_resources.clone().unwrap_or_default();
    let reserved = node.reserved_resources.clone().unwrap_or_default();
    (
        offered
            .cpu
            .cpu_shares
            .saturating_sub(reserved.cpu.cpu_shares),
        offered
            .memory
            .memory_mb
            .saturating_sub(reserved.memory.memory_mb),
        offered.disk.disk_mb.saturating_sub(reserved.disk.disk_mb),
    )
}

pub(super) fn allocated_resources(node: &Node, running: &[&Allocation]) -> String {
    let (cpu_total, memory_total, disk_total) = node_totals(node);
    let (mut cpu, mut memory, mut disk) = (0, 0, 0);
    for alloc in running {
        if let Some(resources) = &alloc.allocated_resources {
            let (c, m, d) = resources.totals();
            cpu += c;
            memory += m;
            disk += d;
        }
    }
    let count = match node.node_max_allocs {
        0 => running.len().to_string(),
        max => format!("{}/{max}", running.len()),
    };
    let as_i64 = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    ui::table(
        &["CPU", "Memory", "Disk", "Alloc Count"],
        vec![vec![
            format!("{cpu}/{cpu_total} MHz"),
            format!("{}/{}", megabytes(memory), megabytes(as_i64(memory_total))),
            format!("{}/{}", megabytes(disk), megabytes(as_i64(disk_total))),
            count,
        ]],
    )
}

/// What the running allocations use now; `None` when a stat is missing.
pub(super) async fn allocation_utilization(
    client: &Client,
    node: &Node,
    running: &[&Allocation],
) -> Option<String> {
    let (cpu_total, memory_total, _) = node_totals(node);
    let (mut cpu, mut memory) = (0f64, 0u64);
    for alloc in running {
        let stats = client.client().allocation_stats(&alloc.id).await.ok()?;
        let usage = &stats["ResourceUsage"];
        cpu += usage["CpuStats"]["TotalTicks"].as_f64().unwrap_or(0.0);
        let used = usage["MemoryStats"]["Usage"].as_u64().unwrap_or(0);
        memory += match used {
            0 => usage["MemoryStats"]["RSS"].as_u64().unwrap_or(0),
            used => used,
        };
    }
    Some(ui::table(
        &["CPU", "Memory"],
        vec![vec![
            format!("{}/{cpu_total} MHz", cpu.floor()),
            format!(
                "{}/{}",
                ibytes(memory),
                ibytes(memory_total.saturating_mul(1024 * 1024))
            ),
        ]],
    ))
}

pub(super) fn host_utilization(node: &Node, stats: &Value) -> String {
    let shares = node
        .node_resources
        .as_ref()
        .map_or(0, |resources| resources.cpu.cpu_shares);
    let ticks = stats["CPUTicksConsumed"].as_f64().unwrap_or(0.0).floor();
    let memory = format!(
        "{}/{}",
        ibytes(stats["Memory"]["Used"].as_u64().unwrap_or(0)),
        ibytes(stats["Memory"]["Total"].as_u64().unwrap_or(0))
    );
    let device = node
        .attributes
        .get("unique.storage.volume")
        .cloned()
        .unwrap_or_default();
    let disk = stats["DiskStats"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|disk| disk["Device"].as_str() == Some(device.as_str()));
    let disk = match disk {
        Some(disk) => format!(
            "{}/{}",
            ibytes(disk["Used"].as_u64().unwrap_or(0)),
            ibytes(disk["Size"].as_u64().unwrap_or(0))
        ),
        None => format!("({device})"),
    };
    ui::table(
        &["CPU", "Memory", "Disk"],
        vec![vec![format!("{ticks}/{shares} MHz"), memory, disk]],
    )
}

/// A percentage as Nomad's `#,###.##` format prints it.
fn percent(value: &Value) -> String {
    let number = value.as_f64().unwrap_or(0.0);
    let text = format!("{number:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// `-stats`: the host's CPUs, memory and disks.
pub(super) fn host_stats(stats: &Value) {
    let cpus: Vec<String> = stats["CPU"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|cpu| {
            ui::kv(&[
                ("CPU", ui::cell(&cpu["CPU"])),
                ("User", percent(&cpu["User"])),
                ("System", percent(&cpu["System"])),
                ("Idle", percent(&cpu["Idle"])),
            ])
        })
        .collect();
    crate::outln!("\nCPU Stats\n{}", cpus.join("\n\n"));
    let memory = &stats["Memory"];
    let size = |value: &Value| ibytes(value.as_u64().unwrap_or(0));
    crate::outln!(
        "\nMemory Stats\n{}",
        ui::kv(&[
            ("Total", size(&memory["Total"])),
            ("Available", size(&memory["Available"])),
            ("Used", size(&memory["Used"])),
            ("Free", size(&memory["Free"])),
        ])
    );
    let disks: Vec<String> = stats["DiskStats"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|disk| {
            ui::kv(&[
                ("Device", ui::cell(&disk["Device"])),
                ("MountPoint", ui::cell(&disk["Mountpoint"])),
                ("Size", size(&disk["Size"])),
                ("Used", size(&disk["Used"])),
                ("Available", size(&disk["Available"])),
                ("Used Percent", percent(&disk["UsedPercent"])),
                ("Inodes Percent", percent(&disk["InodesUsedPercent"])),
            ])
        })
        .collect();
    crate::outln!("\nDisk Stats\n{}", disks.join("\n\n"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_drop_trailing_zeros() {
        assert_eq!(percent(&serde_json::json!(12.5)), "12.5%");
        assert_eq!(percent(&serde_json::json!(1.236)), "1.24%");
        assert_eq!(percent(&serde_json::json!(100)), "100%");
    }
}
