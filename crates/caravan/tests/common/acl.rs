//! ACL set-up shared by the tests that check capabilities.

use serde_json::{json, Value};

use super::{Agent, Reply};

pub fn with_token(
    agent: &Agent,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Reply {
    agent.request_with_token(method, path, token, body)
}

pub fn bootstrap(agent: &Agent) -> String {
    let reply = agent.post("/v1/acl/bootstrap", "");
    assert_eq!(reply.status, 200, "{}", reply.text);
    let token = reply.json();
    assert_eq!(token["Type"], "management");
    assert_eq!(token["Name"], "Bootstrap Token");
    token["SecretID"].as_str().unwrap().to_string()
}

pub fn create_policy(agent: &Agent, management: &str, name: &str, rules: &str) {
    let body = json!({"Name": name, "Description": "test", "Rules": rules});
    let reply = with_token(
        agent,
        "POST",
        &format!("/v1/acl/policy/{name}"),
        Some(management),
        &body.to_string(),
    );
    assert_eq!(reply.status, 200, "{name}: {}", reply.text);
}

pub fn create_token(agent: &Agent, management: &str, policies: &[&str]) -> Value {
    let body = json!({"Name": format!("t-{}", policies.join("-")), "Type": "client", "Policies": policies});
    let reply = with_token(
        agent,
        "POST",
        "/v1/acl/token",
        Some(management),
        &body.to_string(),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json()
}
