//! A client's allocations: reading them from the servers (a blocking query
//! the servers wake only for this node's allocations) and reporting their
//! status back in batches, as Nomad's client does (`Node.GetClientAllocs`,
//! `Node.UpdateAlloc`).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use caravan_api_types::sync::lock;
use caravan_rpc::{
    AllocUpdate, NodeAllocsReply, NodeAllocsRequest, NodeAllocsUpdate, RpcError as ServerRpcError,
};
use tokio::sync::Notify;

use crate::rpc::{self, RpcError};
use crate::Client;

/// How long updates are gathered before they are sent (Nomad's client
/// syncs allocation updates every 200 ms).
pub const UPDATE_INTERVAL: Duration = Duration::from_millis(200);
/// How long the batcher waits after a failed send before trying again, so
/// a cluster without a leader is not asked five times a second.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(1);

impl Client {
    /// This node's allocations once they move past `min_index` (the
    /// previous reply's `index`; 0 answers at once), or as they are when
    /// `wait` passes. Any server answers, from its own state (possibly a
    /// little behind the leader) unless `consistent` asks it to catch up
    /// with the leader first; the call fails over between servers as
    /// heartbeats do.
    pub async fn fetch_allocs(
        &self,
        min_index: u64,
        wait: Duration,
        consistent: bool,
    ) -> Result<NodeAllocsReply, RpcError> {
        let request = NodeAllocsRequest {
            node_id: self.options.identity.node_id.clone(),
            secret_id: self.options.identity.secret_id.clone(),
            min_index,
            wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            consistent,
        };
        let request = &request;
        self.servers
            .call_with_failover(|server| async move {
                rpc::get_allocs(&self.rpc, &server, request).await
            })
            .await
    }

    /// Reports allocation updates in one write on the leader; answers its
    /// index. Sending the same updates twice is harmless (the second write
    /// changes nothing the first did not), so a call that may have reached
    /// a server is still tried on the next.
    pub async fn send_alloc_updates(&self, updates: Vec<AllocUpdate>) -> Result<u64, RpcError> {
        let update = NodeAllocsUpdate {
            node_id: self.options.identity.node_id.clone(),
            secret_id: self.options.identity.secret_id.clone(),
            allocs: updates,
        };
        let update = &update;
        self.servers
            .call_with_failover(|server| async move {
                rpc::update_allocs(&self.rpc, &server, update).await
            })
            .await
    }
}

/// Gathers allocation updates and sends them in batches: the newest
/// update of each allocation wins, a batch goes out [`UPDATE_INTERVAL`]
/// after the first update queued into it, and a batch that failed is sent
/// again with the next one (an update queued meanwhile for the same
/// allocation replaces the failed one, never the other way round).
#[derive(Default)]
pub struct UpdateBatcher {
    pending: Mutex<BTreeMap<String, AllocUpdate>>,
    queued: Notify,
    /// Held while a batch is out, so two flushes never race and an older
    /// batch is never sent after a newer one.
    sending: tokio::sync::Mutex<()>,
}

impl UpdateBatcher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `update`, replacing any not yet sent for the same allocation.
    pub fn queue(&self, update: AllocUpdate) {
        lock(&self.pending).insert(update.id.clone(), update);
        self.queued.notify_one();
    }

    /// How many allocations have an update waiting to be sent.
    pub fn pending(&self) -> usize {
        lock(&self.pending).len()
    }

    /// Sends every waiting update now through `client`.
    pub async fn flush_now(&self, client: &Client) -> Result<u64, RpcError> {
        self.flush_with(|updates| client.send_alloc_updates(updates))
            .await
    }

    /// Sends every waiting update through `send` (0 when none waits). When
    /// the send fails the updates wait for the next flush, unless the
    /// server refused them for what they say (sending them again would be
    /// refused again): those are dropped, and the error says why.
    pub async fn flush_with<F, Fut>(&self, send: F) -> Result<u64, RpcError>
    where
        F: FnOnce(Vec<AllocUpdate>) -> Fut,
        Fut: Future<Output = Result<u64, RpcError>>,
    {
        let _sending = self.sending.lock().await;
        let batch: Vec<AllocUpdate> = std::mem::take(&mut *lock(&self.pending))
            .into_values()
            .collect();
        if batch.is_empty() {
            return Ok(0);
        }
        match send(batch.clone()).await {
            Ok(index) => Ok(index),
            Err(
                error @ RpcError::Remote(ServerRpcError::Invalid(_) | ServerRpcError::Refused(_)),
            ) => {
                tracing::warn!(%error, updates = batch.len(), "servers refused allocation updates; dropping them");
                Err(error)
            }
            Err(error) => {
                let mut pending = lock(&self.pending);
                for update in batch {
                    pending.entry(update.id.clone()).or_insert(update);
                }
                Err(error)
            }
        }
    }

    /// Sends batches through `client` until `shutdown` resolves, then
    /// sends what is left once.
    pub async fn run(&self, client: &Client, shutdown: impl Future<Output = ()>) {
        self.run_with(|updates| client.send_alloc_updates(updates), shutdown)
            .await
    }

    /// [`UpdateBatcher::run`] with any sender (the node simulator's nodes
    /// have no [`Client`]). Idle, it waits for an update without waking.
    pub async fn run_with<F, Fut>(&self, send: F, shutdown: impl Future<Output = ()>)
    where
        F: Fn(Vec<AllocUpdate>) -> Fut,
        Fut: Future<Output = Result<u64, RpcError>>,
    {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                _ = self.wait_for_updates() => {}
            }
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(UPDATE_INTERVAL) => {}
            }
            if let Err(error) = self.flush_with(&send).await {
                tracing::warn!(%error, "failed to send allocation updates");
                tokio::select! {
                    biased;
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(RETRY_INTERVAL) => {}
                }
            }
        }
        if let Err(error) = self.flush_with(&send).await {
            tracing::warn!(%error, "failed to send the last allocation updates");
        }
    }

    async fn wait_for_updates(&self) {
        loop {
            let queued = self.queued.notified();
            if self.pending() > 0 {
                return;
            }
            queued.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn update(id: &str, status: &str) -> AllocUpdate {
        AllocUpdate {
            id: id.into(),
            client_status: status.into(),
            client_description: String::new(),
            task_states: BTreeMap::new(),
            deployment_status: None,
        }
    }

    fn statuses(batch: &[AllocUpdate]) -> Vec<(String, String)> {
        batch
            .iter()
            .map(|update| (update.id.clone(), update.client_status.clone()))
            .collect()
    }

    fn unreachable() -> RpcError {
        RpcError::Unreachable {
            server: "10.0.0.1:4647".into(),
            message: "refused".into(),
        }
    }

    #[tokio::test]
    async fn the_newest_update_of_each_alloc_is_sent_once() {
        let batcher = UpdateBatcher::new();
        batcher.queue(update("a", "pending"));
        batcher.queue(update("b", "running"));
        batcher.queue(update("a", "running"));
        let sent = Mutex::new(Vec::new());
        let index = batcher
            .flush_with(|batch| {
                *sent.lock().unwrap() = statuses(&batch);
                async { Ok(7) }
            })
            .await
            .unwrap();
        assert_eq!(index, 7);
        assert_eq!(
            *sent.lock().unwrap(),
            [
                ("a".into(), "running".into()),
                ("b".into(), "running".into())
            ]
        );
        assert_eq!(batcher.pending(), 0);
        let nothing = batcher
            .flush_with(|_| async { panic!("an empty batch is not sent") })
            .await;
        assert_eq!(nothing.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_failed_batch_is_retried_without_overwriting_newer_updates() {
        let batcher = UpdateBatcher::new();
        batcher.queue(update("a", "running"));
        batcher.queue(update("b", "running"));
        let failed = batcher
            .flush_with(|_| {
                // Queued while the failing batch is out: newer than it.
                batcher.queue(update("a", "complete"));
                async { Err(unreachable()) }
            })
            .await;
        assert!(failed.is_err());
        let sent = Mutex::new(Vec::new());
        batcher
            .flush_with(|batch| {
                *sent.lock().unwrap() = statuses(&batch);
                async { Ok(9) }
            })
            .await
            .unwrap();
        assert_eq!(
            *sent.lock().unwrap(),
            [
                ("a".into(), "complete".into()),
                ("b".into(), "running".into())
            ]
        );
    }

    #[tokio::test]
    async fn a_batch_the_servers_refuse_is_not_sent_again() {
        let batcher = UpdateBatcher::new();
        batcher.queue(update("a", "running"));
        let refused = batcher
            .flush_with(|_| async { Err(RpcError::Remote(ServerRpcError::Invalid("no".into()))) })
            .await;
        assert!(refused.is_err());
        assert_eq!(batcher.pending(), 0);
    }

    #[tokio::test]
    async fn the_loop_sends_batches_and_flushes_what_is_left_at_shutdown() {
        let batcher = Arc::new(UpdateBatcher::new());
        let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let running = {
            let batcher = Arc::clone(&batcher);
            tokio::spawn(async move {
                let send = |batch: Vec<AllocUpdate>| {
                    let sent_tx = sent_tx.clone();
                    async move {
                        let _ = sent_tx.send(statuses(&batch));
                        Ok(1)
                    }
                };
                batcher
                    .run_with(send, async {
                        let _ = stop_rx.await;
                    })
                    .await
            })
        };
        batcher.queue(update("a", "running"));
        let first = tokio::time::timeout(Duration::from_secs(10), sent_rx.recv())
            .await
            .expect("a batch within the wait")
            .unwrap();
        assert_eq!(first, [("a".to_string(), "running".to_string())]);
        batcher.queue(update("b", "complete"));
        stop_tx.send(()).unwrap();
        running.await.unwrap();
        let mut rest = Vec::new();
        while let Ok(batch) = sent_rx.try_recv() {
            rest.extend(batch);
        }
        assert_eq!(rest, [("b".to_string(), "complete".to_string())]);
    }
}
