//! The tables themselves and how each command changes them.

use std::sync::Arc;

use caravan_api_types::acl::{AclPolicy, AclToken};
use caravan_api_types::node::Node;
use caravan_api_types::operator::{AutopilotConfiguration, SchedulerConfiguration};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::command::{Command, CommandResult};
use crate::nodes::{self, DrainUpdate, NODE_NOT_FOUND};
use crate::table::{Index, IndexedTable, Schema, Touched};

mod alloc_nodes;
mod gc;
pub mod jobs;
pub mod namespaces;

/// The tables of the state, each with its own Raft index (Nomad's `index`
/// table), which blocking queries compare against `?index=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Table {
    SchedulerConfig,
    AutopilotConfig,
    AclPolicies,
    AclTokens,
    Nodes,
    Allocs,
    Jobs,
    JobVersions,
    JobSummaries,
    Evals,
    Namespaces,
}

impl Table {
    pub const ALL: &'static [Table] = &[
        Table::SchedulerConfig,
        Table::AutopilotConfig,
        Table::AclPolicies,
        Table::AclTokens,
        Table::Nodes,
        Table::Allocs,
        Table::Jobs,
        Table::JobVersions,
        Table::JobSummaries,
        Table::Evals,
        Table::Namespaces,
    ];
}

/// The nodes table: nodes by ID. Values are shared so a write copies
/// pointers, not nodes.
pub struct NodesTable;

impl Schema for NodesTable {
    type Key = String;
    type Value = Arc<Node>;
    const TABLE: Table = Table::Nodes;
    fn indexes() -> &'static [Index<Arc<Node>>] {
        &[]
    }
}

/// ACL policies by name.
pub struct AclPoliciesTable;

impl Schema for AclPoliciesTable {
    type Key = String;
    type Value = AclPolicy;
    const TABLE: Table = Table::AclPolicies;
    fn indexes() -> &'static [Index<AclPolicy>] {
        &[]
    }
}

/// ACL tokens by accessor ID, indexed by the SHA-256 of their secret so a
/// lookup never compares secrets byte by byte in a data structure.
pub struct AclTokensTable;

/// The index of [`AclTokensTable`] by secret digest.
pub const TOKENS_BY_SECRET_DIGEST: &str = "secret_digest";

impl Schema for AclTokensTable {
    type Key = String;
    type Value = AclToken;
    const TABLE: Table = Table::AclTokens;
    fn indexes() -> &'static [Index<AclToken>] {
        &[Index {
            name: TOKENS_BY_SECRET_DIGEST,
            values: |token| vec![secret_digest(&token.secret_id)],
        }]
    }
}

/// The allocations table's index by node.
pub const ALLOCS_BY_NODE: &str = "node";

/// One consistent version of every table. Every field defaults, so a
/// snapshot written before a table existed reads back with it empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// The Raft index of the last applied entry.
    pub(crate) latest_index: u64,
    pub(crate) table_indexes: imbl::OrdMap<Table, u64>,
    pub(crate) scheduler_config: Option<SchedulerConfiguration>,
    pub(crate) autopilot_config: Option<AutopilotConfiguration>,
    pub(crate) acl_policies: IndexedTable<AclPoliciesTable>,
    /// (Snapshots before the digest index also carry `acl_secret_digests`,
    /// which is now rebuilt from the tokens and ignored when read.)
    pub(crate) acl_tokens: IndexedTable<AclTokensTable>,
    /// Raft index of the last ACL bootstrap (0: never bootstrapped).
    pub(crate) acl_bootstrap_index: u64,
    pub(crate) nodes: IndexedTable<NodesTable>,
    pub(crate) jobs: IndexedTable<jobs::JobsTable>,
    pub(crate) job_versions: IndexedTable<jobs::JobVersionsTable>,
    pub(crate) job_summaries: IndexedTable<jobs::JobSummariesTable>,
    pub(crate) evals: IndexedTable<jobs::EvalsTable>,
    pub(crate) allocs: IndexedTable<jobs::AllocsTable>,
    /// Per node with allocations, the index of the last write to them
    /// (see `alloc_nodes`): what its client's blocking read answers.
    pub(crate) alloc_node_indexes: imbl::OrdMap<String, u64>,
    /// Namespaces written by users (`default` exists without a row).
    pub(crate) namespaces: IndexedTable<namespaces::NamespacesTable>,
    /// The index of the last write that freed room on a node (an
    /// allocation turned terminal, or a live one removed): what tells the
    /// leader that blocked evaluations may now fit. Not replicated state
    /// (neither in snapshots nor compared), only an observation of the
    /// log this server applied; a restored state starts it at zero and the
    /// leader unblocks every blocked evaluation when its term starts.
    #[serde(skip)]
    pub(crate) allocs_freed: Observed,
}

/// A figure a server observes while it applies the log, outside the
/// replicated state: equal whatever its value, so it never makes two
/// servers' states differ.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Observed(pub(crate) u64);

impl PartialEq for Observed {
    fn eq(&self, _: &Self) -> bool {
        true
    }
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
        self.acl_tokens
            .by_index(TOKENS_BY_SECRET_DIGEST, &secret_digest(secret))
            .find(|token| secrets_equal(&token.secret_id, secret))
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
            .range_from(prefix.to_string())
            .take_while(move |(id, _)| id.starts_with(prefix))
            .map(|(_, node)| node)
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    fn put_node(&mut self, node: Node, index: u64, touched: &mut Touched) -> CommandResult {
        self.nodes.insert(node.id.clone(), Arc::new(node), touched);
        self.touch(Table::Nodes, index, touched);
        CommandResult::Done
    }

    fn with_node(
        &mut self,
        id: &str,
        index: u64,
        touched: &mut Touched,
        change: impl FnOnce(&Node) -> Result<Node, String>,
    ) -> CommandResult {
        let Some(stored) = self.nodes.get(id).cloned() else {
            return CommandResult::Refused(NODE_NOT_FOUND.to_string());
        };
        match change(&stored) {
            Ok(node) => self.put_node(node, index, touched),
            Err(reason) => CommandResult::Refused(reason),
        }
    }

    /// The index of the last write that freed room on a node, as this
    /// server applied it (0 after a restore).
    pub fn allocs_freed_index(&self) -> u64 {
        self.allocs_freed.0
    }

    pub(crate) fn note_index(&mut self, index: u64) {
        self.latest_index = self.latest_index.max(index);
    }

    /// Moves `table`'s index to `index` and records the table as touched.
    fn touch(&mut self, table: Table, index: u64, touched: &mut Touched) {
        self.table_indexes.insert(table, index);
        touched.table(table);
    }

    /// Applies `command` at `index`; returns its result and records in
    /// `touched` every watch key it changed.
    pub(crate) fn apply(
        &mut self,
        index: u64,
        command: &Command,
        touched: &mut Touched,
    ) -> CommandResult {
        match command {
            Command::SchedulerConfigSet { config, cas } => {
                if !set_singleton(&mut self.scheduler_config, config, *cas, index) {
                    return CommandResult::Cas(false);
                }
                self.touch(Table::SchedulerConfig, index, touched);
                cas_result(*cas)
            }
            Command::SchedulerConfigInit { config } => {
                if self.scheduler_config.is_some() {
                    return CommandResult::Done;
                }
                self.scheduler_config = Some(SchedulerConfiguration {
                    create_index: index,
                    modify_index: index,
                    ..config.clone()
                });
                self.touch(Table::SchedulerConfig, index, touched);
                CommandResult::Done
            }
            Command::AutopilotConfigSet { config, cas } => {
                if !set_singleton(&mut self.autopilot_config, config, *cas, index) {
                    return CommandResult::Cas(false);
                }
                self.touch(Table::AutopilotConfig, index, touched);
                cas_result(*cas)
            }
            Command::AutopilotConfigInit { config } => {
                if self.autopilot_config.is_some() {
                    return CommandResult::Done;
                }
                self.autopilot_config = Some(AutopilotConfiguration {
                    create_index: index,
                    modify_index: index,
                    ..config.clone()
                });
                self.touch(Table::AutopilotConfig, index, touched);
                CommandResult::Done
            }
            Command::AclBootstrap { token, reset_index } => {
                let done = self.acl_bootstrap_index;
                if done != 0 && *reset_index != Some(done) {
                    return CommandResult::Refused(format!(
                        "ACL bootstrap already done (reset index: {done})"
                    ));
                }
                self.acl_bootstrap_index = index;
                self.put_token(token, index, touched);
                self.touch(Table::AclTokens, index, touched);
                CommandResult::Done
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
                        touched,
                    );
                }
                self.touch(Table::AclPolicies, index, touched);
                CommandResult::Done
            }
            Command::AclPolicyDelete { names } => {
                for name in names {
                    self.acl_policies.remove(name, touched);
                }
                self.touch(Table::AclPolicies, index, touched);
                CommandResult::Done
            }
            Command::AclTokenUpsert { tokens } => {
                for token in tokens {
                    self.put_token(token, index, touched);
                }
                self.touch(Table::AclTokens, index, touched);
                CommandResult::Done
            }
            Command::NodeRegister { node, now } => {
                let existing = self.nodes.get(&node.id).cloned();
                match nodes::register(existing.as_deref(), node, *now, index) {
                    Ok(node) => self.put_node(node, index, touched),
                    Err(reason) => CommandResult::Refused(reason),
                }
            }
            Command::NodeUpdateStatus {
                node_id,
                status,
                event,
                now,
            } => self.with_node(node_id, index, touched, |stored| {
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
            } => self.with_node(node_id, index, touched, |stored| {
                nodes::update_eligibility(stored, eligibility, *now, index)
            }),
            Command::NodeUpdateDrain {
                node_id,
                spec,
                mark_eligible,
                meta,
                accessor,
                now,
            } => self.with_node(node_id, index, touched, |stored| {
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
            } => self.with_node(node_id, index, touched, |stored| {
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
                self.with_node(node_id, index, touched, |stored| {
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
                if node_ids.iter().any(|id| !self.nodes.contains_key(id)) {
                    return CommandResult::Refused(NODE_NOT_FOUND.to_string());
                }
                for id in node_ids {
                    self.nodes.remove(id, touched);
                }
                self.touch(Table::Nodes, index, touched);
                CommandResult::Done
            }
            Command::AclTokenDelete { accessors } => {
                for accessor in accessors {
                    self.acl_tokens.remove(accessor, touched);
                }
                self.touch(Table::AclTokens, index, touched);
                CommandResult::Done
            }
            Command::JobRegister(register) => self.apply_job_register(register, index, touched),
            Command::JobDeregister(deregister) => {
                self.apply_job_deregister(deregister, index, touched)
            }
            Command::EvalsUpsert { evals } => self.apply_evals_upsert(evals, index, touched),
            Command::EvalsDelete { evals, allocs } => {
                self.apply_evals_delete(evals, allocs, index, touched)
            }
            Command::PlanApply(plan) => self.apply_plan(plan, index, touched),
            Command::AllocsClientUpdate(update) => {
                self.apply_allocs_client_update(update, index, touched)
            }
            Command::AllocsTransition(transition) => {
                self.apply_allocs_transition(transition, index, touched)
            }
            Command::NamespaceUpsert { namespaces } => {
                self.apply_namespace_upsert(namespaces, index, touched)
            }
            Command::NamespaceDelete { names, region } => {
                self.apply_namespace_delete(names, region, index, touched)
            }
            Command::GcCollect(collect) => self.apply_gc_collect(collect, index, touched),
            Command::JobSummariesReconcile => self.apply_summaries_reconcile(index, touched),
            // An ignorable command of a newer version: nothing changes.
            Command::Unknown { .. } => CommandResult::Done,
        }
    }

    fn put_token(&mut self, token: &AclToken, index: u64, touched: &mut Touched) {
        let create_index = self
            .acl_tokens
            .get(&token.accessor_id)
            .map_or(index, |existing| existing.create_index);
        self.acl_tokens.insert(
            token.accessor_id.clone(),
            AclToken {
                create_index,
                modify_index: index,
                ..token.clone()
            },
            touched,
        );
    }
}

/// A configuration the state holds one of, with its Raft indexes.
trait Singleton: Clone {
    fn indexes(&self) -> (u64, u64);
    fn at(self, create_index: u64, modify_index: u64) -> Self;
}

impl Singleton for SchedulerConfiguration {
    fn indexes(&self) -> (u64, u64) {
        (self.create_index, self.modify_index)
    }
    fn at(self, create_index: u64, modify_index: u64) -> Self {
        Self {
            create_index,
            modify_index,
            ..self
        }
    }
}

impl Singleton for AutopilotConfiguration {
    fn indexes(&self) -> (u64, u64) {
        (self.create_index, self.modify_index)
    }
    fn at(self, create_index: u64, modify_index: u64) -> Self {
        Self {
            create_index,
            modify_index,
            ..self
        }
    }
}

/// Stores `config` in `slot` at `index`, keeping the first create index;
/// with `cas`, only when the stored modify index (0 when none is stored)
/// equals it. Returns whether it stored.
fn set_singleton<T: Singleton>(
    slot: &mut Option<T>,
    config: &T,
    cas: Option<u64>,
    index: u64,
) -> bool {
    let stored = slot.as_ref().map(Singleton::indexes);
    if !cas_matches(cas, stored.map(|(_, modify)| modify)) {
        return false;
    }
    let create_index = stored.map_or(index, |(create, _)| create);
    *slot = Some(config.clone().at(create_index, index));
    true
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
