//! Bad input gets Nomad's status code and text; the server stays up and its
//! state is untouched.

mod common;

use common::Agent;

#[test]
fn bad_bodies_and_parameters_are_refused_without_harm() {
    let agent = Agent::dev();
    let scheduler = "/v1/operator/scheduler/configuration";
    let autopilot = "/v1/operator/autopilot/configuration";
    let before_scheduler = agent.get(scheduler).json()["SchedulerConfig"].clone();
    let before_autopilot = agent.get(autopilot).json();

    let cases: &[(&str, &str, &str, u16, &str)] = &[
        (
            "PUT",
            scheduler,
            "{\"SchedulerAlgorithm\":",
            400,
            "Error parsing scheduler config: ",
        ),
        (
            "PUT",
            scheduler,
            "",
            400,
            "Error parsing scheduler config: ",
        ),
        (
            "PUT",
            scheduler,
            "[1,2]",
            400,
            "Error parsing scheduler config: ",
        ),
        (
            "PUT",
            scheduler,
            "{\"PauseEvalBroker\":\"yes\"}",
            400,
            "Error parsing scheduler config: ",
        ),
        (
            "POST",
            scheduler,
            "{\"SchedulerAlgorithm\":\"random\"}",
            400,
            "invalid scheduler algorithm: random",
        ),
        (
            "PUT",
            &format!("{scheduler}?cas=abc"),
            "{}",
            400,
            "Error parsing cas value: ",
        ),
        (
            "PUT",
            autopilot,
            "{\"LastContactThreshold\":200}",
            400,
            "Error parsing autopilot config: ",
        ),
        (
            "PUT",
            autopilot,
            "{\"ServerStabilizationTime\":\"soon\"}",
            400,
            "Error parsing autopilot config: ",
        ),
        (
            "PUT",
            autopilot,
            "{\"MaxTrailingLogs\":-4}",
            400,
            "Error parsing autopilot config: ",
        ),
        (
            "PUT",
            autopilot,
            "not json",
            400,
            "Error parsing autopilot config: ",
        ),
        (
            "GET",
            &format!("{scheduler}?index=x"),
            "",
            400,
            "Invalid index",
        ),
        (
            "GET",
            &format!("{scheduler}?wait=5"),
            "",
            400,
            "Invalid wait time",
        ),
        (
            "GET",
            &format!("{scheduler}?stale=perhaps"),
            "",
            400,
            "Expect `true` or `false` for `stale` query string parameter",
        ),
        (
            "GET",
            &format!("{scheduler}?per_page=many"),
            "",
            400,
            "Expect a number for `per_page` query string parameter",
        ),
    ];
    for (method, path, body, status, text) in cases {
        let reply = agent.request(method, path, Some(body));
        assert_eq!(
            reply.status, *status,
            "{method} {path} {body}: {}",
            reply.text
        );
        assert!(
            reply.text.starts_with(text),
            "{method} {path} {body}: {:?} should start with {text:?}",
            reply.text
        );
        assert_eq!(
            reply.header("content-type").as_deref(),
            Some("text/plain; charset=utf-8")
        );
    }

    // Still up, nothing changed.
    assert_eq!(
        agent.get(scheduler).json()["SchedulerConfig"],
        before_scheduler
    );
    assert_eq!(agent.get(autopilot).json(), before_autopilot);
    assert_eq!(agent.get("/v1/agent/health").status, 200);
}

#[test]
fn a_failed_cas_leaves_the_state_alone() {
    let agent = Agent::dev();
    let before = agent.get("/v1/operator/scheduler/configuration").json();
    let reply = agent.put(
        "/v1/operator/scheduler/configuration?cas=999999",
        r#"{"SchedulerAlgorithm":"spread"}"#,
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["Updated"], false);
    let after = agent.get("/v1/operator/scheduler/configuration").json();
    assert_eq!(after["SchedulerConfig"], before["SchedulerConfig"]);
}
