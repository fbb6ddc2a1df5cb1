//! `GET /v1/nodes` is built from per-node cached entries: against a real
//! server, a changed node must show up changed, a purged node must
//! disappear, and a node registered again under the same ID must show its
//! new fields, in every list shape (`?resources`, `?os`, `?prefix`, pages).

mod common;

use common::Agent;
use serde_json::{json, Value};

const IDS: [&str; 3] = [
    "aaaa1111-0000-4000-8000-000000000001",
    "bbbb2222-0000-4000-8000-000000000002",
    "cccc3333-0000-4000-8000-000000000003",
];

/// Registers a node straight through the RPC a client uses.
fn register(server: &Agent, id: &str, name: &str) {
    let node = json!({
        "ID": id, "SecretID": format!("{id}-secret"), "Name": name, "Datacenter": "dc1",
        "HTTPAddr": "127.0.0.9:4646",
        "Attributes": {"os.name": "debian", "nomad.version": "1.10.0"},
    });
    let reply: Value = reqwest::blocking::Client::new()
        .post(format!("http://{}/rpc/node/register", server.rpc_address()))
        .json(&node)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(reply.get("Ok").is_some(), "{reply}");
}

fn list(server: &Agent, path: &str) -> Vec<Value> {
    let reply = server.get(path);
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json().as_array().unwrap().clone()
}

/// Every list shape, each asked twice (the second answer may come from the
/// cache of the whole list), as `(ID, field)` pairs.
fn every_shape(server: &Agent, field: &str) -> Vec<Vec<(String, Value)>> {
    let paths = [
        "/v1/nodes",
        "/v1/nodes?os=true",
        "/v1/nodes?resources=true",
        "/v1/nodes?resources=true&os=true",
        "/v1/nodes?prefix=bbbb",
        "/v1/nodes?per_page=2",
    ];
    let mut shapes = Vec::new();
    for path in paths {
        for _ in 0..2 {
            shapes.push(
                list(server, path)
                    .iter()
                    .map(|node| {
                        (
                            node["ID"].as_str().unwrap().to_string(),
                            node[field].clone(),
                        )
                    })
                    .collect(),
            );
        }
    }
    shapes
}

fn pairs(entries: &[(&str, &str)]) -> Vec<(String, Value)> {
    entries
        .iter()
        .map(|(id, value)| (id.to_string(), json!(value)))
        .collect()
}

#[test]
fn the_node_list_never_shows_a_stale_node() {
    let server = Agent::server();
    for (number, id) in IDS.iter().enumerate() {
        register(&server, id, &format!("node-{number}"));
    }
    let check = |field: &str, all: &[(&str, &str)]| {
        let shapes = every_shape(&server, field);
        let expected = pairs(all);
        let on_b: Vec<_> = expected
            .iter()
            .filter(|(id, _)| id.starts_with("bbbb"))
            .cloned()
            .collect();
        for (number, shape) in shapes.iter().enumerate() {
            let want = match number / 2 {
                4 => on_b.clone(),
                5 => expected.iter().take(2).cloned().collect(),
                _ => expected.clone(),
            };
            assert_eq!(shape, &want, "shape {number}");
        }
    };
    check(
        "SchedulingEligibility",
        &[
            (IDS[0], "eligible"),
            (IDS[1], "eligible"),
            (IDS[2], "eligible"),
        ],
    );

    // One node changes: every shape shows it changed, the others as they were.
    let reply = server.post(
        &format!("/v1/node/{}/eligibility", IDS[1]),
        r#"{"Eligibility": "ineligible"}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    check(
        "SchedulingEligibility",
        &[
            (IDS[0], "eligible"),
            (IDS[1], "ineligible"),
            (IDS[2], "eligible"),
        ],
    );
    let modify_index = server.get(&format!("/v1/node/{}", IDS[1])).json()["ModifyIndex"].clone();
    let listed = list(&server, "/v1/nodes");
    assert_eq!(listed[1]["ModifyIndex"], modify_index);

    // A purged node disappears from every shape.
    let reply = server.post(&format!("/v1/node/{}/purge", IDS[1]), "");
    assert_eq!(reply.status, 200, "{}", reply.text);
    check("Name", &[(IDS[0], "node-0"), (IDS[2], "node-2")]);

    // Registered again under the same ID with another name: the new name.
    register(&server, IDS[1], "reborn");
    check(
        "Name",
        &[(IDS[0], "node-0"), (IDS[1], "reborn"), (IDS[2], "node-2")],
    );
}
