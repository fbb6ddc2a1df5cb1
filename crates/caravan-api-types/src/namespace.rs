//! Namespaces (`/v1/namespaces`, `/v1/namespace/:name`): Nomad's
//! `Namespace`, field for field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The namespace every cluster has and no one may delete.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Its description until someone writes another.
pub const DEFAULT_NAMESPACE_DESCRIPTION: &str = "Default shared namespace";
/// Nomad's longest description.
pub const MAX_DESCRIPTION_LENGTH: usize = 256;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Namespace {
    pub name: String,
    pub description: String,
    pub quota: String,
    pub capabilities: Option<NamespaceCapabilities>,
    /// Kept as given (node pools are not enforced per namespace yet).
    pub node_pool_configuration: Option<Value>,
    pub vault_configuration: Option<Value>,
    pub consul_configuration: Option<Value>,
    pub meta: Option<BTreeMap<String, String>>,
    /// Base64 of a digest over the fields above, as Nomad reports it.
    pub hash: String,
    pub create_index: u64,
    pub modify_index: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NamespaceCapabilities {
    pub enabled_task_drivers: Option<Vec<String>>,
    pub disabled_task_drivers: Option<Vec<String>>,
    pub enabled_network_modes: Option<Vec<String>>,
    pub disabled_network_modes: Option<Vec<String>>,
}

impl Namespace {
    /// The built-in `default` namespace, as a cluster starts with it.
    pub fn default_namespace() -> Self {
        Self {
            name: DEFAULT_NAMESPACE.into(),
            description: DEFAULT_NAMESPACE_DESCRIPTION.into(),
            create_index: 1,
            modify_index: 1,
            ..Self::default()
        }
    }

    /// Nomad's checks, every problem listed: a name of 1 to 128 letters,
    /// digits and dashes; a description of at most 256 bytes.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let name_ok = (1..=128).contains(&self.name.len())
            && self
                .name
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-');
        if !name_ok {
            problems.push(format!(
                "invalid name {:?}. Must match regex ^[a-zA-Z0-9-]{{1,128}}$",
                self.name
            ));
        }
        if self.description.len() > MAX_DESCRIPTION_LENGTH {
            problems.push(format!("description longer than {MAX_DESCRIPTION_LENGTH}"));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_descriptions_are_checked_as_nomad_does() {
        let named = |name: &str| Namespace {
            name: name.into(),
            ..Namespace::default()
        };
        assert!(named("team-a1").problems().is_empty());
        assert_eq!(
            named("a b").problems(),
            ["invalid name \"a b\". Must match regex ^[a-zA-Z0-9-]{1,128}$"]
        );
        assert_eq!(named("").problems().len(), 1);
        assert_eq!(named(&"x".repeat(129)).problems().len(), 1);
        let long = Namespace {
            description: "d".repeat(257),
            ..named("ok")
        };
        assert_eq!(long.problems(), ["description longer than 256"]);
    }

    #[test]
    fn reads_nomads_json() {
        let json = r#"{"Name":"team","Description":"d","Quota":"","Capabilities":
            {"EnabledTaskDrivers":["docker"],"DisabledTaskDrivers":null},
            "Meta":{"owner":"ops"},"CreateIndex":5,"ModifyIndex":6}"#;
        let namespace: Namespace = serde_json::from_str(json).unwrap();
        assert_eq!(namespace.name, "team");
        assert_eq!(
            namespace.capabilities.unwrap().enabled_task_drivers,
            Some(vec!["docker".to_string()])
        );
        assert_eq!(namespace.meta.unwrap()["owner"], "ops");
    }
}
