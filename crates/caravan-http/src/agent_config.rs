//! The `config` section of `/v1/agent/self`: the agent's configuration with
//! Nomad's Go field names, secrets redacted.

use caravan_config::AgentConfig;
use serde_json::{json, Value};

use crate::context::AdvertisedAddresses;
use crate::version;

const REDACTED: &str = "<redacted>";

fn nanos(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn go_duration(duration: std::time::Duration) -> String {
    caravan_api_types::duration::format_go_duration(duration)
}

/// Renders `config` as Nomad's agent `Config` struct.
pub fn config_json(config: &AgentConfig, advertised: &AdvertisedAddresses) -> Value {
    let server = &config.server;
    let client = &config.client;
    let autopilot = &config.autopilot;
    let host_volumes: Vec<Value> = client
        .host_volumes
        .iter()
        .map(|(name, volume)| json!({"Name": name, "Path": volume.path, "ReadOnly": volume.read_only}))
        .collect();
    let path = |dir: &Option<std::path::PathBuf>| {
        dir.as_ref()
            .map(|dir| dir.display().to_string())
            .unwrap_or_default()
    };
    let mut rendered = json!({
        "Region": config.region,
        "Datacenter": config.datacenter,
        "NodeName": config.node_name,
        "DataDir": path(&config.data_dir),
        "LogLevel": config.log_level,
        "LogJson": false,
        "BindAddr": config.bind_addr.to_string(),
        "EnableDebug": false,
        "Ports": {"HTTP": config.ports.http, "RPC": config.ports.rpc, "Serf": config.ports.serf},
        "Addresses": {
            "HTTP": config.addresses.http.to_string(),
            "RPC": config.addresses.rpc.to_string(),
            "Serf": config.addresses.serf.to_string(),
        },
        "AdvertiseAddrs": {"HTTP": advertised.http, "RPC": advertised.rpc, "Serf": advertised.serf},
        "Client": {
            "Enabled": client.enabled,
            "StateDir": path(&client.state_dir),
            "AllocDir": path(&client.alloc_dir),
            "Servers": client.servers,
            "NodeClass": client.node_class,
            "NodePool": client.node_pool,
            "Meta": client.meta,
            "Options": client.options,
            "NetworkInterface": client.network_interface,
            "NetworkSpeed": client.network_speed,
            "CpuCompute": client.cpu_total_compute,
            "MemoryMB": client.memory_total_mb,
            "DiskTotalMB": client.disk_total_mb,
            "DiskFreeMB": client.disk_free_mb,
            "MaxKillTimeout": go_duration(client.max_kill_timeout),
            "GCInterval": nanos(client.gc_interval),
            "GCParallelDestroys": client.gc_parallel_destroys,
            "GCDiskUsageThreshold": client.gc_disk_usage_threshold,
            "GCInodeUsageThreshold": client.gc_inode_usage_threshold,
            "GCMaxAllocs": client.gc_max_allocs,
            "NoHostUUID": client.no_host_uuid,
            "Reserved": {
                "CPU": client.reserved.cpu,
                "Cores": client.reserved.cores,
                "MemoryMB": client.reserved.memory_mb,
                "DiskMB": client.reserved.disk_mb,
                "ReservedPorts": client.reserved.reserved_ports,
            },
            "HostVolumes": host_volumes,
        },
        "Server": {
            "Enabled": server.enabled,
            "BootstrapExpect": server.bootstrap_expect,
            "DataDir": path(&server.data_dir),
            "NumSchedulers": server.num_schedulers,
            "EnabledSchedulers": server.enabled_schedulers,
            "HeartbeatGrace": nanos(server.heartbeat_grace),
            "MinHeartbeatTTL": nanos(server.min_heartbeat_ttl),
            "MaxHeartbeatsPerSecond": server.max_heartbeats_per_second,
            "FailoverHeartbeatTTL": nanos(server.failover_heartbeat_ttl),
            "NodeGCThreshold": go_duration(server.node_gc_threshold),
            "RaftProtocol": server.raft_protocol,
            "RaftMultiplier": server.raft_multiplier,
            "RaftSnapshotThreshold": server.raft_snapshot_threshold,
            "RaftTrailingLogs": server.raft_trailing_logs,
            "RejoinAfterLeave": server.rejoin_after_leave,
            "AuthoritativeRegion": server.authoritative_region,
            "EncryptKey": if server.encrypt.is_some() { REDACTED } else { "" },
            "DefaultSchedulerConfig": server.default_scheduler_config,
            "ServerJoin": {
                "RetryJoin": server.retry_join,
                "StartJoin": server.start_join,
                "RetryMaxAttempts": server.retry_max,
                "RetryInterval": nanos(server.retry_interval),
            },
        },
        "ACL": {
            "Enabled": config.acl.enabled,
            "TokenTTL": nanos(config.acl.token_ttl),
            "PolicyTTL": nanos(config.acl.policy_ttl),
            "RoleTTL": nanos(config.acl.role_ttl),
            "ReplicationToken": if config.acl.replication_token.is_empty() { "" } else { REDACTED },
        },
        "Autopilot": {
            "CleanupDeadServers": autopilot.cleanup_dead_servers,
            "LastContactThreshold": autopilot.last_contact_threshold,
            "MaxTrailingLogs": autopilot.max_trailing_logs,
            "MinQuorum": autopilot.min_quorum,
            "ServerStabilizationTime": autopilot.server_stabilization_time,
            "EnableRedundancyZones": autopilot.enable_redundancy_zones,
            "DisableUpgradeMigration": autopilot.disable_upgrade_migration,
            "EnableCustomUpgrades": autopilot.enable_custom_upgrades,
        },
        "TLSConfig": {
            "EnableHTTP": false,
            "EnableRPC": false,
            "VerifyServerHostname": false,
            "CAFile": "",
            "CertFile": "",
            "KeyFile": "",
        },
        "Telemetry": {},
        "UI": {"Enabled": false},
        "Consuls": [],
        "Vaults": [],
        "Version": version::version_json(),
        "DevMode": config.dev_mode,
        "Files": config.files,
        "HTTPAPIResponseHeaders": config.http_api_response_headers,
        "LeaveOnInt": config.leave_on_interrupt,
        "LeaveOnTerm": config.leave_on_terminate,
    });
    // Apart: one json! of everything passes the macro's recursion limit.
    let gc = json!({
        "JobGCInterval": go_duration(server.job_gc_interval),
        "JobGCThreshold": go_duration(server.job_gc_threshold),
        "EvalGCThreshold": go_duration(server.eval_gc_threshold),
        "BatchEvalGCThreshold": go_duration(server.batch_eval_gc_threshold),
        "DeploymentGCThreshold": go_duration(server.deployment_gc_threshold),
        "ACLTokenGCThreshold": go_duration(server.acl_token_gc_threshold),
    });
    if let (Some(section), Value::Object(gc)) = (rendered["Server"].as_object_mut(), gc) {
        section.extend(gc);
    }
    rendered
}
