//! Namespaces: the table, and the rules its writes keep. `default` always
//! exists (stored once someone rewrites it, built in until then) and is
//! never deleted; a namespace holding a live job or allocation is not
//! deleted either, checked when the delete applies so a job registered
//! meanwhile is never orphaned.

use std::sync::Arc;

use caravan_api_types::job::JOB_STATUS_DEAD;
use caravan_api_types::namespace::{Namespace, DEFAULT_NAMESPACE};
use sha2::{Digest, Sha256};

use super::{State, Table};
use crate::command::CommandResult;
use crate::table::{Index, Schema, Touched};

/// Namespaces by name.
pub struct NamespacesTable;

impl Schema for NamespacesTable {
    type Key = String;
    type Value = Arc<Namespace>;
    const TABLE: Table = Table::Namespaces;
    fn indexes() -> &'static [Index<Arc<Namespace>>] {
        &[]
    }
}

/// The refusal of a delete that names `default` (Nomad's text).
pub const DEFAULT_NOT_DELETED: &str = "can not delete default namespace";

impl State {
    /// The namespace called `name`, `default` included.
    pub fn namespace(&self, name: &str) -> Option<Arc<Namespace>> {
        match self.namespaces.get(name) {
            Some(stored) => Some(Arc::clone(stored)),
            None if name == DEFAULT_NAMESPACE => Some(Arc::new(Namespace::default_namespace())),
            None => None,
        }
    }

    /// Whether a namespace called `name` exists.
    pub fn namespace_exists(&self, name: &str) -> bool {
        name == DEFAULT_NAMESPACE || self.namespaces.get(name).is_some()
    }

    /// Every namespace, by name.
    pub fn namespaces(&self) -> Vec<Arc<Namespace>> {
        let mut all: Vec<Arc<Namespace>> = self.namespaces.values().cloned().collect();
        if self.namespaces.get(DEFAULT_NAMESPACE).is_none() {
            all.push(Arc::new(Namespace::default_namespace()));
        }
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Why `name` may not be deleted now, if it may not (Nomad's texts,
    /// this region only).
    pub fn namespace_delete_refusal(&self, name: &str, region: &str) -> Option<String> {
        if name == DEFAULT_NAMESPACE {
            return Some(DEFAULT_NOT_DELETED.into());
        }
        let live_job = self
            .jobs()
            .any(|job| job.namespace == name && job.status != JOB_STATUS_DEAD);
        let live_alloc = self
            .allocs()
            .any(|alloc| alloc.namespace == name && !alloc.client_terminal());
        let mut problems = Vec::new();
        if live_job {
            problems.push(format!(
                "namespace {name:?} has non-terminal jobs in regions: [{region}]"
            ));
        }
        if live_alloc {
            problems.push(format!(
                "namespace {name:?} has non-terminal allocations in regions: [{region}]"
            ));
        }
        (!problems.is_empty()).then(|| caravan_api_types::job::validate::multierror(&problems))
    }

    pub(super) fn apply_namespace_upsert(
        &mut self,
        namespaces: &[Namespace],
        index: u64,
        touched: &mut Touched,
    ) -> CommandResult {
        if let Some(problem) = namespaces.iter().find_map(|namespace| {
            let problems = namespace.problems();
            (!problems.is_empty()).then(|| {
                format!(
                    "Invalid namespace {:?}: {}",
                    namespace.name,
                    caravan_api_types::job::validate::multierror(&problems)
                )
            })
        }) {
            return CommandResult::Refused(problem);
        }
        // No quotas exist (they are Nomad Enterprise's): naming one is
        // refused, as Nomad's community edition refuses it.
        if let Some(namespace) = namespaces
            .iter()
            .find(|namespace| !namespace.quota.is_empty())
        {
            return CommandResult::Refused(format!(
                "namespace {:?} using non-existent quota {:?}",
                namespace.name, namespace.quota
            ));
        }
        for namespace in namespaces {
            // The built-in `default` was created with the cluster (index 1).
            let create_index = match self.namespaces.get(&namespace.name) {
                Some(stored) => stored.create_index,
                None if namespace.name == DEFAULT_NAMESPACE => 1,
                None => index,
            };
            let stored = Namespace {
                hash: hash(namespace),
                create_index,
                modify_index: index,
                ..namespace.clone()
            };
            self.namespaces
                .insert(namespace.name.clone(), Arc::new(stored), touched);
        }
        self.touch(Table::Namespaces, index, touched);
        CommandResult::Done
    }

    /// `region` only names, in a refusal, where the live jobs are.
    pub(super) fn apply_namespace_delete(
        &mut self,
        names: &[String],
        region: &str,
        index: u64,
        touched: &mut Touched,
    ) -> CommandResult {
        if names.iter().any(|name| !self.namespace_exists(name)) {
            return CommandResult::Refused("namespace not found".into());
        }
        if let Some(refusal) = names
            .iter()
            .find_map(|name| self.namespace_delete_refusal(name, region))
        {
            return CommandResult::Refused(refusal);
        }
        for name in names {
            self.namespaces.remove(name, touched);
        }
        self.touch(Table::Namespaces, index, touched);
        CommandResult::Done
    }
}

/// Base64 of a SHA-256 over the namespace's fields (Nomad reports a
/// digest in `Hash`; clients compare it, never recompute it).
fn hash(namespace: &Namespace) -> String {
    use base64::Engine;
    let unhashed = Namespace {
        hash: String::new(),
        create_index: 0,
        modify_index: 0,
        ..namespace.clone()
    };
    let bytes = serde_json::to_vec(&unhashed).unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&bytes))
}

#[cfg(test)]
#[path = "namespaces_tests.rs"]
mod tests;
