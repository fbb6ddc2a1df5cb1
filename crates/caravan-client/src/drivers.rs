//! Task driver detection: which of raw_exec, exec and docker this node can
//! run, and their health, with Nomad's attribute names.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use caravan_api_types::node::DriverInfo;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What a driver check found; `UpdateTime` is stamped by the caller when
/// the outcome changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverState {
    pub detected: bool,
    pub healthy: bool,
    pub description: String,
    pub attributes: BTreeMap<String, String>,
}

impl DriverState {
    fn healthy(attributes: BTreeMap<String, String>) -> Self {
        Self {
            detected: true,
            healthy: true,
            description: "Healthy".to_string(),
            attributes,
        }
    }

    fn undetected(description: &str) -> Self {
        Self {
            detected: false,
            healthy: false,
            description: description.to_string(),
            attributes: BTreeMap::new(),
        }
    }

    pub fn to_info(&self, update_time: chrono::DateTime<chrono::Utc>) -> DriverInfo {
        DriverInfo {
            attributes: (!self.attributes.is_empty()).then(|| self.attributes.clone()),
            detected: self.detected,
            healthy: self.healthy,
            health_description: self.description.clone(),
            update_time: Some(update_time),
        }
    }
}

fn one(key: &str, value: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(key.to_string(), value.to_string())])
}

/// raw_exec runs commands as the agent's user; it is off unless enabled.
pub fn raw_exec(enabled: bool) -> DriverState {
    if enabled {
        DriverState::healthy(one("driver.raw_exec", "true"))
    } else {
        DriverState::undetected("disabled")
    }
}

/// exec isolates tasks with cgroups and namespaces: it needs root and a
/// cgroup filesystem.
pub fn exec() -> DriverState {
    if !nix::unistd::Uid::effective().is_root() {
        return DriverState::undetected("Driver must run as root");
    }
    if cgroup_version().is_none() {
        return DriverState::undetected("Failed to find a cgroup mount");
    }
    DriverState::healthy(one("driver.exec", "true"))
}

/// `v2` for a unified hierarchy, `v1` for legacy controllers.
pub fn cgroup_version() -> Option<&'static str> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    let mut version = None;
    for line in mounts.lines() {
        let mut fields = line.split_whitespace();
        let (_, point, kind) = (fields.next(), fields.next()?, fields.next()?);
        if kind == "cgroup2" && point == "/sys/fs/cgroup" {
            return Some("v2");
        }
        if kind == "cgroup" {
            version = Some("v1");
        }
    }
    version
}

/// The Docker Engine socket: `DOCKER_HOST=unix://...` or the default.
fn docker_socket() -> Option<PathBuf> {
    match std::env::var("DOCKER_HOST") {
        Ok(host) => host.strip_prefix("unix://").map(PathBuf::from),
        Err(_) => Some(PathBuf::from("/var/run/docker.sock")),
    }
}

/// A GET against the engine's API over its unix socket.
async fn docker_get(socket: &PathBuf, path: &str) -> std::io::Result<Value> {
    let mut stream = tokio::net::UnixStream::connect(socket).await?;
    let request =
        format!("GET {path} HTTP/1.0\r\nHost: docker\r\nAccept: application/json\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let split = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("malformed response from the docker engine"))?;
    let status_line = String::from_utf8_lossy(&response[..split]);
    if !status_line.starts_with("HTTP/1.0 200") && !status_line.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!(
            "docker engine answered {}",
            status_line.lines().next().unwrap_or_default()
        )));
    }
    serde_json::from_slice(&response[split + 4..]).map_err(std::io::Error::other)
}

/// Docker, detected through the Docker Engine API.
pub async fn docker() -> DriverState {
    let Some(socket) = docker_socket() else {
        return DriverState::undetected(
            "Failed to connect to docker daemon: DOCKER_HOST is not a unix socket",
        );
    };
    let probe = async {
        let version = docker_get(&socket, "/version").await?;
        let info = docker_get(&socket, "/info").await.unwrap_or(Value::Null);
        let bridge = docker_get(&socket, "/networks/bridge")
            .await
            .unwrap_or(Value::Null);
        Ok::<_, std::io::Error>((version, info, bridge))
    };
    match tokio::time::timeout(Duration::from_secs(5), probe).await {
        Ok(Ok((version, info, bridge))) => {
            let text = |value: &Value| value.as_str().unwrap_or_default().to_string();
            let mut attributes = one("driver.docker", "true");
            attributes.insert("driver.docker.version".into(), text(&version["Version"]));
            attributes.insert("driver.docker.os_type".into(), text(&version["Os"]));
            attributes.insert("driver.docker.volumes.enabled".into(), "true".into());
            if let Some(runtimes) = info["Runtimes"].as_object() {
                let names: Vec<&str> = runtimes.keys().map(String::as_str).collect();
                attributes.insert("driver.docker.runtimes".into(), names.join(","));
            }
            if let Some(gateway) = bridge["IPAM"]["Config"][0]["Gateway"].as_str() {
                attributes.insert("driver.docker.bridge_ip".into(), gateway.to_string());
            }
            DriverState::healthy(attributes)
        }
        Ok(Err(error)) => {
            DriverState::undetected(&format!("Failed to connect to docker daemon: {error}"))
        }
        Err(_) => DriverState::undetected("Failed to connect to docker daemon: timed out"),
    }
}

/// Node events for drivers whose health changed between two checks, as
/// Nomad's client reports them (subsystem `Driver`, the new health
/// description as message, the driver's name in the details).
pub fn health_events(
    previous: &BTreeMap<String, DriverState>,
    fresh: &BTreeMap<String, DriverState>,
) -> Vec<caravan_api_types::node::NodeEvent> {
    fresh
        .iter()
        .filter(|(name, state)| {
            previous.get(*name).is_none_or(|before| {
                before.healthy != state.healthy || before.description != state.description
            })
        })
        .map(|(name, state)| {
            caravan_api_types::node::NodeEvent::new(
                caravan_api_types::node::SUBSYSTEM_DRIVER,
                &state.description,
            )
            .with_detail("driver", name)
        })
        .collect()
}

/// Every driver's state, by name.
pub async fn detect_all(raw_exec_enabled: bool) -> BTreeMap<String, DriverState> {
    BTreeMap::from([
        ("raw_exec".to_string(), raw_exec(raw_exec_enabled)),
        ("exec".to_string(), exec()),
        ("docker".to_string(), docker().await),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_health_change_becomes_a_driver_event() {
        let before = BTreeMap::from([
            ("raw_exec".to_string(), raw_exec(true)),
            ("docker".to_string(), DriverState::healthy(BTreeMap::new())),
        ]);
        let mut after = before.clone();
        after.insert(
            "docker".to_string(),
            DriverState::undetected("Failed to connect to docker daemon: gone"),
        );
        let events = health_events(&before, &after);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].subsystem, "Driver");
        assert_eq!(
            events[0].message,
            "Failed to connect to docker daemon: gone"
        );
        assert_eq!(events[0].details.as_ref().unwrap()["driver"], "docker");
        assert!(health_events(&after, &after).is_empty());
    }
}
