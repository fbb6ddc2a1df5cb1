//! `dynamic` blocks and Consul Connect.

use serde_json::{json, Value};

use crate::{parse, ErrorKind, ParseOptions};

fn ok(hcl: &str) -> Value {
    parse(hcl, &ParseOptions::default()).unwrap_or_else(|e| panic!("parse failed: {e}"))
}

#[test]
fn dynamic_blocks_expand_per_element() {
    let job = ok(r#"
locals {
  groups = [
    { name = "a", idx = 1 },
    { name = "b", idx = 2 },
  ]
}
job "j" {
  dynamic "group" {
    for_each = local.groups
    labels   = [group.value.name]
    content {
      count = group.value.idx
      task "t" {
        driver = "raw_exec"
        config {
          command = "/bin/${group.value.name}"
        }
        meta {
          IDX = group.value.idx
          KEY = group.key
        }
        dynamic "template" {
          for_each = ["x", "y"]
          iterator = tpl
          content {
            destination = "local/${tpl.value}-${group.value.name}"
            data        = "${attr.unique.hostname}"
          }
        }
      }
    }
  }
}
"#);
    let groups = job["TaskGroups"].as_array().expect("groups");
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0]["Name"], "a");
    assert_eq!(groups[1]["Count"], 2);
    let task = &groups[1]["Tasks"][0];
    assert_eq!(task["Config"], json!({"command": "/bin/b"}));
    assert_eq!(task["Meta"], json!({"IDX": "2", "KEY": "1"}));
    let destinations: Vec<&Value> = task["Templates"]
        .as_array()
        .expect("templates")
        .iter()
        .map(|t| &t["DestPath"])
        .collect();
    assert_eq!(destinations, [&json!("local/x-b"), &json!("local/y-b")]);
    // Client-side references stay literal inside dynamic content too.
    assert_eq!(
        task["Templates"][0]["EmbeddedTmpl"],
        "${attr.unique.hostname}"
    );
}

#[test]
fn dynamic_block_of_an_unknown_type_is_refused() {
    let e = parse(
        "job \"j\" {\n  dynamic \"bogus\" {\n    for_each = [1]\n    content {}\n  }\n}\n",
        &ParseOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        e.kind,
        ErrorKind::UnsupportedBlock {
            name: "bogus".into()
        }
    );
    assert!(e.to_string().starts_with("input.hcl:2,3-10: "), "{e}");
}

#[test]
fn connect_sidecar_and_upstreams() {
    let job = ok(r#"
job "countdash" {
  group "api" {
    network {
      mode = "bridge"
    }
    service {
      name = "count-api"
      port = "9001"
      connect {
        sidecar_service {
          proxy {
            upstreams {
              destination_name = "db"
              local_bind_port  = 5432
            }
            transparent_proxy {
              exclude_outbound_ports = [22, 443]
            }
            config { protocol = "http" }
          }
        }
        sidecar_task {
          resources { cpu = 50 }
          kill_timeout = "5s"
        }
      }
    }
  }
}
"#);
    assert_eq!(
        job["TaskGroups"][0]["Services"][0]["Connect"],
        json!({
            "SidecarService": {"Proxy": {
                "Upstreams": [{"DestinationName": "db", "LocalBindPort": 5432}],
                "TransparentProxy": {"ExcludeOutboundPorts": [22, 443]},
                "Config": {"protocol": "http"}}},
            "SidecarTask": {"Resources": {"CPU": 50}, "KillTimeout": 5_000_000_000i64}
        })
    );
}

#[test]
fn connect_gateways() {
    let job = ok(r#"
job "gw" {
  group "g" {
    service {
      name = "ingress"
      connect {
        gateway {
          proxy {
            connect_timeout = "3s"
            envoy_gateway_bind_addresses "web" {
              address = "0.0.0.0"
              port    = 8080
            }
          }
          ingress {
            listener {
              port     = 8080
              protocol = "tcp"
              service {
                name = "web"
              }
            }
          }
        }
      }
    }
  }
}
"#);
    assert_eq!(
        job["TaskGroups"][0]["Services"][0]["Connect"]["Gateway"],
        json!({
            "Proxy": {"ConnectTimeout": 3_000_000_000i64,
                      "EnvoyGatewayBindAddresses": {"web": {"Name": "web", "Address": "0.0.0.0", "Port": 8080}}},
            "Ingress": {"Listeners": [{"Port": 8080, "Protocol": "tcp", "Services": [{"Name": "web"}]}]}
        })
    );
}
