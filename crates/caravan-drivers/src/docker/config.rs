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
    /// The container, but for the binds of [`Self::task_binds`].
    pub body: ContainerCreateBody,
    /// Binds of task paths, to check and add at start.
    pub task_binds: Vec<TaskBind>,
    /// How long a pull may take (`image_pull_timeout`, Nomad's 5m default).
    pub pull_timeout: std::time::Duration,
}

/// Nomad's default `image_pull_timeout`.
const DEFAULT_PULL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// A Go-style duration of one unit (`90s`, `5m`, `1h`), as
/// `image_pull_timeout` is written.
fn duration(
    config: &Map<String, Value>,
    key: &str,
) -> Result<Option<std::time::Duration>, DriverError> {
    let Some(text) = string(config, key)? else {
        return Ok(None);
    };
    let bad = || {
        invalid(format!(
            "docker config {key:?}: {text:?} is not a duration like \"5m\""
        ))
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => number,
        "m" => number.saturating_mul(60),
        "h" => number.saturating_mul(3600),
        _ => return Err(bad()),
    };
    Ok(Some(std::time::Duration::from_secs(seconds)))
}

/// Capabilities a task may add: Docker's default set (Nomad's default
/// `allow_caps`). Any other (`SYS_ADMIN`, `DAC_READ_SEARCH`, `ALL`, ...)
/// opens known ways out of a container.
const ALLOWED_CAPS: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "NET_RAW",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// `cap_add` within [`ALLOWED_CAPS`] (with or without `CAP_`, any case).
fn allowed_caps(config: &Map<String, Value>) -> Result<Option<Vec<String>>, DriverError> {
    let Some(caps) = strings(config, "cap_add")? else {
        return Ok(None);
    };
    let refused: Vec<String> = caps
        .iter()
        .map(|cap| cap.to_ascii_uppercase())
        .map(|cap| cap.strip_prefix("CAP_").map(str::to_string).unwrap_or(cap))
        .filter(|cap| !ALLOWED_CAPS.contains(&cap.as_str()))
        .collect();
    if !refused.is_empty() {
        return Err(invalid(format!(
            "Docker driver doesn't have the following caps allowlisted on this Nomad agent: {refused:?}"
        )));
    }
    Ok(Some(caps))
}

/// `pid_mode` and `ipc_mode`: the host's namespaces are the privileged
/// modes Nomad refuses unless privileged containers are allowed.
fn namespace_mode(config: &Map<String, Value>, key: &str) -> Result<Option<String>, DriverError> {
    let mode = string(config, key)?.filter(|mode| !mode.is_empty());
    if mode.as_deref() == Some("host") {
        return Err(invalid(format!(
            "docker config {key:?}: \"host\" is not allowed on this agent"
        )));
    }
    Ok(mode)
}

/// The image as the engine pulls it: a name with no tag or digest means
/// `:latest` (the engine would pull every tag of the repository).
pub fn image_reference(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.contains(':') || image.contains('@') {
        true => image.to_string(),
        false => format!("{image}:latest"),
    }
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
/// Names under the task directory no container may reach: the drivers'
/// own records and the task's private files.
const RESERVED: &[&str] = &[".caravan", "private"];

fn under_task_dir(task_dir: &Path, relative: &str) -> Result<PathBuf, DriverError> {
    let path = Path::new(relative);
    let outside = || {
        invalid(format!(
            "volume host path {relative:?} must name a path inside the task directory"
        ))
    };
    if path
        .components()
        .any(|component| !matches!(component, Component::Normal(_) | Component::CurDir))
    {
        return Err(outside());
    }
    // Not the whole task directory (which holds the driver's records),
    // and nothing reserved.
    let first = path
        .components()
        .find_map(|component| match component {
            Component::Normal(name) => Some(name),
            _ => None,
        })
        .ok_or_else(outside)?;
    if RESERVED.iter().any(|reserved| first == *reserved) {
        return Err(outside());
    }
    Ok(task_dir.join(path))
}

/// `volumes = ["host:container[:ro|rw]"]`: a relative host path is under
/// the task directory; an absolute one is refused, as Nomad refuses it
/// while the plugin's `volumes.enabled` is off (its default).
fn volume_binds(config: &TaskConfig) -> Result<Vec<TaskBind>, DriverError> {
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
        let source = under_task_dir(&config.task_dir, host)?;
        let read_only = match mode {
            Some("ro") => true,
            Some("rw") | None => false,
            Some(other) => {
                return Err(invalid(format!(
                    "invalid docker volume mode {other:?} in {volume:?}"
                )))
            }
        };
        binds.push(TaskBind {
            source,
            target: container.to_string(),
            read_only,
        });
    }
    Ok(binds)
}

/// A bind of a path under the task directory that the task's config asks
/// for: checked again, with links resolved, just before the container is
/// created ([`super::binds`]), since the task may have made links there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskBind {
    pub source: PathBuf,
    pub target: String,
    pub read_only: bool,
}

/// `mount { type = "bind" | "volume" | "tmpfs", target, source, readonly }`:
/// engine mounts, and binds (checked as `volumes` are).
type MountsAndBinds = (Vec<bollard::models::Mount>, Vec<TaskBind>);

fn mounts(config: &TaskConfig) -> Result<MountsAndBinds, DriverError> {
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
    let (mut mounts, mut binds) = (Vec::new(), Vec::new());
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
                binds.push(TaskBind {
                    source: under_task_dir(&config.task_dir, &source)?,
                    target,
                    read_only,
                });
                continue;
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
    Ok((mounts, binds))
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
    let mut task_binds = volume_binds(config)?;
    let (mounts, mount_binds) = mounts(config)?;
    task_binds.extend(mount_binds);
    for mount in &config.mounts {
        let target = match mount.task_path.starts_with('/') {
            true => mount.task_path.clone(),
            false => format!("/{}", mount.task_path),
        };
        let mode = if mount.read_only { ":ro" } else { "" };
        binds.push(format!("{}:{target}{mode}", mount.host_path.display()));
    }

    let bytes = |megabytes: i64| {
        megabytes
            .checked_mul(1024 * 1024)
            .ok_or_else(|| invalid(format!("memory of {megabytes} MB is too large")))
    };
    let soft = i64::try_from(config.resources.memory_mb).unwrap_or(i64::MAX);
    let hard = integer(block, "memory_hard_limit")?
        .unwrap_or(i64::try_from(config.resources.memory_max_mb).unwrap_or(0));
    let (memory, reservation) = match hard > soft {
        true => (bytes(hard)?, Some(bytes(soft)?)),
        false => (bytes(soft)?, None),
    };
    let (exposed, bindings) = port_bindings(config)?;
    let network_mode = string(block, "network_mode")?.filter(|mode| !mode.is_empty());
    // A container sharing another's network namespace publishes nothing.
    let shares_network = network_mode
        .as_deref()
        .is_some_and(|mode| mode.starts_with("container:"));

    let host_config = HostConfig {
        binds: Some(binds),
        mounts: Some(mounts).filter(|mounts| !mounts.is_empty()),
        memory: Some(memory).filter(|memory| *memory > 0),
        memory_reservation: reservation,
        cpu_shares: Some(i64::try_from(config.resources.cpu).unwrap_or(1024).max(2)),
        network_mode,
        port_bindings: Some(bindings).filter(|b| !b.is_empty() && !shares_network),
        init: Some(boolean(block, "init")?).filter(|init| *init),
        cap_add: allowed_caps(block)?,
        cap_drop: strings(block, "cap_drop")?,
        dns: strings(block, "dns_servers")?,
        dns_search: strings(block, "dns_search_domains")?,
        extra_hosts: strings(block, "extra_hosts")?,
        pid_mode: namespace_mode(block, "pid_mode")?,
        ipc_mode: namespace_mode(block, "ipc_mode")?,
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
        task_binds,
        pull_timeout: duration(block, "image_pull_timeout")?.unwrap_or(DEFAULT_PULL_TIMEOUT),
    })
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
