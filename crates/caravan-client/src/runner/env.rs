//! What a task sees: Nomad's `NOMAD_*` environment (jobs-api.md §5.1) and
//! the `${...}` interpolation of the task's `env` and driver `config`.

use caravan_drivers::env_safe;
use std::collections::BTreeMap;
use std::path::Path;

use caravan_api_types::alloc::Allocation;
use caravan_api_types::job::{Job, Task, TaskGroup};
use caravan_api_types::node::Node;

/// Host variables never passed to a task (Nomad's default `env.denylist`).
const DENYLIST: &[&str] = &[
    "CONSUL_TOKEN",
    "CONSUL_HTTP_TOKEN",
    "CONSUL_HTTP_TOKEN_FILE",
    "NOMAD_TOKEN",
    "VAULT_TOKEN",
    "CONSUL_LICENSE",
    "NOMAD_LICENSE",
    "VAULT_LICENSE",
    "CONSUL_LICENSE_PATH",
    "NOMAD_LICENSE_PATH",
    "VAULT_LICENSE_PATH",
];

/// Where the task's directories are, as the task is told.
pub struct TaskPaths<'a> {
    pub alloc_dir: &'a Path,
    pub task_dir: &'a Path,
}

/// Everything the environment is built from.
pub struct EnvInputs<'a> {
    pub alloc: &'a Allocation,
    pub job: &'a Job,
    pub group: &'a TaskGroup,
    pub task: &'a Task,
    pub node: &'a Node,
    pub region: &'a str,
    pub paths: TaskPaths<'a>,
    /// The agent's own environment, for drivers that do not isolate.
    pub host_env: &'a [(String, String)],
}

/// The task's environment: the host's (minus the deny list), then
/// Nomad's variables, then the task's `env` block interpolated.
pub fn task_env(inputs: &EnvInputs<'_>) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = inputs
        .host_env
        .iter()
        .filter(|(key, _)| !DENYLIST.contains(&key.as_str()))
        .cloned()
        .collect();
    env.extend(nomad_env(inputs));
    if let Some(task_env) = &inputs.task.env {
        let base = env.clone();
        for (key, value) in task_env {
            env.insert(key.clone(), interpolate(value, &base, inputs.node));
        }
    }
    env
}

fn nomad_env(inputs: &EnvInputs<'_>) -> BTreeMap<String, String> {
    let EnvInputs {
        alloc,
        job,
        group,
        task,
        node,
        ..
    } = inputs;
    let mut env = BTreeMap::new();
    let mut set = |key: &str, value: String| {
        env.insert(key.to_string(), value);
    };
    let path = |path: &Path| path.display().to_string();
    set(
        "NOMAD_ALLOC_DIR",
        path(&inputs.paths.alloc_dir.join("alloc")),
    );
    set("NOMAD_TASK_DIR", path(&inputs.paths.task_dir.join("local")));
    set(
        "NOMAD_SECRETS_DIR",
        path(&inputs.paths.task_dir.join("secrets")),
    );
    set("NOMAD_ALLOC_ID", alloc.id.clone());
    set("NOMAD_SHORT_ALLOC_ID", alloc.id.chars().take(8).collect());
    set("NOMAD_ALLOC_NAME", alloc.name.clone());
    set("NOMAD_ALLOC_INDEX", alloc_index(&alloc.name).to_string());
    set("NOMAD_JOB_ID", job.id.clone());
    set("NOMAD_JOB_NAME", job.name.clone());
    if !job.parent_id.is_empty() {
        set("NOMAD_JOB_PARENT_ID", job.parent_id.clone());
    }
    set("NOMAD_GROUP_NAME", group.name.clone());
    set("NOMAD_TASK_NAME", task.name.clone());
    set("NOMAD_NAMESPACE", alloc.namespace.clone());
    set("NOMAD_REGION", inputs.region.to_string());
    set("NOMAD_DC", node.datacenter.clone());
    let resources = alloc
        .allocated_resources
        .as_ref()
        .and_then(|resources| resources.tasks.get(&task.name));
    let (cpu, memory, memory_max) = match resources {
        Some(given) => (
            given.cpu.cpu_shares,
            given.memory.memory_mb,
            given.memory.memory_max_mb,
        ),
        None => (
            task.resources.cpu,
            task.resources.memory_mb,
            task.resources.memory_max_mb,
        ),
    };
    set("NOMAD_CPU_LIMIT", cpu.to_string());
    set("NOMAD_CPU_CORES", " ".to_string());
    set("NOMAD_MEMORY_LIMIT", memory.to_string());
    if memory_max > 0 {
        set("NOMAD_MEMORY_MAX_LIMIT", memory_max.to_string());
    }
    for (key, value) in merged_meta(job, group, task) {
        set(&format!("NOMAD_META_{}", env_safe(&key)), value.clone());
        set(
            &format!("NOMAD_META_{}", env_safe(&key.to_uppercase())),
            value,
        );
    }
    port_env(inputs, &mut env);
    env
}

/// Group ports (shared) and the task's own network ports.
fn port_env(inputs: &EnvInputs<'_>, env: &mut BTreeMap<String, String>) {
    let Some(resources) = &inputs.alloc.allocated_resources else {
        return;
    };
    let node_ip = node_ip(inputs.node);
    for port in resources.shared.ports.iter().flatten() {
        let label = env_safe(&port.label);
        let ip = match port.host_ip.is_empty() {
            true => node_ip.clone(),
            false => port.host_ip.clone(),
        };
        let mapped = match port.to > 0 {
            true => port.to,
            false => port.value,
        };
        env.insert(format!("NOMAD_IP_{label}"), ip.clone());
        env.insert(format!("NOMAD_HOST_IP_{label}"), ip.clone());
        env.insert(format!("NOMAD_PORT_{label}"), mapped.to_string());
        env.insert(format!("NOMAD_HOST_PORT_{label}"), port.value.to_string());
        env.insert(format!("NOMAD_ALLOC_PORT_{label}"), mapped.to_string());
        env.insert(
            format!("NOMAD_ADDR_{label}"),
            format!("{ip}:{}", port.value),
        );
        env.insert(
            format!("NOMAD_HOST_ADDR_{label}"),
            format!("{ip}:{}", port.value),
        );
    }
    for (task_name, task) in &resources.tasks {
        for network in task.networks.iter().flatten() {
            let ip = match network.ip.is_empty() {
                true => node_ip.clone(),
                false => network.ip.clone(),
            };
            for port in network.ports() {
                let label = env_safe(&port.label);
                let value = port.value;
                match *task_name == inputs.task.name {
                    true => {
                        env.insert(format!("NOMAD_IP_{label}"), ip.clone());
                        env.insert(format!("NOMAD_PORT_{label}"), value.to_string());
                        env.insert(format!("NOMAD_HOST_PORT_{label}"), value.to_string());
                        env.insert(format!("NOMAD_ADDR_{label}"), format!("{ip}:{value}"));
                    }
                    false => {
                        let prefix = format!("{}_{label}", env_safe(task_name));
                        env.insert(format!("NOMAD_IP_{prefix}"), ip.clone());
                        env.insert(format!("NOMAD_PORT_{prefix}"), value.to_string());
                        env.insert(format!("NOMAD_ADDR_{prefix}"), format!("{ip}:{value}"));
                    }
                }
            }
        }
    }
}

/// The node's address for ports: its first network's IP, else loopback.
fn node_ip(node: &Node) -> String {
    node.node_resources
        .as_ref()
        .and_then(|resources| resources.networks.as_ref())
        .and_then(|networks| networks.iter().find(|network| !network.ip.is_empty()))
        .map(|network| network.ip.clone())
        .unwrap_or_else(|| "127.0.0.1".to_string())
}

/// Job, then group, then task meta: the task's wins.
fn merged_meta(job: &Job, group: &TaskGroup, task: &Task) -> BTreeMap<String, String> {
    let mut meta = BTreeMap::new();
    for layer in [&job.meta, &group.meta, &task.meta].into_iter().flatten() {
        meta.extend(layer.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    meta
}

/// `web.api[3]` → 3.
fn alloc_index(name: &str) -> u64 {
    name.rsplit_once('[')
        .and_then(|(_, rest)| rest.strip_suffix(']'))
        .and_then(|index| index.parse().ok())
        .unwrap_or(0)
}

/// Replaces `${NAME}` with the environment's value, and `${node.*}`,
/// `${attr.*}` and `${meta.*}` with the node's; anything unknown is left
/// as written.
pub fn interpolate(text: &str, env: &BTreeMap<String, String>, node: &Node) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = after[..end].trim();
        match lookup(name, env, node) {
            Some(value) => out.push_str(&value),
            None => out.push_str(&rest[start..start + 2 + end + 1]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn lookup(name: &str, env: &BTreeMap<String, String>, node: &Node) -> Option<String> {
    if let Some(value) = env.get(name) {
        return Some(value.clone());
    }
    if let Some(key) = name.strip_prefix("env.") {
        return env.get(key).cloned();
    }
    if let Some(key) = name.strip_prefix("attr.") {
        return node.attributes.get(key).cloned();
    }
    if let Some(key) = name.strip_prefix("meta.") {
        return node.meta.get(key).cloned();
    }
    match name {
        "node.unique.id" => Some(node.id.clone()),
        "node.unique.name" => Some(node.name.clone()),
        "node.datacenter" => Some(node.datacenter.clone()),
        "node.class" => Some(node.node_class.clone()),
        "node.pool" => Some(node.node_pool.clone()),
        _ => None,
    }
}

/// The driver `config` with every string interpolated, recursively.
pub fn interpolate_config(
    config: &BTreeMap<String, serde_json::Value>,
    env: &BTreeMap<String, String>,
    node: &Node,
) -> serde_json::Map<String, serde_json::Value> {
    fn walk(
        value: &serde_json::Value,
        env: &BTreeMap<String, String>,
        node: &Node,
    ) -> serde_json::Value {
        match value {
            serde_json::Value::String(text) => {
                serde_json::Value::String(interpolate(text, env, node))
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(|item| walk(item, env, node)).collect())
            }
            serde_json::Value::Object(map) => serde_json::Value::Object(
                map.iter()
                    .map(|(key, value)| (key.clone(), walk(value, env, node)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    config
        .iter()
        .map(|(key, value)| (key.clone(), walk(value, env, node)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_fills_what_it_knows_and_keeps_the_rest() {
        let env = BTreeMap::from([("NOMAD_PORT_http".to_string(), "8080".to_string())]);
        let node = Node {
            id: "node-1".to_string(),
            attributes: BTreeMap::from([("kernel.name".to_string(), "linux".to_string())]),
            ..Node::default()
        };
        assert_eq!(
            interpolate(
                "port=${NOMAD_PORT_http} os=${attr.kernel.name} id=${node.unique.id} x=${nope}",
                &env,
                &node
            ),
            "port=8080 os=linux id=node-1 x=${nope}"
        );
        assert_eq!(interpolate("tail ${", &env, &node), "tail ${");
    }

    #[test]
    fn names_and_indexes() {
        assert_eq!(alloc_index("example.cache[12]"), 12);
        assert_eq!(alloc_index("odd"), 0);
        assert_eq!(env_safe("my-port.x"), "my_port_x");
    }
}
