//! Who a caller is, and the cache of parsed policies and client-side
//! resolutions that [`crate::acl_check`] fills. Kept apart from the agent
//! context (which holds the cache) so neither depends on the other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use caravan_acl::{AclSet, Policy};
use caravan_api_types::acl::{AclPolicy, AclToken, ANONYMOUS_POLICY};
use caravan_api_types::sync::lock;

/// Who is calling and what they may do.
#[derive(Debug, Clone)]
pub struct Identity {
    pub acl: AclSet,
    /// The caller's token; `None` for the anonymous caller and when ACLs
    /// are disabled.
    pub token: Option<AclToken>,
    pub acls_enabled: bool,
}

impl Identity {
    /// Everyone may do everything: ACLs are off.
    pub fn unrestricted() -> Self {
        Self {
            acl: AclSet::management(),
            token: None,
            acls_enabled: false,
        }
    }

    /// Nomad's caller identity string (`token:<accessor>`,
    /// `token:acls-disabled`, `token:anonymous`).
    pub fn identity_string(&self) -> String {
        match (&self.token, self.acls_enabled) {
            (_, false) => "token:acls-disabled".to_string(),
            (Some(token), true) => format!("token:{}", token.accessor_id),
            (None, true) => "token:anonymous".to_string(),
        }
    }

    /// Whether the caller holds the named policy (management holds all).
    pub fn holds_policy(&self, name: &str) -> bool {
        if self.acl.is_management() {
            return true;
        }
        match &self.token {
            Some(token) => token.policies.iter().any(|policy| policy == name),
            None => name == ANONYMOUS_POLICY,
        }
    }
}

/// Parsed policies and client-side resolutions, reused between requests.
#[derive(Default)]
pub struct AclCache {
    /// (name, modify index) → parsed rules.
    pub(crate) policies: Mutex<HashMap<(String, u64), Arc<Policy>>>,
    /// Client-only agents: secret → (identity, when it was fetched).
    pub(crate) resolved: Mutex<HashMap<String, (Identity, Instant)>>,
}

impl AclCache {
    fn parsed(&self, policy: &AclPolicy) -> Option<Arc<Policy>> {
        let key = (policy.name.clone(), policy.modify_index);
        let mut cache = lock(&self.policies);
        if let Some(parsed) = cache.get(&key) {
            return Some(Arc::clone(parsed));
        }
        let parsed = Arc::new(caravan_acl::parse(&policy.rules).ok()?);
        if cache.len() > 4096 {
            cache.clear();
        }
        cache.insert(key, Arc::clone(&parsed));
        Some(parsed)
    }

    pub(crate) fn compile<'a>(&self, policies: impl IntoIterator<Item = &'a AclPolicy>) -> AclSet {
        let parsed: Vec<Arc<Policy>> = policies
            .into_iter()
            .filter_map(|policy| self.parsed(policy))
            .collect();
        AclSet::from_policies(parsed.iter().map(|policy| policy.as_ref()))
    }
}
