//! The tables themselves and how each command changes them.

use caravan_api_types::operator::{AutopilotConfiguration, SchedulerConfiguration};
use serde::{Deserialize, Serialize};

use crate::command::{Command, CommandResult};

/// The tables of the state, each with its own Raft index (Nomad's `index`
/// table), which blocking queries compare against `?index=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Table {
    SchedulerConfig,
    AutopilotConfig,
}

impl Table {
    pub const ALL: &'static [Table] = &[Table::SchedulerConfig, Table::AutopilotConfig];
}

/// One consistent version of every table.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// The Raft index of the last applied entry.
    latest_index: u64,
    table_indexes: imbl::OrdMap<Table, u64>,
    scheduler_config: Option<SchedulerConfiguration>,
    autopilot_config: Option<AutopilotConfiguration>,
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
        }
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
