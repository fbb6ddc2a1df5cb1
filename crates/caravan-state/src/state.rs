//! The tables themselves and how each command changes them.

use std::sync::Arc;

use caravan_api_types::acl::{AclPolicy, AclToken};
use caravan_api_types::node::Node;
use caravan_api_types::operator::{AutopilotConfiguration, SchedulerConfiguration};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::command::{Command, CommandResult};
use crate::nodes::{self, DrainUpdate, NODE_NOT_FOUND};

/// The tables of the state, each with its own Raft index (Nomad's `index`
/// table), which blocking queries compare against `?index=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Table {
    SchedulerConfig,
    AutopilotConfig,
    AclPolicies,
    AclTokens,
    Nodes,
    /// Allocations; nothing writes them until scheduling exists, but node
    /// allocation queries already block on it.
    Allocs,
}

impl Table {
    pub const ALL: &'static [Table] = &[
        Table::SchedulerConfig,
        Table::AutopilotConfig,
        Table::AclPolicies,
        Table::AclTokens,
        Table::Nodes,
        Table::Allocs,
    ];
}

/// One consistent version of every table.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// The Raft index of the last applied entry.
    latest_index: u64,
    table_indexes: imbl::OrdMap<Table, u64>,
    scheduler_config: Option<SchedulerConfiguration>,
    autopilot_config: Option<AutopilotConfiguration>,
    acl_policies: imbl::OrdMap<String, AclPolicy>,
    acl_tokens: imbl::OrdMap<String, AclToken>,
    /// SHA-256 of each secret → accessor, so a lookup never compares
    /// secrets byte by byte in a data structure.
    acl_secret_digests: imbl::HashMap<String, String>,
    /// Raft index of the last ACL bootstrap (0: never bootstrapped).
    acl_bootstrap_index: u64,
    /// Nodes by ID. Values are shared so a write copies pointers, not nodes.
    nodes: imbl::OrdMap<String, Arc<Node>>,
}

/// Hex SHA-256 of a token secret.
pub fn secret_digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Compares two secrets in time that depends only on their lengths.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

impl State {
    /// The Raft index of the last applied log entry.
    pub fn latest_index(&self) -> u64 {
        self.latest_index
    }

    /// The Raft index of the last write to `table` (0 if never written).
    pub fn table_index(&self, table: Table) -> u64 {
        self.table_indexes.get(&table).copied().unwrap_or(0)
    }

    /// The largest index among `tables`, as Nomad reports for a query
    /// reading several of them.
    pub fn max_index(&self, tables: &[Table]) -> u64 {
        tables
            .iter()
            .map(|table| self.table_index(*table))
            .max()
            .unwrap_or(0)
    }

    pub fn scheduler_config(&self) -> Option<&SchedulerConfiguration> {
        self.scheduler_config.as_ref()
    }

    pub fn autopilot_config(&self) -> Option<&AutopilotConfiguration> {
        self.autopilot_config.as_ref()
    }

    pub fn acl_policy(&self, name: &str) -> Option<&AclPolicy> {
        self.acl_policies.get(name)
    }

    /// Every policy, by name.
    pub fn acl_policies(&self) -> impl Iterator<Item = &AclPolicy> {
        self.acl_policies.values()
    }

    pub fn acl_token(&self, accessor: &str) -> Option<&AclToken> {
        self.acl_tokens.get(accessor)
    }

    /// Every token, by accessor ID.
    pub fn acl_tokens(&self) -> impl Iterator<Item = &AclToken> {
        self.acl_tokens.values()
    }

    /// The token whose secret is `secret`, compared in constant time.
    pub fn acl_token_by_secret(&self, secret: &str) -> Option<&AclToken> {
        let accessor = self.acl_secret_digests.get(&secret_digest(secret))?;
        self.acl_tokens
            .get(accessor)
            .filter(|token| secrets_equal(&token.secret_id, secret))
    }

    /// Raft index of the last ACL bootstrap, 0 if never.
    pub fn acl_bootstrap_index(&self) -> u64 {
        self.acl_bootstrap_index
    }

    pub fn node(&self, id: &str) -> Option<&Arc<Node>> {
        self.nodes.get(id)
    }

    /// Every node, in ID order.
    pub fn nodes(&self) -> impl Iterator<Item = &Arc<Node>> {
        self.nodes.values()
    }

    /// Nodes whose ID starts with `prefix`, in ID order.
    pub fn nodes_with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a Arc<Node>> {
        self.nodes
            .range(prefix.to_string()..)
            .take_while(move |(id, _)| id.starts_with(prefix))
            .map(|(_, node)| node)
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    fn put_node(&mut self, node: Node, index: u64) -> (CommandResult, Vec<Table>) {
        self.nodes.insert(node.id.clone(), Arc::new(node));
        self.touch(Table::Nodes, index);
        (CommandResult::Done, vec![Table::Nodes])
    }

    fn with_node(
        &mut self,
        id: &str,
        index: u64,
        change: impl FnOnce(&Node) -> Result<Node, String>,
    ) -> (CommandResult, Vec<Table>) {
        let Some(stored) = self.nodes.get(id).cloned() else {
            return (CommandResult::Refused(NODE_NOT_FOUND.to_string()), vec![]);
        };
        match change(&stored) {
            Ok(node) => self.put_node(node, index),
            Err(reason) => (CommandResult::Refused(reason), vec![]),
        }
    }

    pub(crate) fn note_index(&mut self, index: u64) {
        self.latest_index = self.latest_index.max(index);
    }

    fn touch(&mut self, table: Table, index: u64) {
        self.table_indexes.insert(table, index);
    }

    /// Applies `command` at `index`; returns its result and the tables it
    /// changed.
    pub(crate) fn apply(&mut self, index: u64, command: &Command) -> (CommandResult, Vec<Table>) {
        match command {
            Command::SchedulerConfigSet { config, cas } => {
                let current = self.scheduler_config.as_ref().map(|c| c.modify_index);
                if !cas_matches(*cas, current) {
                    return (CommandResult::Cas(false), vec![]);
                }
                let create_index = self
                    .scheduler_config
                    .as_ref()
                    .map_or(index, |c| c.create_index);
                self.scheduler_config = Some(SchedulerConfiguration {
                    create_index,
                    modify_index: index,
                    ..config.clone()
                });
                self.touch(Table::SchedulerConfig, index);
                (cas_result(*cas), vec![Table::SchedulerConfig])
            }
            Command::SchedulerConfigInit { config } => {
                if self.scheduler_config.is_some() {
                    return (CommandResult::Done, vec![]);
                }
                self.scheduler_config = Some(SchedulerConfiguration {
                    create_index: index,
                    modify_index: index,
                    ..config.clone()
                });
                self.touch(Table::SchedulerConfig, index);
                (CommandResult::Done, vec![Table::SchedulerConfig])
            }
            Command::AutopilotConfigSet { config, cas } => {
                let current = self.autopilot_config.as_ref().map(|c| c.modify_index);
                if !cas_matches(*cas, current) {
                    return (CommandResult::Cas(false), vec![]);
                }
                let create_index = self
                    .autopilot_config
                    .as_ref()
                    .map_or(index, |c| c.create_index);
                self.autopilot_config = Some(AutopilotConfiguration {
                    create_index,
                    modify_index: index,
                    ..config.clone()
                });
                self.touch(Table::AutopilotConfig, index);
                (cas_result(*cas), vec![Table::AutopilotConfig])
            }
            Command::AutopilotConfigInit { config } => {
                if self.autopilot_config.is_some() {
                    return (CommandResult::Done, vec![]);
                }
                self.autopilot_config = Some(AutopilotConfiguration {
                    create_index: index,
                    modify_index: index,
                    ..config.clone()
                });
                self.touch(Table::AutopilotConfig, index);
                (CommandResult::Done, vec![Table::AutopilotConfig])
            }
            Command::AclBootstrap { token, reset_index } => {
                let done = self.acl_bootstrap_index;
                if done != 0 && *reset_index != Some(done) {
                    return (
                        CommandResult::Refused(format!(
                            "ACL bootstrap already done (reset index: {done})"
                        )),
                        vec![],
                    );
                }
                self.acl_bootstrap_index = index;
                self.put_token(token, index);
                self.touch(Table::AclTokens, index);
                (CommandResult::Done, vec![Table::AclTokens])
            }
            Command::AclPolicyUpsert { policies } => {
                for policy in policies {
                    let create_index = self
                        .acl_policies
                        .get(&policy.name)
                        .map_or(index, |existing| existing.create_index);
                    self.acl_policies.insert(
                        policy.name.clone(),
                        AclPolicy {
                            create_index,
                            modify_index: index,
                            ..policy.clone()
                        },
                    );
                }
                self.touch(Table::AclPolicies, index);
                (CommandResult::Done, vec![Table::AclPolicies])
            }
            Command::AclPolicyDelete { names } => {
                for name in names {
                    self.acl_policies.remove(name);
                }
                self.touch(Table::AclPolicies, index);
                (CommandResult::Done, vec![Table::AclPolicies])
            }
            Command::AclTokenUpsert { tokens } => {
                for token in tokens {
                    self.put_token(token, index);
                }
                self.touch(Table::AclTokens, index);
                (CommandResult::Done, vec![Table::AclTokens])
            }
            Command::NodeRegister { node, now } => {
                let existing = self.nodes.get(&node.id).cloned();
                match nodes::register(existing.as_deref(), node, *now, index) {
                    Ok(node) => self.put_node(node, index),
                    Err(reason) => (CommandResult::Refused(reason), vec![]),
                }
            }
            Command::NodeUpdateStatus {
                node_id,
                status,
                event,
                now,
            } => self.with_node(node_id, index, |stored| {
                Ok(nodes::update_status(
                    stored,
                    status,
                    event.as_ref(),
                    *now,
                    index,
                ))
            }),
            Command::NodeUpdateEligibility {
                node_id,
                eligibility,
                now,
            } => self.with_node(node_id, index, |stored| {
                nodes::update_eligibility(stored, eligibility, *now, index)
            }),
            Command::NodeUpdateDrain {
                node_id,
                spec,
                mark_eligible,
                meta,
                accessor,
                now,
            } => self.with_node(node_id, index, |stored| {
                let update = DrainUpdate {
                    spec: spec.as_ref(),
                    mark_eligible: *mark_eligible,
                    meta: meta.as_ref(),
                    accessor,
                    now: *now,
                };
                Ok(nodes::update_drain(stored, update, index))
            }),
            Command::NodeDrainComplete {
                node_id,
                deadline_reached,
                now,
            } => self.with_node(node_id, index, |stored| {
                if !stored.is_draining() {
                    return Err("node is not draining".to_string());
                }
                Ok(nodes::complete_drain(
                    stored,
                    *deadline_reached,
                    *now,
                    index,
                ))
            }),
            Command::NodeEmitEvents { node_id, events } => {
                self.with_node(node_id, index, |stored| {
                    let mut node = stored.clone();
                    for event in events {
                        node.push_event(caravan_api_types::node::NodeEvent {
                            create_index: index,
                            ..event.clone()
                        });
                    }
                    node.modify_index = index;
                    Ok(node)
                })
            }
            Command::NodeDeregister { node_ids } => {
                if let Some(missing) = node_ids.iter().find(|id| !self.nodes.contains_key(*id)) {
                    let _ = missing;
                    return (CommandResult::Refused(NODE_NOT_FOUND.to_string()), vec![]);
                }
                for id in node_ids {
                    self.nodes.remove(id);
                }
                self.touch(Table::Nodes, index);
                (CommandResult::Done, vec![Table::Nodes])
            }
            Command::AclTokenDelete { accessors } => {
                for accessor in accessors {
                    if let Some(token) = self.acl_tokens.remove(accessor) {
                        self.acl_secret_digests
                            .remove(&secret_digest(&token.secret_id));
                    }
                }
                self.touch(Table::AclTokens, index);
                (CommandResult::Done, vec![Table::AclTokens])
            }
            // An ignorable command of a newer version: nothing changes.
            Command::Unknown { .. } => (CommandResult::Done, vec![]),
        }
    }

    fn put_token(&mut self, token: &AclToken, index: u64) {
        let create_index = self
            .acl_tokens
            .get(&token.accessor_id)
            .map_or(index, |existing| existing.create_index);
        if let Some(previous) = self.acl_tokens.get(&token.accessor_id) {
            self.acl_secret_digests
                .remove(&secret_digest(&previous.secret_id));
        }
        self.acl_secret_digests
            .insert(secret_digest(&token.secret_id), token.accessor_id.clone());
        self.acl_tokens.insert(
            token.accessor_id.clone(),
            AclToken {
                create_index,
                modify_index: index,
                ..token.clone()
            },
        );
    }
}

/// Nomad's check-and-set rule: a write with `cas` applies only when the
/// stored modify index equals it (0 matching "nothing stored yet").
fn cas_matches(cas: Option<u64>, current: Option<u64>) -> bool {
    match cas {
        None => true,
        Some(expected) => current.unwrap_or(0) == expected,
    }
}

fn cas_result(cas: Option<u64>) -> CommandResult {
    match cas {
        None => CommandResult::Done,
        Some(_) => CommandResult::Cas(true),
    }
}
