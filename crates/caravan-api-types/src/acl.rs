//! Wire types of the `/v1/acl/` API page.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::time::optional_rfc3339;

pub const TOKEN_TYPE_CLIENT: &str = "client";
pub const TOKEN_TYPE_MANAGEMENT: &str = "management";
/// The accessor of the built-in token that requests without a token use.
pub const ANONYMOUS_ACCESSOR: &str = "anonymous";
/// The policy that, if defined, grants the anonymous token its rights.
pub const ANONYMOUS_POLICY: &str = "anonymous";

/// An ACL policy as stored and returned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AclPolicy {
    pub name: String,
    pub description: String,
    pub rules: String,
    #[serde(rename = "JobACL")]
    pub job_acl: Option<serde_json::Value>,
    pub create_index: u64,
    pub modify_index: u64,
}

/// An entry of `GET /v1/acl/policies`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AclPolicyListStub {
    pub name: String,
    pub description: String,
    pub create_index: u64,
    pub modify_index: u64,
}

impl From<&AclPolicy> for AclPolicyListStub {
    fn from(policy: &AclPolicy) -> Self {
        Self {
            name: policy.name.clone(),
            description: policy.description.clone(),
            create_index: policy.create_index,
            modify_index: policy.modify_index,
        }
    }
}

/// An ACL token as stored and returned (with its secret). `Debug` shows
/// the secret as `"<redacted>"`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AclToken {
    #[serde(rename = "AccessorID")]
    pub accessor_id: String,
    #[serde(rename = "SecretID")]
    pub secret_id: String,
    pub name: String,
    #[serde(rename = "Type")]
    pub token_type: String,
    pub policies: Vec<String>,
    pub roles: Vec<serde_json::Value>,
    pub global: bool,
    /// Base64 of a digest over the token's fields, as Nomad reports it.
    pub hash: String,
    #[serde(with = "optional_rfc3339")]
    pub create_time: Option<DateTime<Utc>>,
    #[serde(
        with = "optional_rfc3339",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub expiration_time: Option<DateTime<Utc>>,
    /// Nanoseconds; only on requests and on tokens created with a TTL.
    #[serde(rename = "ExpirationTTL", skip_serializing_if = "is_zero")]
    pub expiration_ttl: i64,
    pub create_index: u64,
    pub modify_index: u64,
}

impl std::fmt::Debug for AclToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every field named, so a new one cannot slip past this decision.
        let AclToken {
            accessor_id,
            secret_id,
            name,
            token_type,
            policies,
            roles,
            global,
            hash,
            create_time,
            expiration_time,
            expiration_ttl,
            create_index,
            modify_index,
        } = self;
        f.debug_struct("AclToken")
            .field("accessor_id", accessor_id)
            .field("secret_id", &crate::redacted(secret_id))
            .field("name", name)
            .field("token_type", token_type)
            .field("policies", policies)
            .field("roles", roles)
            .field("global", global)
            .field("hash", hash)
            .field("create_time", create_time)
            .field("expiration_time", expiration_time)
            .field("expiration_ttl", expiration_ttl)
            .field("create_index", create_index)
            .field("modify_index", modify_index)
            .finish()
    }
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

impl AclToken {
    pub fn is_management(&self) -> bool {
        self.token_type == TOKEN_TYPE_MANAGEMENT
    }

    /// Whether the token has expired at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expiration_time.is_some_and(|expiry| expiry <= now)
    }
}

/// An entry of `GET /v1/acl/tokens`: the token without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AclTokenListStub {
    #[serde(rename = "AccessorID")]
    pub accessor_id: String,
    pub name: String,
    #[serde(rename = "Type")]
    pub token_type: String,
    pub policies: Vec<String>,
    pub roles: Vec<serde_json::Value>,
    pub global: bool,
    pub hash: String,
    #[serde(with = "optional_rfc3339")]
    pub create_time: Option<DateTime<Utc>>,
    #[serde(
        with = "optional_rfc3339",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub expiration_time: Option<DateTime<Utc>>,
    pub create_index: u64,
    pub modify_index: u64,
}

impl From<&AclToken> for AclTokenListStub {
    fn from(token: &AclToken) -> Self {
        Self {
            accessor_id: token.accessor_id.clone(),
            name: token.name.clone(),
            token_type: token.token_type.clone(),
            policies: token.policies.clone(),
            roles: token.roles.clone(),
            global: token.global,
            hash: token.hash.clone(),
            create_time: token.create_time,
            expiration_time: token.expiration_time,
            create_index: token.create_index,
            modify_index: token.modify_index,
        }
    }
}

/// Body of `POST /v1/acl/bootstrap` (optional). `Debug` hides the secret.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AclBootstrapRequest {
    pub bootstrap_secret: String,
}

impl std::fmt::Debug for AclBootstrapRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AclBootstrapRequest")
            .field("bootstrap_secret", &crate::redacted(&self.bootstrap_secret))
            .finish()
    }
}
