//! `/v1/agent/keyring/`: this server's gossip encryption keys (Nomad's
//! `operator gossip keyring`). Changes apply to this agent's keyring (and
//! its keyring file); they are not broadcast to the other servers, so each
//! server is given the same change, which is what Nomad's Serf query does
//! for you. Answers count this agent only (`NumNodes` 1).

use std::collections::BTreeMap;

use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::reply::Reply;
use crate::route::{endpoint, Consistency, Request, Route, AGENT_WRITE, GET, PUT_POST};

pub fn routes() -> Vec<Route> {
    let route = |path, endpoint| Route {
        path,
        endpoints: vec![endpoint],
        wrong_method: StatusCode::METHOD_NOT_ALLOWED,
    };
    let write = AGENT_WRITE;
    let local = Consistency::Local;
    vec![
        route("/v1/agent/keyring/list", endpoint(GET, write, local, list)),
        route(
            "/v1/agent/keyring/install",
            endpoint(PUT_POST, write, local, install),
        ),
        route(
            "/v1/agent/keyring/use",
            endpoint(PUT_POST, write, local, use_key),
        ),
        route(
            "/v1/agent/keyring/remove",
            endpoint(PUT_POST, write, local, remove),
        ),
    ]
}

/// Nomad's `structs.KeyringResponse`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct KeyringResponse {
    messages: BTreeMap<String, String>,
    keys: BTreeMap<String, u32>,
    num_nodes: u32,
}

/// Nomad's `structs.KeyringRequest`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyringRequest {
    #[serde(default)]
    key: String,
}

fn gossip(request: &Request) -> Result<&std::sync::Arc<caravan_server::gossip::Gossip>, ApiError> {
    request
        .ctx
        .gossip
        .as_ref()
        .ok_or_else(|| ApiError::invalid_method(StatusCode::NOT_IMPLEMENTED))
}

/// Serf's failure, as Nomad passes it on (with this agent's reason).
fn failed(message: &str) -> ApiError {
    ApiError::internal(format!("1/1 nodes reported failure: {message}"))
}

fn answer(keys: BTreeMap<String, u32>) -> Result<Reply, ApiError> {
    Reply::json(&KeyringResponse {
        messages: BTreeMap::new(),
        keys,
        num_nodes: 1,
    })
}

async fn list(request: Request) -> Result<Reply, ApiError> {
    let keys = gossip(&request)?
        .keyring_list()
        .ok_or_else(|| failed("Keyring is empty (encryption not enabled)"))?;
    answer(keys.into_iter().map(|key| (key, 1)).collect())
}

fn key_of(request: &Request) -> Result<String, ApiError> {
    let body: KeyringRequest = request
        .json_body("failed to decode request body")
        .map_err(|error| ApiError::internal(error.message))?;
    Ok(body.key)
}

async fn install(request: Request) -> Result<Reply, ApiError> {
    let key = key_of(&request)?;
    gossip(&request)?
        .keyring_install(&key)
        .map_err(|error| failed(&error))?;
    answer(BTreeMap::new())
}

async fn use_key(request: Request) -> Result<Reply, ApiError> {
    let key = key_of(&request)?;
    gossip(&request)?
        .keyring_use(&key)
        .map_err(|error| failed(&error))?;
    answer(BTreeMap::new())
}

async fn remove(request: Request) -> Result<Reply, ApiError> {
    let key = key_of(&request)?;
    gossip(&request)?
        .keyring_remove(&key)
        .map_err(|error| failed(&error))?;
    answer(BTreeMap::new())
}
