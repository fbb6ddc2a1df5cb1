//! The node's identity: an ID and a secret made once and kept in the
//! client's state directory, so a restarted client is the same node. The
//! directory is `0700` and both files `0600`, written durably.

use std::path::Path;

/// The node ID and the secret it proves itself with. `Debug` never shows
/// the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    pub node_id: String,
    pub secret_id: String,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("node_id", &self.node_id)
            .field("secret_id", &"<redacted>")
            .finish()
    }
}

fn load_or_create(path: &Path) -> std::io::Result<String> {
    caravan_files::load_or_create_uuid(path)
}

impl NodeIdentity {
    /// Reads `client-id` and `secret-id` from `state_dir`, creating them on
    /// first start.
    pub fn load_or_create(state_dir: &Path) -> std::io::Result<Self> {
        caravan_files::create_private_dir(state_dir)?;
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
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |name: &str| {
                std::fs::metadata(dir.path().join(name))
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o777
            };
            assert_eq!(mode("client-id"), 0o600);
            assert_eq!(mode("secret-id"), 0o600);
            assert_eq!(mode(""), 0o700);
        }
        std::fs::write(dir.path().join("client-id"), "garbage").unwrap();
        assert!(NodeIdentity::load_or_create(dir.path()).is_err());
    }

    #[test]
    fn debug_hides_the_secret() {
        let identity = NodeIdentity {
            node_id: "node-1".to_string(),
            secret_id: "very-secret".to_string(),
        };
        let shown = format!("{identity:?}");
        assert!(shown.contains("node-1"), "{shown}");
        assert!(!shown.contains("very-secret"), "{shown}");
    }
}
