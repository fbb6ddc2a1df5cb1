//! Blocking queries: `?index=N` waits until the data's index passes N or
//! the wait runs out, then answers with whatever is current.

use std::time::Duration;

use caravan_state::{State, WatchKey};
use rand::Rng;
use tokio::time::Instant;

use crate::error::ApiError;
use crate::route::Request;

/// Runs `query` against the state, again each time a write touches one of
/// `keys` (what the query reads: a table, a row, an index value), until its
/// index passes the request's `?index` or the wait is over. Returns the
/// index to report and the result.
pub async fn blocking_query<T>(
    request: &Request,
    keys: &[WatchKey],
    query: impl Fn(&State) -> Result<(u64, T), ApiError>,
) -> Result<(u64, T), ApiError> {
    let server = request.server()?;
    let store = server.store();
    let min_index = request.query.min_index;
    if min_index == 0 {
        let state = store.snapshot();
        return query(&state);
    }
    let deadline = Instant::now() + wait_with_jitter(request.query.blocking_wait());
    loop {
        // Registered before the read, so a write published after the read
        // fires it.
        let watch = store.watch_keys(keys);
        let state = store.snapshot();
        let (index, result) = query(&state)?;
        if index > min_index || Instant::now() >= deadline {
            return Ok((index, result));
        }
        drop(state);
        tokio::select! {
            _ = watch.fired() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// Nomad adds up to wait/16 of random jitter so that many waiters do not
/// all come back at once.
fn wait_with_jitter(wait: Duration) -> Duration {
    let jitter_limit = wait.as_nanos() / 16;
    if jitter_limit == 0 {
        return wait;
    }
    let jitter = rand::rng().random_range(0..jitter_limit);
    wait + Duration::from_nanos(u64::try_from(jitter).unwrap_or(0))
}
