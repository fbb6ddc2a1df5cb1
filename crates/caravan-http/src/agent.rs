//! `/v1/agent/`: this agent's own view: itself, its gossip members, its
//! health and (on clients) its servers.

use std::collections::BTreeMap;

use caravan_api_types::agent::{AgentMember, AgentMembers, HealthCheck, HealthResponse};
use caravan_client::ServerListError;
use http::StatusCode;
use serde_json::json;

use crate::agent_config::config_json;
use crate::context::AgentContext;
use crate::error::ApiError;
use crate::reply::Reply;
use crate::route::{
    endpoint, Acl, Consistency, Request, Route, AGENT_READ, AGENT_WRITE, GET, NODE_READ, PUT_POST,
};
use crate::version;

pub fn routes() -> Vec<Route> {
    vec![
        Route {
            path: "/v1/agent/self",
            endpoints: vec![endpoint(GET, AGENT_READ, Consistency::Local, agent_self)],
            wrong_method: StatusCode::METHOD_NOT_ALLOWED,
        },
        Route {
            path: "/v1/agent/members",
            endpoints: vec![endpoint(GET, NODE_READ, Consistency::AnyServer, members)],
            wrong_method: StatusCode::METHOD_NOT_ALLOWED,
        },
        Route {
            path: "/v1/agent/health",
            endpoints: vec![endpoint(GET, Acl::None, Consistency::Local, health)],
            wrong_method: StatusCode::METHOD_NOT_ALLOWED,
        },
        Route {
            path: "/v1/agent/servers",
            endpoints: vec![
                endpoint(GET, AGENT_READ, Consistency::Local, list_servers),
                endpoint(PUT_POST, AGENT_WRITE, Consistency::Local, update_servers),
            ],
            wrong_method: StatusCode::METHOD_NOT_ALLOWED,
        },
    ]
}

/// This server's gossip member. Until servers gossip with each other this
/// is the only member a server knows.
pub fn local_member(ctx: &AgentContext) -> Option<AgentMember> {
    let server = ctx.server.as_ref()?;
    let config = &ctx.config;
    let (serf_ip, serf_port) = split_host_port(&ctx.advertised.serf);
    let (rpc_ip, rpc_port) = split_host_port(&ctx.advertised.rpc);
    let mut tags = BTreeMap::from([
        ("role".to_string(), "nomad".to_string()),
        ("region".to_string(), config.region.clone()),
        ("dc".to_string(), config.datacenter.clone()),
        ("build".to_string(), version::full_version()),
        ("revision".to_string(), String::new()),
        ("vsn".to_string(), "1".to_string()),
        (
            "raft_vsn".to_string(),
            config.server.raft_protocol.to_string(),
        ),
        ("id".to_string(), server.node().id.clone()),
        ("rpc_addr".to_string(), rpc_ip),
        ("port".to_string(), rpc_port.to_string()),
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
    Some(AgentMember {
        name: format!("{}.{}", config.node_name, config.region),
        addr: Some(serf_ip),
        port: serf_port,
        tags: Some(tags),
        status: "alive".to_string(),
        protocol_min: 1,
        protocol_max: 5,
        protocol_cur: 2,
        delegate_min: 2,
        delegate_max: 5,
        delegate_cur: 4,
    })
}

fn split_host_port(address: &str) -> (String, u16) {
    match address.parse::<std::net::SocketAddr>() {
        Ok(socket) => (socket.ip().to_string(), socket.port()),
        Err(_) => (address.to_string(), 0),
    }
}

async fn agent_self(request: Request) -> Result<Reply, ApiError> {
    let ctx = &request.ctx;
    let member = local_member(ctx).unwrap_or_else(AgentMember::none);
    let mut stats = serde_json::Map::new();
    stats.insert("runtime".to_string(), runtime_stats());
    if let Some(server) = &ctx.server {
        let leader = server.leader();
        stats.insert(
            "nomad".to_string(),
            json!({
                "server": "true",
                "leader": (leader.as_ref().map(|l| &l.id) == Some(&server.node().id)).to_string(),
                "leader_addr": leader.map(|l| l.rpc_addr).unwrap_or_default(),
                "bootstrap": (ctx.config.server.bootstrap_expect == 1).to_string(),
                "known_regions": "1",
            }),
        );
        stats.insert("raft".to_string(), json!(server.raft_stats()));
    }
    if let Some(client) = &ctx.client {
        let (since, ttl) = client.heartbeat_status();
        let go = caravan_api_types::duration::format_go_duration;
        stats.insert(
            "client".to_string(),
            json!({
                "node_id": client.node_id(),
                "known_servers": client.servers().get().join(","),
                "num_allocations": "0",
                "last_heartbeat": since.map(go).unwrap_or_default(),
                "heartbeat_ttl": go(ttl),
            }),
        );
    }
    let body = json!({
        "config": config_json(&ctx.config, &ctx.advertised),
        "member": member,
        "stats": stats,
    });
    Reply::json(&body)
}

/// Nomad's `runtime` stats, with this process's figures.
fn runtime_stats() -> serde_json::Value {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let tasks = tokio::runtime::Handle::try_current()
        .map(|handle| handle.metrics().num_alive_tasks())
        .unwrap_or(0);
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    json!({
        "kernel.name": std::env::consts::OS,
        "arch": arch,
        "version": format!("caravan {}", version::CARAVAN_VERSION),
        "max_procs": cpus.to_string(),
        "goroutines": tasks.to_string(),
        "cpu_count": cpus.to_string(),
    })
}

async fn members(request: Request) -> Result<Reply, ApiError> {
    let ctx = &request.ctx;
    let members: Vec<AgentMember> = local_member(ctx).into_iter().collect();
    Reply::json(&AgentMembers {
        server_name: ctx.config.node_name.clone(),
        server_region: ctx.config.region.clone(),
        server_dc: ctx.config.datacenter.clone(),
        members,
    })
}

/// Each role's health; 500 with the same body when any check fails.
async fn health(request: Request) -> Result<Reply, ApiError> {
    let ctx = &request.ctx;
    let requested = request.query_values("type");
    let wants = |role: &str| requested.is_empty() || requested.iter().any(|r| r == role);
    let mut response = HealthResponse::default();
    if wants("client") && (ctx.client.is_some() || !requested.is_empty()) {
        response.client = Some(match &ctx.client {
            None => failed("client not enabled"),
            Some(client) if client.servers().get().is_empty() => failed("no known servers"),
            Some(_) => passed(),
        });
    }
    if wants("server") && (ctx.server.is_some() || !requested.is_empty()) {
        response.server = Some(match &ctx.server {
            None => failed("server not enabled"),
            Some(server) => {
                let leader = if request.query.stale {
                    server.leader()
                } else {
                    server.wait_for_leader(caravan_server::LEADER_WAIT).await
                };
                match leader {
                    Some(_) => passed(),
                    None => failed("No cluster leader"),
                }
            }
        });
    }
    let status = if response.is_healthy() {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    Ok(Reply::json(&response)?.with_status(status))
}

fn passed() -> HealthCheck {
    HealthCheck {
        ok: true,
        message: "ok".to_string(),
    }
}

fn failed(message: &str) -> HealthCheck {
    HealthCheck {
        ok: false,
        message: message.to_string(),
    }
}

fn client_only(request: &Request) -> Result<&std::sync::Arc<caravan_client::Client>, ApiError> {
    request
        .ctx
        .client
        .as_ref()
        .ok_or_else(|| ApiError::invalid_method(StatusCode::NOT_IMPLEMENTED))
}

async fn list_servers(request: Request) -> Result<Reply, ApiError> {
    let client = client_only(&request)?;
    let mut servers = client.servers().get();
    servers.sort();
    Reply::json(&servers)
}

async fn update_servers(request: Request) -> Result<Reply, ApiError> {
    let client = client_only(&request)?;
    let addresses = request.query_values("address");
    client
        .servers()
        .replace(&addresses)
        .await
        .map_err(|error| match error {
            ServerListError::Empty => ApiError::bad_request("missing server address"),
            ServerListError::NoneReachable(text) => ApiError::bad_request(text),
        })?;
    Ok(Reply::empty())
}
