//! The state as a snapshot's sections, table by table, and back.
//!
//! A snapshot (its framing, header and checksum belong to the server) is a
//! sequence of named sections, each a known number of rows encoded with
//! [`crate::codec`]: `meta` (one row: the Raft indexes and the single-row
//! configurations), then one section per table, each row a `[key, value]`
//! pair. Writing walks the live tables row by row into the sink, so the
//! state is never serialised whole; restoring fills a new [`State`], and
//! the tables' secondary indexes are rebuilt from the rows, never stored.
//!
//! A section this version does not know (a table added by a newer version)
//! is read past and dropped with a warning, as unknown fields of the JSON
//! snapshots were; a section that appears twice is an error.

use std::collections::BTreeSet;
use std::io;

use caravan_api_types::operator::{AutopilotConfiguration, SchedulerConfiguration};
use imbl::OrdMap;
use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::state::{State, Table};
use crate::table::{IndexedTable, Schema};

/// Tables added after snapshot version 3 was first released, whose index
/// the meta section leaves out (see [`State::write_sections`]).
const ADDED_TABLES: &[Table] = &[Table::Namespaces];

/// The section holding the state's scalar parts.
pub const SECTION_META: &str = "meta";
pub const SECTION_ACL_POLICIES: &str = "acl_policies";
pub const SECTION_NAMESPACES: &str = "namespaces";
pub const SECTION_ACL_TOKENS: &str = "acl_tokens";
pub const SECTION_NODES: &str = "nodes";
pub const SECTION_JOBS: &str = "jobs";
pub const SECTION_JOB_VERSIONS: &str = "job_versions";
pub const SECTION_JOB_SUMMARIES: &str = "job_summaries";
pub const SECTION_EVALS: &str = "evals";
pub const SECTION_ALLOCS: &str = "allocs";
/// Per node with allocations, the index of the last write to them (a
/// snapshot without it reads back with the fallback, see
/// `State::node_allocs_index`).
pub const SECTION_ALLOC_NODE_INDEXES: &str = "alloc_node_indexes";

/// Why the state could not be written as sections or rebuilt from them.
#[derive(Debug, thiserror::Error)]
pub enum SectionError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("section {section:?}: {error}")]
    Encode {
        section: &'static str,
        error: CodecError,
    },
    #[error("section {section:?}, row {row}: {error}")]
    Decode {
        section: String,
        row: u64,
        error: CodecError,
    },
    #[error("section {0:?} appears twice")]
    Duplicate(String),
    #[error("section {section:?} holds {rows} rows, expected {expected}")]
    RowCount {
        section: String,
        rows: u64,
        expected: u64,
    },
}

/// Where [`State::write_sections`] sends the sections, in order.
pub trait SectionSink {
    /// Starts a section of `rows` rows.
    fn section(&mut self, name: &str, rows: u64) -> io::Result<()>;
    /// One row of the current section, encoded.
    fn row(&mut self, encoded: &[u8]) -> io::Result<()>;
}

/// The scalar parts of the state. Every field defaults, so a field added
/// later reads as its default from older snapshots.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct Meta {
    latest_index: u64,
    table_indexes: OrdMap<Table, u64>,
    scheduler_config: Option<SchedulerConfiguration>,
    autopilot_config: Option<AutopilotConfiguration>,
    acl_bootstrap_index: u64,
}

/// The same, borrowed from a live state (written without copying it).
#[derive(Serialize)]
struct MetaRef<'a> {
    latest_index: u64,
    table_indexes: &'a OrdMap<Table, u64>,
    scheduler_config: &'a Option<SchedulerConfiguration>,
    autopilot_config: &'a Option<AutopilotConfiguration>,
    acl_bootstrap_index: u64,
}

impl State {
    /// Writes every section of the state into `sink`.
    pub fn write_sections(&self, sink: &mut impl SectionSink) -> Result<(), SectionError> {
        let mut buffer = Vec::new();
        // Tables added since snapshot version 3 was first written keep
        // their index out of the meta section: a server of the previous
        // release decodes its keys as the tables it knows, and would fail
        // on a new one rather than skip the new table's section.
        let table_indexes = ADDED_TABLES
            .iter()
            .fold(self.table_indexes.clone(), |indexes, table| {
                indexes.without(table)
            });
        let meta = MetaRef {
            latest_index: self.latest_index,
            table_indexes: &table_indexes,
            scheduler_config: &self.scheduler_config,
            autopilot_config: &self.autopilot_config,
            acl_bootstrap_index: self.acl_bootstrap_index,
        };
        sink.section(SECTION_META, 1)?;
        codec::encode_into(&meta, &mut buffer).map_err(|error| SectionError::Encode {
            section: SECTION_META,
            error,
        })?;
        sink.row(&buffer)?;
        write_table(SECTION_ACL_POLICIES, &self.acl_policies, sink, &mut buffer)?;
        write_table(SECTION_ACL_TOKENS, &self.acl_tokens, sink, &mut buffer)?;
        write_table(SECTION_NODES, &self.nodes, sink, &mut buffer)?;
        write_table(SECTION_JOBS, &self.jobs, sink, &mut buffer)?;
        write_table(SECTION_JOB_VERSIONS, &self.job_versions, sink, &mut buffer)?;
        write_table(
            SECTION_JOB_SUMMARIES,
            &self.job_summaries,
            sink,
            &mut buffer,
        )?;
        write_table(SECTION_EVALS, &self.evals, sink, &mut buffer)?;
        write_table(SECTION_ALLOCS, &self.allocs, sink, &mut buffer)?;
        write_table(SECTION_NAMESPACES, &self.namespaces, sink, &mut buffer)?;
        sink.section(
            SECTION_ALLOC_NODE_INDEXES,
            self.alloc_node_indexes.len() as u64,
        )?;
        for row in self.alloc_node_indexes() {
            buffer.clear();
            codec::encode_into(&row, &mut buffer).map_err(|error| SectionError::Encode {
                section: SECTION_ALLOC_NODE_INDEXES,
                error,
            })?;
            sink.row(&buffer)?;
        }
        Ok(())
    }
}

fn write_table<S: Schema>(
    section: &'static str,
    table: &IndexedTable<S>,
    sink: &mut impl SectionSink,
    buffer: &mut Vec<u8>,
) -> Result<(), SectionError> {
    sink.section(section, table.len() as u64)?;
    for row in table.iter() {
        buffer.clear();
        codec::encode_into(&row, buffer)
            .map_err(|error| SectionError::Encode { section, error })?;
        sink.row(buffer)?;
    }
    Ok(())
}

/// A state being rebuilt from sections, apart from the live one: nothing
/// is visible until [`StateRestore::finish`] hands the state over.
#[derive(Default)]
pub struct StateRestore {
    state: State,
    seen: BTreeSet<String>,
    skipped: Vec<String>,
}

impl StateRestore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads section `name` of `rows` rows: `next_row` fills the buffer
    /// with each row's bytes in turn.
    pub fn section(
        &mut self,
        name: &str,
        rows: u64,
        mut next_row: impl FnMut(&mut Vec<u8>) -> io::Result<()>,
    ) -> Result<(), SectionError> {
        if !self.seen.insert(name.to_string()) {
            return Err(SectionError::Duplicate(name.to_string()));
        }
        let mut buffer = Vec::new();
        match name {
            SECTION_META => {
                if rows != 1 {
                    return Err(SectionError::RowCount {
                        section: name.into(),
                        rows,
                        expected: 1,
                    });
                }
                next_row(&mut buffer)?;
                let meta: Meta = decode_row(name, 0, &buffer)?;
                self.state.latest_index = meta.latest_index;
                self.state.table_indexes = meta.table_indexes;
                self.state.scheduler_config = meta.scheduler_config;
                self.state.autopilot_config = meta.autopilot_config;
                self.state.acl_bootstrap_index = meta.acl_bootstrap_index;
            }
            SECTION_ACL_POLICIES => {
                self.state.acl_policies = read_table(name, rows, next_row)?;
            }
            SECTION_ACL_TOKENS => {
                self.state.acl_tokens = read_table(name, rows, next_row)?;
            }
            SECTION_NODES => {
                self.state.nodes = read_table(name, rows, next_row)?;
            }
            SECTION_JOBS => {
                self.state.jobs = read_table(name, rows, next_row)?;
            }
            SECTION_JOB_VERSIONS => {
                self.state.job_versions = read_table(name, rows, next_row)?;
            }
            SECTION_JOB_SUMMARIES => {
                self.state.job_summaries = read_table(name, rows, next_row)?;
            }
            SECTION_EVALS => {
                self.state.evals = read_table(name, rows, next_row)?;
            }
            SECTION_ALLOCS => {
                self.state.allocs = read_table(name, rows, next_row)?;
            }
            SECTION_NAMESPACES => {
                self.state.namespaces = read_table(name, rows, next_row)?;
            }
            SECTION_ALLOC_NODE_INDEXES => {
                for row in 0..rows {
                    next_row(&mut buffer)?;
                    let (node_id, index): (String, u64) = decode_row(name, row, &buffer)?;
                    self.state.alloc_node_indexes.insert(node_id, index);
                }
            }
            _ => {
                self.skipped.push(name.to_string());
                for _ in 0..rows {
                    next_row(&mut buffer)?;
                }
            }
        }
        Ok(())
    }

    /// The sections read past so far because this version does not know
    /// them (the caller warns: caravan-state does not log).
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// The state the sections held. Each allocation's job is read as its
    /// own copy; it is linked back to the stored version it equals, so the
    /// allocations of one version share one job in memory as they did
    /// before the snapshot.
    pub fn finish(mut self) -> State {
        self.state.share_alloc_jobs();
        // A table whose index the meta section does not carry takes the
        // newest index of its rows (a blocking query waiting past that
        // index sees the next change, as it would have).
        if !self.state.table_indexes.contains_key(&Table::Namespaces) {
            if let Some(newest) = self
                .state
                .namespaces
                .values()
                .map(|namespace| namespace.modify_index)
                .max()
            {
                self.state.table_indexes.insert(Table::Namespaces, newest);
            }
        }
        self.state
    }
}

fn decode_row<T: serde::de::DeserializeOwned>(
    section: &str,
    row: u64,
    bytes: &[u8],
) -> Result<T, SectionError> {
    codec::decode(bytes).map_err(|error| SectionError::Decode {
        section: section.into(),
        row,
        error,
    })
}

fn read_table<S: Schema>(
    section: &str,
    rows: u64,
    mut next_row: impl FnMut(&mut Vec<u8>) -> io::Result<()>,
) -> Result<IndexedTable<S>, SectionError> {
    let mut map = OrdMap::new();
    let mut buffer = Vec::new();
    for row in 0..rows {
        next_row(&mut buffer)?;
        let (key, value): (S::Key, S::Value) = decode_row(section, row, &buffer)?;
        map.insert(key, value);
    }
    Ok(IndexedTable::from_rows(map))
}
