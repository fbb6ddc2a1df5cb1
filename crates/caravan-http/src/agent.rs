//! `/v1/agent/`: this agent's own view: itself, its gossip members, its
//! health and (on clients) its servers.

use caravan_acl::Capability;
use caravan_api_types::agent::{
    AgentMember, AgentMembers, HealthCheck, HealthResponse, JoinResponse,
};
use caravan_client::ServerListError;
use caravan_server::autopilot::SerfStatus;
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
            path: "/v1/agent/join",
            endpoints: vec![endpoint(
                PUT_POST,
                Acl::Require(Capability::AgentWrite),
                Consistency::Local,
                join,
            )],
            wrong_method: StatusCode::METHOD_NOT_ALLOWED,
        },
        Route {
            path: "/v1/agent/force-leave",
            endpoints: vec![endpoint(
                PUT_POST,
                AGENT_WRITE,
                Consistency::Local,
                force_leave,
            )],
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

/// A gossip member as the API shows it.
pub fn api_member(member: &caravan_server::gossip::GossipMember) -> AgentMember {
    AgentMember {
        name: member.name.clone(),
        addr: Some(member.addr.ip().to_string()),
        port: member.addr.port(),
        tags: Some(member.tags.clone()),
        status: member.status.as_str().to_string(),
        protocol_min: 1,
        protocol_max: 5,
        protocol_cur: 2,
        delegate_min: 2,
        delegate_max: 5,
        delegate_cur: 4,
    }
}

/// This server's own gossip member (none on a client-only agent).
pub fn local_member(ctx: &AgentContext) -> Option<AgentMember> {
    let gossip = ctx.gossip.as_ref()?;
    Some(api_member(&gossip.local_member()))
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
        stats.insert(
            "scheduler".to_string(),
            json!(server.scheduler_stats().figures()),
        );
        // The state store's keyed watches: blocking queries waiting now,
        // waiters woken so far, states published (one per applied batch).
        let store = server.store();
        stats.insert(
            "state".to_string(),
            json!({
                "blocking_waiters": store.registered_waiters().to_string(),
                "woken_waiters": store.woken_waiters().to_string(),
                "publishes": store.publishes().to_string(),
                "latest_index": store.snapshot().latest_index().to_string(),
            }),
        );
    }
    if let Some(gossip) = &ctx.gossip {
        let members = gossip.members();
        let count = |status: SerfStatus| members.iter().filter(|m| m.status == status).count();
        stats.insert(
            "serf".to_string(),
            json!({
                "members": members.len().to_string(),
                "failed": count(SerfStatus::Failed).to_string(),
                "left": count(SerfStatus::Left).to_string(),
                "health_score": "0",
                "encrypted": gossip.keyring_list().is_some().to_string(),
                "event_queue": "0",
                "intent_queue": "0",
                "query_queue": "0",
                "member_time": "1",
                "event_time": "1",
                "query_time": "1",
            }),
        );
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
    let members: Vec<AgentMember> = match &ctx.gossip {
        Some(gossip) => gossip.members().iter().map(api_member).collect(),
        None => Vec::new(),
    };
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

fn gossip_only(
    request: &Request,
) -> Result<&std::sync::Arc<caravan_server::gossip::Gossip>, ApiError> {
    request
        .ctx
        .gossip
        .as_ref()
        .ok_or_else(|| ApiError::invalid_method(StatusCode::NOT_IMPLEMENTED))
}

/// Joins gossip peers. Always 200: the outcome is in the body, as Nomad
/// answers; a join that reached nobody has `num_joined` 0 and the reason.
/// Names are resolved here, without blocking the runtime, so gossip only
/// ever sees literal addresses. Needs `agent:write`: Nomad deprecated
/// anonymous joins; a join reshapes the cluster, so Caravan refuses them.
async fn join(request: Request) -> Result<Reply, ApiError> {
    let gossip = gossip_only(&request)?;
    let addresses = request.query_values("address");
    if addresses.is_empty() {
        return Err(ApiError::bad_request("missing address to join"));
    }
    let mut literal = Vec::new();
    let mut errors = Vec::new();
    for address in &addresses {
        match caravan_rpc::address::resolve(address, caravan_server::gossip::DEFAULT_SERF_PORT)
            .await
        {
            Ok(resolved) => literal.push(resolved.to_string()),
            Err(error) => errors.push(error.to_string()),
        }
    }
    let (joined, join_errors) = match literal.is_empty() {
        true => (0, Vec::new()),
        false => gossip.join(&literal).await,
    };
    errors.extend(join_errors);
    Reply::json(&JoinResponse {
        error: errors.join("; "),
        num_joined: joined,
        warning: String::new(),
    })
}

/// Moves a failed member to `left`; `prune=true` drops it from the member
/// list at once and from the Raft configuration. An unknown name is a no-op
/// answered with 200, as Nomad does; so is a member gossip sees alive
/// (Serf's member refutes the leave), which stays a Raft peer.
async fn force_leave(request: Request) -> Result<Reply, ApiError> {
    let gossip = gossip_only(&request)?;
    let node = request
        .query_value("node")
        .filter(|node| !node.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing node to force leave"))?
        .to_string();
    let prune = match request.query_value("prune") {
        None => false,
        Some(value) => caravan_config::flags::parse_go_bool(value)
            .ok_or_else(|| ApiError::bad_request("invalid prune value"))?,
    };
    if let Some(member) = gossip.force_leave(&node, prune).await {
        if prune && member.status != SerfStatus::Alive {
            if let (Some(server), Some(id)) = (&request.ctx.server, member.tags.get("id")) {
                let (_, raft_members) = server.raft_configuration();
                if raft_members.iter().any(|m| &m.node.id == id) {
                    server
                        .remove_server_by_node_id(id)
                        .await
                        .map_err(|error| ApiError::internal(error.to_string()))?;
                }
            }
        }
    }
    Ok(Reply::empty())
}
