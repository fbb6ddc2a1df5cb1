//! Running the `caravan` CLI as a user would: the real binary, pointed at
//! an agent through `NOMAD_ADDR`, its exit code and both streams captured.

use std::process::{Command, Stdio};

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
