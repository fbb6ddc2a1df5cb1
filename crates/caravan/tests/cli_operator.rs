//! `operator gossip keyring`, `node config` and `operator api` run as a
//! user runs them: the real binary against real agents.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::cli::{caravan, caravan_with, Run};
use common::{Agent, BINARY};

const KEY: &str = "HVmWtNSxZ0ZbQl8rFNz2qUzDcT26IiCxDxdeL+qp1WY=";
const OTHER_KEY: &str = "cg8StVXbQJ0gPvMd9o7yrg==";

/// The keys `keyring list` prints, after its two header lines.
fn listed_keys(agent: &Agent) -> Vec<String> {
    let run = caravan(agent, &["operator", "gossip", "keyring", "list"]);
    let mut lines = run.ok().lines();
    assert_eq!(lines.next(), Some("Gathering installed encryption keys..."));
    assert_eq!(lines.next(), Some("Key"), "{run:?}");
    let mut keys: Vec<String> = lines.map(str::to_string).collect();
    keys.sort();
    keys
}

#[test]
fn gossip_keyring_lists_installs_uses_and_removes() {
    let agent =
        Agent::start_with_data_dir(&["-server", "-bootstrap-expect", "1", "-encrypt", KEY], "");
    assert_eq!(listed_keys(&agent), [KEY]);

    let keyring =
        |action: &str, key: &str| caravan(&agent, &["operator", "gossip", "keyring", action, key]);
    let install = keyring("install", OTHER_KEY);
    assert_eq!(install.ok(), "Installing new gossip encryption key...\n");
    let mut both = vec![KEY.to_string(), OTHER_KEY.to_string()];
    both.sort();
    assert_eq!(listed_keys(&agent), both);

    // The primary key cannot go: the server's reason, exit 1.
    let refused = keyring("remove", KEY);
    assert!(
        refused
            .failed()
            .starts_with("error: Unexpected response code: 500"),
        "{refused:?}"
    );
    assert!(refused.stderr.contains("primary key"), "{refused:?}");

    let switch = keyring("use", OTHER_KEY);
    assert_eq!(switch.ok(), "Changing primary gossip encryption key...\n");
    let remove = keyring("remove", KEY);
    assert_eq!(remove.ok(), "Removing gossip encryption key...\n");
    assert_eq!(listed_keys(&agent), [OTHER_KEY]);

    let usage = caravan(&agent, &["operator", "gossip", "keyring", "use"]);
    assert!(
        usage
            .failed()
            .contains("This command requires one argument: <key>"),
        "{usage:?}"
    );

    // generate and keygen stay the binary's: a fresh 32-byte key each.
    for args in [
        &["operator", "gossip", "keyring", "generate"][..],
        &["operator", "keygen"],
    ] {
        let key = caravan(&agent, args);
        assert_eq!(key.ok().trim().len(), 44, "{key:?}");
    }
}

#[test]
fn gossip_keyring_list_without_encryption_fails() {
    let agent = Agent::dev();
    let run = caravan(&agent, &["operator", "gossip", "keyring", "list"]);
    assert!(run.failed().contains("encryption not enabled"), "{run:?}");
}

#[test]
fn node_config_lists_and_replaces_the_servers() {
    let agent = Agent::dev();
    let servers = caravan(&agent, &["node", "config", "-servers"]);
    assert_eq!(
        servers.ok().lines().collect::<Vec<_>>(),
        [agent.rpc_address()]
    );

    // Another server that answers pings: the list becomes it alone.
    let other = Agent::server();
    let update = caravan(
        &agent,
        &["node", "config", "-update-servers", &other.rpc_address()],
    );
    assert_eq!(update.ok(), "Updated server list\n");
    let servers = caravan(&agent, &["node", "config", "-servers"]);
    assert_eq!(
        servers.ok().lines().collect::<Vec<_>>(),
        [other.rpc_address()]
    );

    let unreachable = caravan(
        &agent,
        &["node", "config", "-update-servers", "127.0.0.1:1"],
    );
    assert!(
        unreachable
            .failed()
            .starts_with("Error updating server list: Unexpected response code: 400"),
        "{unreachable:?}"
    );
    let none = caravan(&agent, &["node", "config"]);
    assert!(
        none.failed()
            .contains("The '-servers' or '-update-servers' flag(s) must be set"),
        "{none:?}"
    );
    let no_address = caravan(&agent, &["node", "config", "-update-servers"]);
    assert!(
        no_address.failed().contains("at least one server argument"),
        "{no_address:?}"
    );
}

/// `caravan args...` against `agent` with `stdin` piped in.
fn with_stdin(agent: &Agent, args: &[&str], stdin: &str) -> Run {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, _) in std::env::vars() {
        if name.starts_with("NOMAD_") {
            command.env_remove(name);
        }
    }
    command.env("NOMAD_ADDR", agent.url(""));
    let mut child = command.spawn().expect("caravan runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let output = child.wait_with_output().expect("caravan ends");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn scheduler_algorithm(agent: &Agent) -> serde_json::Value {
    let run = caravan(
        agent,
        &["operator", "api", "/v1/operator/scheduler/configuration"],
    );
    run.json()["SchedulerConfig"]["SchedulerAlgorithm"].clone()
}

#[test]
fn operator_api_calls_any_path() {
    let agent = Agent::dev();
    let jobs = caravan(&agent, &["operator", "api", "/v1/jobs"]);
    assert!(jobs.json().is_array(), "{jobs:?}");
    let full = caravan(&agent, &["operator", "api", &agent.url("/v1/jobs")]);
    assert!(full.json().is_array(), "{full:?}");
    let filtered = caravan(
        &agent,
        &["operator", "api", "-filter", "Name == \"none\"", "/v1/jobs"],
    );
    assert_eq!(filtered.json(), serde_json::json!([]));

    let body =
        r#"{"SchedulerAlgorithm":"spread","PreemptionConfig":{"SystemSchedulerEnabled":true}}"#;
    let put = caravan(
        &agent,
        &[
            "operator",
            "api",
            "-X",
            "PUT",
            "-d",
            body,
            "/v1/operator/scheduler/configuration",
        ],
    );
    assert_eq!(put.json()["Updated"], true, "{put:?}");
    assert_eq!(scheduler_algorithm(&agent), "spread");

    // From a file, and from stdin (piped data defaults the method to POST).
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), body.replace("spread", "binpack")).expect("write body");
    let at_file = format!("@{}", file.path().display());
    let put = caravan(
        &agent,
        &[
            "operator",
            "api",
            "-X",
            "PUT",
            "-d",
            &at_file,
            "/v1/operator/scheduler/configuration",
        ],
    );
    assert_eq!(put.json()["Updated"], true, "{put:?}");
    assert_eq!(scheduler_algorithm(&agent), "binpack");
    let piped = with_stdin(
        &agent,
        &[
            "operator",
            "api",
            "-verbose",
            "/v1/operator/scheduler/configuration",
        ],
        body,
    );
    assert_eq!(piped.json()["Updated"], true, "{piped:?}");
    assert!(
        piped
            .stderr
            .contains("> POST /v1/operator/scheduler/configuration"),
        "{piped:?}"
    );
    assert!(piped.stderr.contains("< 200"), "{piped:?}");
    assert_eq!(scheduler_algorithm(&agent), "spread");

    let missing = caravan(&agent, &["operator", "api", "/v1/nothing-here"]);
    assert!(missing.failed().contains("404"), "{missing:?}");
    assert!(missing.stdout.is_empty(), "{missing:?}");

    let dry = caravan(
        &agent,
        &[
            "operator", "api", "-dryrun", "-X", "PUT", "-d", "{}", "/v1/x",
        ],
    );
    assert_eq!(
        dry.ok().trim(),
        format!(
            "curl \\\n  -X PUT \\\n  --data-binary '{{}}' \\\n  '{}'",
            agent.url("/v1/x")
        )
    );
    let usage = caravan(&agent, &["operator", "api"]);
    assert!(
        usage.failed().contains("A path or URL is required"),
        "{usage:?}"
    );
}

#[test]
fn operator_api_sends_the_token_only_to_the_configured_agent() {
    let agent = Agent::start(&["-dev", "-acl-enabled"], "");
    let bootstrap = caravan(
        &agent,
        &["operator", "api", "-X", "POST", "/v1/acl/bootstrap"],
    );
    let secret = bootstrap.json()["SecretID"]
        .as_str()
        .expect("a secret")
        .to_string();

    let denied = caravan(&agent, &["operator", "api", "/v1/jobs"]);
    assert!(denied.failed().contains("403"), "{denied:?}");
    let allowed = caravan(&agent, &["operator", "api", "-token", &secret, "/v1/jobs"]);
    assert!(allowed.json().is_array(), "{allowed:?}");
    let env = caravan_with(
        &[("NOMAD_ADDR", &agent.url("")), ("NOMAD_TOKEN", &secret)],
        &["operator", "api", &agent.url("/v1/jobs")],
    );
    assert!(env.json().is_array(), "{env:?}");

    // `localhost` is not the configured `127.0.0.1`: the token stays home.
    let elsewhere = format!("http://localhost:{}/v1/jobs", agent.http_port);
    let dropped = caravan(&agent, &["operator", "api", "-token", &secret, &elsewhere]);
    assert!(dropped.failed().contains("403"), "{dropped:?}");
    assert!(dropped.stderr.contains("not sent"), "{dropped:?}");
    let header = format!("X-Nomad-Token: {secret}");
    let explicit = caravan(&agent, &["operator", "api", "-H", &header, &elsewhere]);
    assert!(explicit.json().is_array(), "{explicit:?}");
}

/// `operator raft transfer-leadership` in a three-server cluster: the
/// follower named by its Raft address becomes the leader the servers agree
/// on; an unknown peer is an error.
#[test]
fn transfer_leadership_hands_the_cluster_to_the_named_server() {
    let cluster = common::cluster::Cluster::start(3, common::cluster::TEST_AUTOPILOT);
    cluster.wait_for_voters(3);
    let follower = cluster.follower();
    let target = cluster.servers[follower].rpc_address();
    let leader = cluster.leader();
    let agent = &cluster.servers[leader];
    let run = common::cli::caravan(
        agent,
        &[
            "operator",
            "raft",
            "transfer-leadership",
            "-peer-address",
            &target,
        ],
    );
    assert!(
        run.ok()
            .contains("Transferred leadership to peer with address"),
        "{run:#?}"
    );
    cluster.eventually("the named server to lead", || {
        cluster.servers[follower]
            .get("/v1/status/leader?stale")
            .json()
            .as_str()
            == Some(target.as_str())
    });
    let unknown = common::cli::caravan(
        agent,
        &[
            "operator",
            "raft",
            "transfer-leadership",
            "-peer-address",
            "127.0.0.1:1",
        ],
    );
    assert_eq!(unknown.code, 1, "{unknown:#?}");
    assert!(
        unknown
            .stderr
            .contains("Error transferring leadership to peer"),
        "{unknown:#?}"
    );
}

/// `caravan version` and `-version`, with no agent.
#[test]
fn version_needs_no_agent() {
    for flag in ["version", "-version", "--version"] {
        let run = common::cli::caravan_with(&[("NOMAD_ADDR", "http://127.0.0.1:1")], &[flag]);
        assert!(run.ok().starts_with("Caravan v"), "{run:#?}");
        assert!(run.stdout.contains("Nomad API"), "{run:#?}");
    }
}

/// Nomad's top-level aliases reach their commands: `caravan logs` is
/// `caravan alloc logs`, `caravan run` is `caravan job run`.
#[test]
fn top_level_aliases_reach_their_commands() {
    let agent = Agent::dev();
    let logs = common::cli::caravan(&agent, &["logs", "zz"]);
    assert!(
        logs.failed()
            .contains("No allocation(s) with prefix or id \"zz\" found"),
        "{logs:#?}"
    );
    let fs = common::cli::caravan(&agent, &["fs", "-h"]);
    assert!(fs.stderr.contains("caravan alloc fs"), "{fs:#?}");
    let exec = common::cli::caravan(&agent, &["exec", "-h"]);
    assert!(exec.stderr.contains("caravan alloc exec"), "{exec:#?}");
    let run = common::cli::caravan(&agent, &["run", "-output", "/nonexistent.hcl"]);
    assert_eq!(run.code, 1, "{run:#?}");
}
