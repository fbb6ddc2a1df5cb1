//! Decoding: blocks and arguments to api JSON.

use serde_json::{json, Value};

use crate::{example_job, parse, ErrorKind, ParseOptions};

fn ok(hcl: &str) -> Value {
    match parse(hcl, &ParseOptions::default()) {
        Ok(job) => job,
        Err(error) => panic!("parse failed: {error}"),
    }
}

fn err(hcl: &str) -> crate::ParseError {
    match parse(hcl, &ParseOptions::default()) {
        Ok(job) => panic!("parsed, expected an error: {job}"),
        Err(error) => error,
    }
}

/// jobs-api.md §2.10's submitted job, written as HCL: the JSON is exactly
/// what was submitted there (plus the `Name` jobspec2 copies from the label).
#[test]
fn worked_example_matches_the_submitted_json() {
    let job = ok(r#"
job "web" {
  group "web" {
    network {
      port "http" { to = 8080 }
    }
    task "app" {
      driver = "docker"
      config { image = "nginx:1" }
    }
  }
}
"#);
    assert_eq!(
        job,
        json!({"ID": "web", "Name": "web", "TaskGroups": [{"Name": "web",
            "Networks": [{"DynamicPorts": [{"Label": "http", "To": 8080}]}],
            "Tasks": [{"Name": "app", "Driver": "docker", "Config": {"image": "nginx:1"}}]}]})
    );
}

#[test]
fn empty_job_parses() {
    assert_eq!(ok(r#"job "a" {}"#), json!({"ID": "a", "Name": "a"}));
}

#[test]
fn no_job_block_is_an_error() {
    assert_eq!(
        err("variable \"x\" { default = 1 }").kind,
        ErrorKind::MissingJob
    );
}

#[test]
fn job_attributes_map_to_api_names() {
    let job = ok(r#"
job "j" {
  name        = "other"
  type        = "batch"
  region      = "eu"
  namespace   = "ns"
  priority    = 70
  datacenters = ["dc1", "dc2"]
  node_pool   = "pool"
  all_at_once = true
  meta { owner = "me" }
  periodic {
    crons            = ["*/5 * * * *"]
    prohibit_overlap = true
    time_zone        = "Europe/Paris"
  }
  parameterized {
    payload       = "required"
    meta_required = ["a"]
    meta_optional = ["b"]
  }
  update { max_parallel = 2 }
}
"#);
    assert_eq!(job["ID"], "j");
    assert_eq!(job["Name"], "other");
    assert_eq!(job["Type"], "batch");
    assert_eq!(job["Region"], "eu");
    assert_eq!(job["Namespace"], "ns");
    assert_eq!(job["Priority"], 70);
    assert_eq!(job["Datacenters"], json!(["dc1", "dc2"]));
    assert_eq!(job["NodePool"], "pool");
    assert_eq!(job["AllAtOnce"], true);
    assert_eq!(job["Meta"], json!({"owner": "me"}));
    assert_eq!(
        job["Periodic"],
        json!({"Specs": ["*/5 * * * *"], "ProhibitOverlap": true, "TimeZone": "Europe/Paris", "SpecType": "cron"})
    );
    assert_eq!(
        job["ParameterizedJob"],
        json!({"Payload": "required", "MetaRequired": ["a"], "MetaOptional": ["b"]})
    );
    assert_eq!(job["Update"], json!({"MaxParallel": 2}));
}

#[test]
fn ports_static_and_dynamic() {
    let job = ok(r#"
job "j" {
  group "g" {
    network {
      mode = "bridge"
      port "http" { static = 8080 }
      port "db" { to = 5432 }
      port "admin" {
        static       = 9000
        host_network = "private"
      }
      dns { servers = ["1.1.1.1"] }
    }
  }
}
"#);
    assert_eq!(
        job["TaskGroups"][0]["Networks"],
        json!([{"Mode": "bridge",
            "DNS": {"Servers": ["1.1.1.1"]},
            "DynamicPorts": [{"Label": "db", "To": 5432}],
            "ReservedPorts": [{"Label": "http", "Value": 8080},
                              {"Label": "admin", "Value": 9000, "HostNetwork": "private"}]}])
    );
}

#[test]
fn constraints_of_every_form() {
    let job = ok(r#"
job "j" {
  constraint {
    attribute = "${attr.kernel.name}"
    value     = "linux"
  }
  constraint {
    attribute = "${attr.cpu.numcores}"
    operator  = ">="
    value     = "2"
  }
  constraint {
    attribute = "${attr.os.version}"
    version   = ">= 1.2"
  }
  constraint {
    attribute = "${attr.nomad.version}"
    semver    = ">= 1.4.0"
  }
  constraint {
    attribute = "${node.class}"
    regexp    = "^web-"
  }
  constraint {
    attribute    = "${meta.tags}"
    set_contains = "a,b"
  }
  constraint {
    operator  = "distinct_hosts"
    value     = "true"
  }
  constraint { distinct_hosts = true }
  constraint { distinct_property = "${meta.rack}" }
  constraint {
    attribute = "${meta.gpu}"
    operator  = "is_set"
  }
}
"#);
    let c = |l: &str, op: &str, r: &str| json!({"LTarget": l, "RTarget": r, "Operand": op});
    assert_eq!(
        job["Constraints"],
        json!([
            c("${attr.kernel.name}", "=", "linux"),
            c("${attr.cpu.numcores}", ">=", "2"),
            c("${attr.os.version}", "version", ">= 1.2"),
            c("${attr.nomad.version}", "semver", ">= 1.4.0"),
            c("${node.class}", "regexp", "^web-"),
            c("${meta.tags}", "set_contains", "a,b"),
            c("", "distinct_hosts", "true"),
            c("", "distinct_hosts", "true"),
            c("${meta.rack}", "distinct_property", ""),
            c("${meta.gpu}", "is_set", ""),
        ])
    );
}

#[test]
fn affinities_and_spreads() {
    let job = ok(r#"
job "j" {
  affinity {
    attribute = "${node.datacenter}"
    value     = "us-west1"
    weight    = 100
  }
  affinity {
    attribute        = "${meta.tags}"
    set_contains_any = "a,b"
  }
  spread {
    attribute = "${node.datacenter}"
    weight    = 50
    target "us-east1" { percent = 60 }
    target "us-west1" { percent = 40 }
  }
}
"#);
    assert_eq!(
        job["Affinities"],
        json!([{"LTarget": "${node.datacenter}", "RTarget": "us-west1", "Operand": "=", "Weight": 100},
               {"LTarget": "${meta.tags}", "RTarget": "a,b", "Operand": "set_contains_any"}])
    );
    assert_eq!(
        job["Spreads"],
        json!([{"Attribute": "${node.datacenter}", "Weight": 50, "SpreadTarget": [
            {"Value": "us-east1", "Percent": 60}, {"Value": "us-west1", "Percent": 40}]}])
    );
}

#[test]
fn durations_become_nanoseconds() {
    let job = ok(r#"
job "j" {
  group "g" {
    shutdown_delay = "1h30m"
    restart {
      interval = "5m"
      delay    = "250ms"
      attempts = 3
      mode     = "delay"
    }
    task "t" {
      driver       = "raw_exec"
      kill_timeout = "30s"
    }
  }
}
"#);
    let g = &job["TaskGroups"][0];
    assert_eq!(g["ShutdownDelay"], 5_400_000_000_000i64);
    assert_eq!(
        g["RestartPolicy"],
        json!({"Interval": 300_000_000_000i64, "Delay": 250_000_000, "Attempts": 3, "Mode": "delay"})
    );
    assert_eq!(g["Tasks"][0]["KillTimeout"], 30_000_000_000i64);

    let bad = err("job \"j\" {\n group \"g\" {\n shutdown_delay = \"5 minutes\"\n }\n}");
    assert!(bad.to_string().contains("invalid duration"), "{bad}");
}

#[test]
fn config_keeps_nested_blocks_as_lists() {
    let job = ok(r#"
job "j" {
  group "g" {
    task "t" {
      driver = "docker"
      config {
        image   = "redis:7"
        ports   = ["db"]
        labels  = { tier = "cache" }
        port_map { db = 6379 }
        mount {
          type   = "bind"
          source = "/a"
        }
        mount {
          type   = "volume"
          source = "b"
          volume_options { no_copy = true }
        }
        logging "syslog" { tag = "x" }
      }
    }
  }
}
"#);
    assert_eq!(
        job["TaskGroups"][0]["Tasks"][0]["Config"],
        json!({
            "image": "redis:7",
            "ports": ["db"],
            "labels": [{"tier": "cache"}],
            "port_map": [{"db": 6379}],
            "mount": [{"type": "bind", "source": "/a"},
                      {"type": "volume", "source": "b", "volume_options": [{"no_copy": true}]}],
            "logging": [{"syslog": [{"tag": "x"}]}],
        })
    );
}

#[test]
fn task_fields_map_to_api_names() {
    let job = ok(r#"
job "j" {
  group "g" {
    ephemeral_disk { size = 500 }
    task "t" {
      driver = "exec"
      user   = "nobody"
      leader = true
      env = { "A.B" = "1", C = 2 }
      meta { m = "v" }
      kill_signal = "SIGTERM"
      resources {
        cpu        = 500
        memory     = 256
        memory_max = 512
        device "nvidia/gpu" { count = 2 }
      }
      logs {
        max_files     = 3
        max_file_size = 20
      }
      lifecycle {
        hook    = "prestart"
        sidecar = false
      }
      artifact {
        source      = "https://example.com/a.tgz"
        destination = "local/a"
        options { checksum = "sha256:abc" }
      }
      template {
        data        = "x={{ key \"x\" }}"
        destination = "local/x.env"
        env         = true
      }
      dispatch_payload { file = "input.json" }
      volume_mount {
        volume      = "data"
        destination = "/data"
      }
    }
    volume "data" {
      type      = "host"
      source    = "data"
      read_only = true
    }
  }
}
"#);
    let g = &job["TaskGroups"][0];
    assert_eq!(g["EphemeralDisk"], json!({"SizeMB": 500}));
    assert_eq!(
        g["Volumes"],
        json!({"data": {"Name": "data", "Type": "host", "Source": "data", "ReadOnly": true}})
    );
    let t = &g["Tasks"][0];
    assert_eq!(t["User"], "nobody");
    assert_eq!(t["Leader"], true);
    assert_eq!(t["Env"], json!({"A.B": "1", "C": "2"}));
    assert_eq!(t["Meta"], json!({"m": "v"}));
    assert_eq!(t["KillSignal"], "SIGTERM");
    assert_eq!(
        t["Resources"],
        json!({"CPU": 500, "MemoryMB": 256, "MemoryMaxMB": 512, "Devices": [{"Name": "nvidia/gpu", "Count": 2}]})
    );
    assert_eq!(t["LogConfig"], json!({"MaxFiles": 3, "MaxFileSizeMB": 20}));
    assert_eq!(
        t["Lifecycle"],
        json!({"Hook": "prestart", "Sidecar": false})
    );
    assert_eq!(
        t["Artifacts"],
        json!([{"GetterSource": "https://example.com/a.tgz", "RelativeDest": "local/a",
                "GetterOptions": {"checksum": "sha256:abc"}}])
    );
    assert_eq!(
        t["Templates"],
        json!([{"EmbeddedTmpl": "x={{ key \"x\" }}", "DestPath": "local/x.env", "Envvars": true,
                "ChangeMode": "restart", "Perms": "0644", "Splay": 5_000_000_000i64, "ErrMissingKey": false}])
    );
    assert_eq!(t["DispatchPayload"], json!({"File": "input.json"}));
    assert_eq!(
        t["VolumeMounts"],
        json!([{"Volume": "data", "Destination": "/data"}])
    );
}

#[test]
fn job_level_task_becomes_its_own_group() {
    let job = ok(r#"
job "j" {
  task "lone" { driver = "raw_exec" }
  group "g" {}
}
"#);
    assert_eq!(
        job["TaskGroups"],
        json!([{"Name": "lone", "Tasks": [{"Name": "lone", "Driver": "raw_exec"}]}, {"Name": "g"}])
    );
}

#[test]
fn unknown_attribute_is_refused_with_name_and_position() {
    let e = err("job \"j\" {\n  group \"g\" {\n    foo = 1\n  }\n}\n");
    assert_eq!(
        e.kind,
        ErrorKind::UnsupportedArgument { name: "foo".into() }
    );
    assert_eq!(
        e.to_string(),
        "input.hcl:3,5-8: Unsupported argument; An argument named \"foo\" is not expected here."
    );
}

#[test]
fn unknown_block_and_misplaced_forms_are_refused() {
    let e = err("job \"j\" {\n  bogus {}\n}\n");
    assert_eq!(
        e.kind,
        ErrorKind::UnsupportedBlock {
            name: "bogus".into()
        }
    );
    assert!(e.to_string().starts_with("input.hcl:2,3-8: "), "{e}");
    // A block written as an argument, and the other way round.
    let e = err("job \"j\" {\n  update = {}\n}\n");
    assert_eq!(
        e.kind,
        ErrorKind::UnsupportedArgument {
            name: "update".into()
        }
    );
    let e = err("job \"j\" {\n  priority {}\n}\n");
    assert_eq!(
        e.kind,
        ErrorKind::UnsupportedBlock {
            name: "priority".into()
        }
    );
    // vault_namespace is a CLI flag in Nomad, not a jobspec argument.
    let e = err("job \"j\" {\n  vault_namespace = \"x\"\n}\n");
    assert_eq!(
        e.kind,
        ErrorKind::UnsupportedArgument {
            name: "vault_namespace".into()
        }
    );
}

#[test]
fn wrong_labels_duplicates_and_missing_required() {
    assert_eq!(
        err("job \"j\" {\n group {}\n}").to_string(),
        "input.hcl:2,2-7: Missing name for group; All group blocks must have 1 labels (name)."
    );
    let e = err("job \"j\" {\n update \"x\" {}\n}");
    assert_eq!(
        e.to_string(),
        "input.hcl:2,2-8: Extraneous label for update; No labels are expected for update blocks."
    );
    assert!(matches!(
        err("job \"j\" {\n update {}\n update {}\n}").kind,
        ErrorKind::DuplicateBlock { .. }
    ));
    let e = err("job \"j\" {\n type = \"a\"\n type = \"b\"\n}");
    // hcl-edit refuses a repeated argument while parsing, with its position.
    assert!(
        e.to_string().starts_with("input.hcl:3,2-3: ") && e.to_string().contains("redefined"),
        "{e}"
    );
    assert!(matches!(
        err("job \"a\" {}\njob \"b\" {}").kind,
        ErrorKind::DuplicateBlock { .. }
    ));
    let e =
        err("job \"j\" {\n group \"g\" {\n task \"t\" {\n lifecycle { sidecar = true }\n }\n }\n}");
    assert_eq!(
        e.kind,
        ErrorKind::MissingArgument {
            name: "hook".into()
        }
    );
}

#[test]
fn wrong_value_types_are_refused() {
    let e = err(r#"job "j" { priority = "high" }"#);
    assert!(matches!(e.kind, ErrorKind::Unsuitable { .. }), "{e}");
    let e = err(r#"job "j" { datacenters = "dc1" }"#);
    assert!(matches!(e.kind, ErrorKind::Unsuitable { .. }), "{e}");
    // go-cty converts numeric strings and numbers where the other is wanted.
    let job = ok("job \"j\" {\n priority = \"60\"\n region = 5\n}");
    assert_eq!(job["Priority"], 60);
    assert_eq!(job["Region"], "5");
}

#[test]
fn services_and_checks() {
    let job = ok(r#"
job "j" {
  group "g" {
    service {
      name     = "web"
      port     = "http"
      provider = "nomad"
      tags     = ["a"]
      check {
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "2s"
        header { X-Probe = ["1"] }
      }
    }
  }
}
"#);
    assert_eq!(
        job["TaskGroups"][0]["Services"],
        json!([{"Name": "web", "PortLabel": "http", "Provider": "nomad", "Tags": ["a"],
            "Checks": [{"Type": "http", "Path": "/health", "Interval": 10_000_000_000i64,
                        "Timeout": 2_000_000_000, "Header": {"X-Probe": ["1"]}}]}])
    );
}

#[test]
fn scaling_vault_identity_normalizations() {
    let job = ok(r#"
job "j" {
  vault { policies = ["p"] }
  group "g" {
    scaling {
      min = 1
      max = 5
      policy { cooldown = "1m" }
    }
    task "t" {
      driver = "raw_exec"
      identity { env = true }
      identity {
        name = "vault"
        aud  = ["vault.io"]
      }
      scaling "cpu" { max = 1000 }
    }
  }
}
"#);
    let g = &job["TaskGroups"][0];
    assert_eq!(
        g["Scaling"],
        json!({"Min": 1, "Max": 5, "Policy": {"cooldown": "1m"}, "Type": "horizontal"})
    );
    let t = &g["Tasks"][0];
    assert_eq!(
        t["Vault"],
        json!({"Policies": ["p"], "Env": true, "DisableFile": false, "ChangeMode": "restart"})
    );
    assert_eq!(t["Identity"], json!({"Env": true}));
    assert_eq!(
        t["Identities"],
        json!([{"Name": "vault", "Audience": ["vault.io"]}])
    );
    assert_eq!(
        t["ScalingPolicies"],
        json!([{"Max": 1000, "Type": "vertical_cpu"}])
    );
    assert!(job.get("__Vault").is_none());
    assert!(matches!(
        err("job \"j\" {\n group \"g\" {\n task \"t\" {\n scaling \"disk\" {}\n }\n }\n}").kind,
        ErrorKind::ScalingName
    ));
}

#[test]
fn example_job_parses() {
    let job = ok(example_job());
    assert_eq!(job["ID"], "example");
    assert_eq!(job["Type"], "service");
    let task = &job["TaskGroups"][0]["Tasks"][0];
    assert_eq!(task["Driver"], "raw_exec");
    assert_eq!(
        task["Config"],
        json!({"command": "/bin/sleep", "args": ["3600"]})
    );
    // The client resolves the port variable, not the parser.
    assert_eq!(task["Env"]["LISTEN_PORT"], "${NOMAD_PORT_http}");
    assert_eq!(task["Resources"], json!({"CPU": 100, "MemoryMB": 64}));
    assert_eq!(
        job["TaskGroups"][0]["Networks"],
        json!([{"DynamicPorts": [{"Label": "http"}]}])
    );
}
