//! Blocking queries: `?index=` waits for a change, and a write wakes it.

mod common;

use std::sync::Arc;

use common::Agent;
use serde_json::json;

#[test]
fn a_write_wakes_a_blocking_query() {
    let agent = Arc::new(Agent::dev());
    let first = agent.get("/v1/operator/scheduler/configuration");
    let index: u64 = first.header("x-nomad-index").unwrap().parse().unwrap();

    let waiter = {
        let agent = Arc::clone(&agent);
        std::thread::spawn(move || {
            agent.get(&format!(
                "/v1/operator/scheduler/configuration?index={index}&wait=60s"
            ))
        })
    };
    // The waiter registers its watch (a query that returned at once never
    // would), and is still waiting: nothing has changed.
    agent.wait_for_blocking_waiters(1);
    assert!(!waiter.is_finished(), "returned before any change");
    let woken_before = agent.state_stat("woken_waiters");

    let write = agent.put(
        "/v1/operator/scheduler/configuration",
        &json!({"SchedulerAlgorithm": "spread"}).to_string(),
    );
    let written: u64 = write.json()["Index"].as_u64().unwrap();

    let woken = waiter.join().unwrap();
    assert_eq!(agent.state_stat("woken_waiters") - woken_before, 1);
    assert_eq!(agent.state_stat("blocking_waiters"), 0);
    assert_eq!(woken.status, 200);
    let woken_index: u64 = woken.header("x-nomad-index").unwrap().parse().unwrap();
    assert_eq!(woken_index, written);
    assert_eq!(
        woken.json()["SchedulerConfig"]["SchedulerAlgorithm"],
        "spread"
    );
}

#[test]
fn a_blocking_query_that_sees_no_change_returns_the_same_index() {
    let agent = Agent::dev();
    let first = agent.get("/v1/operator/autopilot/configuration");
    let index = first.header("x-nomad-index").unwrap();
    let again = agent.get(&format!(
        "/v1/operator/autopilot/configuration?index={index}&wait=200ms"
    ));
    assert_eq!(again.status, 200);
    assert_eq!(again.header("x-nomad-index").unwrap(), index);
    assert_eq!(again.json(), first.json());
}

#[test]
fn an_older_index_answers_at_once() {
    let agent = Agent::dev();
    let reply = agent.get("/v1/operator/scheduler/configuration?index=1&wait=10m");
    assert_eq!(reply.status, 200);
    let index: u64 = reply.header("x-nomad-index").unwrap().parse().unwrap();
    assert!(index > 1);
}

#[test]
fn writes_to_one_table_do_not_wake_readers_of_another() {
    let agent = Arc::new(Agent::dev());
    let index = agent
        .get("/v1/operator/autopilot/configuration")
        .header("x-nomad-index")
        .unwrap();
    let waiter = {
        let agent = Arc::clone(&agent);
        let index = index.clone();
        std::thread::spawn(move || {
            agent.get(&format!(
                "/v1/operator/autopilot/configuration?index={index}&wait=2s"
            ))
        })
    };
    agent.wait_for_blocking_waiters(1);
    let woken_before = agent.state_stat("woken_waiters");
    agent.put(
        "/v1/operator/scheduler/configuration",
        r#"{"SchedulerAlgorithm":"spread"}"#,
    );
    // A write answers only after its watches fired: the autopilot reader
    // was not woken (a spurious wake would count here, even though the
    // query's own loop would hide it).
    assert_eq!(agent.state_stat("woken_waiters"), woken_before);
    assert!(!waiter.is_finished());
    let reply = waiter.join().unwrap();
    // It ran out its wait and reports the autopilot table's unchanged index.
    assert_eq!(reply.header("x-nomad-index").unwrap(), index);
    assert_eq!(agent.state_stat("woken_waiters"), woken_before);
}
