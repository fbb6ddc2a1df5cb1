//! Blocking queries: `?index=N` waits until the data's index passes N or
//! the wait runs out, then answers with whatever is current.

use std::time::Duration;

use caravan_state::{State, Table};
use rand::Rng;
use tokio::time::Instant;

use crate::error::ApiError;
use crate::route::Request;

/// Runs `query` against the state, again each time one of `tables` changes,
/// until its index passes the request's `?index` or the wait is over.
/// Returns the index to report and the result.
pub async fn blocking_query<T>(
    request: &Request,
    tables: &[Table],
    query: impl Fn(&State) -> Result<(u64, T), ApiError>,
) -> Result<(u64, T), ApiError> {
    let server = request.server()?;
    let store = server.store();
    let min_index = request.query.min_index;
    let mut watches: Vec<_> = tables.iter().map(|table| store.watch(*table)).collect();
    let deadline = Instant::now() + wait_with_jitter(request.query.blocking_wait());
    loop {
        for watch in &mut watches {
            watch.borrow_and_update();
        }
        let state = store.snapshot();
        let (index, result) = query(&state)?;
        if min_index == 0 || index > min_index || Instant::now() >= deadline {
            return Ok((index, result));
        }
        let changes =
            futures::future::select_all(watches.iter_mut().map(|watch| Box::pin(watch.changed())));
        tokio::select! {
            _ = changes => {}
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
