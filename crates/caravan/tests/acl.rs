//! ACLs against a real agent: bootstrap, policies, tokens, expiry, and the
//! capability every endpoint requires.

mod common;

use common::acl::{bootstrap, create_policy, create_token, with_token};
use common::Agent;
use serde_json::json;

#[test]
fn bootstrap_happens_once() {
    let agent = Agent::start(&["-dev", "-acl-enabled"], "");
    let secret = bootstrap(&agent);
    let again = agent.post("/v1/acl/bootstrap", "");
    assert_eq!(again.status, 400);
    assert!(
        again.text.starts_with("ACL bootstrap already done"),
        "{}",
        again.text
    );
    // The bootstrap token is a working management token.
    let self_token = with_token(&agent, "GET", "/v1/acl/token/self", Some(&secret), "");
    assert_eq!(self_token.status, 200);
    assert_eq!(self_token.json()["SecretID"], secret);
}

#[test]
fn bootstrap_without_acls_is_refused() {
    let agent = Agent::dev();
    let reply = agent.post("/v1/acl/bootstrap", "");
    assert_eq!(reply.status, 400);
    assert_eq!(reply.text, "ACL support disabled");
}

#[test]
fn each_endpoint_requires_its_capability() {
    let agent = Agent::start(&["-dev", "-acl-enabled"], "");
    let management = bootstrap(&agent);
    let levels = [
        ("node-read", "node {\n  policy = \"read\"\n}\n"),
        ("node-write", "node {\n  policy = \"write\"\n}\n"),
        ("agent-read", "agent {\n  policy = \"read\"\n}\n"),
        ("agent-write", "agent {\n  policy = \"write\"\n}\n"),
        ("operator-read", "operator {\n  policy = \"read\"\n}\n"),
        ("operator-write", "operator {\n  policy = \"write\"\n}\n"),
        ("quota-read", "quota {\n  policy = \"read\"\n}\n"),
    ];
    let mut secrets = std::collections::HashMap::new();
    for (name, rules) in levels {
        create_policy(&agent, &management, name, rules);
        let token = create_token(&agent, &management, &[name]);
        secrets.insert(name, token["SecretID"].as_str().unwrap().to_string());
    }
    let rpc = agent.rpc_address();
    let servers_update = format!("/v1/agent/servers?address={rpc}");
    // The dev agent's own client registers its node shortly after start.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let node_id = loop {
        let list = with_token(&agent, "GET", "/v1/nodes", Some(&management), "").json();
        if let Some(id) = list[0]["ID"].as_str() {
            break id.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the dev node never registered"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let node = |suffix: &str| format!("/v1/node/{node_id}{suffix}");
    let (node_get, node_allocs, node_eval, node_elig, node_drain) = (
        node(""),
        node("/allocations"),
        node("/evaluate"),
        node("/eligibility"),
        node("/drain"),
    );
    // (method, path, body, the policy that grants it; None = management only)
    let cases: Vec<(&str, &str, String, Option<&str>)> = vec![
        ("GET", "/v1/nodes", String::new(), Some("node-read")),
        ("GET", &node_get, String::new(), Some("node-read")),
        ("GET", &node_allocs, String::new(), Some("node-read")),
        ("POST", &node_eval, String::new(), Some("node-write")),
        (
            "POST",
            &node_elig,
            json!({"Eligibility": "eligible"}).to_string(),
            Some("node-write"),
        ),
        (
            "POST",
            &node_drain,
            json!({"DrainSpec": null}).to_string(),
            Some("node-write"),
        ),
        (
            "GET",
            "/v1/operator/autopilot/health",
            String::new(),
            Some("operator-read"),
        ),
        (
            "PUT",
            "/v1/agent/force-leave?node=nobody.global",
            String::new(),
            Some("agent-write"),
        ),
        ("GET", "/v1/acl/policy/node-read", String::new(), None),
        ("GET", "/v1/agent/self", String::new(), Some("agent-read")),
        ("GET", "/v1/agent/members", String::new(), Some("node-read")),
        (
            "GET",
            "/v1/agent/servers",
            String::new(),
            Some("agent-read"),
        ),
        ("PUT", &servers_update, String::new(), Some("agent-write")),
        (
            "GET",
            "/v1/operator/raft/configuration",
            String::new(),
            None,
        ),
        (
            "GET",
            "/v1/operator/autopilot/configuration",
            String::new(),
            Some("operator-read"),
        ),
        (
            "PUT",
            "/v1/operator/autopilot/configuration",
            json!({"LastContactThreshold": "200ms", "MaxTrailingLogs": 250}).to_string(),
            Some("operator-write"),
        ),
        (
            "GET",
            "/v1/operator/scheduler/configuration",
            String::new(),
            Some("operator-read"),
        ),
        (
            "POST",
            "/v1/operator/scheduler/configuration",
            json!({"SchedulerAlgorithm": "spread"}).to_string(),
            Some("operator-write"),
        ),
        ("GET", "/v1/acl/tokens", String::new(), None),
        (
            "POST",
            "/v1/acl/policy/made-in-test",
            json!({"Rules": "node {\n  policy = \"read\"\n}\n"}).to_string(),
            None,
        ),
    ];
    for (method, path, body, grant) in &cases {
        let no_token = with_token(&agent, method, path, None, body);
        assert_eq!(no_token.status, 403, "{method} {path} without a token");
        assert_eq!(no_token.text, "Permission denied");
        // A token whose policy grants something else.
        let other = if *grant == Some("quota-read") {
            "node-read"
        } else {
            "quota-read"
        };
        let lacking = with_token(&agent, method, path, Some(&secrets[other]), body);
        assert_eq!(lacking.status, 403, "{method} {path} with {other}");
        assert_eq!(lacking.text, "Permission denied");
        if let Some(policy) = grant {
            let exact = with_token(&agent, method, path, Some(&secrets[policy]), body);
            assert_eq!(
                exact.status, 200,
                "{method} {path} with {policy}: {}",
                exact.text
            );
            // Read does not imply write.
            if let Some(weaker) = policy.strip_suffix("-write") {
                let read = format!("{weaker}-read");
                let reply = with_token(&agent, method, path, Some(&secrets[read.as_str()]), body);
                assert_eq!(reply.status, 403, "{method} {path} with {read}");
            }
        }
        let full = with_token(&agent, method, path, Some(&management), body);
        assert_eq!(
            full.status, 200,
            "{method} {path} with management: {}",
            full.text
        );
    }
    // Raft peer removal needs management; with it an unknown peer is 404.
    let peer = "/v1/operator/raft/peer?id=no-such-server";
    assert_eq!(
        with_token(&agent, "DELETE", peer, Some(&secrets["operator-write"]), "").status,
        403
    );
    assert_eq!(with_token(&agent, "DELETE", peer, None, "").status, 403);
    assert_eq!(
        with_token(&agent, "DELETE", peer, Some(&management), "").status,
        404
    );
    // Joining needs agent:write: Nomad deprecated anonymous joins (and
    // warns); Caravan refuses them, since a join reshapes the cluster.
    let join = format!("/v1/agent/join?address={}", agent.serf_address());
    let anonymous_join = with_token(&agent, "POST", &join, None, "");
    assert_eq!(anonymous_join.status, 403, "{}", anonymous_join.text);
    let managed_join = with_token(&agent, "POST", &join, Some(&management), "");
    assert_eq!(managed_join.status, 200, "{}", managed_join.text);
    assert!(managed_join.json().get("warning").is_none());

    // Endpoints without ACLs answer anyone, even with a bogus token.
    for path in [
        "/v1/status/leader",
        "/v1/status/peers",
        "/v1/regions",
        "/v1/agent/health",
    ] {
        assert_eq!(
            with_token(&agent, "GET", path, None, "").status,
            200,
            "{path}"
        );
        let bogus = with_token(
            &agent,
            "GET",
            path,
            Some("00000000-0000-0000-0000-000000000000"),
            "",
        );
        assert_eq!(bogus.status, 200, "{path}");
    }
    // An unknown secret is not downgraded to anonymous.
    let unknown = with_token(
        &agent,
        "GET",
        "/v1/agent/self",
        Some("11111111-2222-3333-4444-555555555555"),
        "",
    );
    assert_eq!(unknown.status, 403);
    assert_eq!(unknown.text, "ACL token not found");
    // The Authorization header works as well as X-Nomad-Token.
    let bearer = agent.request_with_headers(
        "GET",
        "/v1/agent/self",
        &[(
            "Authorization",
            &format!("Bearer {}", secrets["agent-read"]),
        )],
    );
    assert_eq!(bearer.status, 200);
}

#[test]
fn anonymous_policy_applies_to_requests_without_a_token() {
    let agent = Agent::start(&["-dev", "-acl-enabled"], "");
    let management = bootstrap(&agent);
    assert_eq!(agent.get("/v1/agent/members").status, 403);
    create_policy(
        &agent,
        &management,
        "anonymous",
        "node {\n  policy = \"read\"\n}\n",
    );
    assert_eq!(agent.get("/v1/agent/members").status, 200);
    assert_eq!(agent.get("/v1/agent/self").status, 403);
}

#[test]
fn policies_and_tokens_round_trip() {
    let agent = Agent::start(&["-dev", "-acl-enabled"], "");
    let management = bootstrap(&agent);
    let m = Some(management.as_str());
    create_policy(
        &agent,
        &management,
        "readonly",
        "namespace \"default\" {\n  policy = \"read\"\n}\nnode {\n  policy = \"read\"\n}\n",
    );
    let policy = with_token(&agent, "GET", "/v1/acl/policy/readonly", m, "").json();
    assert_eq!(policy["Name"], "readonly");
    assert!(policy["Rules"].as_str().unwrap().contains("namespace"));
    let list = with_token(&agent, "GET", "/v1/acl/policies", m, "").json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["Name"], "readonly");
    assert!(list[0].get("Rules").is_none());

    let token = create_token(&agent, &management, &["readonly"]);
    for key in [
        "AccessorID",
        "SecretID",
        "Name",
        "Type",
        "Policies",
        "Global",
        "CreateTime",
        "CreateIndex",
        "ModifyIndex",
        "Hash",
    ] {
        assert!(token.get(key).is_some(), "token lacks {key}: {token}");
    }
    let accessor = token["AccessorID"].as_str().unwrap();
    let secret = token["SecretID"].as_str().unwrap();
    // The token reads itself and the policy it holds, nothing else.
    let own = with_token(
        &agent,
        "GET",
        &format!("/v1/acl/token/{accessor}"),
        Some(secret),
        "",
    );
    assert_eq!(own.status, 200);
    assert_eq!(
        with_token(&agent, "GET", "/v1/acl/token/self", Some(secret), "").json()["AccessorID"],
        accessor
    );
    assert_eq!(
        with_token(&agent, "GET", "/v1/acl/policy/readonly", Some(secret), "").status,
        200
    );
    assert_eq!(
        with_token(&agent, "GET", "/v1/acl/tokens", Some(secret), "").status,
        403
    );
    let listed = with_token(&agent, "GET", "/v1/acl/tokens", m, "").json();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t.get("SecretID").is_none()));

    // Update keeps the secret; delete takes effect at once.
    let update = json!({"Name": "renamed", "Type": "client", "Policies": ["readonly"]});
    let updated = with_token(
        &agent,
        "POST",
        &format!("/v1/acl/token/{accessor}"),
        m,
        &update.to_string(),
    );
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.json()["Name"], "renamed");
    assert_eq!(updated.json()["SecretID"], secret);
    assert_eq!(
        with_token(&agent, "GET", "/v1/agent/members", Some(secret), "").status,
        200
    );
    let deleted = with_token(
        &agent,
        "DELETE",
        &format!("/v1/acl/token/{accessor}"),
        m,
        "",
    );
    assert_eq!(deleted.status, 200);
    let after = with_token(&agent, "GET", "/v1/agent/members", Some(secret), "");
    assert_eq!(after.status, 403);
    assert_eq!(after.text, "ACL token not found");
    assert_eq!(
        with_token(
            &agent,
            "DELETE",
            &format!("/v1/acl/token/{accessor}"),
            m,
            ""
        )
        .status,
        404
    );
    // Policy deletion.
    assert_eq!(
        with_token(&agent, "DELETE", "/v1/acl/policy/readonly", m, "").status,
        200
    );
    assert_eq!(
        with_token(&agent, "GET", "/v1/acl/policy/readonly", m, "").status,
        404
    );
}

#[test]
fn bad_policies_and_tokens_are_400_naming_the_problem() {
    let agent = Agent::start(&["-dev", "-acl-enabled"], "");
    let management = bootstrap(&agent);
    let m = Some(management.as_str());
    let cases = [
        ("spaceship {\n  policy = \"read\"\n}\n", "spaceship"),
        ("node {\n  policy = \"admin\"\n}\n", "admin"),
        (
            "namespace \"default\" {\n  capabilities = [\"teleport\"]\n}\n",
            "teleport",
        ),
        ("node {", "failed to parse"),
    ];
    for (rules, named) in cases {
        let body = json!({"Rules": rules});
        let reply = with_token(&agent, "POST", "/v1/acl/policy/bad", m, &body.to_string());
        assert_eq!(reply.status, 400, "{rules}");
        assert!(reply.text.contains(named), "{rules}: {}", reply.text);
    }
    let bad_name = with_token(
        &agent,
        "POST",
        "/v1/acl/policy/bad%20name",
        m,
        &json!({"Rules": ""}).to_string(),
    );
    assert_eq!(bad_name.status, 400);
    let tokens = [
        (json!({"Type": "client"}), "client token missing policies"),
        (
            json!({"Type": "management", "Policies": ["x"]}),
            "management token cannot",
        ),
        (
            json!({"Type": "root"}),
            "token type must be client or management",
        ),
        (
            json!({"Type": "client", "Policies": ["x"], "ExpirationTTL": 1}),
            "expiration time cannot be less than",
        ),
    ];
    for (body, text) in tokens {
        let reply = with_token(&agent, "POST", "/v1/acl/token", m, &body.to_string());
        assert_eq!(reply.status, 400, "{body}");
        assert!(reply.text.contains(text), "{body}: {}", reply.text);
    }
    assert_eq!(
        with_token(&agent, "POST", "/v1/acl/token", m, "{not json").status,
        400
    );
}

#[test]
fn expired_tokens_stop_working() {
    let agent = Agent::start(
        &["-dev", "-acl-enabled"],
        "acl {\n  token_min_expiration_ttl = \"1s\"\n}\n",
    );
    let management = bootstrap(&agent);
    create_policy(
        &agent,
        &management,
        "agent-read",
        "agent {\n  policy = \"read\"\n}\n",
    );
    let body =
        json!({"Type": "client", "Policies": ["agent-read"], "ExpirationTTL": 2_000_000_000i64});
    let reply = with_token(
        &agent,
        "POST",
        "/v1/acl/token",
        Some(&management),
        &body.to_string(),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    let token = reply.json();
    assert!(token["ExpirationTime"].is_string());
    let secret = token["SecretID"].as_str().unwrap();
    assert_eq!(
        with_token(&agent, "GET", "/v1/agent/self", Some(secret), "").status,
        200
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let reply = with_token(&agent, "GET", "/v1/agent/self", Some(secret), "");
        if reply.status == 403 {
            assert_eq!(reply.text, "ACL token not found");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "token never expired");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn acl_state_survives_a_restart() {
    let mut agent =
        Agent::start_with_data_dir(&["-server", "-bootstrap-expect", "1", "-acl-enabled"], "");
    let management = bootstrap(&agent);
    create_policy(
        &agent,
        &management,
        "ops",
        "operator {\n  policy = \"read\"\n}\n",
    );
    let token = create_token(&agent, &management, &["ops"]);
    let secret = token["SecretID"].as_str().unwrap().to_string();
    agent.restart();
    let reply = with_token(
        &agent,
        "GET",
        "/v1/operator/scheduler/configuration",
        Some(&secret),
        "",
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(agent.post("/v1/acl/bootstrap", "").status, 400);
}
