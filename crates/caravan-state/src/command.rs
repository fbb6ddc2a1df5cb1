//! The writes the FSM applies: every change to the state is one of these,
//! carried in a Raft log entry.

use caravan_api_types::acl::{AclPolicy, AclToken};
use caravan_api_types::node::{DrainSpec, Node, NodeEvent};
use caravan_api_types::operator::{AutopilotConfiguration, SchedulerConfiguration};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One replicated write.
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
}

impl CommandResult {
    /// Whether the write took effect (always true for plain writes).
    pub fn applied(&self) -> bool {
        match self {
            CommandResult::Done => true,
            CommandResult::Cas(applied) => *applied,
            CommandResult::Refused(_) => false,
        }
    }
}
