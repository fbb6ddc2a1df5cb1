//! The `acl` block.

use std::time::Duration;

use crate::file::AclFile;
use crate::merge::{set, set_duration};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclConfig {
    pub enabled: bool,
    pub token_ttl: Duration,
    pub policy_ttl: Duration,
    pub role_ttl: Duration,
    /// Bounds on a new token's expiration.
    pub token_min_expiration_ttl: Duration,
    pub token_max_expiration_ttl: Duration,
    pub replication_token: String,
}

impl AclConfig {
    /// Nomad's defaults: ACLs off, 30 s caches on clients.
    pub(crate) fn defaults() -> Self {
        Self {
            enabled: false,
            token_ttl: Duration::from_secs(30),
            policy_ttl: Duration::from_secs(30),
            role_ttl: Duration::from_secs(30),
            token_min_expiration_ttl: Duration::from_secs(60),
            token_max_expiration_ttl: Duration::from_secs(24 * 3600),
            replication_token: String::new(),
        }
    }

    /// Lays the `acl` block of a file over this configuration.
    pub(crate) fn apply_file(&mut self, acl: &AclFile) -> Result<(), (String, String)> {
        set(&mut self.enabled, &acl.enabled);
        set_duration(&mut self.token_ttl, &acl.token_ttl, "acl.token_ttl")?;
        set_duration(&mut self.policy_ttl, &acl.policy_ttl, "acl.policy_ttl")?;
        set_duration(&mut self.role_ttl, &acl.role_ttl, "acl.role_ttl")?;
        set_duration(
            &mut self.token_min_expiration_ttl,
            &acl.token_min_expiration_ttl,
            "acl.token_min_expiration_ttl",
        )?;
        set_duration(
            &mut self.token_max_expiration_ttl,
            &acl.token_max_expiration_ttl,
            "acl.token_max_expiration_ttl",
        )?;
        set(&mut self.replication_token, &acl.replication_token);
        Ok(())
    }
}
