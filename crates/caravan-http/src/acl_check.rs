//! Resolving the caller's token into the capabilities its policies grant.
//!
//! On a server the token and policies come from the local state. A
//! client-only agent asks a server through the ordinary API
//! (`/v1/acl/token/self`, `/v1/acl/policy/:name`) and keeps the answer for
//! `acl.token_ttl`, as Nomad's clients cache theirs.

use std::time::{Duration, Instant};

use caravan_acl::AclSet;
use caravan_api_types::acl::{AclPolicy, AclToken, ANONYMOUS_POLICY};
use caravan_state::State;
use http::HeaderMap;

pub use crate::acl_cache::{AclCache, Identity};
use caravan_api_types::sync::lock;

use crate::context::AgentContext;
use crate::error::ApiError;

/// The secret a request carries: `X-Nomad-Token`, else
/// `Authorization: Bearer <secret>`.
pub fn request_secret(headers: &HeaderMap) -> String {
    if let Some(token) = headers.get("x-nomad-token").and_then(|v| v.to_str().ok()) {
        let token = token.trim();
        if !token.is_empty() {
            return token.to_string();
        }
    }
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let mut words = value.split_whitespace();
            let scheme = words.next()?;
            let token = words.next()?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.to_string())
        })
        .unwrap_or_default()
}

fn token_not_found() -> ApiError {
    ApiError::new(http::StatusCode::FORBIDDEN, "ACL token not found")
}

/// Resolves the caller of a request.
pub async fn resolve(ctx: &AgentContext, headers: &HeaderMap) -> Result<Identity, ApiError> {
    if !ctx.config.acl.enabled {
        return Ok(Identity::unrestricted());
    }
    let secret = request_secret(headers);
    match &ctx.server {
        Some(server) => {
            // A follower first catches up with what the leader has
            // committed, so a deleted token stops working on every server
            // at once. Without a leader it answers from what it has.
            if !secret.is_empty() {
                if let Err(error) = server.read_barrier().await {
                    tracing::debug!(%error, "no read barrier; resolving the token from local state");
                }
            }
            resolve_in_state(&ctx.acl_cache, &server.store().snapshot(), &secret)
        }
        None => resolve_through_server(ctx, &secret).await,
    }
}

/// Resolves `secret` against a state snapshot.
pub fn resolve_in_state(
    cache: &AclCache,
    state: &State,
    secret: &str,
) -> Result<Identity, ApiError> {
    if secret.is_empty() {
        let acl = cache.compile(state.acl_policy(ANONYMOUS_POLICY));
        return Ok(Identity {
            acl,
            token: None,
            acls_enabled: true,
        });
    }
    let token = state
        .acl_token_by_secret(secret)
        .filter(|token| !token.is_expired(chrono::Utc::now()))
        .ok_or_else(token_not_found)?;
    let acl = if token.is_management() {
        AclSet::management()
    } else {
        // Policies that no longer exist are skipped, as Nomad skips them.
        cache.compile(
            token
                .policies
                .iter()
                .filter_map(|name| state.acl_policy(name)),
        )
    };
    Ok(Identity {
        acl,
        token: Some(token.clone()),
        acls_enabled: true,
    })
}

async fn resolve_through_server(ctx: &AgentContext, secret: &str) -> Result<Identity, ApiError> {
    let ttl = ctx.config.acl.token_ttl;
    if let Some(identity) = cached(&ctx.acl_cache, secret, ttl) {
        return Ok(identity);
    }
    let servers = ctx
        .client
        .as_ref()
        .map(|client| client.servers().get())
        .unwrap_or_default();
    let mut last_error = ApiError::internal("no known servers");
    for server in servers {
        match fetch_identity(ctx, &server, secret).await {
            Ok(identity) => {
                let mut resolved = lock(&ctx.acl_cache.resolved);
                resolved.insert(secret.to_string(), (identity.clone(), Instant::now()));
                return Ok(identity);
            }
            Err(error) if error.status == http::StatusCode::FORBIDDEN => return Err(error),
            Err(error) => last_error = error,
        }
    }
    Err(last_error)
}

fn cached(cache: &AclCache, secret: &str, ttl: Duration) -> Option<Identity> {
    let resolved = lock(&cache.resolved);
    resolved
        .get(secret)
        .filter(|(_, at)| at.elapsed() < ttl)
        .map(|(identity, _)| identity.clone())
}

/// Asks a server (its RPC port serves the API) who `secret` is.
async fn fetch_identity(
    ctx: &AgentContext,
    server: &str,
    secret: &str,
) -> Result<Identity, ApiError> {
    let get = |path: String| {
        let mut request = ctx
            .http_client
            .get(crate::forward::rpc_url(ctx, server, &path))
            .timeout(Duration::from_secs(10));
        if !secret.is_empty() {
            request = request.header("X-Nomad-Token", secret);
        }
        request
    };
    let failed =
        |error: reqwest::Error| ApiError::internal(format!("failed to resolve token: {error}"));
    let token: Option<AclToken> = if secret.is_empty() {
        None
    } else {
        let response = get("/v1/acl/token/self".to_string())
            .send()
            .await
            .map_err(failed)?;
        if response.status() == reqwest::StatusCode::FORBIDDEN {
            return Err(token_not_found());
        }
        Some(response.json().await.map_err(failed)?)
    };
    if token.as_ref().is_some_and(AclToken::is_management) {
        return Ok(Identity {
            acl: AclSet::management(),
            token,
            acls_enabled: true,
        });
    }
    let names: Vec<String> = match &token {
        Some(token) => token.policies.clone(),
        None => vec![ANONYMOUS_POLICY.to_string()],
    };
    let mut policies = Vec::new();
    for name in names {
        let response = get(format!("/v1/acl/policy/{name}"))
            .send()
            .await
            .map_err(failed)?;
        if response.status().is_success() {
            policies.push(response.json::<AclPolicy>().await.map_err(failed)?);
        }
    }
    Ok(Identity {
        acl: ctx.acl_cache.compile(&policies),
        token,
        acls_enabled: true,
    })
}
