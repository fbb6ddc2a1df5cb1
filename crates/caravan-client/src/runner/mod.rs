//! Running what the servers place on this node: the alloc manager keeps one
//! alloc runner per allocation in step with the servers' view
//! ([`AllocManager::sync`]), restores them from disk after a restart
//! ([`AllocManager::restore`]), and destroys those the servers forgot.
//!
//! - [`alloc`]: the alloc runner (directory, lifecycle gates, sibling
//!   rules, client status).
//! - [`task`]: the task runner (events, driver start/wait/stop, restarts).
//! - [`restart`]: the restart policy's decisions.
//! - [`env`]: the task's environment and interpolation.
//! - [`dir`]: the allocation directory.
//! - [`state`]: what is persisted to find tasks again.
//! - [`volumes`]: a task's host volume mounts.
//! - [`lifecycle`]: signals, user restarts, forced collection and usage,
//!   for the client endpoints.

pub mod alloc;
pub mod dir;
pub mod env;
pub mod events;
pub mod health;
pub mod lifecycle;
pub mod restart;
pub mod state;
pub mod task;
pub mod volumes;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use caravan_api_types::alloc::ALLOC_CLIENT_COMPLETE;
use caravan_api_types::node::Node;
use caravan_api_types::sync::lock;
use caravan_drivers::Driver;
use caravan_rpc::{AllocUpdate, NodeAllocsReply};

use self::alloc::AllocHandle;
use self::state::{LocalAlloc, StateStore};

/// Where allocation updates go (batched to the servers).
pub trait UpdateSink: Send + Sync {
    fn push(&self, update: AllocUpdate);
}

/// What every runner of this client shares.
pub struct RunnerContext {
    /// `<data_dir>/alloc`: the allocation directories.
    pub alloc_dir: PathBuf,
    pub store: StateStore,
    pub drivers: BTreeMap<String, Arc<dyn Driver>>,
    pub sink: Arc<dyn UpdateSink>,
    /// The node as last fingerprinted (for the environment).
    pub node: Arc<dyn Fn() -> Node + Send + Sync>,
    pub region: String,
    pub max_kill_timeout: Duration,
    /// The agent's environment, passed to drivers that do not isolate.
    pub host_env: Vec<(String, String)>,
}

/// One allocation as this client holds it, for the client endpoints.
#[derive(Debug, Clone)]
pub struct AllocView {
    pub alloc: caravan_api_types::alloc::Allocation,
    /// `<alloc_dir>/<alloc_id>`: every path the endpoints serve is under it.
    pub root: PathBuf,
    pub tasks: BTreeMap<String, caravan_api_types::alloc::TaskState>,
}

/// The alloc runners of this node.
pub struct AllocManager {
    ctx: Arc<RunnerContext>,
    runners: Mutex<HashMap<String, AllocHandle>>,
    /// Allocations collected on request that the servers still list: not
    /// to be run again. Locked after `runners` when both are.
    collected: Mutex<HashSet<String>>,
}

impl AllocManager {
    pub fn new(ctx: RunnerContext) -> Self {
        Self {
            ctx: Arc::new(ctx),
            runners: Mutex::new(HashMap::new()),
            collected: Mutex::new(HashSet::new()),
        }
    }

    /// Brings back every allocation saved before a restart: running tasks
    /// are recovered, finished ones are never started again, and tasks that
    /// cannot be recovered wait for the servers' word ([`Self::sync`]).
    pub fn restore(&self) {
        let saved = self.ctx.store.load_all();
        let mut runners = lock(&self.runners);
        for local in saved {
            let id = local.alloc.id.clone();
            match alloc::start(&self.ctx, local, true) {
                Ok(handle) => {
                    runners.insert(id, handle);
                }
                Err(error) => {
                    tracing::warn!(alloc_id = %id, %error, "failed to restore an allocation");
                }
            }
        }
        if !runners.is_empty() {
            tracing::info!(allocs = runners.len(), "restored allocations");
        }
    }

    /// Applies the servers' view of this node's allocations: new ones are
    /// started, changed ones updated (a stop kills their tasks), and those
    /// no longer listed are destroyed.
    pub fn sync(&self, reply: NodeAllocsReply) {
        let mut runners = lock(&self.runners);
        let mut collected = lock(&self.collected);
        // Once the servers forget a collected allocation, so can we.
        collected.retain(|id| reply.allocs.contains_key(id));
        for alloc in reply.changed {
            if let Some(runner) = runners.get(&alloc.id) {
                runner.shared.replace_alloc(alloc);
                continue;
            }
            if collected.contains(&alloc.id) {
                continue;
            }
            // Nothing to run for one the servers already stopped, or one
            // whose client status is final (from before a state loss). One
            // stopped before this client ran it is reported complete, so
            // the servers (a drain waiting for it) know it is not running.
            if alloc.server_terminal() && !alloc.client_terminal() {
                self.ctx.sink.push(AllocUpdate {
                    id: alloc.id.clone(),
                    client_status: ALLOC_CLIENT_COMPLETE.to_string(),
                    client_description: "Allocation stopped before it started".to_string(),
                    task_states: BTreeMap::new(),
                    deployment_status: None,
                });
                continue;
            }
            if alloc.server_terminal() || alloc.client_terminal() || alloc.job.is_none() {
                continue;
            }
            let id = alloc.id.clone();
            let local = LocalAlloc {
                alloc,
                tasks: BTreeMap::new(),
                health: None,
            };
            match alloc::start(&self.ctx, local, false) {
                Ok(handle) => {
                    runners.insert(id, handle);
                }
                Err(error) => {
                    tracing::warn!(alloc_id = %id, %error, "failed to start an allocation")
                }
            }
        }
        runners.retain(|id, runner| {
            let listed = reply.allocs.contains_key(id);
            if !listed {
                runner.shared.request_destroy();
            }
            listed
        });
        // Restored runners whose allocation did not change still learn
        // that the servers have spoken.
        for runner in runners.values() {
            runner.shared.synced.send_replace(true);
        }
    }

    /// Kills every task and removes every allocation (`-dev` shutdown, as
    /// Nomad's dev mode), waiting at most `limit` for them.
    pub async fn destroy_all(&self, limit: Duration) {
        let waits: Vec<_> = lock(&self.runners)
            .drain()
            .map(|(_, runner)| {
                runner.shared.request_destroy();
                let mut done = runner.shared.done.subscribe();
                async move {
                    let _ = done.wait_for(|done| *done).await;
                }
            })
            .collect();
        let _ = tokio::time::timeout(limit, futures::future::join_all(waits)).await;
    }

    /// What the client endpoints read of one allocation this node holds:
    /// `None` if it has no runner here.
    pub fn view(&self, alloc_id: &str) -> Option<AllocView> {
        let runners = lock(&self.runners);
        let runner = runners.get(alloc_id)?;
        let shared = &runner.shared;
        Some(AllocView {
            alloc: shared.alloc(),
            root: shared.dir.root().to_path_buf(),
            tasks: shared
                .task_states()
                .into_iter()
                .map(|(name, task)| (name, task.state))
                .collect(),
        })
    }

    /// How many of this node's allocations are in each client status
    /// (`pending`, `running`, `complete`, ...), for metrics.
    pub fn client_statuses(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for runner in lock(&self.runners).values() {
            // From the tasks as this client runs them (what it reports),
            // not the servers' copy, which lags behind its reports.
            let tasks = runner.shared.task_states();
            let status = match tasks.is_empty() {
                true => runner.shared.alloc().client_status,
                false => alloc::client_status(&tasks).0.to_string(),
            };
            *counts.entry(status).or_default() += 1;
        }
        counts
    }

    /// How many allocations this node runs or keeps.
    pub fn len(&self) -> usize {
        lock(&self.runners).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
