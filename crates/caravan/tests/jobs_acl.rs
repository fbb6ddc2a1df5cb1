//! The jobs side's ACL checks against a real agent: every route asks for
//! its namespace capability in the namespace of the object it touches.

mod common;

use common::acl::{bootstrap, create_policy, create_token, with_token};
use common::Agent;
use serde_json::json;

fn job(id: &str) -> serde_json::Value {
    json!({"Job": {"ID": id, "TaskGroups": [{"Name": "g", "Tasks": [
        {"Name": "t", "Driver": "raw_exec", "Config": {"command": "/bin/true"}}]}]}})
}

#[test]
fn job_routes_require_their_namespace_capability() {
    let agent = Agent::start(&["-dev", "-acl-enabled"], "");
    let management = bootstrap(&agent);
    let levels = [
        (
            "ns-read",
            "namespace \"default\" {\n  policy = \"read\"\n}\n",
        ),
        (
            "ns-submit",
            "namespace \"default\" {\n  capabilities = [\"submit-job\"]\n}\n",
        ),
        (
            "other-write",
            "namespace \"other\" {\n  policy = \"write\"\n}\n",
        ),
        (
            "ns-lifecycle",
            "namespace \"default\" {\n  capabilities = [\"alloc-lifecycle\"]\n}\n",
        ),
    ];
    let mut secrets = std::collections::HashMap::new();
    for (name, rules) in levels {
        create_policy(&agent, &management, name, rules);
        let token = create_token(&agent, &management, &[name]);
        secrets.insert(name, token["SecretID"].as_str().unwrap().to_string());
    }
    let registered = with_token(
        &agent,
        "POST",
        "/v1/jobs",
        Some(&management),
        &job("seen").to_string(),
    );
    assert_eq!(registered.status, 200, "{}", registered.text);
    let eval_id = registered.json()["EvalID"].as_str().unwrap().to_string();
    let eval_path = format!("/v1/evaluation/{eval_id}");
    let eval_allocs = format!("{eval_path}/allocations");
    let hcl = json!({"JobHCL": "job \"p\" {\n}\n"}).to_string();
    let delete_evals = json!({"EvalIDs": [eval_id]}).to_string();
    let unknown_alloc = "/v1/allocation/00000000-0000-4000-8000-000000000000/stop";
    // (method, path, body, the policies that grant it; empty = management only)
    let cases: Vec<(&str, &str, String, &[&str])> = vec![
        ("GET", "/v1/jobs", String::new(), &["ns-read"]),
        ("POST", "/v1/jobs", job("new").to_string(), &["ns-submit"]),
        ("GET", "/v1/job/seen", String::new(), &["ns-read"]),
        ("GET", "/v1/job/seen/summary", String::new(), &["ns-read"]),
        ("GET", "/v1/job/seen/versions", String::new(), &["ns-read"]),
        (
            "GET",
            "/v1/job/seen/allocations",
            String::new(),
            &["ns-read"],
        ),
        (
            "GET",
            "/v1/job/seen/evaluations",
            String::new(),
            &["ns-read"],
        ),
        (
            "POST",
            "/v1/job/seen/evaluate",
            String::new(),
            &["ns-submit"],
        ),
        (
            "POST",
            "/v1/validate/job",
            job("v").to_string(),
            &["ns-read"],
        ),
        ("POST", "/v1/jobs/parse", hcl, &["ns-read", "ns-submit"]),
        ("GET", &eval_path, String::new(), &["ns-read"]),
        ("GET", &eval_allocs, String::new(), &["ns-read"]),
        ("POST", unknown_alloc, String::new(), &["ns-lifecycle"]),
        ("DELETE", "/v1/evaluations", delete_evals, &[]),
        ("DELETE", "/v1/job/seen", String::new(), &["ns-submit"]),
    ];
    for (method, path, body, granted_by) in &cases {
        for (name, secret) in &secrets {
            let reply = with_token(&agent, method, path, Some(secret), body);
            if granted_by.contains(name) {
                assert_ne!(
                    reply.status, 403,
                    "{method} {path} with {name}: {}",
                    reply.text
                );
            } else {
                assert_eq!(
                    reply.status, 403,
                    "{method} {path} with {name}: {}",
                    reply.text
                );
                assert_eq!(reply.text, "Permission denied", "{method} {path}");
            }
        }
        let anonymous = with_token(&agent, method, path, None, body);
        assert_eq!(anonymous.status, 403, "{method} {path} anonymous");
    }

    // `namespace=*` lists only what the token may list; another
    // namespace's rights give nothing in `default`.
    let everywhere = |name: &str| {
        with_token(
            &agent,
            "GET",
            "/v1/jobs?namespace=*",
            Some(&secrets[name]),
            "",
        )
    };
    let listed = everywhere("ns-read");
    assert_eq!(listed.status, 200);
    assert!(listed
        .json()
        .as_array()
        .unwrap()
        .iter()
        .any(|stub| stub["ID"] == "seen"));
    let other = everywhere("other-write");
    assert_eq!(other.status, 200);
    assert_eq!(other.json(), json!([]));
}

#[test]
fn mounting_a_host_volume_needs_its_host_volume_rule() {
    let agent = Agent::start(&["-dev", "-acl-enabled"], "");
    let management = bootstrap(&agent);
    let submit = "namespace \"default\" {\n  capabilities = [\"submit-job\"]\n}\n";
    create_policy(&agent, &management, "submit", submit);
    create_policy(
        &agent,
        &management,
        "shared-read",
        &format!("{submit}host_volume \"shared*\" {{\n  policy = \"read\"\n}}\n"),
    );
    let bare = create_token(&agent, &management, &["submit"]);
    let reader = create_token(&agent, &management, &["shared-read"]);
    let with_volume = |read_only: bool| {
        let mut body = job("vol");
        body["Job"]["TaskGroups"][0]["Volumes"] = json!({
            "data": {"Name": "data", "Type": "host", "Source": "shared-data", "ReadOnly": read_only}
        });
        body.to_string()
    };
    let register = |token: &str, read_only: bool| {
        with_token(
            &agent,
            "POST",
            "/v1/jobs",
            Some(token),
            &with_volume(read_only),
        )
        .status
    };
    let bare = bare["SecretID"].as_str().unwrap_or_default();
    let reader = reader["SecretID"].as_str().unwrap_or_default();
    assert_eq!(register(bare, true), 403, "no host_volume rule");
    assert_eq!(
        register(reader, false),
        403,
        "read only may not mount read-write"
    );
    assert_eq!(register(reader, true), 200);
    assert_eq!(register(&management, false), 200);
    // A job without volumes needs no host_volume rule.
    let plain = with_token(
        &agent,
        "POST",
        "/v1/jobs",
        Some(bare),
        &job("plain").to_string(),
    );
    assert_eq!(plain.status, 200, "{}", plain.text);
}
