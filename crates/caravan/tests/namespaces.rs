//! Namespaces against the real binary: `default` from the start, writes
//! with Nomad's checks and texts, jobs only in namespaces that exist, a
//! namespace with live work kept, and ACLs deciding who sees what.

mod common;

use std::time::{Duration, Instant};

use common::jobs::{marker, register, shell_job, ProcessReaper, SERVER_AND_CLIENT};
use common::Agent;
use serde_json::{json, Value};

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|namespace| namespace["Name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn namespaces_are_written_read_listed_and_deleted_as_nomads() {
    let agent = Agent::start_with_data_dir(&[], SERVER_AND_CLIENT);
    let list = agent.get("/v1/namespaces").json();
    assert_eq!(names(&list), ["default"]);
    assert_eq!(list[0]["Description"], "Default shared namespace");
    assert_eq!(list[0]["CreateIndex"], 1);

    let body = json!({"Name": "team", "Description": "the team", "Meta": {"owner": "ops"},
        "Capabilities": {"EnabledTaskDrivers": ["raw_exec"]}});
    let written = agent.put("/v1/namespace/team", &body.to_string());
    assert_eq!(written.status, 200, "{}", written.text);
    assert_eq!(written.text, "");
    let index: u64 = written.header("X-Nomad-Index").unwrap().parse().unwrap();
    let team = agent.get("/v1/namespace/team").json();
    assert_eq!(team["Description"], "the team");
    assert_eq!(team["Meta"]["owner"], "ops");
    assert_eq!(
        team["Capabilities"]["EnabledTaskDrivers"],
        json!(["raw_exec"])
    );
    assert_eq!(team["CreateIndex"], index);
    assert!(!team["Hash"].as_str().unwrap().is_empty());
    // Written again (as `namespace apply` does): the create index stays.
    let again = agent.post("/v1/namespace", r#"{"Name": "team", "Description": "new"}"#);
    assert_eq!(again.status, 200, "{}", again.text);
    let team = agent.get("/v1/namespace/team").json();
    assert_eq!(team["Description"], "new");
    assert_eq!(team["CreateIndex"], index);
    assert_eq!(
        names(&agent.get("/v1/namespaces").json()),
        ["default", "team"]
    );
    assert_eq!(
        names(&agent.get("/v1/namespaces?prefix=te").json()),
        ["team"]
    );

    let missing = agent.get("/v1/namespace/nope");
    assert_eq!(
        (missing.status, missing.text.as_str()),
        (404, "Namespace not found")
    );
    let invalid = agent.put("/v1/namespace", r#"{"Name": "a b"}"#);
    assert_eq!(invalid.status, 500);
    assert_eq!(
        invalid.text,
        "Invalid namespace \"a b\": 1 error occurred:\n\t* invalid name \"a b\". Must match regex ^[a-zA-Z0-9-]{1,128}$\n\n"
    );
    let mismatch = agent.put("/v1/namespace/x", r#"{"Name": "y"}"#);
    assert_eq!(
        (mismatch.status, mismatch.text.as_str()),
        (400, "Namespace name does not match request path")
    );
    assert_eq!(
        agent.request("PATCH", "/v1/namespace/team", None).status,
        405
    );

    let default = agent.request("DELETE", "/v1/namespace/default", None);
    assert_eq!(default.status, 500);
    assert!(
        default.text.contains("can not delete default namespace"),
        "{}",
        default.text
    );
    let missing = agent.request("DELETE", "/v1/namespace/nope", None);
    assert_eq!(
        (missing.status, missing.text.as_str()),
        (500, "namespace not found")
    );
    // Quotas are Nomad Enterprise's: none exists to be named.
    let quota = agent.put("/v1/namespace/team", r#"{"Name": "team", "Quota": "q"}"#);
    assert_eq!(
        (quota.status, quota.text.as_str()),
        (500, "namespace \"team\" using non-existent quota \"q\"")
    );
    let deleted = agent.request("DELETE", "/v1/namespace/team", None);
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    assert_eq!(agent.get("/v1/namespace/team").status, 404);
    assert_eq!(names(&agent.get("/v1/namespaces").json()), ["default"]);
}

#[test]
fn jobs_go_only_into_namespaces_that_exist_and_keep_theirs() {
    let marker = marker("namespaces");
    let _reaper = ProcessReaper(marker.clone());
    let agent = Agent::start_with_data_dir(&[], SERVER_AND_CLIENT);
    let job = |namespace: &str| {
        let mut job = shell_job("app", "service", 1, "sleep 600 & wait", &marker);
        job["Namespace"] = json!(namespace);
        json!({"Job": job})
    };
    let refused = agent.put("/v1/jobs", &job("team").to_string());
    assert_eq!(refused.status, 500);
    assert_eq!(
        refused.text,
        "job \"app\" is in nonexistent namespace \"team\""
    );

    // A namespace that allows only docker refuses a raw_exec task.
    let locked = r#"{"Name": "locked", "Capabilities": {"EnabledTaskDrivers": ["docker"]}}"#;
    assert_eq!(agent.put("/v1/namespace/locked", locked).status, 200);
    let refused = agent.put("/v1/jobs", &job("locked").to_string());
    assert_eq!(refused.status, 500);
    assert_eq!(
        refused.text,
        "used task driver \"raw_exec\" is not allowed in namespace \"locked\""
    );
    let created = agent.put("/v1/namespace/team", r#"{"Name": "team"}"#);
    assert_eq!(created.status, 200);
    register(&agent, &{
        let mut spec = shell_job("app", "service", 1, "sleep 600 & wait", &marker);
        spec["Namespace"] = json!("team");
        spec
    });
    let live = agent.request("DELETE", "/v1/namespace/team", None);
    assert_eq!(live.status, 500);
    assert!(
        live.text
            .contains("namespace \"team\" has non-terminal jobs in regions: [global]"),
        "{}",
        live.text
    );
    // Stopped and purged: deletable once its allocation has stopped.
    let purged = agent.request("DELETE", "/v1/job/app?namespace=team&purge=true", None);
    assert_eq!(purged.status, 200, "{}", purged.text);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = agent.request("DELETE", "/v1/namespace/team", None);
        if attempt.status == 200 {
            break;
        }
        assert!(
            attempt.text.contains("non-terminal allocations"),
            "{}",
            attempt.text
        );
        assert!(
            Instant::now() < deadline,
            "never deletable: {}",
            attempt.text
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(agent.get("/v1/namespace/team").status, 404);
}

#[test]
fn a_token_sees_only_the_namespaces_it_has_rights_in() {
    let agent = Agent::start_with_data_dir(
        &[],
        &format!("{SERVER_AND_CLIENT}acl {{\n  enabled = true\n}}\n"),
    );
    let management = common::acl::bootstrap(&agent);
    let as_token = |method: &str, path: &str, token: Option<&str>, body: &str| {
        common::acl::with_token(&agent, method, path, token, body)
    };
    for name in ["team", "other"] {
        let body = json!({"Name": name}).to_string();
        let written = as_token(
            "PUT",
            &format!("/v1/namespace/{name}"),
            Some(&management),
            &body,
        );
        assert_eq!(written.status, 200, "{}", written.text);
    }
    common::acl::create_policy(
        &agent,
        &management,
        "team-read",
        "namespace \"team\" {\n  policy = \"read\"\n}\n",
    );
    let token = common::acl::create_token(&agent, &management, &["team-read"]);
    let token = token["SecretID"].as_str().unwrap();
    let list = as_token("GET", "/v1/namespaces", Some(token), "");
    assert_eq!(names(&list.json()), ["team"]);
    let everything = as_token("GET", "/v1/namespaces", Some(&management), "");
    assert_eq!(names(&everything.json()), ["default", "other", "team"]);
    assert_eq!(
        as_token("GET", "/v1/namespaces", None, "").json(),
        json!([])
    );
    assert_eq!(
        as_token("GET", "/v1/namespace/team", Some(token), "").status,
        200
    );
    assert_eq!(
        as_token("GET", "/v1/namespace/other", Some(token), "").status,
        403
    );
    let body = json!({"Name": "team", "Description": "mine"}).to_string();
    assert_eq!(
        as_token("PUT", "/v1/namespace/team", Some(token), &body).status,
        403
    );
    assert_eq!(
        as_token("DELETE", "/v1/namespace/team", Some(token), "").status,
        403
    );
}
