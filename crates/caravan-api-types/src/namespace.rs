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

/// Go's `%q` of a list of strings: `["a" "b"]`.
fn quoted_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|item| format!("{item:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

/// Whether `capabilities` lets `used` (a driver or network mode) in: an
/// enabled list limits, a disabled list excludes.
fn permits(enabled: &Option<Vec<String>>, disabled: &Option<Vec<String>>, used: &str) -> bool {
    let listed = |list: &Option<Vec<String>>| {
        list.as_ref()
            .is_some_and(|list| list.iter().any(|item| item == used))
    };
    let enabled_empty = enabled.as_ref().is_none_or(|list| list.is_empty());
    (enabled_empty || listed(enabled)) && !listed(disabled)
}

impl Namespace {
    /// Why `job` may not run in this namespace (its task drivers or group
    /// network modes), in Nomad's words; none when it may.
    pub fn job_refusal(&self, job: &crate::job::Job) -> Option<String> {
        let capabilities = self.capabilities.as_ref()?;
        let refused = |what: &str, used: Vec<String>| match used.as_slice() {
            [] => None,
            [one] => Some(format!(
                "used {what} {one:?} is not allowed in namespace {:?}",
                self.name
            )),
            many => Some(format!(
                "used {what}s {} are not allowed in namespace {:?}",
                quoted_list(many),
                self.name
            )),
        };
        let drivers: Vec<String> = job
            .task_groups
            .iter()
            .flat_map(|group| &group.tasks)
            .filter(|task| {
                !permits(
                    &capabilities.enabled_task_drivers,
                    &capabilities.disabled_task_drivers,
                    &task.driver,
                )
            })
            .map(|task| task.driver.clone())
            .collect();
        if let Some(refusal) = refused("task driver", drivers) {
            return Some(refusal);
        }
        let modes: Vec<String> = job
            .task_groups
            .iter()
            .flat_map(|group| group.networks.iter().flatten())
            .map(|network| match network.mode.as_str() {
                "" => "host".to_string(),
                mode => mode.to_string(),
            })
            .filter(|mode| {
                !permits(
                    &capabilities.enabled_network_modes,
                    &capabilities.disabled_network_modes,
                    mode,
                )
            })
            .collect();
        refused("group network mode", modes)
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
    fn drivers_and_network_modes_are_refused_in_nomads_words() {
        let mut job = crate::job::Job::default();
        for driver in ["exec", "raw_exec", "docker"] {
            let mut group = crate::job::TaskGroup::default();
            group.tasks.push(crate::job::Task {
                driver: driver.into(),
                ..Default::default()
            });
            job.task_groups.push(group);
        }
        let limited = |enabled: &[&str], disabled: &[&str]| Namespace {
            name: "default".into(),
            capabilities: Some(NamespaceCapabilities {
                enabled_task_drivers: Some(enabled.iter().map(|d| d.to_string()).collect()),
                disabled_task_drivers: Some(disabled.iter().map(|d| d.to_string()).collect()),
                ..Default::default()
            }),
            ..Namespace::default()
        };
        assert_eq!(limited(&[], &[]).job_refusal(&job), None);
        assert_eq!(Namespace::default_namespace().job_refusal(&job), None);
        assert_eq!(
            limited(&["exec", "docker"], &[]).job_refusal(&job).unwrap(),
            "used task driver \"raw_exec\" is not allowed in namespace \"default\""
        );
        assert_eq!(
            limited(&[], &["exec", "raw_exec"])
                .job_refusal(&job)
                .unwrap(),
            "used task drivers [\"exec\" \"raw_exec\"] are not allowed in namespace \"default\""
        );
        let mut hosted = limited(&[], &[]);
        if let Some(capabilities) = hosted.capabilities.as_mut() {
            capabilities.disabled_network_modes = Some(vec!["host".into()]);
        }
        job.task_groups[0].networks = Some(vec![Default::default()]);
        assert_eq!(
            hosted.job_refusal(&job).unwrap(),
            "used group network mode \"host\" is not allowed in namespace \"default\""
        );
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
