//! Keeps this node's alloc runners in step with the servers: restores what
//! ran before a restart, then follows the node's allocations with the
//! blocking read (no polling) and hands every answer to the
//! [`AllocManager`]; the runners' reports go out through the
//! [`UpdateBatcher`].

use std::sync::Arc;
use std::time::Duration;

use caravan_api_types::sync::lock;
use caravan_rpc::{AllocUpdate, RpcError as ServerRpcError};

use crate::allocs::UpdateBatcher;
use crate::rpc::RpcError;
use crate::runner::state::StateStore;
use crate::runner::{AllocManager, RunnerContext, UpdateSink};
use crate::Client;

/// How long one read of the node's allocations may be held by a server.
const WATCH_WAIT: Duration = Duration::from_secs(300);

impl UpdateSink for UpdateBatcher {
    fn push(&self, update: AllocUpdate) {
        self.queue(update);
    }
}

impl Client {
    /// The alloc runners, once [`Client::run`] has started them.
    pub fn allocations(&self) -> Option<&Arc<AllocManager>> {
        self.manager.get()
    }

    /// Restores, then follows, this node's allocations until the task is
    /// dropped.
    pub(crate) async fn supervise_allocations(self: Arc<Self>) {
        let drivers = &self.drivers;
        let weak = Arc::downgrade(&self);
        let ctx = RunnerContext {
            alloc_dir: self.options.alloc_dir.clone(),
            store: StateStore::new(&self.options.state_dir),
            drivers: drivers
                .names()
                .filter_map(|name| Some((name.to_string(), drivers.get(name)?)))
                .collect(),
            sink: Arc::clone(&self.batcher) as Arc<dyn UpdateSink>,
            node: Arc::new(move || {
                weak.upgrade()
                    .map(|client| client.node())
                    .unwrap_or_default()
            }),
            region: self.options.region.clone(),
            max_kill_timeout: self.options.max_kill_timeout,
            host_env: std::env::vars().collect(),
        };
        let manager = Arc::clone(
            self.manager
                .get_or_init(|| Arc::new(AllocManager::new(ctx))),
        );
        manager.restore();
        let collector = tokio::spawn(crate::gc::run(
            Arc::clone(&manager),
            self.options.alloc_dir.clone(),
            self.options.gc.clone(),
        ));
        lock(&self.background).push(collector.abort_handle());
        let mut reporting = false;
        let mut index = 0;
        loop {
            // The first read is consistent, as Nomad's client's: a stale
            // follower must not tell a restarted client that allocations
            // it restored are gone (it would destroy them) or not yet
            // changed. Later reads may be stale; their index guards them.
            let consistent = !reporting;
            match self.fetch_allocs(index, WATCH_WAIT, consistent).await {
                // A server behind the one that answered before says
                // nothing new; ask again.
                Ok(reply) if reply.index < index => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Ok(reply) => {
                    index = reply.index;
                    manager.sync(reply);
                    // Nothing is reported before the servers' view has been
                    // applied once (as Nomad's client): a restored runner's
                    // stale status must not overwrite theirs.
                    if !reporting {
                        reporting = true;
                        let batcher = Arc::clone(&self.batcher);
                        let client = Arc::clone(&self);
                        let task = tokio::spawn(async move {
                            batcher.run(&client, std::future::pending()).await
                        });
                        caravan_api_types::sync::lock(&self.background).push(task.abort_handle());
                    }
                }
                Err(RpcError::Remote(ServerRpcError::NodeNotFound)) => {
                    // Not registered yet: the heartbeat loop is on it.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => {
                    tracing::warn!(%error, "failed to read this node's allocations");
                    let jitter = Duration::from_millis(rand::random_range(0..1000));
                    tokio::time::sleep(Duration::from_secs(1) + jitter).await;
                }
            }
        }
    }

    /// Stops the client. In `-dev` every task is killed and its allocation
    /// removed first, as Nomad's dev mode does; otherwise tasks keep
    /// running for the next start to find.
    pub async fn shutdown(&self) {
        for task in caravan_api_types::sync::lock(&self.background).drain(..) {
            task.abort();
        }
        if !self.options.destroy_on_shutdown {
            return;
        }
        if let Some(manager) = self.manager.get() {
            manager
                .destroy_all(self.options.max_kill_timeout + Duration::from_secs(5))
                .await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.batcher.flush_now(self)).await;
    }
}
