//! The writes the FSM applies: every change to the state is one of these,
//! carried in a Raft log entry.

use caravan_api_types::acl::{AclPolicy, AclToken};
use caravan_api_types::eval::Evaluation;
use caravan_api_types::namespace::Namespace;
use caravan_api_types::node::{DrainSpec, Node, NodeEvent};
use caravan_api_types::operator::{AutopilotConfiguration, SchedulerConfiguration};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::job_commands::{
    AllocsClientUpdate, AllocsTransition, GcCollect, JobDeregister, JobRegister, PlanResult,
};

/// One replicated write. Neither `Debug` nor `Display` shows a secret:
/// `Debug` relies on the redacting `Debug` of [`AclToken`] and [`Node`],
/// and `Display` (what Raft's log lines show) names only the kind of write
/// and the keys it touches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Stores the scheduler configuration; with `cas`, only if the stored
    /// `ModifyIndex` equals it.
    SchedulerConfigSet {
        config: SchedulerConfiguration,
        cas: Option<u64>,
    },
    /// Stores the configuration only if none exists yet (the leader's first
    /// act, so every server starts from the same values).
    SchedulerConfigInit {
        config: SchedulerConfiguration,
    },
    /// As [`Command::SchedulerConfigSet`], for autopilot.
    AutopilotConfigSet {
        config: AutopilotConfiguration,
        cas: Option<u64>,
    },
    /// As [`Command::SchedulerConfigInit`], for autopilot.
    AutopilotConfigInit {
        config: AutopilotConfiguration,
    },
    /// Stores the first management token. Refused if ACLs were bootstrapped
    /// already, unless `reset_index` names the last bootstrap's index (the
    /// operator's reset file).
    AclBootstrap {
        token: AclToken,
        reset_index: Option<u64>,
    },
    /// Creates or replaces policies by name.
    AclPolicyUpsert {
        policies: Vec<AclPolicy>,
    },
    AclPolicyDelete {
        names: Vec<String>,
    },
    /// Creates or replaces tokens by accessor ID.
    AclTokenUpsert {
        tokens: Vec<AclToken>,
    },
    AclTokenDelete {
        accessors: Vec<String>,
    },
    /// A client registers (or re-registers) its node. Server-owned fields
    /// (status, eligibility, drain) of an existing node are kept.
    NodeRegister {
        node: Box<Node>,
        now: DateTime<Utc>,
    },
    /// A heartbeat or the leader changes a node's status.
    NodeUpdateStatus {
        node_id: String,
        status: String,
        event: Option<NodeEvent>,
        now: DateTime<Utc>,
    },
    NodeUpdateEligibility {
        node_id: String,
        eligibility: String,
        now: DateTime<Utc>,
    },
    /// Sets, updates or (with `spec: None`) cancels a drain.
    NodeUpdateDrain {
        node_id: String,
        spec: Option<DrainSpec>,
        mark_eligible: bool,
        meta: Option<std::collections::BTreeMap<String, String>>,
        /// Who asked (`token:<accessor>`, `token:acls-disabled`, ...).
        accessor: String,
        now: DateTime<Utc>,
    },
    /// The drainer finished (or gave up at the deadline).
    NodeDrainComplete {
        node_id: String,
        deadline_reached: bool,
        now: DateTime<Utc>,
    },
    /// Removes nodes (purge).
    NodeDeregister {
        node_ids: Vec<String>,
    },
    /// Events a client reports about its node (driver health changes).
    NodeEmitEvents {
        node_id: String,
        events: Vec<NodeEvent>,
    },
    /// A job registered (or re-registered) with its evaluation.
    JobRegister(Box<JobRegister>),
    JobDeregister(Box<JobDeregister>),
    /// Evaluations created or updated (the broker's acks, blocked evals).
    EvalsUpsert {
        evals: Vec<Evaluation>,
    },
    /// Evaluations and allocations removed (garbage collection).
    EvalsDelete {
        evals: Vec<String>,
        allocs: Vec<String>,
    },
    /// A scheduler's plan, as the plan applier accepted it.
    PlanApply(Box<PlanResult>),
    /// What clients report about their allocations.
    AllocsClientUpdate(Box<AllocsClientUpdate>),
    /// Desired transitions (stop, migrate, reschedule) and their evals.
    AllocsTransition(Box<AllocsTransition>),
    /// Garbage collection: what was old and finished when decided, removed
    /// only where it has not changed since.
    GcCollect(Box<GcCollect>),
    /// Every job summary counted again from the allocations
    /// (`PUT /v1/system/reconcile/summaries`).
    JobSummariesReconcile,
    /// Namespaces created or replaced.
    NamespaceUpsert {
        namespaces: Vec<Namespace>,
    },
    /// Namespaces removed; refused while one holds live jobs or
    /// allocations, or names `default`.
    NamespaceDelete {
        names: Vec<String>,
        /// The servers' region, named in a refusal.
        region: String,
    },
    /// A command of a newer version that this one does not know, which
    /// that version flagged ignorable: applied as a no-op. Never written by
    /// this version; the Raft log and replication carry its original JSON
    /// (`raw`) unchanged. Not (de)serialised as a `Command`: the Raft entry
    /// payload (`RaftRequest` in caravan-server) reads and writes it.
    #[serde(skip)]
    Unknown {
        /// The command's variant name.
        variant: String,
        /// The payload exactly as it was read.
        raw: serde_json::Value,
    },
}

impl Command {
    /// The kind of write, as its variant is named.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::SchedulerConfigSet { .. } => "SchedulerConfigSet",
            Command::SchedulerConfigInit { .. } => "SchedulerConfigInit",
            Command::AutopilotConfigSet { .. } => "AutopilotConfigSet",
            Command::AutopilotConfigInit { .. } => "AutopilotConfigInit",
            Command::AclBootstrap { .. } => "AclBootstrap",
            Command::AclPolicyUpsert { .. } => "AclPolicyUpsert",
            Command::AclPolicyDelete { .. } => "AclPolicyDelete",
            Command::AclTokenUpsert { .. } => "AclTokenUpsert",
            Command::AclTokenDelete { .. } => "AclTokenDelete",
            Command::NodeRegister { .. } => "NodeRegister",
            Command::NodeUpdateStatus { .. } => "NodeUpdateStatus",
            Command::NodeUpdateEligibility { .. } => "NodeUpdateEligibility",
            Command::NodeUpdateDrain { .. } => "NodeUpdateDrain",
            Command::NodeDrainComplete { .. } => "NodeDrainComplete",
            Command::NodeDeregister { .. } => "NodeDeregister",
            Command::NodeEmitEvents { .. } => "NodeEmitEvents",
            Command::JobRegister(_) => "JobRegister",
            Command::JobDeregister(_) => "JobDeregister",
            Command::EvalsUpsert { .. } => "EvalsUpsert",
            Command::EvalsDelete { .. } => "EvalsDelete",
            Command::PlanApply(_) => "PlanApply",
            Command::AllocsClientUpdate(_) => "AllocsClientUpdate",
            Command::AllocsTransition(_) => "AllocsTransition",
            Command::GcCollect(_) => "GcCollect",
            Command::JobSummariesReconcile => "JobSummariesReconcile",
            Command::NamespaceUpsert { .. } => "NamespaceUpsert",
            Command::NamespaceDelete { .. } => "NamespaceDelete",
            Command::Unknown { .. } => "Unknown",
        }
    }
}

/// The kind of write and its keys, e.g. `AclTokenUpsert(accessors=[..])`;
/// never a secret.
impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = self.kind();
        match self {
            Command::SchedulerConfigSet { cas, .. } | Command::AutopilotConfigSet { cas, .. } => {
                write!(f, "{kind}(cas={cas:?})")
            }
            Command::SchedulerConfigInit { .. } | Command::AutopilotConfigInit { .. } => {
                write!(f, "{kind}")
            }
            Command::AclBootstrap { token, reset_index } => write!(
                f,
                "{kind}(accessor={:?}, reset_index={reset_index:?})",
                token.accessor_id
            ),
            Command::AclPolicyUpsert { policies } => {
                let names: Vec<&str> = policies.iter().map(|policy| policy.name.as_str()).collect();
                write!(f, "{kind}(names={names:?})")
            }
            Command::AclPolicyDelete { names } => write!(f, "{kind}(names={names:?})"),
            Command::AclTokenUpsert { tokens } => {
                let accessors: Vec<&str> = tokens
                    .iter()
                    .map(|token| token.accessor_id.as_str())
                    .collect();
                write!(f, "{kind}(accessors={accessors:?})")
            }
            Command::AclTokenDelete { accessors } => write!(f, "{kind}(accessors={accessors:?})"),
            Command::NodeRegister { node, .. } => {
                write!(f, "{kind}(node={:?}, name={:?})", node.id, node.name)
            }
            Command::NodeUpdateStatus {
                node_id, status, ..
            } => write!(f, "{kind}(node={node_id:?}, status={status:?})"),
            Command::NodeUpdateEligibility {
                node_id,
                eligibility,
                ..
            } => write!(f, "{kind}(node={node_id:?}, eligibility={eligibility:?})"),
            Command::NodeUpdateDrain {
                node_id,
                spec,
                mark_eligible,
                ..
            } => write!(
                f,
                "{kind}(node={node_id:?}, drain={}, mark_eligible={mark_eligible})",
                spec.is_some()
            ),
            Command::NodeDrainComplete {
                node_id,
                deadline_reached,
                ..
            } => write!(
                f,
                "{kind}(node={node_id:?}, deadline_reached={deadline_reached})"
            ),
            Command::NodeDeregister { node_ids } => write!(f, "{kind}(nodes={node_ids:?})"),
            Command::NodeEmitEvents { node_id, events } => {
                write!(f, "{kind}(node={node_id:?}, events={})", events.len())
            }
            Command::JobRegister(register) => write!(
                f,
                "{kind}(namespace={:?}, job={:?})",
                register.job.namespace, register.job.id
            ),
            Command::JobDeregister(deregister) => write!(
                f,
                "{kind}(namespace={:?}, job={:?}, purge={})",
                deregister.namespace, deregister.job_id, deregister.purge
            ),
            Command::EvalsUpsert { evals } => write!(f, "{kind}(evals={})", evals.len()),
            Command::EvalsDelete { evals, allocs } => {
                write!(f, "{kind}(evals={}, allocs={})", evals.len(), allocs.len())
            }
            Command::PlanApply(plan) => write!(
                f,
                "{kind}(job={:?}, placed={}, stopped={})",
                plan.job.as_ref().map(|job| job.id.as_str()),
                plan.allocs.len(),
                plan.stops.len()
            ),
            Command::AllocsClientUpdate(update) => {
                write!(f, "{kind}(allocs={})", update.updates.len())
            }
            Command::AllocsTransition(transition) => {
                write!(f, "{kind}(allocs={})", transition.transitions.len())
            }
            Command::GcCollect(collect) => write!(
                f,
                "{kind}(jobs={}, nodes={}, tokens={})",
                collect.jobs.len(),
                collect.nodes.len(),
                collect.tokens.len()
            ),
            Command::JobSummariesReconcile => write!(f, "{kind}"),
            Command::NamespaceUpsert { namespaces } => {
                let names: Vec<&str> = namespaces.iter().map(|ns| ns.name.as_str()).collect();
                write!(f, "{kind}(names={names:?})")
            }
            Command::NamespaceDelete { names, .. } => write!(f, "{kind}(names={names:?})"),
            Command::Unknown { variant, .. } => write!(f, "{kind}(variant={variant:?})"),
        }
    }
}

/// What applying a [`Command`] produced, returned to the writer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    /// The write was applied (or, for an init, found nothing to do).
    Done,
    /// A check-and-set write: whether it was applied.
    Cas(bool),
    /// The write was refused for the reason given; nothing changed.
    Refused(String),
    /// A check-and-set on an object's index lost (`EnforceIndex`); nothing
    /// changed. The text is Nomad's.
    Conflict(String),
}

impl CommandResult {
    /// Whether the write took effect (always true for plain writes).
    pub fn applied(&self) -> bool {
        match self {
            CommandResult::Done => true,
            CommandResult::Cas(applied) => *applied,
            CommandResult::Refused(_) | CommandResult::Conflict(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "5e1c7e7a-0000-4000-8000-5ec7e75ec7e7";

    fn token() -> AclToken {
        AclToken {
            accessor_id: "accessor-1".to_string(),
            secret_id: SECRET.to_string(),
            name: "ops".to_string(),
            ..AclToken::default()
        }
    }

    fn commands() -> Vec<Command> {
        let node = Node {
            id: "node-1".to_string(),
            secret_id: SECRET.to_string(),
            name: "client-1".to_string(),
            ..Node::default()
        };
        vec![
            Command::AclBootstrap {
                token: token(),
                reset_index: None,
            },
            Command::AclTokenUpsert {
                tokens: vec![token()],
            },
            Command::NodeRegister {
                node: Box::new(node),
                now: Utc::now(),
            },
        ]
    }

    #[test]
    fn neither_display_nor_debug_shows_a_secret() {
        for command in commands() {
            let shown = format!("{command}");
            let debugged = format!("{command:?}");
            let pretty = format!("{command:#?}");
            for text in [&shown, &debugged, &pretty] {
                assert!(!text.contains(SECRET), "{text}");
            }
            assert!(shown.starts_with(command.kind()), "{shown}");
            assert!(
                shown.contains("accessor-1") || shown.contains("node-1"),
                "{shown}"
            );
            assert!(debugged.contains("<redacted>"), "{debugged}");
        }
    }

    #[test]
    fn serialisation_keeps_the_secrets() {
        for command in commands() {
            let json = serde_json::to_string(&command).unwrap();
            assert!(json.contains(SECRET), "{json}");
            let back: Command = serde_json::from_str(&json).unwrap();
            assert_eq!(back, command);
        }
    }

    #[test]
    fn blank_secrets_show_blank() {
        let token = AclToken::default();
        assert!(format!("{token:?}").contains("secret_id: \"\""));
    }
}
