//! Parsing Nomad's ACL policy language.
//!
//! Rules are HCL or JSON of the same shape:
//!
//! ```hcl
//! namespace "default" { policy = "read"  capabilities = ["submit-job"] }
//! namespace "dev-*"   { policy = "write" }
//! node     { policy = "read" }
//! agent    { policy = "write" }
//! operator { policy = "read" }
//! quota    { policy = "read" }
//! plugin   { policy = "list" }
//! host_volume "prod-*" { policy = "read" }
//! ```
//!
//! Anything unknown (a block, a level, a capability, a key) is an error that
//! names it, as Nomad refuses such a policy.

use serde_json::{Map, Value};

/// A level a `policy = "..."` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Deny,
    List,
    Read,
    Scale,
    Write,
}

impl Level {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "deny" => Level::Deny,
            "list" => Level::List,
            "read" => Level::Read,
            "scale" => Level::Scale,
            "write" => Level::Write,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Deny => "deny",
            Level::List => "list",
            Level::Read => "read",
            Level::Scale => "scale",
            Level::Write => "write",
        }
    }
}

/// Namespace capabilities Nomad knows.
pub const NAMESPACE_CAPABILITIES: &[&str] = &[
    "deny",
    "list-jobs",
    "parse-job",
    "read-job",
    "submit-job",
    "dispatch-job",
    "read-logs",
    "read-fs",
    "alloc-exec",
    "alloc-node-exec",
    "alloc-lifecycle",
    "csi-register-plugin",
    "csi-write-volume",
    "csi-read-volume",
    "csi-list-volume",
    "csi-mount-volume",
    "list-scaling-policies",
    "read-scaling-policy",
    "read-job-scaling",
    "scale-job",
    "sentinel-override",
    "submit-recommendation",
    "host-volume-create",
    "host-volume-register",
    "host-volume-read",
    "host-volume-write",
    "host-volume-delete",
];

/// Host volume capabilities Nomad knows.
pub const HOST_VOLUME_CAPABILITIES: &[&str] = &["deny", "mount-readonly", "mount-readwrite"];

/// A `namespace "name" { ... }` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceRule {
    /// The namespace name or glob (`*` matches any run of characters).
    pub name: String,
    pub policy: Option<Level>,
    pub capabilities: Vec<String>,
}

/// A `host_volume "name" { ... }` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostVolumeRule {
    pub name: String,
    pub policy: Option<Level>,
    pub capabilities: Vec<String>,
}

/// One parsed policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub namespaces: Vec<NamespaceRule>,
    pub host_volumes: Vec<HostVolumeRule>,
    pub node: Option<Level>,
    pub agent: Option<Level>,
    pub operator: Option<Level>,
    pub quota: Option<Level>,
    pub plugin: Option<Level>,
}

/// Why a policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("failed to parse policy: {0}")]
    Syntax(String),
    #[error("unknown block {0:?}")]
    UnknownBlock(String),
    #[error("unknown key {key:?} in {block}")]
    UnknownKey { block: String, key: String },
    #[error("invalid policy {level:?} in {block}")]
    InvalidLevel { block: String, level: String },
    #[error("invalid capability {capability:?} in {block}")]
    InvalidCapability { block: String, capability: String },
    #[error("{0}")]
    Shape(String),
}

/// Parses policy rules written in HCL or JSON.
pub fn parse(rules: &str) -> Result<Policy, PolicyError> {
    let trimmed = rules.trim_start();
    let value: Value = if trimmed.starts_with('{') {
        serde_json::from_str(rules).map_err(|error| PolicyError::Syntax(error.to_string()))?
    } else {
        hcl::from_str(rules).map_err(|error| PolicyError::Syntax(error.to_string()))?
    };
    let Value::Object(top) = value else {
        return Err(PolicyError::Shape(
            "a policy must be a set of blocks".into(),
        ));
    };
    let mut policy = Policy::default();
    for (key, body) in top {
        match key.as_str() {
            "namespace" => {
                for (name, body) in labelled_blocks(&key, body)? {
                    let (level, capabilities) = read_rule(
                        &format!("namespace {name:?}"),
                        &body,
                        &[Level::Deny, Level::Read, Level::Write, Level::Scale],
                        NAMESPACE_CAPABILITIES,
                        &["policy", "capabilities", "variables"],
                    )?;
                    policy.namespaces.push(NamespaceRule {
                        name,
                        policy: level,
                        capabilities,
                    });
                }
            }
            "host_volume" => {
                for (name, body) in labelled_blocks(&key, body)? {
                    let (level, capabilities) = read_rule(
                        &format!("host_volume {name:?}"),
                        &body,
                        &[Level::Deny, Level::Read, Level::Write],
                        HOST_VOLUME_CAPABILITIES,
                        &["policy", "capabilities"],
                    )?;
                    policy.host_volumes.push(HostVolumeRule {
                        name,
                        policy: level,
                        capabilities,
                    });
                }
            }
            "node" | "agent" | "operator" | "quota" => {
                let body = single_block(&key, body)?;
                let allowed = [Level::Deny, Level::Read, Level::Write];
                let (level, _) = read_rule(&key, &body, &allowed, &[], &["policy"])?;
                let slot = match key.as_str() {
                    "node" => &mut policy.node,
                    "agent" => &mut policy.agent,
                    "operator" => &mut policy.operator,
                    _ => &mut policy.quota,
                };
                *slot = level;
            }
            "plugin" => {
                let body = single_block(&key, body)?;
                let allowed = [Level::Deny, Level::List, Level::Read];
                let (level, _) = read_rule(&key, &body, &allowed, &[], &["policy"])?;
                policy.plugin = level;
            }
            other => return Err(PolicyError::UnknownBlock(other.to_string())),
        }
    }
    Ok(policy)
}

/// A block's label and body.
type Labelled = (String, Map<String, Value>);

/// `namespace "a" {..} namespace "b" {..}` as (label, body) pairs.
fn labelled_blocks(block: &str, body: Value) -> Result<Vec<Labelled>, PolicyError> {
    let items = match body {
        Value::Array(items) => items,
        other => vec![other],
    };
    let mut blocks = Vec::new();
    for item in items {
        let Value::Object(labels) = item else {
            return Err(PolicyError::Shape(format!(
                "{block} must be a labelled block"
            )));
        };
        for (label, body) in labels {
            match body {
                Value::Object(body) => blocks.push((label, body)),
                Value::Array(bodies) => {
                    for body in bodies {
                        let Value::Object(body) = body else {
                            return Err(PolicyError::Shape(format!(
                                "{block} {label:?} must be a block"
                            )));
                        };
                        blocks.push((label.clone(), body));
                    }
                }
                _ => {
                    return Err(PolicyError::Shape(format!(
                        "{block} {label:?} must be a block"
                    )))
                }
            }
        }
    }
    Ok(blocks)
}

fn single_block(block: &str, body: Value) -> Result<Map<String, Value>, PolicyError> {
    match body {
        Value::Object(body) => Ok(body),
        Value::Array(mut items) if items.len() == 1 => match items.remove(0) {
            Value::Object(body) => Ok(body),
            _ => Err(PolicyError::Shape(format!("{block} must be a block"))),
        },
        _ => Err(PolicyError::Shape(format!("{block} must be one block"))),
    }
}

type Rule = (Option<Level>, Vec<String>);

fn read_rule(
    block: &str,
    body: &Map<String, Value>,
    levels: &[Level],
    capabilities: &[&str],
    keys: &[&str],
) -> Result<Rule, PolicyError> {
    for key in body.keys() {
        if !keys.contains(&key.as_str()) {
            return Err(PolicyError::UnknownKey {
                block: block.to_string(),
                key: key.clone(),
            });
        }
    }
    let level = match body.get("policy") {
        None => None,
        Some(Value::String(text)) => {
            let level = Level::parse(text)
                .filter(|level| levels.contains(level))
                .ok_or_else(|| PolicyError::InvalidLevel {
                    block: block.to_string(),
                    level: text.clone(),
                })?;
            Some(level)
        }
        Some(other) => {
            return Err(PolicyError::InvalidLevel {
                block: block.to_string(),
                level: other.to_string(),
            })
        }
    };
    let mut granted = Vec::new();
    if let Some(list) = body.get("capabilities") {
        let Value::Array(list) = list else {
            return Err(PolicyError::Shape(format!(
                "capabilities in {block} must be a list"
            )));
        };
        for item in list {
            let capability = item.as_str().unwrap_or_default();
            if !capabilities.contains(&capability) {
                return Err(PolicyError::InvalidCapability {
                    block: block.to_string(),
                    capability: item
                        .as_str()
                        .map_or_else(|| item.to_string(), str::to_string),
                });
            }
            granted.push(capability.to_string());
        }
    }
    Ok((level, granted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hcl_and_json_alike() {
        let hcl = r#"
namespace "default" {
  policy = "read"
  capabilities = ["submit-job"]
}
namespace "dev-*" {
  policy = "write"
}
node {
  policy = "read"
}
agent {
  policy = "write"
}
host_volume "prod" {
  policy = "read"
}
"#;
        let json = r#"{"namespace": {"default": {"policy": "read", "capabilities": ["submit-job"]},
                       "dev-*": {"policy": "write"}},
                       "node": {"policy": "read"}, "agent": {"policy": "write"},
                       "host_volume": {"prod": {"policy": "read"}}}"#;
        let from_hcl = parse(hcl).unwrap();
        let from_json = parse(json).unwrap();
        assert_eq!(from_hcl, from_json);
        assert_eq!(from_hcl.node, Some(Level::Read));
        assert_eq!(from_hcl.agent, Some(Level::Write));
        assert_eq!(from_hcl.operator, None);
        assert_eq!(from_hcl.namespaces.len(), 2);
        assert_eq!(from_hcl.namespaces[0].capabilities, ["submit-job"]);
    }

    #[test]
    fn unknown_things_are_named() {
        let cases = [
            ("spaceship {\n  policy = \"read\"\n}\n", "spaceship"),
            ("node {\n  policy = \"admin\"\n}\n", "admin"),
            ("namespace \"x\" {\n  capabilities = [\"fly\"]\n}\n", "fly"),
            ("operator {\n  policy = \"scale\"\n}\n", "scale"),
            ("agent {\n  level = \"read\"\n}\n", "level"),
            ("plugin {\n  policy = \"write\"\n}\n", "write"),
        ];
        for (rules, named) in cases {
            let error = parse(rules).unwrap_err().to_string();
            assert!(error.contains(named), "{rules}: {error}");
        }
        assert!(parse("node {").is_err());
    }
}
