//! `/v1/acl/`: bootstrap, policies and tokens.

use std::time::Duration;

use base64::Engine;
use caravan_acl::Capability;
use caravan_api_types::acl::{
    AclBootstrapRequest, AclPolicy, AclPolicyListStub, AclToken, AclTokenListStub,
    TOKEN_TYPE_CLIENT, TOKEN_TYPE_MANAGEMENT,
};
use caravan_state::{Command, CommandResult, State, Table};
use chrono::Utc;
use http::StatusCode;
use sha2::{Digest, Sha256};

use crate::blocking::blocking_query;
use crate::error::ApiError;
use crate::operator::server_error;
use crate::reply::Reply;
use crate::route::{endpoint, Acl, Consistency, Request, Route, DELETE, GET, MANAGEMENT, PUT_POST};

pub fn routes() -> Vec<Route> {
    let route = |path, endpoints| Route {
        path,
        endpoints,
        wrong_method: StatusCode::METHOD_NOT_ALLOWED,
    };
    vec![
        route(
            "/v1/acl/bootstrap",
            vec![endpoint(
                PUT_POST,
                Acl::None,
                Consistency::Leader,
                bootstrap,
            )],
        ),
        route(
            "/v1/acl/policies",
            vec![endpoint(
                GET,
                Acl::InHandler,
                Consistency::LeaderUnlessStale,
                list_policies,
            )],
        ),
        route(
            "/v1/acl/policy/{name}",
            vec![
                endpoint(
                    GET,
                    Acl::InHandler,
                    Consistency::LeaderUnlessStale,
                    get_policy,
                ),
                endpoint(PUT_POST, MANAGEMENT, Consistency::Leader, put_policy),
                endpoint(DELETE, MANAGEMENT, Consistency::Leader, delete_policy),
            ],
        ),
        route(
            "/v1/acl/tokens",
            vec![endpoint(
                GET,
                MANAGEMENT,
                Consistency::LeaderUnlessStale,
                list_tokens,
            )],
        ),
        route(
            "/v1/acl/token",
            vec![endpoint(
                PUT_POST,
                MANAGEMENT,
                Consistency::Leader,
                create_token,
            )],
        ),
        route(
            "/v1/acl/token/self",
            vec![endpoint(
                GET,
                Acl::InHandler,
                Consistency::LeaderUnlessStale,
                token_self,
            )],
        ),
        route(
            "/v1/acl/token/{accessor}",
            vec![
                endpoint(
                    GET,
                    Acl::InHandler,
                    Consistency::LeaderUnlessStale,
                    get_token,
                ),
                endpoint(PUT_POST, MANAGEMENT, Consistency::Leader, update_token),
                endpoint(DELETE, MANAGEMENT, Consistency::Leader, delete_token),
            ],
        ),
    ]
}

fn acl_disabled() -> ApiError {
    ApiError::bad_request("ACL support disabled")
}

fn require_enabled(request: &Request) -> Result<(), ApiError> {
    if request.ctx.config.acl.enabled {
        Ok(())
    } else {
        Err(acl_disabled())
    }
}

fn policy_not_found() -> ApiError {
    ApiError::not_found("ACL policy not found")
}

fn token_not_found() -> ApiError {
    ApiError::not_found("ACL token not found")
}

/// Nomad's digest of a token's fields, base64 as its JSON shows `[]byte`.
fn token_hash(token: &AclToken) -> String {
    let mut digest = Sha256::new();
    digest.update(token.name.as_bytes());
    digest.update(token.token_type.as_bytes());
    for policy in &token.policies {
        digest.update(policy.as_bytes());
    }
    digest.update(if token.global { b"global" } else { b"local\0" });
    base64::engine::general_purpose::STANDARD.encode(digest.finalize())
}

/// Runs a write whose outcome may be a refusal, mapping that to a 400.
async fn apply(request: &Request, command: Command) -> Result<u64, ApiError> {
    let write = request
        .server()?
        .apply(command)
        .await
        .map_err(server_error)?;
    match write.result {
        CommandResult::Refused(reason) => Err(ApiError::bad_request(reason)),
        _ => Ok(write.index),
    }
}

/// The reset index an operator wrote to `data_dir/server/acl-bootstrap-reset`.
fn bootstrap_reset_index(request: &Request) -> Option<u64> {
    let server = request.ctx.server.as_ref()?;
    let path = server.options().data_dir.join("acl-bootstrap-reset");
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

async fn bootstrap(request: Request) -> Result<Reply, ApiError> {
    require_enabled(&request)?;
    let body: AclBootstrapRequest = if request.body.is_empty() {
        AclBootstrapRequest::default()
    } else {
        request.json_body("Error parsing bootstrap request")?
    };
    let secret = if body.bootstrap_secret.is_empty() {
        uuid::Uuid::new_v4().to_string()
    } else {
        uuid::Uuid::parse_str(&body.bootstrap_secret)
            .map_err(|_| ApiError::bad_request("invalid acl bootstrap secret: must be a UUID"))?
            .to_string()
    };
    let mut token = AclToken {
        accessor_id: uuid::Uuid::new_v4().to_string(),
        secret_id: secret,
        name: "Bootstrap Token".to_string(),
        token_type: TOKEN_TYPE_MANAGEMENT.to_string(),
        global: true,
        create_time: Some(Utc::now()),
        ..AclToken::default()
    };
    token.hash = token_hash(&token);
    let reset_index = bootstrap_reset_index(&request);
    let index = apply(
        &request,
        Command::AclBootstrap {
            token: token.clone(),
            reset_index,
        },
    )
    .await?;
    token.create_index = index;
    token.modify_index = index;
    Ok(Reply::json(&token)?.write_index(index))
}

/// Policies the caller may see: all for management, else those it holds.
async fn list_policies(request: Request) -> Result<Reply, ApiError> {
    require_enabled(&request)?;
    let prefix = request.query.prefix.clone();
    let identity = request.identity.clone();
    let (index, stubs) = blocking_query(&request, &[Table::AclPolicies.into()], |state| {
        let stubs: Vec<AclPolicyListStub> = state
            .acl_policies()
            .filter(|policy| policy.name.starts_with(&prefix))
            .filter(|policy| identity.holds_policy(&policy.name))
            .map(AclPolicyListStub::from)
            .collect();
        Ok((state.table_index(Table::AclPolicies), stubs))
    })
    .await?;
    Ok(Reply::json(&stubs)?.query_index(index))
}

async fn get_policy(request: Request) -> Result<Reply, ApiError> {
    require_enabled(&request)?;
    let name = request.param("name").to_string();
    if !request.identity.holds_policy(&name) {
        return Err(ApiError::permission_denied());
    }
    let (index, policy) = blocking_query(&request, &[Table::AclPolicies.into()], |state| {
        Ok((
            state.table_index(Table::AclPolicies),
            state.acl_policy(&name).cloned(),
        ))
    })
    .await?;
    let policy = policy.ok_or_else(policy_not_found)?;
    Ok(Reply::json(&policy)?.query_index(index))
}

/// Nomad's rule for policy names.
fn valid_policy_name(name: &str) -> bool {
    (1..=128).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

async fn put_policy(request: Request) -> Result<Reply, ApiError> {
    require_enabled(&request)?;
    let name = request.param("name").to_string();
    let mut policy: AclPolicy = request.json_body("Failed to parse ACL policy")?;
    if policy.name.is_empty() {
        policy.name = name.clone();
    }
    if policy.name != name {
        return Err(ApiError::bad_request(
            "ACL policy name does not match request path",
        ));
    }
    if !valid_policy_name(&name) {
        return Err(ApiError::bad_request(format!("invalid name '{name}'")));
    }
    if policy.description.len() > 256 {
        return Err(ApiError::bad_request("description longer than 256"));
    }
    caravan_acl::parse(&policy.rules)
        .map_err(|error| ApiError::bad_request(format!("failed to parse rules: {error}")))?;
    policy.create_index = 0;
    policy.modify_index = 0;
    let index = apply(
        &request,
        Command::AclPolicyUpsert {
            policies: vec![policy],
        },
    )
    .await?;
    Ok(Reply::empty().write_index(index))
}

async fn delete_policy(request: Request) -> Result<Reply, ApiError> {
    require_enabled(&request)?;
    let name = request.param("name").to_string();
    let state = request.server()?.store().snapshot();
    if state.acl_policy(&name).is_none() {
        return Err(policy_not_found());
    }
    let index = apply(&request, Command::AclPolicyDelete { names: vec![name] }).await?;
    Ok(Reply::empty().write_index(index))
}

async fn list_tokens(request: Request) -> Result<Reply, ApiError> {
    require_enabled(&request)?;
    let prefix = request.query.prefix.clone();
    let (index, stubs) = blocking_query(&request, &[Table::AclTokens.into()], |state| {
        let stubs: Vec<AclTokenListStub> = state
            .acl_tokens()
            .filter(|token| token.accessor_id.starts_with(&prefix))
            .map(AclTokenListStub::from)
            .collect();
        Ok((state.table_index(Table::AclTokens), stubs))
    })
    .await?;
    Ok(Reply::json(&stubs)?.query_index(index))
}

/// Nomad's token validation, plus expiry bounds from the agent's `acl`
/// block.
fn validate_token(request: &Request, token: &mut AclToken) -> Result<(), ApiError> {
    if token.name.len() > 256 {
        return Err(ApiError::bad_request("token name too long"));
    }
    match token.token_type.as_str() {
        TOKEN_TYPE_CLIENT if token.policies.is_empty() => {
            return Err(ApiError::bad_request(
                "client token missing policies or roles",
            ))
        }
        TOKEN_TYPE_MANAGEMENT if !token.policies.is_empty() => {
            return Err(ApiError::bad_request(
                "management token cannot be associated with policies or roles",
            ))
        }
        TOKEN_TYPE_CLIENT | TOKEN_TYPE_MANAGEMENT => {}
        _ => {
            return Err(ApiError::bad_request(
                "token type must be client or management",
            ))
        }
    }
    if token.expiration_ttl < 0 {
        return Err(ApiError::bad_request(
            "token expiration TTL must not be negative",
        ));
    }
    let now = Utc::now();
    if token.expiration_ttl > 0 {
        if token.expiration_time.is_some() {
            return Err(ApiError::bad_request(
                "token expiration time and TTL cannot both be set",
            ));
        }
        token.expiration_time = Some(now + chrono::Duration::nanoseconds(token.expiration_ttl));
    }
    if let Some(expiry) = token.expiration_time {
        let acl = &request.ctx.config.acl;
        let ahead = (expiry - now).to_std().unwrap_or(Duration::ZERO);
        if ahead < acl.token_min_expiration_ttl {
            return Err(ApiError::bad_request(format!(
                "expiration time cannot be less than {} in the future",
                caravan_api_types::duration::format_go_duration(acl.token_min_expiration_ttl)
            )));
        }
        if ahead > acl.token_max_expiration_ttl {
            return Err(ApiError::bad_request(format!(
                "expiration time cannot be more than {} in the future",
                caravan_api_types::duration::format_go_duration(acl.token_max_expiration_ttl)
            )));
        }
    }
    Ok(())
}

async fn create_token(request: Request) -> Result<Reply, ApiError> {
    require_enabled(&request)?;
    let mut token: AclToken = request.json_body("Failed to parse ACL token")?;
    if !token.accessor_id.is_empty() {
        return Err(ApiError::bad_request(
            "token accessor ID must not be set when creating a token",
        ));
    }
    validate_token(&request, &mut token)?;
    token.accessor_id = uuid::Uuid::new_v4().to_string();
    token.secret_id = uuid::Uuid::new_v4().to_string();
    token.create_time = Some(Utc::now());
    token.roles = Vec::new();
    token.hash = token_hash(&token);
    let index = apply(
        &request,
        Command::AclTokenUpsert {
            tokens: vec![token.clone()],
        },
    )
    .await?;
    token.create_index = index;
    token.modify_index = index;
    Ok(Reply::json(&token)?.write_index(index))
}

async fn update_token(request: Request) -> Result<Reply, ApiError> {
    require_enabled(&request)?;
    let accessor = request.param("accessor").to_string();
    let update: AclToken = request.json_body("Failed to parse ACL token")?;
    if !update.accessor_id.is_empty() && update.accessor_id != accessor {
        return Err(ApiError::bad_request(
            "Token accessor ID does not match request path",
        ));
    }
    let state = request.server()?.store().snapshot();
    let existing = state
        .acl_token(&accessor)
        .cloned()
        .ok_or_else(token_not_found)?;
    let mut token = AclToken {
        name: update.name,
        token_type: update.token_type,
        policies: update.policies,
        global: update.global,
        // The secret, creation time and expiry never change on update.
        expiration_ttl: 0,
        ..existing
    };
    validate_token(&request, &mut token)?;
    token.hash = token_hash(&token);
    let index = apply(
        &request,
        Command::AclTokenUpsert {
            tokens: vec![token.clone()],
        },
    )
    .await?;
    token.modify_index = index;
    Ok(Reply::json(&token)?.write_index(index))
}

async fn delete_token(request: Request) -> Result<Reply, ApiError> {
    require_enabled(&request)?;
    let accessor = request.param("accessor").to_string();
    let state = request.server()?.store().snapshot();
    if state.acl_token(&accessor).is_none() {
        return Err(token_not_found());
    }
    let index = apply(
        &request,
        Command::AclTokenDelete {
            accessors: vec![accessor],
        },
    )
    .await?;
    Ok(Reply::empty().write_index(index))
}

fn token_reply(state: &State, accessor: &str) -> Result<Reply, ApiError> {
    let token = state.acl_token(accessor).ok_or_else(token_not_found)?;
    Ok(Reply::json(token)?.query_index(state.table_index(Table::AclTokens)))
}

async fn token_self(request: Request) -> Result<Reply, ApiError> {
    require_enabled(&request)?;
    let token = request
        .identity
        .token
        .clone()
        .ok_or_else(|| ApiError::new(StatusCode::FORBIDDEN, "ACL token not found"))?;
    let state = request.server()?.store().snapshot();
    token_reply(&state, &token.accessor_id)
}

async fn get_token(request: Request) -> Result<Reply, ApiError> {
    require_enabled(&request)?;
    let accessor = request.param("accessor").to_string();
    let own = request
        .identity
        .token
        .as_ref()
        .is_some_and(|token| token.accessor_id == accessor);
    if !own {
        request.require(Capability::Management)?;
    }
    let (_, reply) = blocking_query(&request, &[Table::AclTokens.into()], |state| {
        Ok((
            state.table_index(Table::AclTokens),
            token_reply(state, &accessor),
        ))
    })
    .await?;
    reply
}
