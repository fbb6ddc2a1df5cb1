//! A docker task's `config` block turned into the Docker Engine's
//! container-create body. Pure (no engine calls), so every key's mapping
//! and every refusal is unit-tested.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use bollard::models::{ContainerCreateBody, HostConfig, PortBinding, PortMap};
use serde_json::{Map, Value};

use crate::{DriverError, TaskConfig};

/// Labels every container of Caravan's carries (Nomad's names, so tools
/// that filter on them keep working).
pub const LABEL_ALLOC_ID: &str = "com.hashicorp.nomad.alloc_id";
pub const LABEL_JOB_NAME: &str = "com.hashicorp.nomad.job_name";
pub const LABEL_TASK_NAME: &str = "com.hashicorp.nomad.task_name";
/// Caravan's own: which task instance and which start made the container,
/// so a client that lost a start's handle finds the container it made.
pub const LABEL_TASK_ID: &str = "io.caravan.task_id";
pub const LABEL_ATTEMPT: &str = "io.caravan.attempt";

/// Keys the driver reads; any other key is refused, as Nomad's schema
/// refuses it, rather than silently ignored.
const KNOWN_KEYS: &[&str] = &[
    "image",
    "command",
    "args",
    "entrypoint",
    "ports",
    "port_map",
    "labels",
    "network_mode",
    "volumes",
    "mount",
    "mounts",
    "work_dir",
    "hostname",
    "memory_hard_limit",
    "init",
    "tty",
    "interactive",
    "privileged",
    "cap_add",
    "cap_drop",
    "dns_servers",
    "dns_search_domains",
    "extra_hosts",
    "pid_mode",
    "ipc_mode",
    "readonly_rootfs",
    "shm_size",
    "force_pull",
    "auth",
    "auth_soft_fail",
    "image_pull_timeout",
];

/// What the driver makes of a task's `config`.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub force_pull: bool,
    pub body: ContainerCreateBody,
}

/// The container's name: `<task>-<alloc_id>`, `/` in the task name
/// replaced by `_` (Nomad's).
pub fn container_name(task_name: &str, alloc_id: &str) -> String {
    format!("{}-{alloc_id}", task_name.replace('/', "_"))
}

fn invalid(text: impl Into<String>) -> DriverError {
    DriverError::InvalidConfig(text.into())
}

fn string(config: &Map<String, Value>, key: &str) -> Result<Option<String>, DriverError> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(other) => Err(invalid(format!(
            "docker config {key:?}: expected a string, got {other}"
        ))),
    }
}

fn strings(config: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>, DriverError> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => Ok(text.clone()),
                Value::Number(number) => Ok(number.to_string()),
                other => Err(invalid(format!(
                    "docker config {key:?}: expected a list of strings, got {other}"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(invalid(format!(
            "docker config {key:?}: expected a list of strings, got {other}"
        ))),
    }
}

fn boolean(config: &Map<String, Value>, key: &str) -> Result<bool, DriverError> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(value)) => Ok(*value),
        Some(Value::String(text)) if text == "true" || text == "false" => Ok(text == "true"),
        Some(other) => Err(invalid(format!(
            "docker config {key:?}: expected a bool, got {other}"
        ))),
    }
}

fn integer(config: &Map<String, Value>, key: &str) -> Result<Option<i64>, DriverError> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => number
            .as_i64()
            .filter(|value| *value >= 0)
            .map(Some)
            .ok_or_else(|| invalid(format!("docker config {key:?}: expected a whole number"))),
        Some(Value::String(text)) => text
            .parse::<i64>()
            .ok()
            .filter(|value| *value >= 0)
            .map(Some)
            .ok_or_else(|| invalid(format!("docker config {key:?}: expected a whole number"))),
        Some(other) => Err(invalid(format!(
            "docker config {key:?}: expected a number, got {other}"
        ))),
    }
}

/// A map block (`labels`, `port_map`): HCL gives an object, or a list of
/// objects when the block is written more than once.
fn string_map(
    config: &Map<String, Value>,
    key: &str,
) -> Result<BTreeMap<String, String>, DriverError> {
    let mut map = BTreeMap::new();
    let objects: Vec<&Map<String, Value>> = match config.get(key) {
        None | Some(Value::Null) => return Ok(map),
        Some(Value::Object(object)) => vec![object],
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_object()
                    .ok_or_else(|| invalid(format!("docker config {key:?}: expected a map")))
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(invalid(format!(
                "docker config {key:?}: expected a map, got {other}"
            )))
        }
    };
    for object in objects {
        for (name, value) in object {
            let value = match value {
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                Value::Bool(flag) => flag.to_string(),
                other => {
                    return Err(invalid(format!(
                        "docker config {key:?}.{name}: expected a string, got {other}"
                    )))
                }
            };
            map.insert(name.clone(), value);
        }
    }
    Ok(map)
}

/// A path under the task directory, refusing anything that climbs out.
fn under_task_dir(task_dir: &Path, relative: &str) -> Result<PathBuf, DriverError> {
    let path = Path::new(relative);
    if path
        .components()
        .any(|component| !matches!(component, Component::Normal(_) | Component::CurDir))
    {
        return Err(invalid(format!(
            "volume host path {relative:?} must stay inside the task directory"
        )));
    }
    Ok(task_dir.join(path))
}

/// `volumes = ["host:container[:ro|rw]"]`: a relative host path is under
/// the task directory; an absolute one is refused, as Nomad refuses it
/// while the plugin's `volumes.enabled` is off (its default).
fn volume_binds(config: &TaskConfig) -> Result<Vec<String>, DriverError> {
    let mut binds = Vec::new();
    for volume in strings(&config.config, "volumes")?.unwrap_or_default() {
        let parts: Vec<&str> = volume.split(':').collect();
        let (host, container, mode) = match parts.as_slice() {
            [host, container] => (*host, *container, None),
            [host, container, mode] => (*host, *container, Some(*mode)),
            _ => return Err(invalid(format!("invalid docker volume: {volume:?}"))),
        };
        if host.starts_with('/') {
            return Err(invalid(format!(
                "volumes are not enabled; cannot mount host paths: {host:?}"
            )));
        }
        let host = under_task_dir(&config.task_dir, host)?;
        let mut bind = format!("{}:{container}", host.display());
        match mode {
            Some(mode @ ("ro" | "rw")) => bind.push_str(&format!(":{mode}")),
            Some(other) => {
                return Err(invalid(format!(
                    "invalid docker volume mode {other:?} in {volume:?}"
                )))
            }
            None => {}
        }
        binds.push(bind);
    }
    Ok(binds)
}

/// `mount { type = "bind" | "volume" | "tmpfs", target, source, readonly }`.
fn mounts(config: &TaskConfig) -> Result<Vec<bollard::models::Mount>, DriverError> {
    use bollard::models::{Mount, MountType};
    let mut found = Vec::new();
    for key in ["mount", "mounts"] {
        match config.config.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Object(object)) => found.push(object.clone()),
            Some(Value::Array(items)) => {
                for item in items {
                    let object = item.as_object().ok_or_else(|| {
                        invalid(format!("docker config {key:?}: expected blocks"))
                    })?;
                    found.push(object.clone());
                }
            }
            Some(other) => {
                return Err(invalid(format!(
                    "docker config {key:?}: expected blocks, got {other}"
                )))
            }
        }
    }
    let mut mounts = Vec::new();
    for block in found {
        let kind = string(&block, "type")?.unwrap_or_else(|| "volume".to_string());
        let target = string(&block, "target")?
            .filter(|target| !target.is_empty())
            .ok_or_else(|| invalid("docker mount: \"target\" is required"))?;
        let source = string(&block, "source")?.unwrap_or_default();
        let read_only = boolean(&block, "readonly")?;
        let (typ, source) = match kind.as_str() {
            "bind" => {
                if source.starts_with('/') {
                    return Err(invalid(format!(
                        "volumes are not enabled; cannot mount host paths: {source:?}"
                    )));
                }
                let host = under_task_dir(&config.task_dir, &source)?;
                (MountType::BIND, Some(host.display().to_string()))
            }
            "volume" => (MountType::VOLUME, Some(source).filter(|s| !s.is_empty())),
            "tmpfs" => (MountType::TMPFS, None),
            other => {
                return Err(invalid(format!(
                    "docker mount: unknown type {other:?} (bind, volume or tmpfs)"
                )))
            }
        };
        mounts.push(Mount {
            target: Some(target),
            source,
            typ: Some(typ),
            read_only: Some(read_only),
            ..Default::default()
        });
    }
    Ok(mounts)
}

/// The environment the container sees: the task's, with the directory
/// variables pointing where the directories are mounted inside.
fn container_env(config: &TaskConfig) -> Vec<String> {
    let mut env = config.env.clone();
    for (key, value) in [
        ("NOMAD_ALLOC_DIR", "/alloc"),
        ("NOMAD_TASK_DIR", "/local"),
        ("NOMAD_SECRETS_DIR", "/secrets"),
    ] {
        env.insert(key.to_string(), value.to_string());
    }
    env.iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect()
}

/// Ports to publish: each `ports` label at the group's host address and
/// port, to its `to` port (or the same number), as both tcp and udp; each
/// legacy `port_map` label of a task network likewise.
fn port_bindings(config: &TaskConfig) -> Result<(Vec<String>, PortMap), DriverError> {
    let env = &config.env;
    let mut wanted: Vec<(String, String)> = Vec::new();
    for label in strings(&config.config, "ports")?.unwrap_or_default() {
        let key = crate::env_safe(&label);
        let container = env
            .get(&format!("NOMAD_PORT_{key}"))
            .ok_or_else(|| invalid(format!("Port {label:?} not found, check network block")))?;
        wanted.push((label, container.clone()));
    }
    for (label, container) in string_map(&config.config, "port_map")? {
        let key = crate::env_safe(&label);
        if env.contains_key(&format!("NOMAD_ALLOC_PORT_{key}")) {
            return Err(invalid(
                "'port_map' cannot map group network ports, use 'ports' instead",
            ));
        }
        if !env.contains_key(&format!("NOMAD_HOST_PORT_{key}")) {
            return Err(invalid(format!(
                "Port {label:?} not found, check network block"
            )));
        }
        wanted.push((label, container));
    }
    let mut exposed = Vec::new();
    let mut bindings = HashMap::new();
    for (label, container) in wanted {
        let key = crate::env_safe(&label);
        let host_port = env
            .get(&format!("NOMAD_HOST_PORT_{key}"))
            .cloned()
            .unwrap_or_else(|| container.clone());
        let host_ip = env.get(&format!("NOMAD_HOST_IP_{key}")).cloned();
        for protocol in ["tcp", "udp"] {
            let port = format!("{container}/{protocol}");
            exposed.push(port.clone());
            bindings.insert(
                port,
                Some(vec![PortBinding {
                    host_ip: host_ip.clone(),
                    host_port: Some(host_port.clone()),
                }]),
            );
        }
    }
    Ok((exposed, bindings))
}

/// Builds the container for `config` (the task's whole configuration).
pub fn container_spec(config: &TaskConfig) -> Result<ContainerSpec, DriverError> {
    let block = &config.config;
    if let Some(key) = block.keys().find(|key| !KNOWN_KEYS.contains(&key.as_str())) {
        return Err(invalid(format!(
            "docker config: an argument named {key:?} is not expected here"
        )));
    }
    let image = string(block, "image")?
        .map(|image| image.trim_start_matches("https://").to_string())
        .filter(|image| !image.is_empty())
        .ok_or_else(|| invalid("docker config: \"image\" is required"))?;
    if boolean(block, "privileged")? {
        return Err(invalid(
            "Docker privileged mode is disabled on this Nomad agent",
        ));
    }
    let mut cmd = Vec::new();
    if let Some(command) = string(block, "command")?.filter(|c| !c.is_empty()) {
        cmd.push(command);
    }
    // Without `command`, `args` alone become the image's command (its
    // entrypoint then receives them), as Nomad does.
    cmd.extend(strings(block, "args")?.unwrap_or_default());

    let mut labels: HashMap<String, String> = string_map(block, "labels")?.into_iter().collect();
    labels.insert(LABEL_ALLOC_ID.into(), config.alloc_id.clone());
    labels.insert(LABEL_JOB_NAME.into(), config.job_name.clone());
    labels.insert(LABEL_TASK_NAME.into(), config.task_name.clone());
    labels.insert(LABEL_TASK_ID.into(), config.id.clone());
    labels.insert(LABEL_ATTEMPT.into(), config.attempt.clone());

    let task_dir = &config.task_dir;
    let mut binds = vec![
        format!("{}:/alloc", config.alloc_dir.join("alloc").display()),
        format!("{}:/local", task_dir.join("local").display()),
        format!("{}:/secrets", task_dir.join("secrets").display()),
    ];
    binds.extend(volume_binds(config)?);
    for mount in &config.mounts {
        let target = match mount.task_path.starts_with('/') {
            true => mount.task_path.clone(),
            false => format!("/{}", mount.task_path),
        };
        let mode = if mount.read_only { ":ro" } else { "" };
        binds.push(format!("{}:{target}{mode}", mount.host_path.display()));
    }

    let mib = 1024 * 1024;
    let soft = i64::try_from(config.resources.memory_mb).unwrap_or(i64::MAX / mib);
    let hard = integer(block, "memory_hard_limit")?
        .unwrap_or(i64::try_from(config.resources.memory_max_mb).unwrap_or(0));
    let (memory, reservation) = match hard > soft {
        true => (hard * mib, Some(soft * mib)),
        false => (soft * mib, None),
    };
    let (exposed, bindings) = port_bindings(config)?;
    let network_mode = string(block, "network_mode")?.filter(|mode| !mode.is_empty());
    // A container sharing another's network namespace publishes nothing.
    let shares_network = network_mode
        .as_deref()
        .is_some_and(|mode| mode.starts_with("container:"));

    let host_config = HostConfig {
        binds: Some(binds),
        mounts: Some(mounts(config)?).filter(|mounts| !mounts.is_empty()),
        memory: Some(memory).filter(|memory| *memory > 0),
        memory_reservation: reservation,
        cpu_shares: Some(i64::try_from(config.resources.cpu).unwrap_or(1024).max(2)),
        network_mode,
        port_bindings: Some(bindings).filter(|b| !b.is_empty() && !shares_network),
        init: Some(boolean(block, "init")?).filter(|init| *init),
        cap_add: strings(block, "cap_add")?,
        cap_drop: strings(block, "cap_drop")?,
        dns: strings(block, "dns_servers")?,
        dns_search: strings(block, "dns_search_domains")?,
        extra_hosts: strings(block, "extra_hosts")?,
        pid_mode: string(block, "pid_mode")?,
        ipc_mode: string(block, "ipc_mode")?,
        readonly_rootfs: Some(boolean(block, "readonly_rootfs")?).filter(|ro| *ro),
        shm_size: integer(block, "shm_size")?,
        ..Default::default()
    };
    let body = ContainerCreateBody {
        image: Some(image.clone()),
        cmd: Some(cmd).filter(|cmd| !cmd.is_empty()),
        entrypoint: strings(block, "entrypoint")?,
        env: Some(container_env(config)),
        labels: Some(labels),
        working_dir: string(block, "work_dir")?,
        hostname: string(block, "hostname")?,
        user: Some(config.user.clone()).filter(|user| !user.is_empty()),
        tty: Some(boolean(block, "tty")?).filter(|tty| *tty),
        open_stdin: Some(boolean(block, "interactive")?).filter(|open| *open),
        exposed_ports: Some(exposed).filter(|exposed| !exposed.is_empty() && !shares_network),
        host_config: Some(host_config),
        ..Default::default()
    };
    Ok(ContainerSpec {
        name: container_name(&config.task_name, &config.alloc_id),
        image,
        force_pull: boolean(block, "force_pull")?,
        body,
    })
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
