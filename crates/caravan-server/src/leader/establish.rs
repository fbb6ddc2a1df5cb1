//! Taking over as leader (Nomad's `establishLeadership`) and the loop that
//! starts the leader duties for each established term and stops them when
//! it ends.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use caravan_api_types::namespace::Namespace;
use caravan_state::Command;
use openraft::async_runtime::WatchReceiver;
use openraft::{ChangeMembers, ServerState};

use crate::error::ServerError;
use crate::raft::types::{RaftId, RaftRequest, ServerNode};
use crate::server::Server;

impl Server {
    /// Registers what the leader does while it leads: heartbeat timers,
    /// the drainer, autopilot, the evaluation pipeline and garbage
    /// collection (the deployment watcher will join them the same way).
    pub(crate) fn register_leader_duties(&self) {
        self.leadership
            .register_fn("heartbeat timers", |server: Arc<Server>, token| {
                let heartbeats = Arc::clone(&server.heartbeats);
                heartbeats.run(token, move |command| {
                    let server = Arc::clone(&server);
                    Box::pin(async move {
                        // A leader cut off from its quorum cannot write;
                        // the next leader gives the node a fresh TTL.
                        if !server.holds_lease() {
                            return;
                        }
                        if let Err(error) = server.apply(command).await {
                            tracing::warn!(%error, "failed to mark a node down");
                        }
                    })
                })
            });
        self.leadership
            .register_fn("drainer", crate::leader::drainer::run::<Server>);
        self.leadership
            .register_fn("autopilot", crate::cluster::autopilot::run::<Server>);
        self.leadership.register_fn(
            "evaluation pipeline",
            crate::leader::scheduling::run::<Server>,
        );
        self.leadership
            .register_fn("garbage collection", crate::leader::core_gc::run::<Server>);
    }

    /// Watches for this server becoming leader and does what a new leader
    /// must (Nomad's `establishLeadership`), then starts the leader duties
    /// for that term; stops them when the term's leadership ends.
    pub(crate) async fn run_leader_duties(self: Arc<Self>) {
        let mut metrics = self.raft.metrics();
        loop {
            let (state, term) = {
                let current = metrics.borrow_watched();
                (current.state, current.current_term)
            };
            if let Some(led) = self.leadership.term() {
                if state != ServerState::Leader || term != led {
                    self.leadership.stop().await;
                    self.heartbeats.clear_all();
                    tracing::info!(term = led, "cluster leadership lost");
                }
            }
            if state == ServerState::Leader && self.ready_term.load(Ordering::SeqCst) != term {
                match self.establish_leadership().await {
                    Ok(()) => {
                        self.heartbeats.initialize(&self.store.snapshot());
                        self.ready_term.store(term, Ordering::SeqCst);
                        self.leadership.start(Arc::clone(&self), term);
                        tracing::info!(term, "cluster leadership acquired");
                    }
                    Err(error) => {
                        tracing::warn!(%error, "establishing leadership failed; retrying");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                }
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    }

    async fn establish_leadership(&self) -> Result<(), ServerError> {
        self.refresh_own_address().await?;
        for command in [
            Command::SchedulerConfigInit {
                config: self.options.default_scheduler_config.clone(),
            },
            Command::AutopilotConfigInit {
                config: self.options.autopilot.clone(),
            },
        ] {
            self.raft
                .client_write(RaftRequest(command))
                .await
                .map_err(|error| ServerError::Raft(error.to_string()))?;
        }
        if let Some(command) = self.namespaces_in_use() {
            self.raft
                .client_write(RaftRequest(command))
                .await
                .map_err(|error| ServerError::Raft(error.to_string()))?;
        }
        Ok(())
    }

    /// Jobs registered before namespaces existed could name any namespace:
    /// each such namespace (that a namespace may be called) is written, so
    /// its jobs stay in a namespace that exists and can be updated.
    fn namespaces_in_use(&self) -> Option<Command> {
        let state = self.store().snapshot();
        let names: std::collections::BTreeSet<&str> = state
            .jobs()
            .map(|job| job.namespace.as_str())
            .filter(|name| !state.namespace_exists(name))
            .collect();
        let namespaces: Vec<Namespace> = names
            .into_iter()
            .map(|name| Namespace {
                name: name.to_string(),
                ..Namespace::default()
            })
            .filter(|namespace| {
                let valid = namespace.problems().is_empty();
                if !valid {
                    tracing::warn!(
                        namespace = %namespace.name,
                        "jobs are stored in a namespace whose name a namespace may not have"
                    );
                }
                valid
            })
            .collect();
        (!namespaces.is_empty()).then_some(Command::NamespaceUpsert { namespaces })
    }

    /// A server restarted with other addresses updates its own entry in the
    /// Raft configuration, so peers and `status/leader` use the new ones.
    async fn refresh_own_address(&self) -> Result<(), ServerError> {
        let metrics = self.metrics();
        let recorded = metrics
            .membership_config
            .membership()
            .get_node(&self.raft_id)
            .cloned();
        if recorded.as_ref() == Some(&self.node) || recorded.is_none() {
            return Ok(());
        }
        let change = ChangeMembers::<RaftId, ServerNode>::SetNodes(BTreeMap::from([(
            self.raft_id,
            self.node.clone(),
        )]));
        self.raft
            .change_membership(change, true)
            .await
            .map(|_| ())
            .map_err(|error| ServerError::Raft(error.to_string()))
    }
}
