//! Input that used to take the agent down or be echoed back whole: filters
//! nested deep enough to overflow a worker's stack, a JSON array where a
//! struct belongs, megabyte values in error bodies. Each is refused with a
//! 400 that says why, and the agent keeps answering.

mod common;

use common::Agent;

const SCHEDULER: &str = "/v1/operator/scheduler/configuration";

fn assert_still_up(agent: &Agent) {
    let reply = agent.get("/v1/status/leader");
    assert_eq!(reply.status, 200, "{}\n{}", reply.text, agent.log());
    assert!(agent.is_running(), "{}", agent.log());
}

/// `GET /v1/nodes?filter=<filter>`, the filter form-encoded.
fn nodes_filtered(agent: &Agent, filter: &str) -> common::Reply {
    let query: String = url_encode(filter);
    agent.get(&format!("/v1/nodes?filter={query}"))
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                (byte as char).to_string()
            }
            b' ' => "+".to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[test]
fn huge_and_deep_filters_are_refused_and_the_agent_survives() {
    let agent = Agent::dev();
    let prefix = "failed to create result paginator: failed to read filter expression: ";

    let parens = format!(
        "{}Status == \"ready\"{}",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    let reply = nodes_filtered(&agent, &parens);
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(
        reply.text,
        format!(
            "{prefix}filter is too long: {} bytes, limit 4096",
            parens.len()
        )
    );
    assert_still_up(&agent);

    let nots = format!("{}Status == \"ready\"", "not ".repeat(5_000));
    let reply = nodes_filtered(&agent, &nots);
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(
        reply.text,
        format!(
            "{prefix}filter is too long: {} bytes, limit 4096",
            nots.len()
        )
    );
    assert_still_up(&agent);

    // Within the length limit, the nesting limit.
    let nots = format!("{}Status == \"ready\"", "not ".repeat(1_000));
    let reply = nodes_filtered(&agent, &nots);
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(
        reply.text,
        format!("{prefix}filter nests too deeply: limit 64")
    );
    let parens = format!(
        "{}Status == \"ready\"{}",
        "(".repeat(2_000),
        ")".repeat(2_000)
    );
    let reply = nodes_filtered(&agent, &parens);
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(
        reply.text,
        format!("{prefix}filter nests too deeply: limit 64")
    );
    assert_still_up(&agent);

    // A filter at the limits still works.
    let nested = format!("{}Status != \"nonsense\"{}", "(".repeat(64), ")".repeat(64));
    let reply = nodes_filtered(&agent, &nested);
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.json().is_array(), "{}", reply.text);
}

#[test]
fn a_json_array_is_not_a_scheduler_configuration() {
    let agent = Agent::dev();
    let before = agent.get(SCHEDULER).json()["SchedulerConfig"].clone();
    for (body, kind) in [("[]", "array"), ("[\"spread\"]", "array"), ("7", "number")] {
        let reply = agent.put(SCHEDULER, body);
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        assert_eq!(
            reply.text,
            format!(
                "Error parsing scheduler config: json: cannot unmarshal {kind} \
                 into Go value of type structs.SchedulerConfiguration"
            ),
            "{body}"
        );
    }
    let reply = agent.put("/v1/operator/autopilot/configuration", "[]");
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(
        reply.text.contains("cannot unmarshal array"),
        "{}",
        reply.text
    );
    assert_eq!(agent.get(SCHEDULER).json()["SchedulerConfig"], before);
    assert_still_up(&agent);
}

#[test]
fn error_bodies_do_not_echo_huge_values() {
    let agent = Agent::dev();
    let before = agent.get(SCHEDULER).json()["SchedulerConfig"].clone();
    let huge = "x".repeat(1 << 20);
    for (path, body) in [
        (SCHEDULER, format!(r#"{{"PauseEvalBroker": "{huge}"}}"#)),
        (SCHEDULER, format!(r#"{{"PreemptionConfig": "{huge}"}}"#)),
        (
            "/v1/operator/autopilot/configuration",
            format!(r#"{{"LastContactThreshold": "{huge}"}}"#),
        ),
    ] {
        let reply = agent.put(path, &body);
        assert_eq!(
            reply.status,
            400,
            "{}...",
            &reply.text[..200.min(reply.text.len())]
        );
        assert!(
            reply.text.len() < 1024,
            "{path}: {} bytes of error: {}...",
            reply.text.len(),
            &reply.text[..200]
        );
    }
    assert_eq!(
        agent
            .put(SCHEDULER, &format!(r#"{{"PauseEvalBroker": "{huge}"}}"#))
            .text,
        format!(
            "Error parsing scheduler config: invalid type: string \"{}...\", expected a boolean",
            "x".repeat(64)
        )
    );
    // A value of the right type that a route refuses in its own words
    // ("invalid scheduler algorithm: <value>") is cut at 1 KiB.
    let reply = agent.put(SCHEDULER, &format!(r#"{{"SchedulerAlgorithm": "{huge}"}}"#));
    assert_eq!(reply.status, 400);
    assert!(reply.text.starts_with("invalid scheduler algorithm: xxx"));
    assert!(reply.text.len() <= 1024 && reply.text.ends_with("..."));
    assert_eq!(agent.get(SCHEDULER).json()["SchedulerConfig"], before);
    assert_still_up(&agent);
}
