use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::json;

use super::*;
use crate::{LogConfig, MountConfig, TaskResources};

fn task(config: serde_json::Value) -> TaskConfig {
    let env = BTreeMap::from([
        (
            "NOMAD_TASK_DIR".to_string(),
            "/data/alloc/a1/web/local".to_string(),
        ),
        ("NOMAD_PORT_http".to_string(), "8080".to_string()),
        ("NOMAD_HOST_PORT_http".to_string(), "23456".to_string()),
        ("NOMAD_HOST_IP_http".to_string(), "127.0.0.1".to_string()),
        ("NOMAD_ALLOC_PORT_http".to_string(), "8080".to_string()),
        ("NOMAD_PORT_legacy".to_string(), "24000".to_string()),
        ("NOMAD_HOST_PORT_legacy".to_string(), "24000".to_string()),
        ("FOO".to_string(), "bar".to_string()),
    ]);
    TaskConfig {
        id: "a1/web".into(),
        alloc_id: "a1".into(),
        task_name: "web".into(),
        job_name: "example".into(),
        config: config.as_object().cloned().unwrap_or_default(),
        env,
        user: String::new(),
        task_dir: PathBuf::from("/data/alloc/a1/web"),
        alloc_dir: PathBuf::from("/data/alloc/a1"),
        logs: LogConfig {
            dir: PathBuf::from("/data/alloc/a1/alloc/logs"),
            max_files: 2,
            max_file_size_mb: 1,
        },
        resources: TaskResources {
            cpu: 500,
            memory_mb: 256,
            memory_max_mb: 0,
        },
        attempt: "att1".into(),
        mounts: Vec::new(),
    }
}

fn error_text(config: serde_json::Value) -> String {
    container_spec(&task(config)).unwrap_err().to_string()
}

#[test]
fn a_minimal_container_is_named_labelled_and_limited() {
    let spec = container_spec(&task(
        json!({"image": "busybox:1", "command": "sh", "args": ["-c", "echo hi"]}),
    ))
    .unwrap();
    assert_eq!(spec.name, "web-a1");
    assert_eq!(spec.image, "busybox:1");
    let body = spec.body;
    assert_eq!(body.cmd.unwrap(), ["sh", "-c", "echo hi"]);
    let labels = body.labels.unwrap();
    assert_eq!(labels[LABEL_ALLOC_ID], "a1");
    assert_eq!(labels[LABEL_JOB_NAME], "example");
    assert_eq!(labels[LABEL_TASK_NAME], "web");
    assert_eq!(labels[LABEL_ATTEMPT], "att1");
    let env = body.env.unwrap();
    assert!(env.contains(&"NOMAD_TASK_DIR=/local".to_string()));
    assert!(env.contains(&"NOMAD_ALLOC_DIR=/alloc".to_string()));
    assert!(env.contains(&"FOO=bar".to_string()));
    let host = body.host_config.unwrap();
    assert_eq!(host.memory, Some(256 * 1024 * 1024));
    assert_eq!(host.memory_reservation, None);
    assert_eq!(host.cpu_shares, Some(500));
    let binds = host.binds.unwrap();
    assert!(binds.contains(&"/data/alloc/a1/alloc:/alloc".to_string()));
    assert!(binds.contains(&"/data/alloc/a1/web/local:/local".to_string()));
    assert!(binds.contains(&"/data/alloc/a1/web/secrets:/secrets".to_string()));
}

#[test]
fn group_ports_publish_host_address_to_the_container_port_as_tcp_and_udp() {
    let spec = container_spec(&task(json!({"image": "i", "ports": ["http"]}))).unwrap();
    let exposed = spec.body.exposed_ports.unwrap();
    assert!(exposed.contains(&"8080/tcp".to_string()));
    assert!(exposed.contains(&"8080/udp".to_string()));
    let bindings = spec.body.host_config.unwrap().port_bindings.unwrap();
    let tcp = bindings["8080/tcp"].as_ref().unwrap();
    assert_eq!(tcp[0].host_port.as_deref(), Some("23456"));
    assert_eq!(tcp[0].host_ip.as_deref(), Some("127.0.0.1"));
}

#[test]
fn port_map_maps_task_network_ports_and_refuses_group_ones() {
    let spec = container_spec(&task(json!({"image": "i", "port_map": {"legacy": 80}}))).unwrap();
    let bindings = spec.body.host_config.unwrap().port_bindings.unwrap();
    assert_eq!(
        bindings["80/tcp"].as_ref().unwrap()[0].host_port.as_deref(),
        Some("24000")
    );
    assert_eq!(
        error_text(json!({"image": "i", "port_map": [{"http": 80}]})),
        "'port_map' cannot map group network ports, use 'ports' instead"
    );
    assert!(error_text(json!({"image": "i", "ports": ["nope"]})).contains("\"nope\" not found"));
}

#[test]
fn a_container_sharing_a_network_publishes_nothing() {
    let spec = container_spec(&task(
        json!({"image": "i", "ports": ["http"], "network_mode": "container:other"}),
    ))
    .unwrap();
    assert!(spec.body.exposed_ports.is_none());
    assert!(spec.body.host_config.unwrap().port_bindings.is_none());
}

#[test]
fn volumes_stay_in_the_task_directory() {
    let spec = container_spec(&task(
        json!({"image": "i", "volumes": ["local/data:/data:ro", "x:/x"], "mount": {"type": "bind", "source": "local/m", "target": "/m"}}),
    ))
    .unwrap();
    let binds: Vec<(String, String, bool)> = spec
        .task_binds
        .iter()
        .map(|b| {
            (
                b.source.display().to_string(),
                b.target.clone(),
                b.read_only,
            )
        })
        .collect();
    assert_eq!(
        binds,
        [
            (
                "/data/alloc/a1/web/local/data".to_string(),
                "/data".to_string(),
                true
            ),
            ("/data/alloc/a1/web/x".to_string(), "/x".to_string(), false),
            (
                "/data/alloc/a1/web/local/m".to_string(),
                "/m".to_string(),
                false
            ),
        ]
    );
    assert_eq!(
        error_text(json!({"image": "i", "volumes": ["/etc:/host-etc"]})),
        "volumes are not enabled; cannot mount host paths: \"/etc\""
    );
    for escape in [
        "../../x",
        "",
        ".",
        "./",
        ".caravan",
        "./.caravan/x",
        "private",
        "a/../b",
    ] {
        let text = error_text(json!({"image": "i", "volumes": [format!("{escape}:/x")]}));
        assert!(
            text.contains("must name a path inside the task directory"),
            "{escape}: {text}"
        );
    }
    assert!(error_text(
        json!({"image": "i", "mount": {"type": "bind", "source": "/", "target": "/h"}})
    )
    .contains("volumes are not enabled"));
}

#[test]
fn capabilities_beyond_the_default_set_and_host_namespaces_are_refused() {
    let host = container_spec(&task(
        json!({"image": "i", "cap_add": ["net_raw", "CAP_CHOWN"]}),
    ))
    .unwrap()
    .body
    .host_config
    .unwrap();
    assert_eq!(host.cap_add.unwrap(), ["net_raw", "CAP_CHOWN"]);
    for cap in [
        "SYS_ADMIN",
        "all",
        "CAP_DAC_READ_SEARCH",
        "SYS_PTRACE",
        "SYS_MODULE",
    ] {
        let text = error_text(json!({"image": "i", "cap_add": [cap]}));
        assert!(text.contains("caps allowlisted"), "{cap}: {text}");
    }
    for key in ["pid_mode", "ipc_mode"] {
        assert!(error_text(json!({"image": "i", key: "host"})).contains("not allowed"));
    }
}

#[test]
fn huge_memory_is_refused_not_wrapped() {
    let text = error_text(json!({"image": "i", "memory_hard_limit": 17_592_186_044_416u64}));
    assert!(text.contains("too large"), "{text}");
}

#[test]
fn a_bare_image_name_pulls_latest_only() {
    assert_eq!(image_reference("redis"), "redis:latest");
    assert_eq!(image_reference("redis:7"), "redis:7");
    assert_eq!(
        image_reference("localhost:5000/redis"),
        "localhost:5000/redis:latest"
    );
    assert_eq!(
        image_reference("localhost:5000/redis:7"),
        "localhost:5000/redis:7"
    );
    assert_eq!(image_reference("redis@sha256:abc"), "redis@sha256:abc");
}

#[test]
fn host_volume_mounts_and_tmpfs_mounts() {
    let mut config =
        task(json!({"image": "i", "mount": [{"type": "tmpfs", "target": "/scratch"}]}));
    config.mounts.push(MountConfig {
        host_path: PathBuf::from("/srv/shared"),
        task_path: "/data".into(),
        read_only: true,
    });
    let host = container_spec(&config).unwrap().body.host_config.unwrap();
    assert!(host
        .binds
        .unwrap()
        .contains(&"/srv/shared:/data:ro".to_string()));
    let mounts = host.mounts.unwrap();
    assert_eq!(mounts[0].target.as_deref(), Some("/scratch"));
    assert_eq!(mounts[0].typ, Some(bollard::models::MountType::TMPFS));
}

#[test]
fn memory_max_is_the_hard_limit_and_memory_the_reservation() {
    let mut config = task(json!({"image": "i"}));
    config.resources.memory_max_mb = 512;
    let host = container_spec(&config).unwrap().body.host_config.unwrap();
    assert_eq!(host.memory, Some(512 * 1024 * 1024));
    assert_eq!(host.memory_reservation, Some(256 * 1024 * 1024));
    let host = container_spec(&task(json!({"image": "i", "memory_hard_limit": 1024})))
        .unwrap()
        .body
        .host_config
        .unwrap();
    assert_eq!(host.memory, Some(1024 * 1024 * 1024));
}

#[test]
fn bad_config_is_refused_with_a_clear_text() {
    assert_eq!(
        error_text(json!({"command": "x"})),
        "docker config: \"image\" is required"
    );
    assert!(error_text(json!({"image": "i", "bogus": 1})).contains("\"bogus\" is not expected"));
    assert_eq!(
        error_text(json!({"image": "i", "privileged": true})),
        "Docker privileged mode is disabled on this Nomad agent"
    );
    assert!(error_text(json!({"image": "i", "args": "not-a-list"})).contains("\"args\""));
    assert!(error_text(json!({"image": 5})).contains("\"image\""));
    assert_eq!(container_name("a/b", "id"), "a_b-id");
}

#[test]
fn the_pull_timeout_is_a_go_duration_defaulting_to_five_minutes() {
    let spec = |value: serde_json::Value| {
        container_spec(&task(json!({"image": "i", "image_pull_timeout": value})))
    };
    assert_eq!(spec(json!("90s")).unwrap().pull_timeout.as_secs(), 90);
    assert_eq!(spec(json!("2m")).unwrap().pull_timeout.as_secs(), 120);
    assert_eq!(
        container_spec(&task(json!({"image": "i"})))
            .unwrap()
            .pull_timeout
            .as_secs(),
        300
    );
    for bad in ["5", "m", "5x", "-1s"] {
        assert!(
            spec(json!(bad))
                .unwrap_err()
                .to_string()
                .contains("not a duration"),
            "{bad}"
        );
    }
}
