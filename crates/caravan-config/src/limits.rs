//! Nomad's `limits {}` block: how long a connection may take to send its
//! request headers (the "handshake" Nomad times for TLS), and how many
//! connections one client address may hold, on the HTTP and RPC ports.

use std::time::Duration;

use serde::Deserialize;

use crate::duration::ConfigDuration;

/// The `limits` block as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub https_handshake_timeout: Option<ConfigDuration>,
    pub http_max_conns_per_client: Option<i64>,
    pub rpc_handshake_timeout: Option<ConfigDuration>,
    pub rpc_max_conns_per_client: Option<i64>,
}

/// Connection limits in force (Nomad's defaults unless set). A connection
/// limit of 0 means unlimited, as in Nomad; a timeout of 0 disables it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub https_handshake_timeout: Duration,
    pub http_max_conns_per_client: u32,
    pub rpc_handshake_timeout: Duration,
    pub rpc_max_conns_per_client: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            https_handshake_timeout: Duration::from_secs(5),
            http_max_conns_per_client: 100,
            rpc_handshake_timeout: Duration::from_secs(5),
            rpc_max_conns_per_client: 100,
        }
    }
}

impl Limits {
    /// Applies what a file sets; errors name the key.
    pub fn apply(&mut self, file: &LimitsFile) -> Result<(), (String, String)> {
        fn count(slot: &mut u32, value: &Option<i64>, key: &str) -> Result<(), (String, String)> {
            if let Some(value) = value {
                *slot = u32::try_from(*value).map_err(|_| {
                    (
                        key.to_string(),
                        format!("must be between 0 and {}", u32::MAX),
                    )
                })?;
            }
            Ok(())
        }
        crate::merge::set_duration(
            &mut self.https_handshake_timeout,
            &file.https_handshake_timeout,
            "limits.https_handshake_timeout",
        )?;
        count(
            &mut self.http_max_conns_per_client,
            &file.http_max_conns_per_client,
            "limits.http_max_conns_per_client",
        )?;
        crate::merge::set_duration(
            &mut self.rpc_handshake_timeout,
            &file.rpc_handshake_timeout,
            "limits.rpc_handshake_timeout",
        )?;
        count(
            &mut self.rpc_max_conns_per_client,
            &file.rpc_max_conns_per_client,
            "limits.rpc_max_conns_per_client",
        )?;
        Ok(())
    }
}
