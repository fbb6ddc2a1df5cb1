//! Starting the agent: flags as Go parses them, configuration files, and
//! clear errors that stop the agent.

mod common;

use common::{run_to_exit, Agent};

#[test]
fn python_nomads_ci_command_line_starts_an_agent() {
    let agent = Agent::start(&["-dev", "-node", "pynomad1", "--acl-enabled"], "");
    // ACLs are on: the agent refuses anonymous callers until bootstrapped.
    assert_eq!(agent.get("/v1/agent/self").status, 403);
    let bootstrap = agent.post("/v1/acl/bootstrap", "").json();
    let secret = bootstrap["SecretID"].as_str().unwrap();
    let body = agent
        .request_with_token("GET", "/v1/agent/self", Some(secret), "")
        .json();
    assert_eq!(body["config"]["NodeName"], "pynomad1");
    assert_eq!(body["config"]["ACL"]["Enabled"], true);
}

#[test]
fn ports_from_a_config_file_hold_in_dev_mode() {
    // The harness passes the ports only in a JSON-equivalent HCL file.
    let agent = Agent::dev();
    let body = agent.get("/v1/agent/self").json();
    assert_eq!(body["config"]["Ports"]["HTTP"], agent.http_port);
    assert_eq!(body["config"]["Ports"]["RPC"], agent.rpc_port);
    assert_eq!(body["config"]["Ports"]["Serf"], agent.serf_port);
}

#[test]
fn json_config_files_and_flag_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("extra.json");
    std::fs::write(
        &json,
        r#"{"region": "north", "datacenter": "dc5", "server": [{"default_scheduler_config": {"scheduler_algorithm": "spread"}}]}"#,
    )
    .unwrap();
    let json_path = json.display().to_string();
    let agent = Agent::start(&["-dev", "-config", &json_path, "-dc", "dc6"], "");
    let body = agent.get("/v1/agent/self").json();
    assert_eq!(body["config"]["Region"], "north");
    assert_eq!(body["config"]["Datacenter"], "dc6");
    assert_eq!(
        agent
            .get("/v1/operator/scheduler/configuration?region=north")
            .json()["SchedulerConfig"]["SchedulerAlgorithm"],
        "spread"
    );
}

#[test]
fn unknown_keys_stop_the_agent_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.hcl");
    std::fs::write(
        &path,
        "server {\n  enabled = true\n  bootstrap_expected = 1\n}\n",
    )
    .unwrap();
    let path = path.display().to_string();
    let (status, stderr) = run_to_exit(&["agent", "-dev", "-config", &path]);
    assert!(!status.success());
    assert!(stderr.contains(&path), "{stderr}");
    assert!(stderr.contains("server.bootstrap_expected"), "{stderr}");
}

#[test]
fn bad_values_and_flags_stop_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    std::fs::write(&path, r#"{"server": {"heartbeat_grace": "often"}}"#).unwrap();
    let path = path.display().to_string();
    let (status, stderr) = run_to_exit(&["agent", "-dev", "-config", &path]);
    assert!(!status.success());
    assert!(stderr.contains("server.heartbeat_grace"), "{stderr}");

    for args in [
        &["agent", "-dev", "-bootstrap-expect", "some"][..],
        &["agent", "-dev", "-no-such-flag"],
        &["agent", "-server"],
        &["agent", "-dev", "-config", "/does/not/exist.hcl"],
    ] {
        let (status, stderr) = run_to_exit(args);
        assert!(!status.success(), "{args:?} should fail");
        assert!(stderr.contains("Error"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_taken_port_is_a_clear_error() {
    let agent = Agent::dev();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ports.json");
    std::fs::write(
        &path,
        format!(r#"{{"ports": {{"http": {}}}}}"#, agent.http_port),
    )
    .unwrap();
    let path = path.display().to_string();
    let (status, stderr) = run_to_exit(&["agent", "-dev", "-config", &path]);
    assert!(!status.success());
    assert!(
        stderr.contains("failed to bind the HTTP listener"),
        "{stderr}"
    );
}
