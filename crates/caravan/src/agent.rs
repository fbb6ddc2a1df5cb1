//! `caravan agent`: loads the configuration, binds the listeners, starts the
//! server and client roles and the HTTP API, and shuts down on SIGINT or
//! SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use caravan_client::Client;
use caravan_config::AgentConfig;
use caravan_http::{AdvertisedAddresses, AgentContext};
use caravan_server::gossip::{Gossip, GossipOptions};
use caravan_server::transport::HttpTransport;
use caravan_server::{Server, ServerOptions};
use tokio::net::TcpListener;

pub fn run(args: &[String]) -> ExitCode {
    let config = match AgentConfig::from_args(args) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("==> Error loading configuration: {error}");
            return ExitCode::from(1);
        }
    };
    init_logging(&config.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("==> Error starting the runtime: {error}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run_agent(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("==> Error starting agent: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(level: &str) {
    let filter = match level {
        "TRACE" => "trace",
        "DEBUG" => "debug,openraft=info,hyper=info,reqwest=info",
        // openraft warns on every failed heartbeat to a down peer (ten a
        // second); its errors are what an operator needs at INFO.
        "INFO" => "info,openraft=error",
        "WARN" => "warn",
        "ERROR" => "error",
        _ => "off",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CARAVAN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

async fn bind(ip: std::net::IpAddr, port: u16, what: &str) -> anyhow::Result<TcpListener> {
    let address = SocketAddr::new(ip, port);
    TcpListener::bind(address)
        .await
        .with_context(|| format!("failed to bind the {what} listener on {address}"))
}

async fn run_agent(config: AgentConfig) -> anyhow::Result<()> {
    let started_at = Instant::now();
    for key in &config.keys_without_effect {
        tracing::warn!(
            key,
            "configuration key is accepted but has no effect in Caravan yet"
        );
    }
    // -dev keeps its data in a temporary directory that goes away on exit.
    let dev_dir = match (&config.data_dir, config.dev_mode) {
        (None, true) => Some(tempfile::Builder::new().prefix("caravan-dev-").tempdir()?),
        _ => None,
    };
    let data_dir: PathBuf = match (&config.data_dir, &dev_dir) {
        (Some(dir), _) => dir.clone(),
        (None, Some(temporary)) => temporary.path().to_path_buf(),
        (None, None) => anyhow::bail!("no data directory"),
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("failed to create data directory {}", data_dir.display()))?;

    let http_listener = bind(config.addresses.http, config.ports.http, "HTTP").await?;
    let rpc_listener = if config.server.enabled {
        Some(bind(config.addresses.rpc, config.ports.rpc, "RPC").await?)
    } else {
        None
    };
    let http_bound = http_listener.local_addr()?;
    let rpc_bound = match &rpc_listener {
        Some(listener) => listener.local_addr()?,
        None => SocketAddr::new(config.addresses.rpc, config.ports.rpc),
    };
    let serf_bound = SocketAddr::new(config.addresses.serf, config.ports.serf);
    let advertised = AdvertisedAddresses {
        http: config.advertised(&config.advertise.http, http_bound),
        rpc: config.advertised(&config.advertise.rpc, rpc_bound),
        serf: config.advertised(&config.advertise.serf, serf_bound),
    };
    let tls = load_tls(&config)?;
    // Servers close a keep-alive connection that sends nothing for the
    // handshake timeout; the pool lets idle connections go well before
    // that, so a request is never sent on one the server is closing.
    let idle = match config.limits.rpc_handshake_timeout / 2 {
        idle if idle.is_zero() => std::time::Duration::from_secs(90),
        idle => idle.min(std::time::Duration::from_secs(90)),
    };
    // Every outgoing call of the agent goes to an RPC port (Raft,
    // forwarding, the client's node RPCs), so it speaks that port's TLS, or
    // none: the system's CA store is never used (a minimal container has
    // none, and no call goes anywhere else).
    let client_config = match (&tls, config.tls.rpc) {
        (Some(tls), true) => tls.client_config().context("failed to set up TLS")?,
        _ => caravan_tls::no_tls_client_config(),
    };
    let build_client = |max_idle: usize| {
        reqwest::Client::builder()
            // Nothing the agent calls redirects; following one would carry
            // a caller's token (relayed client requests) to another host.
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(max_idle)
            .pool_idle_timeout(idle)
            .tls_backend_preconfigured(client_config.clone())
            .build()
            .context("failed to build the HTTP client")
    };
    let http_client = build_client(64)?;
    // A forwarded write that fails after it went out is not sent again (it
    // may have been applied). On a pooled connection to a leader that has
    // just died, a write fails that way without ever reaching it, so writes
    // always open a fresh connection: to a dead leader that is refused, and
    // the write is held for the next one.
    let write_client = build_client(0)?;

    let gossip = match config.server.enabled {
        true => Some(start_gossip(&config, &data_dir, &advertised).await?),
        false => None,
    };
    let cluster_key = cluster_key(&config, gossip.as_deref());
    let rpc_client = caravan_rpc::RpcClient::new(http_client.clone(), cluster_key.clone())
        .with_tls(config.tls.rpc);
    let server = match &gossip {
        Some(gossip) => {
            let server = start_server(
                &config,
                &data_dir,
                &advertised,
                &http_client,
                &rpc_client,
                cluster_key.clone(),
                gossip,
            )
            .await?;
            if config.server.bootstrap_expect > 1 {
                tokio::spawn(caravan_server::cluster::bootstrap_expect(
                    Arc::clone(&server),
                    Arc::clone(gossip),
                    config.server.bootstrap_expect,
                    rpc_client.clone(),
                ));
            }
            Some(server)
        }
        None => None,
    };
    let client = match config.client.enabled {
        true => Some(
            start_client(
                &config,
                &data_dir,
                &advertised,
                &http_client,
                server.is_some(),
            )
            .await?,
        ),
        false => None,
    };

    let ctx = Arc::new(AgentContext {
        config: Arc::new(config),
        server: server.clone(),
        gossip: gossip.clone(),
        client,
        advertised: advertised.clone(),
        http_client,
        write_client,
        started_at,
        acl_cache: caravan_http::AclCache::default(),
        list_cache: caravan_http::ListCache::default(),
        node_stubs: caravan_http::NodeStubCache::default(),
    });
    let api = caravan_http::api_router(Arc::clone(&ctx));
    let (shutdown_sender, shutdown) = tokio::sync::watch::channel(false);
    let mut listeners = Vec::new();
    let limits = ctx.config.limits;
    let listener_tls = |on: bool, require_client_cert: bool| -> anyhow::Result<_> {
        match (&tls, on) {
            (Some(tls), true) => Ok(Some(crate::listener::ListenerTls {
                config: tls
                    .server_config(require_client_cert)
                    .context("failed to set up TLS")?,
                region: ctx.config.region.clone(),
            })),
            _ => Ok(None),
        }
    };
    listeners.push(tokio::spawn(crate::listener::serve(
        http_listener,
        api.clone(),
        crate::listener::ConnectionLimits {
            handshake_timeout: limits.https_handshake_timeout,
            max_conns_per_client: limits.http_max_conns_per_client,
        },
        listener_tls(ctx.config.tls.http, ctx.config.tls.verify_https_client)?,
        shutdown.clone(),
    )));
    if let (Some(listener), Some(server)) = (rpc_listener, &server) {
        let rpc = caravan_server::rpc::rpc_router(Arc::clone(server)).merge(api);
        listeners.push(tokio::spawn(crate::listener::serve(
            listener,
            rpc,
            crate::listener::ConnectionLimits {
                handshake_timeout: limits.rpc_handshake_timeout,
                max_conns_per_client: limits.rpc_max_conns_per_client,
            },
            // Mutual TLS: every caller of the RPC port shows a certificate.
            listener_tls(ctx.config.tls.rpc, true)?,
            shutdown.clone(),
        )));
    }
    tracing::info!(
        http = %advertised.http,
        rpc = %advertised.rpc,
        elapsed_ms = started_at.elapsed().as_millis() as u64,
        "Caravan agent started"
    );
    eprintln!(
        "==> Caravan agent started! HTTP: {} RPC: {} Data: {}",
        advertised.http,
        advertised.rpc,
        data_dir.display()
    );

    wait_for_signal(tls.clone()).await;
    tracing::info!("caught signal, shutting down");
    let _ = shutdown_sender.send(true);
    if let Some(gossip) = &gossip {
        if ctx.config.leave_on_terminate || ctx.config.leave_on_interrupt {
            gossip.leave().await;
        }
    }
    if let Some(client) = &ctx.client {
        client.shutdown().await;
    }
    if let Some(server) = &server {
        server.shutdown().await;
    }
    // In-flight blocking queries may wait for minutes; give them a moment.
    for listener in listeners {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(3), listener).await;
    }
    drop(dev_dir);
    Ok(())
}

fn server_dir(config: &AgentConfig, data_dir: &std::path::Path) -> PathBuf {
    config
        .server
        .data_dir
        .clone()
        .unwrap_or_else(|| data_dir.join("server"))
}

/// Starts gossip on the serf port with Nomad's server tags.
async fn start_gossip(
    config: &AgentConfig,
    data_dir: &std::path::Path,
    advertised: &AdvertisedAddresses,
) -> anyhow::Result<Arc<Gossip>> {
    let dir = server_dir(config, data_dir);
    std::fs::create_dir_all(&dir)?;
    let node_id = caravan_server::load_or_create_node_id(&dir)
        .with_context(|| format!("failed to load the server ID from {}", dir.display()))?;
    let (rpc_ip, rpc_port) = advertised
        .rpc
        .rsplit_once(':')
        .map(|(ip, port)| {
            (
                ip.trim_matches(|c| c == '[' || c == ']').to_string(),
                port.to_string(),
            )
        })
        .unwrap_or_default();
    let mut tags = std::collections::BTreeMap::from([
        ("role".to_string(), "nomad".to_string()),
        ("region".to_string(), config.region.clone()),
        ("dc".to_string(), config.datacenter.clone()),
        ("build".to_string(), caravan_http::version::full_version()),
        ("revision".to_string(), String::new()),
        ("vsn".to_string(), "1".to_string()),
        (
            "raft_vsn".to_string(),
            config.server.raft_protocol.to_string(),
        ),
        ("id".to_string(), node_id),
        ("rpc_addr".to_string(), rpc_ip),
        ("port".to_string(), rpc_port),
        ("http_addr".to_string(), advertised.http.clone()),
    ]);
    match config.server.bootstrap_expect {
        0 => {}
        1 => {
            tags.insert("bootstrap".to_string(), "1".to_string());
        }
        expect => {
            tags.insert("expect".to_string(), expect.to_string());
        }
    }
    let advertise: SocketAddr = advertised.serf.parse().with_context(|| {
        format!(
            "the serf advertise address {:?} is not ip:port",
            advertised.serf
        )
    })?;
    let mut seeds = config.server.retry_join.clone();
    seeds.extend(config.server.start_join.iter().cloned());
    let options = GossipOptions {
        name: format!("{}.{}", config.node_name, config.region),
        region: config.region.clone(),
        bind: SocketAddr::new(config.addresses.serf, config.ports.serf),
        advertise,
        tags,
        seeds,
        expected_servers: config.server.bootstrap_expect.max(1),
        encrypt: config.server.encrypt_key(),
        keyring_file: Some(dir.join("serf").join("keyring")),
    };
    Gossip::start(options).await.with_context(|| {
        format!(
            "failed to bind the serf listener on {}:{}",
            config.addresses.serf, config.ports.serf
        )
    })
}

/// The key that authenticates server-to-server RPC: derived from the gossip
/// keyring when there is one (as the agent started: after rotating gossip
/// keys, restart each server so RPC follows); random for a `-dev` agent (it
/// is the only server, so nobody else needs it); none otherwise, said once
/// at start.
fn cluster_key(
    config: &AgentConfig,
    gossip: Option<&Gossip>,
) -> Option<Arc<caravan_rpc::ClusterKey>> {
    let gossip = gossip?;
    let keys: Vec<Vec<u8>> = gossip
        .keyring_list()
        .unwrap_or_default()
        .iter()
        .filter_map(|key| caravan_config::decode_gossip_key(key).ok())
        .collect();
    if let Some(key) = caravan_rpc::ClusterKey::from_gossip_keyring(&keys, &config.region) {
        return Some(Arc::new(key));
    }
    if config.dev_mode {
        return Some(Arc::new(caravan_rpc::ClusterKey::random()));
    }
    if config.tls.rpc {
        // Server certificates authenticate servers; gossip is still open.
        tracing::warn!(
            "no gossip encryption key (server.encrypt): the serf port accepts any caller \
             that can reach it; set server.encrypt on every server"
        );
        return None;
    }
    tracing::warn!(
        "no gossip encryption key (server.encrypt) and no TLS: the RPC and serf ports accept \
         any caller that can reach them; set server.encrypt on every server"
    );
    None
}

async fn start_server(
    config: &AgentConfig,
    data_dir: &std::path::Path,
    advertised: &AdvertisedAddresses,
    http_client: &reqwest::Client,
    rpc_client: &caravan_rpc::RpcClient,
    cluster_key: Option<Arc<caravan_rpc::ClusterKey>>,
    gossip: &Arc<Gossip>,
) -> anyhow::Result<Arc<Server>> {
    let server_dir = server_dir(config, data_dir);
    let options = ServerOptions {
        data_dir: server_dir,
        node_name: config.node_name.clone(),
        region: config.region.clone(),
        datacenter: config.datacenter.clone(),
        rpc_advertise: advertised.rpc.clone(),
        http_advertise: advertised.http.clone(),
        bootstrap_expect: config.server.bootstrap_expect,
        raft_multiplier: config.server.raft_multiplier,
        snapshot_threshold: config.server.raft_snapshot_threshold,
        trailing_logs: config.server.raft_trailing_logs,
        default_scheduler_config: config.server.default_scheduler_config.clone(),
        autopilot: config.autopilot.clone(),
        heartbeat: caravan_server::heartbeat::HeartbeatConfig {
            min_ttl: config.server.min_heartbeat_ttl,
            max_per_second: config.server.max_heartbeats_per_second,
            grace: config.server.heartbeat_grace,
            failover_ttl: config.server.failover_heartbeat_ttl,
        },
        storage: caravan_server::memory_disk::Storage::Disk,
        cluster_key,
        rpc_tls: config.tls.rpc,
        num_schedulers: config.server.num_schedulers as usize,
        enabled_schedulers: config.server.enabled_schedulers.clone(),
        gc: caravan_server::leader::core_gc::GcConfig {
            interval: config.server.job_gc_interval,
            thresholds: caravan_server::leader::core_gc::Thresholds {
                eval: config.server.eval_gc_threshold,
                batch_eval: config.server.batch_eval_gc_threshold,
                job: config.server.job_gc_threshold,
                node: config.server.node_gc_threshold,
                acl_token: config.server.acl_token_gc_threshold,
            },
        },
    };
    let transport = Arc::new(HttpTransport::new(rpc_client.clone()));
    Server::start(
        options,
        transport,
        http_client.clone(),
        Arc::clone(gossip) as Arc<dyn caravan_server::autopilot::MemberView>,
    )
    .await
    .map_err(|error| anyhow::anyhow!("failed to start the server: {error}"))
}

async fn start_client(
    config: &AgentConfig,
    data_dir: &std::path::Path,
    advertised: &AdvertisedAddresses,
    http_client: &reqwest::Client,
    local_server: bool,
) -> anyhow::Result<Arc<Client>> {
    let client_config = &config.client;
    let state_dir = client_config
        .state_dir
        .clone()
        .unwrap_or_else(|| data_dir.join("client"));
    let identity = caravan_client::NodeIdentity::load_or_create(&state_dir).with_context(|| {
        format!(
            "failed to load the node identity from {}",
            state_dir.display()
        )
    })?;
    let options = caravan_client::ClientOptions {
        identity,
        state_dir,
        node_name: config.node_name.clone(),
        datacenter: config.datacenter.clone(),
        node_class: client_config.node_class.clone(),
        node_pool: client_config.node_pool.clone(),
        meta: client_config.meta.clone(),
        host_volumes: client_config
            .host_volumes
            .iter()
            .map(|(name, volume)| (name.clone(), (volume.path.clone(), volume.read_only)))
            .collect(),
        reserved: caravan_client::ReservedOptions {
            cpu: client_config.reserved.cpu,
            memory_mb: client_config.reserved.memory_mb,
            disk_mb: client_config.reserved.disk_mb,
            reserved_ports: client_config.reserved.reserved_ports.clone(),
        },
        http_advertise: advertised.http.clone(),
        network_interface: client_config.network_interface.clone(),
        network_speed: client_config.network_speed,
        cpu_total_compute: client_config.cpu_total_compute,
        memory_total_mb: client_config.memory_total_mb,
        disk_free_mb: client_config.disk_free_mb,
        raw_exec_enabled: client_config.raw_exec_enabled,
        version: caravan_http::version::full_version(),
        revision: String::new(),
        fingerprint_interval: std::time::Duration::from_secs(30),
        rpc_tls: config.tls.rpc,
        alloc_dir: client_config
            .alloc_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("alloc")),
        region: config.region.clone(),
        max_kill_timeout: client_config.max_kill_timeout,
        executor_binary: std::env::current_exe()
            .context("failed to find the caravan binary to run tasks with")?,
        destroy_on_shutdown: config.dev_mode,
        gc: caravan_client::gc::GcOptions {
            interval: client_config.gc_interval,
            max_allocs: usize::try_from(client_config.gc_max_allocs).unwrap_or(usize::MAX),
            disk_usage_threshold: client_config.gc_disk_usage_threshold,
            inode_usage_threshold: client_config.gc_inode_usage_threshold,
        },
    };
    let mut servers = client_config.servers.clone();
    if servers.is_empty() && local_server {
        servers.push(advertised.rpc.clone());
    }
    let client = Client::new(options, servers, http_client.clone()).await;
    tokio::spawn(Arc::clone(&client).run());
    Ok(client)
}

/// Loads the `tls {}` certificates when TLS is on, or stops the agent with
/// an error naming the file.
fn load_tls(config: &AgentConfig) -> anyhow::Result<Option<Arc<caravan_tls::AgentTls>>> {
    if !config.tls.enabled() {
        return Ok(None);
    }
    Ok(Some(caravan_tls::AgentTls::load(
        &config.tls,
        &config.region,
    )?))
}

/// Waits for SIGINT or SIGTERM; on SIGHUP reloads the TLS certificate and
/// key (new connections use them; open ones keep theirs).
async fn wait_for_signal(tls: Option<Arc<caravan_tls::AgentTls>>) {
    let reload = async {
        let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return std::future::pending::<()>().await;
        };
        while hangup.recv().await.is_some() {
            match &tls {
                Some(tls) => match tls.reload() {
                    Ok(()) => tracing::info!("reloaded the TLS certificate and key"),
                    Err(error) => {
                        tracing::error!(%error, "TLS reload failed; keeping the old certificate")
                    }
                },
                None => tracing::info!("caught SIGHUP; nothing to reload"),
            }
        }
        std::future::pending::<()>().await
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
        () = reload => {}
    }
}
