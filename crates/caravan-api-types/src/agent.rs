//! Wire types of the `/v1/agent/` API page.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A gossip member as `/v1/agent/members` and `/v1/agent/self` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AgentMember {
    pub name: String,
    /// `null` for the zero member a client-only agent reports.
    pub addr: Option<String>,
    pub port: u16,
    pub tags: Option<BTreeMap<String, String>>,
    pub status: String,
    pub protocol_min: u8,
    pub protocol_max: u8,
    pub protocol_cur: u8,
    pub delegate_min: u8,
    pub delegate_max: u8,
    pub delegate_cur: u8,
}

impl AgentMember {
    /// The member a client-only agent reports: it is not in the gossip pool.
    pub fn none() -> Self {
        Self {
            name: String::new(),
            addr: None,
            port: 0,
            tags: None,
            status: "none".to_string(),
            protocol_min: 0,
            protocol_max: 0,
            protocol_cur: 0,
            delegate_min: 0,
            delegate_max: 0,
            delegate_cur: 0,
        }
    }
}

/// Body of `GET /v1/agent/members`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AgentMembers {
    pub server_name: String,
    pub server_region: String,
    #[serde(rename = "ServerDC")]
    pub server_dc: String,
    pub members: Vec<AgentMember>,
}

/// Body of `PUT /v1/agent/join`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinResponse {
    pub error: String,
    pub num_joined: usize,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub warning: String,
}

/// One role's verdict in `GET /v1/agent/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Body of `GET /v1/agent/health`; a section is absent when not checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<HealthCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<HealthCheck>,
}

impl HealthResponse {
    pub fn is_healthy(&self) -> bool {
        [&self.client, &self.server]
            .into_iter()
            .flatten()
            .all(|check| check.ok)
    }
}

/// Body of the `/v1/agent/keyring/` calls (Nomad's `KeyringResponse`):
/// each installed gossip key with how many nodes hold it, and the nodes'
/// messages. Only `list` fills `Keys`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyringResponse {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub messages: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub keys: BTreeMap<String, u32>,
    #[serde(default)]
    pub num_nodes: u32,
}

/// Body of the `/v1/agent/keyring/` writes (Nomad's `KeyringRequest`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyringRequest {
    pub key: String,
}

/// A map Nomad may send as `null` (a Go nil map): empty.
fn null_as_empty<'de, D, V>(deserializer: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de>,
{
    Ok(Option::deserialize(deserializer)?.unwrap_or_default())
}
