//! Nomad's ACL model: the policy language ([`policy`]) and the capability
//! set a token's policies grant ([`AclSet`]).

pub mod policy;

use std::collections::BTreeSet;

pub use policy::{parse, Level, Policy, PolicyError};

/// What a request needs, as Nomad's API pages name it per endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    AgentRead,
    AgentWrite,
    NodeRead,
    NodeWrite,
    OperatorRead,
    OperatorWrite,
    QuotaRead,
    QuotaWrite,
    PluginRead,
    PluginList,
    /// Only a management token.
    Management,
}

/// Everything a set of policies grants, merged the way Nomad merges them:
/// the highest level wins, except that `deny` anywhere wins over all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclSet {
    management: bool,
    node: Option<Level>,
    agent: Option<Level>,
    operator: Option<Level>,
    quota: Option<Level>,
    plugin: Option<Level>,
    namespaces: Vec<(String, BTreeSet<String>)>,
    /// `host_volume` rules: which volumes a job may mount, and how.
    host_volumes: Vec<(String, BTreeSet<String>)>,
}

/// Adds `granted` to the rule named `name`, or a new rule.
fn merge_rule(rules: &mut Vec<(String, BTreeSet<String>)>, name: &str, granted: BTreeSet<String>) {
    match rules.iter_mut().find(|(existing, _)| existing == name) {
        Some((_, existing)) => existing.extend(granted),
        None => rules.push((name.to_string(), granted)),
    }
}

/// Whether the rule that applies to `name` grants `capability`: an exact
/// rule wins over globs; among globs the one with the longest literal
/// text wins; `deny` in the winning rule denies all.
fn rule_allows(rules: &[(String, BTreeSet<String>)], name: &str, capability: &str) -> bool {
    match winning_rule(rules, name) {
        Some(granted) => !granted.contains("deny") && granted.contains(capability),
        None => false,
    }
}

/// The rule that decides for `name`: an exact one, else the glob with the
/// longest literal text.
fn winning_rule<'a>(
    rules: &'a [(String, BTreeSet<String>)],
    name: &str,
) -> Option<&'a BTreeSet<String>> {
    let exact = rules.iter().find(|(rule, _)| rule == name);
    exact
        .or_else(|| {
            rules
                .iter()
                .filter(|(pattern, _)| pattern.contains('*') && glob_matches(pattern, name))
                .max_by_key(|(pattern, _)| pattern.replace('*', "").len())
        })
        .map(|(_, granted)| granted)
}

/// What a `host_volume` policy level grants (Nomad's expansion).
fn host_volume_level_capabilities(level: Level) -> &'static [&'static str] {
    match level {
        Level::Deny => &["deny"],
        Level::Read => &["mount-readonly"],
        Level::Write => &["mount-readonly", "mount-readwrite"],
        _ => &[],
    }
}

fn merge(current: Option<Level>, next: Option<Level>) -> Option<Level> {
    match (current, next) {
        (Some(Level::Deny), _) | (_, Some(Level::Deny)) => Some(Level::Deny),
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The capabilities a namespace `policy` level stands for.
fn namespace_level_capabilities(level: Level) -> &'static [&'static str] {
    const READ: &[&str] = &[
        "list-jobs",
        "parse-job",
        "read-job",
        "csi-list-volume",
        "csi-read-volume",
        "read-job-scaling",
        "list-scaling-policies",
        "read-scaling-policy",
        "host-volume-read",
    ];
    const SCALE: &[&str] = &[
        "list-scaling-policies",
        "read-scaling-policy",
        "read-job-scaling",
        "scale-job",
    ];
    const WRITE: &[&str] = &[
        "list-jobs",
        "parse-job",
        "read-job",
        "csi-list-volume",
        "csi-read-volume",
        "read-job-scaling",
        "list-scaling-policies",
        "read-scaling-policy",
        "host-volume-read",
        "scale-job",
        "submit-job",
        "dispatch-job",
        "read-logs",
        "read-fs",
        "alloc-exec",
        "alloc-lifecycle",
        "csi-mount-volume",
        "csi-write-volume",
        "submit-recommendation",
        "host-volume-create",
        "host-volume-register",
        "host-volume-write",
        "host-volume-delete",
    ];
    match level {
        Level::Deny => &["deny"],
        Level::Read | Level::List => READ,
        Level::Scale => SCALE,
        Level::Write => WRITE,
    }
}

/// `*` in a pattern matches any run of characters.
fn glob_matches(pattern: &str, name: &str) -> bool {
    let Some((first, rest)) = pattern.split_once('*') else {
        return pattern == name;
    };
    let Some(mut remaining) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = rest.split('*').collect();
    for (position, part) in parts.iter().enumerate() {
        if position == parts.len() - 1 {
            return remaining.ends_with(part);
        }
        match remaining.find(part) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    true
}

impl AclSet {
    /// A management token: every check passes.
    pub fn management() -> Self {
        Self {
            management: true,
            ..Self::default()
        }
    }

    /// Merges the policies a token carries.
    pub fn from_policies<'a>(policies: impl IntoIterator<Item = &'a Policy>) -> Self {
        let mut set = Self::default();
        for policy in policies {
            set.node = merge(set.node, policy.node);
            set.agent = merge(set.agent, policy.agent);
            set.operator = merge(set.operator, policy.operator);
            set.quota = merge(set.quota, policy.quota);
            set.plugin = merge(set.plugin, policy.plugin);
            for rule in &policy.namespaces {
                let mut granted: BTreeSet<String> = rule.capabilities.iter().cloned().collect();
                if let Some(level) = rule.policy {
                    granted.extend(
                        namespace_level_capabilities(level)
                            .iter()
                            .map(|c| c.to_string()),
                    );
                }
                merge_rule(&mut set.namespaces, &rule.name, granted);
            }
            for rule in &policy.host_volumes {
                let mut granted: BTreeSet<String> = rule.capabilities.iter().cloned().collect();
                if let Some(level) = rule.policy {
                    granted.extend(
                        host_volume_level_capabilities(level)
                            .iter()
                            .map(|c| c.to_string()),
                    );
                }
                merge_rule(&mut set.host_volumes, &rule.name, granted);
            }
        }
        set
    }

    pub fn is_management(&self) -> bool {
        self.management
    }

    fn level_allows(level: Option<Level>, needed: Level) -> bool {
        match level {
            None | Some(Level::Deny) => false,
            Some(level) => level >= needed,
        }
    }

    /// Whether this set grants `capability`.
    pub fn allows(&self, capability: Capability) -> bool {
        if self.management {
            return true;
        }
        match capability {
            Capability::AgentRead => Self::level_allows(self.agent, Level::Read),
            Capability::AgentWrite => Self::level_allows(self.agent, Level::Write),
            Capability::NodeRead => Self::level_allows(self.node, Level::Read),
            Capability::NodeWrite => Self::level_allows(self.node, Level::Write),
            Capability::OperatorRead => Self::level_allows(self.operator, Level::Read),
            Capability::OperatorWrite => Self::level_allows(self.operator, Level::Write),
            Capability::QuotaRead => Self::level_allows(self.quota, Level::Read),
            Capability::QuotaWrite => Self::level_allows(self.quota, Level::Write),
            Capability::PluginList => Self::level_allows(self.plugin, Level::List),
            Capability::PluginRead => Self::level_allows(self.plugin, Level::Read),
            Capability::Management => false,
        }
    }

    /// Whether this set grants `capability` (e.g. `read-job`) in
    /// `namespace`. An exact rule wins over globs; among globs the one with
    /// the longest literal text wins; `deny` in the winning rule denies all.
    pub fn allows_namespace(&self, namespace: &str, capability: &str) -> bool {
        self.management || rule_allows(&self.namespaces, namespace, capability)
    }

    /// Whether this set grants anything at all in `namespace` (Nomad's
    /// `AllowNamespace`: who may see the namespace itself).
    pub fn allows_any_in_namespace(&self, namespace: &str) -> bool {
        self.management
            || winning_rule(&self.namespaces, namespace)
                .is_some_and(|granted| !granted.is_empty() && !granted.contains("deny"))
    }

    /// Whether a job may mount the host volume `name` (`read_only` asks
    /// for `mount-readonly`, else `mount-readwrite`), by the `host_volume`
    /// rules, matched as namespace rules are.
    pub fn allows_host_volume(&self, name: &str, read_only: bool) -> bool {
        let capability = match read_only {
            true => "mount-readonly",
            false => "mount-readwrite",
        };
        self.management || rule_allows(&self.host_volumes, name, capability)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(rules: &[&str]) -> AclSet {
        let policies: Vec<Policy> = rules.iter().map(|r| parse(r).unwrap()).collect();
        AclSet::from_policies(&policies)
    }

    #[test]
    fn host_volume_rules_grant_mounts_by_level_and_glob() {
        let acl = set(&[
            "host_volume \"prod-*\" {\n  policy = \"read\"\n}\nhost_volume \"prod-db\" {\n  policy = \"write\"\n}\nhost_volume \"secret\" {\n  policy = \"deny\"\n}\n",
        ]);
        assert!(acl.allows_host_volume("prod-logs", true));
        assert!(!acl.allows_host_volume("prod-logs", false));
        assert!(acl.allows_host_volume("prod-db", false));
        assert!(!acl.allows_host_volume("secret", true));
        assert!(!acl.allows_host_volume("other", true));
        assert!(AclSet::management().allows_host_volume("anything", false));
    }

    #[test]
    fn levels_imply_what_they_should() {
        let acl = set(&["node {\n  policy = \"write\"\n}\nagent {\n  policy = \"read\"\n}\n"]);
        assert!(acl.allows(Capability::NodeRead));
        assert!(acl.allows(Capability::NodeWrite));
        assert!(acl.allows(Capability::AgentRead));
        assert!(!acl.allows(Capability::AgentWrite));
        assert!(!acl.allows(Capability::OperatorRead));
        assert!(!acl.allows(Capability::Management));
        assert!(AclSet::management().allows(Capability::Management));
    }

    #[test]
    fn deny_wins_across_policies() {
        let acl = set(&[
            "operator {\n  policy = \"write\"\n}\n",
            "operator {\n  policy = \"deny\"\n}\n",
        ]);
        assert!(!acl.allows(Capability::OperatorRead));
        let acl = set(&[
            "operator {\n  policy = \"read\"\n}\n",
            "operator {\n  policy = \"write\"\n}\n",
        ]);
        assert!(acl.allows(Capability::OperatorWrite));
    }

    #[test]
    fn namespaces_match_exactly_then_by_glob() {
        let acl = set(&[r#"
namespace "default" {
  policy = "read"
}
namespace "dev-*" {
  policy = "write"
}
namespace "dev-secret" {
  policy = "deny"
}
namespace "*" {
  capabilities = ["list-jobs"]
}
"#]);
        assert!(acl.allows_namespace("default", "read-job"));
        assert!(!acl.allows_namespace("default", "submit-job"));
        assert!(acl.allows_namespace("dev-a", "submit-job"));
        assert!(!acl.allows_namespace("dev-secret", "read-job"));
        assert!(acl.allows_namespace("other", "list-jobs"));
        assert!(!acl.allows_namespace("other", "read-job"));
    }

    #[test]
    fn globs() {
        assert!(glob_matches("*", "anything"));
        assert!(glob_matches("dev-*", "dev-x"));
        assert!(glob_matches("*-prod", "eu-prod"));
        assert!(glob_matches("a*b*c", "a-b-c"));
        assert!(!glob_matches("a*b*c", "a-c-b"));
        assert!(!glob_matches("dev-*", "prod"));
    }
}
