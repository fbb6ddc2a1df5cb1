//! `operator raft`, `operator autopilot`, `operator scheduler`, `operator
//! gossip keyring` and `operator api`.

mod api;
mod autopilot;
mod keyring;
mod raft;
mod scheduler;

pub use api::api;
pub use autopilot::{autopilot_get, autopilot_health, autopilot_set};
pub use keyring::{keyring_install, keyring_list, keyring_remove, keyring_use};
pub use raft::{raft_list_peers, raft_remove_peer, raft_transfer_leadership};
pub use scheduler::{scheduler_get, scheduler_set};

use crate::error::CommandError;
use crate::flags::Parsed;

/// A flag given as Go's `flag` would parse it into `T`, or `None` when the
/// flag was not given (set-config merges only the flags given).
fn parsed_flag<T: std::str::FromStr>(
    parsed: &Parsed,
    name: &str,
) -> Result<Option<T>, CommandError> {
    parsed
        .get(name)
        .map(|text| {
            text.parse().map_err(|_| {
                CommandError::failed(format!(
                    "Failed to parse args: invalid value {text:?} for flag -{name}: parse error"
                ))
            })
        })
        .transpose()
}

/// A boolean flag's value when it was given.
fn given_bool(parsed: &Parsed, name: &str) -> Option<bool> {
    parsed.get(name).map(|_| parsed.bool(name))
}
