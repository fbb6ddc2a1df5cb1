//! Tests that need the Docker Engine and a locally built image
//! (`scripts/build-test-image.sh`, run by the test command; there is no
//! registry). Under CI both must be there; elsewhere a test without them
//! says clearly that it was skipped.

use std::process::Command;

/// The task image of the docker driver's tests: static busybox alone.
pub const TASK_IMAGE: &str = "caravan-busybox:test";

/// Whether the engine answers and `image` is present; `what` names the
/// test for the skip message. Panics under `CI=true` when either is not.
pub fn ready(image: &str, what: &str) -> bool {
    let engine = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|output| output.status.success());
    let present = engine
        && Command::new("docker")
            .args(["image", "inspect", image])
            .output()
            .is_ok_and(|output| output.status.success());
    let in_ci = std::env::var("CI").is_ok_and(|value| value == "true");
    match (engine, present) {
        (true, true) => true,
        (false, _) if in_ci => {
            panic!("CI=true but no Docker engine answers: {what} cannot run")
        }
        (true, false) if in_ci => {
            panic!("CI=true but the image {image} is missing: run scripts/build-test-image.sh")
        }
        (false, _) => {
            eprintln!("SKIPPED: no Docker engine here; {what} needs one (it runs under CI)");
            false
        }
        (true, false) => {
            eprintln!("SKIPPED: image {image} missing; scripts/test.sh builds it");
            false
        }
    }
}

/// Runs `docker args...`: its trimmed stdout, or its stderr as the error.
pub fn docker(args: &[&str]) -> Result<String, String> {
    let output = Command::new("docker")
        .args(args)
        .output()
        .map_err(|error| error.to_string())?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
    }
}

/// The IDs of every container (running or not) labelled with `alloc_id`.
pub fn containers_of(alloc_id: &str) -> Vec<String> {
    docker(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label=com.hashicorp.nomad.alloc_id={alloc_id}"),
    ])
    .unwrap_or_default()
    .lines()
    .map(str::to_string)
    .collect()
}

/// Removes every container of the allocations whose IDs it holds, so a
/// failed test leaves nothing running.
pub struct ContainerReaper(pub std::sync::Mutex<Vec<String>>);

impl ContainerReaper {
    pub fn new() -> Self {
        Self(std::sync::Mutex::new(Vec::new()))
    }

    pub fn watch(&self, alloc_id: &str) {
        if let Ok(mut ids) = self.0.lock() {
            ids.push(alloc_id.to_string());
        }
    }
}

impl Drop for ContainerReaper {
    fn drop(&mut self) {
        let ids = self.0.lock().map(|ids| ids.clone()).unwrap_or_default();
        for alloc_id in ids {
            for container in containers_of(&alloc_id) {
                let _ = docker(&["rm", "-f", &container]);
            }
        }
    }
}
