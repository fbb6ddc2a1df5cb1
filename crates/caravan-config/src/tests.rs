use super::*;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|arg| arg.to_string()).collect()
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
    path.display().to_string()
}

#[test]
fn dev_mode_is_a_one_node_cluster_on_loopback() {
    let config = AgentConfig::from_args(&args(&["-dev"])).unwrap();
    assert!(config.dev_mode && config.server.enabled && config.client.enabled);
    assert_eq!(config.server.bootstrap_expect, 1);
    assert_eq!(config.bind_addr, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(config.ports.http, 4646);
    assert_eq!(config.log_level, "DEBUG");
}

#[test]
fn python_nomad_ci_command_line_parses() {
    let config =
        AgentConfig::from_args(&args(&["-dev", "-node", "pynomad1", "--acl-enabled"])).unwrap();
    assert_eq!(config.node_name, "pynomad1");
    assert!(config.acl.enabled);
}

#[test]
fn files_then_flags_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let first = write(
        &dir,
        "a.hcl",
        r#"
region = "east"
datacenter = "dc9"
ports {
  http = 5646
}
server {
  enabled = true
  bootstrap_expect = 3
  heartbeat_grace = "30s"
  server_join {
    retry_join = ["127.0.0.2", "127.0.0.3"]
  }
}
client {
  meta {
    rack = "r1"
  }
  host_volume "certs" {
    path = "/etc/ssl"
    read_only = true
  }
}
autopilot {
  last_contact_threshold = "1s"
}
"#,
    );
    let second = write(
        &dir,
        "b.json",
        r#"{"ports": {"http": 6646, "rpc": 6647, "serf": 6648}, "server": [{"bootstrap_expect": 5}]}"#,
    );
    let config = AgentConfig::from_args(&args(&[
        "-config",
        &first,
        "-config",
        &second,
        "-data-dir=/tmp/x",
        "-dc",
        "dc2",
    ]))
    .unwrap();
    assert_eq!(config.region, "east");
    assert_eq!(config.datacenter, "dc2");
    assert_eq!(
        config.ports,
        Ports {
            http: 6646,
            rpc: 6647,
            serf: 6648
        }
    );
    assert_eq!(config.server.bootstrap_expect, 5);
    assert_eq!(config.server.heartbeat_grace, Duration::from_secs(30));
    assert_eq!(config.server.retry_join, ["127.0.0.2", "127.0.0.3"]);
    assert_eq!(config.client.meta["rack"], "r1");
    assert!(config.client.host_volumes["certs"].read_only);
    assert_eq!(config.autopilot.last_contact_threshold, 1_000_000_000);
    assert_eq!(config.files, [first, second]);
}

#[test]
fn ports_from_a_file_hold_in_dev_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "ports.json",
        r#"{"ports": {"http": 7646, "rpc": 7647, "serf": 7648}}"#,
    );
    let config = AgentConfig::from_args(&args(&["-dev", "-config", &path])).unwrap();
    assert_eq!(config.ports.http, 7646);
    assert_eq!(config.ports.serf, 7648);
}

#[test]
fn a_directory_loads_its_files_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir, "10-a.hcl", "region = \"first\"\n");
    write(&dir, "20-b.json", r#"{"region": "second"}"#);
    write(&dir, "notes.txt", "not config");
    let config = AgentConfig::from_args(&args(&[
        "-dev",
        "-config",
        &dir.path().display().to_string(),
    ]))
    .unwrap();
    assert_eq!(config.region, "second");
    assert_eq!(config.files.len(), 2);
}

#[test]
fn unknown_keys_name_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "bad.hcl",
        "server {\n  enabled = true\n  bootstrap_expectt = 3\n}\n",
    );
    let error = AgentConfig::from_args(&args(&["-dev", "-config", &path]))
        .unwrap_err()
        .to_string();
    assert!(error.contains(&path), "{error}");
    assert!(error.contains("server.bootstrap_expectt"), "{error}");
}

#[test]
fn bad_values_name_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "bad.hcl",
        "server {\n  heartbeat_grace = \"soon\"\n}\n",
    );
    let error = AgentConfig::from_args(&args(&["-dev", "-config", &path]))
        .unwrap_err()
        .to_string();
    assert!(error.contains(&path), "{error}");
    assert!(error.contains("server.heartbeat_grace"), "{error}");
    assert!(error.contains("invalid duration"), "{error}");

    let path = write(&dir, "bad.json", r#"{"ports": {"http": "many"}}"#);
    let error = AgentConfig::from_args(&args(&["-dev", "-config", &path]))
        .unwrap_err()
        .to_string();
    assert!(error.contains("ports.http"), "{error}");
}

#[test]
fn bad_flags_are_refused() {
    for bad in [
        &["-dev", "-bootstrap-expect", "three"][..],
        &["-dev", "-nope"],
        &["-dev", "-log-level", "loud"],
        &["-server"],
        &["-data-dir", "/tmp/x"],
    ] {
        assert!(AgentConfig::from_args(&args(bad)).is_err(), "{bad:?}");
    }
}

#[test]
fn advertise_resolves_unspecified_and_port_zero() {
    let config = AgentConfig::defaults(true);
    let bound: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    assert_eq!(config.advertised(&None, bound), "127.0.0.1:5000");
    assert_eq!(
        config.advertised(&Some("10.1.2.3".to_string()), bound),
        "10.1.2.3:5000"
    );
    assert_eq!(
        config.advertised(&Some("10.1.2.3:99".to_string()), bound),
        "10.1.2.3:99"
    );
}

#[test]
fn gossip_keys_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let key = "cg8StVXbQJ0gPvMd9o7yrg==";
    let path = write(
        &dir,
        "keyed.hcl",
        &format!("server {{\n  encrypt = \"{key}\"\n}}\n"),
    );
    let config = AgentConfig::from_args(&args(&["-dev", "-config", &path])).unwrap();
    assert_eq!(config.server.encrypt.as_deref(), Some(key));
    assert_eq!(config.server.encrypt_key().unwrap().len(), 16);

    let key32 = "HVmWtNSxZ0ZbQl8rFNz2qUzDcT26IiCxDxdeL+qp1WY=";
    let config = AgentConfig::from_args(&args(&["-dev", "-encrypt", key32])).unwrap();
    assert_eq!(config.server.encrypt_key().unwrap().len(), 32);
    assert!(AgentConfig::defaults(true).server.encrypt_key().is_none());

    for bad in ["not base64!", "c2hvcnQ="] {
        let error = AgentConfig::from_args(&args(&["-dev", "-encrypt", bad]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("encrypt"), "{error}");
    }
}

#[test]
fn telemetry_keys_caravan_honours_take_effect_and_sinks_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let honoured = write(
        &dir,
        "metrics.hcl",
        "telemetry {\n  prometheus_metrics = true\n  publish_node_metrics = true\n}\n",
    );
    let config = AgentConfig::from_args(&args(&["-dev", "-config", &honoured])).unwrap();
    assert!(config.telemetry.prometheus_metrics);
    assert!(config.telemetry.publish_node_metrics);
    assert!(!config
        .keys_without_effect
        .contains(&"telemetry".to_string()));
    let sink = write(
        &dir,
        "statsd.hcl",
        "telemetry {\n  statsd_address = \"127.0.0.1:8125\"\n}\n",
    );
    let config = AgentConfig::from_args(&args(&["-dev", "-config", &sink])).unwrap();
    assert!(config
        .keys_without_effect
        .contains(&"telemetry".to_string()));
    let wrong = write(
        &dir,
        "wrong.hcl",
        "telemetry {\n  prometheus_metrics = \"yes\"\n}\n",
    );
    let error = AgentConfig::from_args(&args(&["-dev", "-config", &wrong])).unwrap_err();
    assert!(
        error.to_string().contains("telemetry.prometheus_metrics"),
        "{error}"
    );
}
