//! Blocking queries as a stream: each answer whose index moved, as
//! Nomad's blocking queries give them.
//!
//! ```no_run
//! # async fn example(client: caravan_sdk::Client) -> Result<(), caravan_sdk::Error> {
//! use futures::StreamExt;
//! let nodes = caravan_sdk::watch::watch(Default::default(), move |options| {
//!     let client = client.clone();
//!     async move { client.nodes().list(&options).await }
//! });
//! futures::pin_mut!(nodes);
//! while let Some(answer) = nodes.next().await {
//!     let (nodes, meta) = answer?;
//!     println!("{} nodes at index {}", nodes.len(), meta.last_index);
//! }
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::time::Duration;

use futures::Stream;

use crate::{Error, QueryMeta, QueryOptions};

/// How long each blocking read may wait before the server answers anyway.
const WAIT: Duration = Duration::from_secs(300);
/// How long to wait before asking again after a failed read.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Calls `read` again and again, each time blocking on the index the last
/// answer had, and yields each answer whose index moved (the first one
/// always). An error is yielded and the stream goes on from the same
/// index a second later; dropping the stream stops it.
pub fn watch<T, F, Fut>(
    options: QueryOptions,
    read: F,
) -> impl Stream<Item = Result<(T, QueryMeta), Error>>
where
    F: Fn(QueryOptions) -> Fut,
    Fut: Future<Output = Result<(T, QueryMeta), Error>>,
{
    futures::stream::unfold(
        (options, read, true, false),
        |(mut options, read, first, failed)| async move {
            if failed {
                tokio::time::sleep(RETRY_AFTER).await;
            }
            loop {
                let mut asked = options.clone();
                asked.wait_time = Some(asked.wait_time.unwrap_or(WAIT));
                match read(asked).await {
                    Ok((value, meta)) => {
                        // An index that went back (a new leader's snapshot)
                        // starts over, as Nomad's client does.
                        let moved = first || meta.last_index != options.wait_index;
                        options.wait_index = match meta.last_index < options.wait_index {
                            true => 0,
                            false => meta.last_index,
                        };
                        if moved {
                            return Some((Ok((value, meta)), (options, read, false, false)));
                        }
                    }
                    Err(error) => return Some((Err(error), (options, read, first, true))),
                }
            }
        },
    )
}
