//! The node's identity: an ID and a secret made once and kept in the
//! client's state directory, so a restarted client is the same node.

use std::path::Path;

/// The node ID and the secret it proves itself with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    pub node_id: String,
    pub secret_id: String,
}

fn load_or_create(path: &Path) -> std::io::Result<String> {
    caravan_server::address::load_or_create_uuid(path)
}

impl NodeIdentity {
    /// Reads `client-id` and `secret-id` from `state_dir`, creating them on
    /// first start.
    pub fn load_or_create(state_dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(state_dir)?;
        Ok(Self {
            node_id: load_or_create(&state_dir.join("client-id"))?,
            secret_id: load_or_create(&state_dir.join("secret-id"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_stable_across_loads() {
        let dir = tempfile::tempdir().unwrap();
        let first = NodeIdentity::load_or_create(dir.path()).unwrap();
        let second = NodeIdentity::load_or_create(dir.path()).unwrap();
        assert_eq!(first, second);
        assert_ne!(first.node_id, first.secret_id);
        std::fs::write(dir.path().join("client-id"), "garbage").unwrap();
        assert!(NodeIdentity::load_or_create(dir.path()).is_err());
    }
}
