//! The writes the FSM applies: every change to the state is one of these,
//! carried in a Raft log entry.

use caravan_api_types::operator::{AutopilotConfiguration, SchedulerConfiguration};
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
    SchedulerConfigInit { config: SchedulerConfiguration },
    /// As [`Command::SchedulerConfigSet`], for autopilot.
    AutopilotConfigSet {
        config: AutopilotConfiguration,
        cas: Option<u64>,
    },
    /// As [`Command::SchedulerConfigInit`], for autopilot.
    AutopilotConfigInit { config: AutopilotConfiguration },
}

/// What applying a [`Command`] produced, returned to the writer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    /// The write was applied (or, for an init, found nothing to do).
    Done,
    /// A check-and-set write: whether it was applied.
    Cas(bool),
}

impl CommandResult {
    /// Whether the write took effect (always true for plain writes).
    pub fn applied(&self) -> bool {
        match self {
            CommandResult::Done => true,
            CommandResult::Cas(applied) => *applied,
        }
    }
}
