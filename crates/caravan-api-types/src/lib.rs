//! The wire types of Caravan's HTTP API: the JSON Nomad's `/v1/` API reads
//! and writes, field for field (PascalCase, durations as nanoseconds except
//! where Nomad uses strings, zero timestamps as `null`).

pub mod acl;
pub mod agent;
pub mod duration;
pub mod node;
pub mod operator;
pub mod time;

/// The Nomad version Caravan speaks for, reported where Nomad reports its own
/// (`nomad.version`, the `build` gossip tag, `/v1/agent/self`).
pub const NOMAD_COMPAT_VERSION: &str = "1.10.0";
