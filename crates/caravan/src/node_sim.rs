//! `caravan node-sim`: registers and heartbeats many fake nodes from one
//! process through the same RPC real clients use, for tests and benchmarks.
//! Every loop is bounded by `-count` and `-duration`.
//!
//! With `-run-allocs` each node also takes the allocations placed on it
//! ([`allocs`]): it reads them through the client's blocking RPC and
//! reports them running, and batch ones complete after `-batch-runtime`.
//! Each such node holds one connection open for its query, so thousands
//! of them from one address need `limits.rpc_max_conns_per_client` raised
//! on the servers.
//!
//! Each node keeps its own [`ServerList`] of `-servers`, as a real client
//! does, and fails over through it: node N starts on server N mod the
//! count (Nomad's clients shuffle their list, so a cluster's nodes are
//! spread over its servers) and learns servers from heartbeat answers.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use caravan_api_types::node::{DriverInfo, NODE_STATUS_READY};
use caravan_client::drivers::DriverState;
use caravan_client::{fingerprint, rpc, ClientOptions, NodeIdentity, ReservedOptions, ServerList};
use caravan_config::flags::{parse_go_flags, FlagKind};
use caravan_rpc::NodeHeartbeat;
use tokio::sync::{Mutex, Semaphore};

mod allocs;

const FLAGS: &[(&str, FlagKind)] = &[
    ("servers", FlagKind::Value),
    ("count", FlagKind::Value),
    ("duration", FlagKind::Value),
    ("concurrency", FlagKind::Value),
    ("datacenter", FlagKind::Value),
    ("run-allocs", FlagKind::Bool),
    ("batch-runtime", FlagKind::Value),
];

struct Settings {
    servers: Vec<String>,
    count: usize,
    duration: Duration,
    concurrency: usize,
    datacenter: String,
    /// Whether nodes take and report their allocations.
    run_allocs: bool,
    /// How long a batch allocation "runs" before it is reported complete.
    batch_runtime: Duration,
}

fn settings(args: &[String]) -> Result<Settings, String> {
    let (flags, rest) = parse_go_flags(args, FLAGS).map_err(|error| error.to_string())?;
    if let Some(extra) = rest.first() {
        return Err(format!("unexpected argument {extra:?}"));
    }
    let mut settings = Settings {
        servers: vec!["127.0.0.1:4647".to_string()],
        count: 100,
        duration: Duration::from_secs(60),
        concurrency: 64,
        datacenter: "dc1".to_string(),
        run_allocs: false,
        batch_runtime: Duration::from_secs(2),
    };
    for flag in flags {
        let invalid = || format!("invalid value {:?} for -{}", flag.value, flag.name);
        match flag.name.as_str() {
            "servers" => {
                settings.servers = flag.value.split(',').map(str::to_string).collect();
            }
            "count" => settings.count = flag.value.parse().map_err(|_| invalid())?,
            "concurrency" => settings.concurrency = flag.value.parse().map_err(|_| invalid())?,
            "datacenter" => settings.datacenter = flag.value.clone(),
            "duration" => {
                settings.duration = caravan_api_types::duration::parse_go_duration(&flag.value)
                    .map_err(|_| invalid())?
            }
            "run-allocs" => {
                settings.run_allocs =
                    caravan_config::flags::parse_go_bool(&flag.value).ok_or_else(invalid)?;
            }
            "batch-runtime" => {
                settings.batch_runtime = caravan_api_types::duration::parse_go_duration(&flag.value)
                    .map_err(|_| invalid())?
            }
            _ => return Err(format!("flag provided but not defined: -{}", flag.name)),
        }
    }
    if settings.count == 0 || settings.count > 100_000 {
        return Err("-count must be between 1 and 100000".to_string());
    }
    Ok(settings)
}

pub fn run(args: &[String]) -> ExitCode {
    let settings = match settings(args) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("caravan node-sim: {error}");
            return ExitCode::from(1);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("caravan node-sim: {error}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(simulate(settings)) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("caravan node-sim: {error}");
            ExitCode::from(1)
        }
    }
}

fn percentile(sorted: &[Duration], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

async fn simulate(settings: Settings) -> Result<serde_json::Value, String> {
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(caravan_tls::no_tls_client_config())
        .pool_max_idle_per_host(settings.concurrency)
        .build()
        .map_err(|error| error.to_string())?;
    let http = caravan_rpc::RpcClient::new(http, None);
    let facts = fingerprint::host_facts(std::path::Path::new("/"));
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
    let all_servers = ServerList::new(settings.servers.clone(), http.clone())
        .await
        .get();
    if all_servers.is_empty() {
        return Err("no usable server address in -servers".to_string());
    }
    let deadline = Instant::now() + settings.duration;
    let limit = Arc::new(Semaphore::new(settings.concurrency));
    let latencies = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let failures = Arc::new(std::sync::atomic::AtomicU64::new(0));

    let started = Instant::now();
    let mut registrations = Vec::new();
    for number in 0..settings.count {
        let options = ClientOptions {
            identity: NodeIdentity {
                node_id: uuid::Uuid::new_v4().to_string(),
                secret_id: uuid::Uuid::new_v4().to_string(),
            },
            state_dir: std::env::temp_dir(),
            node_name: format!("sim-{number:05}"),
            datacenter: settings.datacenter.clone(),
            node_class: String::new(),
            node_pool: "default".to_string(),
            meta: BTreeMap::from([("simulated".to_string(), "true".to_string())]),
            host_volumes: BTreeMap::new(),
            reserved: ReservedOptions::default(),
            http_advertise: format!("127.0.{}.{}:4646", (number / 250) % 250, number % 250 + 1),
            network_interface: "eth0".to_string(),
            network_speed: 1000,
            cpu_total_compute: 0,
            memory_total_mb: 0,
            disk_free_mb: 0,
            raw_exec_enabled: true,
            version: caravan_http::version::full_version(),
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
        let node = fingerprint::build_node(&options, &facts, &drivers, &driver_states);
        let http = http.clone();
        let servers = Arc::new(ServerList::new(all_servers.clone(), http.clone()).await);
        servers.promote(&all_servers[number % all_servers.len()]);
        let limit = Arc::clone(&limit);
        registrations.push(tokio::spawn(async move {
            let _permit = limit.acquire().await.map_err(|e| e.to_string())?;
            servers
                .call_with_failover(|server| {
                    let (http, node) = (&http, &node);
                    async move { rpc::register(http, &server, node).await }
                })
                .await
                .map_err(|error| error.to_string())?;
            let beat = NodeHeartbeat {
                node_id: node.id.clone(),
                secret_id: node.secret_id.clone(),
                status: NODE_STATUS_READY.to_string(),
            };
            let reply = servers
                .call_with_failover(|server| {
                    let (http, beat) = (&http, &beat);
                    async move { rpc::heartbeat(http, &server, beat).await }
                })
                .await
                .map_err(|error| error.to_string())?;
            servers.learn(&reply.servers);
            Ok::<_, String>((servers, beat, reply.heartbeat_ttl_ms))
        }));
    }
    let mut beats = Vec::new();
    for registration in registrations {
        match registration.await {
            Ok(Ok(beat)) => beats.push(beat),
            Ok(Err(error)) => return Err(format!("registration failed: {error}")),
            Err(error) => return Err(format!("registration task failed: {error}")),
        }
    }
    let register_seconds = started.elapsed().as_secs_f64();

    let alloc_counters = Arc::new(allocs::AllocCounters::default());
    let mut loops = Vec::new();
    if settings.run_allocs {
        for (servers, beat, _) in &beats {
            let node = allocs::SimNode {
                rpc: http.clone(),
                servers: Arc::clone(servers),
                node_id: beat.node_id.clone(),
                secret_id: beat.secret_id.clone(),
            };
            loops.push(tokio::spawn(allocs::run_node(
                node,
                settings.batch_runtime,
                deadline,
                Arc::clone(&alloc_counters),
            )));
        }
    }

    // Heartbeat every node at the TTL the server gave it, until the end.
    for (servers, beat, ttl_ms) in beats {
        let http = http.clone();
        let latencies = Arc::clone(&latencies);
        let failures = Arc::clone(&failures);
        loops.push(tokio::spawn(async move {
            let mut ttl = Duration::from_millis(ttl_ms);
            loop {
                let next = Instant::now() + ttl;
                if next >= deadline {
                    return;
                }
                tokio::time::sleep_until(next.into()).await;
                let sent = Instant::now();
                let outcome = servers
                    .call_with_failover(|server| {
                        let (http, beat) = (&http, &beat);
                        async move { rpc::heartbeat(http, &server, beat).await }
                    })
                    .await;
                match outcome {
                    Ok(reply) => {
                        latencies.lock().await.push(sent.elapsed());
                        ttl = Duration::from_millis(reply.heartbeat_ttl_ms);
                        servers.learn(&reply.servers);
                    }
                    Err(_) => {
                        failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        ttl = Duration::from_secs(1);
                    }
                }
            }
        }));
    }
    for task in loops {
        let _ = task.await;
    }
    let mut latencies = latencies.lock().await.clone();
    latencies.sort();
    let mut report = serde_json::json!({
        "nodes": settings.count,
        "register_seconds": (register_seconds * 1000.0).round() / 1000.0,
        "heartbeats": latencies.len(),
        "heartbeat_failures": failures.load(std::sync::atomic::Ordering::Relaxed),
        "heartbeat_p50_ms": (percentile(&latencies, 0.50) * 100.0).round() / 100.0,
        "heartbeat_p99_ms": (percentile(&latencies, 0.99) * 100.0).round() / 100.0,
    });
    if settings.run_allocs {
        let count = |counter: &std::sync::atomic::AtomicU64| {
            counter.load(std::sync::atomic::Ordering::Relaxed)
        };
        report["allocs_started"] = count(&alloc_counters.started).into();
        report["allocs_completed"] = count(&alloc_counters.completed).into();
        report["alloc_fetch_failures"] = count(&alloc_counters.fetch_failures).into();
    }
    Ok(report)
}
