//! `/v1/system`: garbage collection on demand (`PUT /v1/system/gc`) and
//! job summaries counted again (`PUT /v1/system/reconcile/summaries`),
//! both for management tokens, both run on the leader.
//!
//! Nomad answers `gc` before collecting (it queues a core evaluation);
//! here the collection is written before the answer, so what a caller
//! reads next is already collected.

use caravan_server::leader::core_gc;
use caravan_state::Command;
use http::StatusCode;

use crate::error::ApiError;
use crate::jobs::apply_write;
use crate::reply::Reply;
use crate::route::{endpoint, Consistency, Request, Route, MANAGEMENT, PUT};

pub fn routes() -> Vec<Route> {
    vec![
        Route {
            path: "/v1/system/gc",
            endpoints: vec![endpoint(PUT, MANAGEMENT, Consistency::Leader, gc)],
            wrong_method: StatusCode::METHOD_NOT_ALLOWED,
        },
        Route {
            path: "/v1/system/reconcile/summaries",
            endpoints: vec![endpoint(
                PUT,
                MANAGEMENT,
                Consistency::Leader,
                reconcile_summaries,
            )],
            wrong_method: StatusCode::METHOD_NOT_ALLOWED,
        },
    ]
}

/// Collects everything finished, whatever its age.
async fn gc(request: Request) -> Result<Reply, ApiError> {
    let state = request.server()?.store().snapshot();
    let verdict = core_gc::decide_forced(&state, chrono::Utc::now());
    drop(state);
    let summary = core_gc::summary(&verdict);
    let mut index = 0;
    for command in core_gc::commands(verdict.collect) {
        index = apply_write(&request, command).await?;
    }
    if !summary.is_empty() {
        tracing::info!("forced garbage collection: {summary}");
    }
    Ok(empty(index))
}

async fn reconcile_summaries(request: Request) -> Result<Reply, ApiError> {
    let index = apply_write(&request, Command::JobSummariesReconcile).await?;
    Ok(empty(index))
}

/// Nomad's empty 200 (with the write's index when there was one).
fn empty(index: u64) -> Reply {
    let reply = Reply::empty();
    if index > 0 {
        reply.write_index(index)
    } else {
        reply
    }
}
