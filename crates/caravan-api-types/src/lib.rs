//! The wire types of Caravan's HTTP API: the JSON Nomad's `/v1/` API reads
//! and writes, field for field (PascalCase, durations as nanoseconds except
//! where Nomad uses strings, zero timestamps as `null`).

pub mod acl;
pub mod agent;
pub mod alloc;
pub mod duration;
pub mod eval;
pub mod job;
pub mod namespace;
pub mod node;
pub mod operator;
pub mod sync;
pub mod time;

/// What `Debug` shows in place of a secret: secrets travel over the wire
/// and into the state, but never into logs.
pub const REDACTED: &str = "<redacted>";

/// `REDACTED` for a set secret, `""` for an empty (blanked) one.
pub fn redacted(secret: &str) -> &'static str {
    if secret.is_empty() {
        ""
    } else {
        REDACTED
    }
}

/// The Nomad version Caravan speaks for, reported where Nomad reports its own
/// (`nomad.version`, the `build` gossip tag, `/v1/agent/self`).
pub const NOMAD_COMPAT_VERSION: &str = "1.10.0";
