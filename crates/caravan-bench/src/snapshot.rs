//! `snapshot-write` and `snapshot-read`: the cost of a Raft snapshot of
//! many nodes, in the current format (version 3, streamed) or the old one
//! (version 2, one JSON document), through the server's own code. Each
//! phase runs in its own process (`bench/snapshot.sh`), so its peak RSS
//! (VmHWM) is its own.

use std::collections::BTreeMap;
use std::io::BufWriter;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use caravan_api_types::node::DriverInfo;
use caravan_client::drivers::DriverState;
use caravan_client::{fingerprint, ClientOptions, NodeIdentity, ReservedOptions};
use caravan_server::raft::snapshot;
use caravan_server::raft_types::{LogId, SnapshotMeta, StoredMembership};
use caravan_server::state_machine::{StateMachine, SNAPSHOT_FILE};
use caravan_state::{Command, StateStore};

/// Reads a field of /proc/self/status, in KiB.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with(field))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|value| value.parse().ok())
        })
        .unwrap_or(0)
}

/// Resets VmHWM to the current RSS (Linux: `5` to clear_refs), so the
/// peak that follows is the next phase's.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Nodes as `caravan node-sim` registers them: fingerprinted from this
/// host, with the raw_exec driver, each with its own ID and address.
fn nodes(count: usize) -> Vec<caravan_api_types::node::Node> {
    let facts = fingerprint::host_facts(Path::new("/"));
    let now = chrono::Utc::now();
    let driver_states = BTreeMap::from([(
        "raw_exec".to_string(),
        DriverState {
            detected: true,
            healthy: true,
            description: "Healthy".to_string(),
            attributes: BTreeMap::from([("driver.raw_exec".to_string(), "true".to_string())]),
        },
    )]);
    let drivers: BTreeMap<String, DriverInfo> = driver_states
        .iter()
        .map(|(name, state)| (name.clone(), caravan_client::drivers::to_info(state, now)))
        .collect();
    (0..count)
        .map(|number| {
            let options = ClientOptions {
                identity: NodeIdentity {
                    node_id: uuid::Uuid::new_v4().to_string(),
                    secret_id: uuid::Uuid::new_v4().to_string(),
                },
                state_dir: std::env::temp_dir(),
                node_name: format!("sim-{number:06}"),
                datacenter: "dc1".to_string(),
                node_class: String::new(),
                node_pool: "default".to_string(),
                meta: BTreeMap::from([("simulated".to_string(), "true".to_string())]),
                host_volumes: BTreeMap::new(),
                reserved: ReservedOptions::default(),
                http_advertise: format!(
                    "10.{}.{}.{}:4646",
                    number / 62500 % 250,
                    (number / 250) % 250,
                    number % 250 + 1
                ),
                network_interface: "eth0".to_string(),
                network_speed: 1000,
                cpu_total_compute: 0,
                memory_total_mb: 0,
                disk_free_mb: 0,
                raw_exec_enabled: true,
                version: "1.10.0+caravan.0.1.0".to_string(),
                revision: String::new(),
                fingerprint_interval: Duration::from_secs(3600),
                rpc_tls: false,
                alloc_dir: std::env::temp_dir(),
                region: "global".to_string(),
                max_kill_timeout: Duration::from_secs(30),
                executor_binary: std::path::PathBuf::new(),
                destroy_on_shutdown: false,
                gc: caravan_client::gc::GcOptions::default(),
            };
            fingerprint::build_node(&options, &facts, &drivers, &driver_states)
        })
        .collect()
}

fn millis(elapsed: Duration) -> f64 {
    (elapsed.as_secs_f64() * 1000.0 * 10.0).round() / 10.0
}

/// Builds a state of `count` nodes and writes its snapshot into `dir` in
/// `format` (`v2` or `v3`), as the server does.
pub fn write(dir: &str, count: usize, format: &str) -> Result<serde_json::Value, String> {
    let dir = Path::new(dir);
    caravan_files::create_private_dir(dir).map_err(|e| e.to_string())?;
    let store = StateStore::new();
    let now = chrono::Utc::now();
    let mut index = 0;
    for chunk in nodes(count).chunks(1000) {
        let commands: Vec<(u64, Command)> = chunk
            .iter()
            .map(|node| {
                index += 1;
                let node = Box::new(node.clone());
                (index, Command::NodeRegister { node, now })
            })
            .collect();
        store.apply_batch(commands.iter().map(|(index, command)| (*index, command)));
    }
    let state = store.snapshot();
    let meta = SnapshotMeta {
        last_log_id: Some(LogId::new_term_index(1, index)),
        last_membership: StoredMembership::default(),
    };
    let path = dir.join(SNAPSHOT_FILE);
    let rss_before = status_kib("VmRSS:");
    let reset = reset_peak();
    let started = Instant::now();
    match format {
        "v3" => {
            caravan_files::write_private_atomic_with(&path, |file| {
                snapshot::write(BufWriter::with_capacity(1 << 16, file), &meta, &state).map(|_| ())
            })
            .map_err(|e| e.to_string())?;
        }
        "v2" => {
            // The old path: the whole snapshot in one buffer, then the file.
            let bytes = snapshot::encode_v2(&meta, &state).map_err(|e| e.to_string())?;
            caravan_files::write_private_atomic(&path, &bytes).map_err(|e| e.to_string())?;
        }
        other => return Err(format!("unknown format {other:?} (v2 or v3)")),
    }
    let elapsed = started.elapsed();
    let bytes = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
    Ok(serde_json::json!({
        "phase": "write",
        "format": format,
        "nodes": state.node_count(),
        "write_ms": millis(elapsed),
        "file_bytes": bytes,
        "rss_before_kib": rss_before,
        "peak_rss_kib": status_kib("VmHWM:"),
        "peak_reset": reset,
    }))
}

/// Opens a state machine on the snapshot in `dir` (what a server does at
/// start: read, verify, decode into a new state, swap it in).
pub fn read(dir: &str) -> Result<serde_json::Value, String> {
    let dir = Path::new(dir);
    let rss_before = status_kib("VmRSS:");
    let reset = reset_peak();
    let store = Arc::new(StateStore::new());
    let started = Instant::now();
    let machine = StateMachine::open(dir, Arc::clone(&store)).map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    let peak = status_kib("VmHWM:");
    let state = store.snapshot();
    Ok(serde_json::json!({
        "phase": "restore",
        "nodes": state.node_count(),
        "last_applied": machine.last_applied().map(|id| id.index),
        "restore_ms": millis(elapsed),
        "rss_before_kib": rss_before,
        "peak_rss_kib": peak,
        "rss_after_kib": status_kib("VmRSS:"),
        "peak_reset": reset,
    }))
}
