//! Running the `caravan` CLI as a user would: the real binary, pointed at
//! an agent through `NOMAD_ADDR`, its exit code and both streams captured.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::jobs::{register, wait_allocs, with_status, SERVER_AND_CLIENT};
use super::{Agent, BINARY};

/// What a command printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts success and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "command failed: {self:#?}");
        &self.stdout
    }

    /// Asserts exit code 1 and returns stderr.
    pub fn failed(&self) -> &str {
        assert_eq!(self.code, 1, "command did not fail with 1: {self:#?}");
        &self.stderr
    }

    /// stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|error| panic!("stdout is not JSON ({error}): {self:#?}"))
    }
}

/// `caravan args...` against `agent`, with no token or other NOMAD_*
/// setting from the test's environment.
pub fn caravan(agent: &Agent, args: &[&str]) -> Run {
    caravan_with(&[("NOMAD_ADDR", &agent.url(""))], args)
}

/// `caravan args...` with exactly these `NOMAD_*` variables.
pub fn caravan_with(env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut command = Command::new(BINARY);
    command.args(args).stdin(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("NOMAD_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    let output = command.output().expect("caravan runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `caravan args...` that must finish within `limit` (a follow that never
/// ends would otherwise hang the test): killed and failed if it does not.
pub fn caravan_within(agent: &Agent, limit: Duration, args: &[&str]) -> Run {
    let mut child = Command::new(BINARY)
        .args(args)
        .env("NOMAD_ADDR", agent.url(""))
        .env_remove("NOMAD_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("caravan runs");
    // Pipes are drained while waiting so a chatty command cannot block.
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let out = read_all(Box::new(child.stdout.take().expect("stdout")));
    let err = read_all(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "caravan {args:?} did not finish within {limit:?}; stdout so far:\n{}",
                out.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Waits (bounded) until `check` holds for what `caravan args` prints.
pub fn wait_output(agent: &Agent, args: &[&str], what: &str, check: impl Fn(&Run) -> bool) -> Run {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let run = caravan(agent, args);
        if check(&run) {
            return run;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {run:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A one-node cluster whose node is ready, and the node's ID.
pub fn cluster() -> (Agent, String) {
    let agent = Agent::start_with_data_dir(&[], SERVER_AND_CLIENT);
    wait_output(&agent, &["node", "status"], "the node to be ready", |run| {
        run.code == 0 && run.stdout.contains("ready")
    });
    let nodes = agent.get("/v1/nodes").json();
    let id = nodes[0]["ID"].as_str().expect("node ID").to_string();
    (agent, id)
}

/// Registers `job` and waits until one of its allocations runs.
pub fn running_alloc(agent: &Agent, job: &Value) -> String {
    register(agent, job);
    let id = job["ID"].as_str().expect("job ID");
    let allocs = wait_allocs(agent, id, "a running allocation", |allocs| {
        !with_status(allocs, "running").is_empty()
    });
    let running = with_status(&allocs, "running");
    running[0]["ID"].as_str().expect("alloc ID").to_string()
}

pub fn line_with<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find(|line| line.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{text}"))
}

/// Asserts that `text` has the `key = value` line (Nomad's key/value
/// block, `=` aligned).
pub fn assert_kv(text: &str, key: &str, value: &str) {
    let line = line_with(text, &format!("{key} "));
    let (_, got) = line.split_once(" = ").unwrap_or((line, ""));
    assert_eq!(got, value, "{key} in:\n{text}");
}

/// The cells of a table's header line.
pub fn header_cells(line: &str) -> Vec<&str> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// `caravan args...`: its exit code and stdout's bytes as they are.
pub fn caravan_bytes(agent: &Agent, args: &[&str]) -> (i32, Vec<u8>) {
    let output = Command::new(BINARY)
        .args(args)
        .env("NOMAD_ADDR", agent.url(""))
        .env_remove("NOMAD_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("caravan runs");
    (output.status.code().unwrap_or(-1), output.stdout)
}
