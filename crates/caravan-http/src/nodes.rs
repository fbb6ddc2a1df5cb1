//! `/v1/nodes` and `/v1/node/:id`: the client nodes.

use std::sync::Arc;

use caravan_api_types::eval::{Evaluation, TRIGGER_NODE_UPDATE};
use caravan_api_types::job::{JOB_TYPE_SYSBATCH, JOB_TYPE_SYSTEM};
use caravan_api_types::node::{
    DrainSpec, Node, NodeDrainUpdateResponse, NodeServerInfo, NodeUpdateDrainRequest,
    NodeUpdateEligibilityRequest, NodeUpdateResponse, ELIGIBLE, INELIGIBLE,
};
use caravan_config::flags::parse_go_bool;
use caravan_state::{new_eval, ns_key, Command, CommandResult, Table, WatchKey, ALLOCS_BY_NODE};
use chrono::Utc;
use http::StatusCode;

use crate::blocking::blocking_query;
use crate::error::ApiError;
use crate::operator::server_error;
use crate::paginate::{compile_filter, paginate};
use crate::reply::Reply;
use crate::route::{endpoint, Consistency, Request, Route, GET, NODE_READ, NODE_WRITE, PUT_POST};

pub fn routes() -> Vec<Route> {
    let route = |path, endpoints| Route {
        path,
        endpoints,
        wrong_method: StatusCode::METHOD_NOT_ALLOWED,
    };
    vec![
        route(
            "/v1/nodes",
            vec![endpoint(
                GET,
                NODE_READ,
                Consistency::LeaderUnlessStale,
                list,
            )],
        ),
        route(
            "/v1/node/{id}",
            vec![endpoint(
                GET,
                NODE_READ,
                Consistency::LeaderUnlessStale,
                get,
            )],
        ),
        route(
            "/v1/node/{id}/allocations",
            vec![endpoint(
                GET,
                NODE_READ,
                Consistency::LeaderUnlessStale,
                allocations,
            )],
        ),
        route(
            "/v1/node/{id}/evaluate",
            vec![endpoint(
                PUT_POST,
                NODE_WRITE,
                Consistency::Leader,
                evaluate,
            )],
        ),
        route(
            "/v1/node/{id}/drain",
            vec![endpoint(PUT_POST, NODE_WRITE, Consistency::Leader, drain)],
        ),
        route(
            "/v1/node/{id}/purge",
            vec![endpoint(PUT_POST, NODE_WRITE, Consistency::Leader, purge)],
        ),
        route(
            "/v1/node/{id}/eligibility",
            vec![endpoint(
                PUT_POST,
                NODE_WRITE,
                Consistency::Leader,
                eligibility,
            )],
        ),
    ]
}

fn node_not_found() -> ApiError {
    ApiError::not_found(caravan_state::nodes::NODE_NOT_FOUND)
}

/// The node ID from the path; it must be a full UUID.
fn node_id(request: &Request) -> Result<String, ApiError> {
    let id = request.param("id");
    if id.len() != 36 || uuid::Uuid::parse_str(id).is_err() {
        return Err(ApiError::bad_request(format!(
            "invalid node ID {id:?}: must be a 36-character UUID"
        )));
    }
    Ok(id.to_string())
}

/// A node as the API shows it: the secret blanked.
fn public(node: &Node) -> Node {
    Node {
        secret_id: String::new(),
        drain: node.is_draining(),
        ..node.clone()
    }
}

/// `?resources=` and `?os=`, parsed as Go booleans.
fn list_fields(request: &Request) -> Result<(bool, bool), ApiError> {
    let parse = |name: &str| -> Result<bool, ApiError> {
        match request.query_value(name) {
            None => Ok(false),
            Some(value) => parse_go_bool(value).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Failed to parse node list fields: Failed to parse value of \"{name}\" ({value}) as a bool: strconv.ParseBool: parsing \"{value}\": invalid syntax"
                ))
            }),
        }
    };
    Ok((parse("resources")?, parse("os")?))
}

async fn list(request: Request) -> Result<Reply, ApiError> {
    let (resources, os) = list_fields(&request)?;
    let filter = compile_filter(&request.query)?;
    let query = request.query.clone();
    let cache = &request.ctx.list_cache;
    let key = format!(
        "nodes|{}|{resources}|{os}|{}|{}|{}",
        query.prefix, query.filter, query.per_page, query.next_token
    );
    let (index, (body, next_token)) = blocking_query(&request, &[Table::Nodes.into()], |state| {
        let index = state.table_index(Table::Nodes);
        if let Some(hit) = cache.get(&key, index) {
            return Ok((index, hit));
        }
        let nodes = state
            .nodes_with_prefix(&query.prefix)
            .map(|node| node.as_ref());
        let page = paginate(nodes, &query, filter.as_ref(), public, |node| &node.id)?;
        // Built from each node's cached entry: after one node changes, only
        // that node is encoded again.
        let body = request
            .ctx
            .node_stubs
            .encode(&page.items, resources, os, state.node_count(), |id| {
                state.node(id).map(Arc::as_ref)
            })
            .map_err(|error| ApiError::internal(format!("failed to encode response: {error}")))?;
        let rendered = (body, page.next_token);
        cache.put(key.clone(), index, rendered.clone());
        Ok((index, rendered))
    })
    .await?;
    Ok(Reply::json_bytes(body)
        .query_index(index)
        .with_next_token(next_token))
}

async fn get(request: Request) -> Result<Reply, ApiError> {
    let id = node_id(&request)?;
    // Only a write to this node (its registration, change or removal)
    // wakes the query.
    let watch = [WatchKey::Row(Table::Nodes, id.clone())];
    let (index, node) = blocking_query(&request, &watch, |state| {
        Ok(match state.node(&id) {
            Some(node) => (node.modify_index, Some(Arc::clone(node))),
            None => (state.table_index(Table::Nodes), None),
        })
    })
    .await?;
    let node = node.ok_or_else(node_not_found)?;
    Ok(Reply::json(&public(&node))?.query_index(index))
}

/// The node's allocations, whole (with their jobs), as the client and
/// `nomad node status` read them. Only writes to this node's allocations
/// wake the query, and the index is the newest of them (never 0), so
/// writes to other nodes' allocations never return a client's wait early.
async fn allocations(request: Request) -> Result<Reply, ApiError> {
    let id = node_id(&request)?;
    let watch = [WatchKey::Index(Table::Allocs, ALLOCS_BY_NODE, id.clone())];
    let (index, allocations) = blocking_query(&request, &watch, |state| {
        let allocations: Vec<Arc<caravan_api_types::alloc::Allocation>> =
            state.allocs_by_node(&id).cloned().collect();
        let index = allocations
            .iter()
            .map(|alloc| alloc.modify_index)
            .max()
            .unwrap_or(0)
            .max(1);
        Ok((index, allocations))
    })
    .await?;
    Ok(Reply::json(&allocations)?.query_index(index))
}

/// The node must exist for a write; a missing one is 404 (Caravan answers
/// Nomad's `node not found` with 404 everywhere).
fn existing(request: &Request, id: &str) -> Result<Arc<Node>, ApiError> {
    request
        .server()?
        .store()
        .snapshot()
        .node(id)
        .cloned()
        .ok_or_else(node_not_found)
}

/// Runs a node write; a refusal from the state machine becomes 404 for a
/// missing node and 400 otherwise.
async fn apply(request: &Request, command: Command) -> Result<u64, ApiError> {
    let write = request
        .server()?
        .apply(command)
        .await
        .map_err(server_error)?;
    match write.result {
        CommandResult::Refused(reason) if reason == caravan_state::nodes::NODE_NOT_FOUND => {
            Err(node_not_found())
        }
        CommandResult::Refused(reason) => Err(ApiError::bad_request(reason)),
        _ => Ok(write.index),
    }
}

/// The server details Nomad puts in a node update answer.
fn update_response(
    request: &Request,
    index: u64,
    node_modify_index: u64,
) -> Result<NodeUpdateResponse, ApiError> {
    let server = request.server()?;
    let datacenter = request.ctx.config.datacenter.clone();
    let servers = server
        .server_rpc_addresses()
        .into_iter()
        .map(|address| NodeServerInfo {
            rpc_advertise_addr: address,
            rpc_major_version: 1,
            rpc_minor_version: 1,
            datacenter: datacenter.clone(),
        })
        .collect();
    Ok(NodeUpdateResponse {
        eval_ids: None,
        eval_create_index: 0,
        node_modify_index,
        leader_rpc_addr: server.leader().map(|l| l.rpc_addr).unwrap_or_default(),
        num_nodes: server.store().snapshot().node_count() as u64,
        servers: Some(servers),
        index,
        ..NodeUpdateResponse::default()
    })
}

/// The answer of drain and eligibility writes. They create no evaluations
/// here (the leader's node reactions and drainer write those), so
/// `EvalIDs` is null.
fn node_write_reply(index: u64) -> Result<Reply, ApiError> {
    let response = NodeDrainUpdateResponse {
        node_modify_index: index,
        eval_ids: None,
        eval_create_index: 0,
        index,
    };
    Ok(Reply::json(&response)?.write_index(index))
}

/// `POST /v1/node/:id/evaluate`: a `node-update` evaluation for every job
/// with an allocation on the node and every system and sysbatch job
/// (Nomad's `createNodeEvals`), written together. With none to write, the
/// answer has no `EvalIDs` and index 0, as Nomad's.
async fn evaluate(request: Request) -> Result<Reply, ApiError> {
    let id = node_id(&request)?;
    let node = existing(&request, &id)?;
    let state = request.server()?.store().snapshot();
    let mut jobs = std::collections::BTreeMap::new();
    for alloc in state.allocs_by_node(&id) {
        if let Some(job) = state.job(&alloc.namespace, &alloc.job_id) {
            jobs.insert(ns_key(&job.namespace, &job.id), Arc::clone(job));
        }
    }
    for job in state
        .jobs_by_type(JOB_TYPE_SYSTEM)
        .chain(state.jobs_by_type(JOB_TYPE_SYSBATCH))
        .filter(|job| !job.stop)
    {
        jobs.insert(ns_key(&job.namespace, &job.id), Arc::clone(job));
    }
    let now = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let evals: Vec<Evaluation> = jobs
        .values()
        .map(|job| Evaluation {
            node_id: id.clone(),
            node_modify_index: node.modify_index,
            job_modify_index: job.job_modify_index,
            ..new_eval(
                job,
                TRIGGER_NODE_UPDATE,
                uuid::Uuid::new_v4().to_string(),
                now,
            )
        })
        .collect();
    if evals.is_empty() {
        let response = update_response(&request, 0, node.modify_index)?;
        return Ok(Reply::json(&response)?.write_index(0));
    }
    let ids: Vec<String> = evals.iter().map(|eval| eval.id.clone()).collect();
    let index = apply(&request, Command::EvalsUpsert { evals }).await?;
    let response = NodeUpdateResponse {
        eval_ids: Some(ids),
        eval_create_index: index,
        ..update_response(&request, index, node.modify_index)?
    };
    Ok(Reply::json(&response)?.write_index(index))
}

async fn drain(request: Request) -> Result<Reply, ApiError> {
    let id = node_id(&request)?;
    let body: NodeUpdateDrainRequest = if request.body.is_empty() {
        // python-nomad's `drain_node(id, enable)` still uses Nomad's old
        // `?enable=` form with no body; it meant "drain with the default
        // one-hour deadline" or "stop draining".
        let enable = request
            .query_value("enable")
            .ok_or_else(|| ApiError::bad_request("Request body is empty"))?;
        let enable = parse_go_bool(enable)
            .ok_or_else(|| ApiError::bad_request(format!("invalid enable value {enable:?}")))?;
        NodeUpdateDrainRequest {
            drain_spec: enable.then_some(DrainSpec {
                deadline: 3_600_000_000_000,
                ignore_system_jobs: false,
            }),
            ..NodeUpdateDrainRequest::default()
        }
    } else {
        request.json_body("Error decoding drain request")?
    };
    existing(&request, &id)?;
    let index = apply(
        &request,
        Command::NodeUpdateDrain {
            node_id: id,
            spec: body.drain_spec,
            mark_eligible: body.mark_eligible,
            meta: body.meta,
            accessor: request.identity.identity_string(),
            now: Utc::now(),
        },
    )
    .await?;
    node_write_reply(index)
}

async fn purge(request: Request) -> Result<Reply, ApiError> {
    let id = node_id(&request)?;
    existing(&request, &id)?;
    let index = apply(
        &request,
        Command::NodeDeregister {
            node_ids: vec![id.clone()],
        },
    )
    .await?;
    request.server()?.heartbeats().clear(&id);
    let mut response = update_response(&request, index, index)?;
    response.leader_rpc_addr = String::new();
    response.num_nodes = 0;
    response.servers = None;
    Ok(Reply::json(&response)?.write_index(index))
}

async fn eligibility(request: Request) -> Result<Reply, ApiError> {
    let id = node_id(&request)?;
    let body: NodeUpdateEligibilityRequest =
        request.json_body("Error decoding eligibility request")?;
    if body.node_event.is_some() {
        return Err(ApiError::bad_request("node event must not be set"));
    }
    if body.eligibility != ELIGIBLE && body.eligibility != INELIGIBLE {
        return Err(ApiError::bad_request(format!(
            "invalid scheduling eligibility \"{}\"",
            body.eligibility
        )));
    }
    let node = existing(&request, &id)?;
    if node.is_draining() && body.eligibility == ELIGIBLE {
        return Err(ApiError::bad_request(
            "can not set node's scheduling eligibility to eligible while it is draining",
        ));
    }
    if node.scheduling_eligibility == body.eligibility {
        // Nothing to change: no write, all-zero indexes, as Nomad answers.
        return Ok(Reply::json(&NodeDrainUpdateResponse::default())?.write_index(0));
    }
    let index = apply(
        &request,
        Command::NodeUpdateEligibility {
            node_id: id,
            eligibility: body.eligibility,
            now: Utc::now(),
        },
    )
    .await?;
    node_write_reply(index)
}
