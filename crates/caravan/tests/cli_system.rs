//! `caravan system gc` and `caravan system reconcile summaries` against a
//! real agent, as a user runs them (the real binary, its streams and exit
//! code), and the SDK's `system()` calls behind them.

mod common;

use std::time::{Duration, Instant};

use caravan_sdk::WriteOptions;
use common::cli::{caravan, caravan_with, cluster};
use common::jobs::{marker, register, shell_job, wait_allocs, with_status, ProcessReaper};
use common::Agent;

/// Waits (bounded) until the job's status is `dead`.
fn wait_until_dead(agent: &Agent, job_id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = agent.get(&format!("/v1/job/{job_id}")).json();
        if job["Status"] == "dead" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{job_id} never became dead: {job}\nlog:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn gc_removes_a_finished_batch_job_and_reconcile_succeeds() {
    let tag = marker("cli-system");
    let _reaper = ProcessReaper(tag.clone());
    let (agent, _node) = cluster();
    register(&agent, &shell_job("done", "batch", 1, "exit 0", &tag));
    let finished = wait_allocs(&agent, "done", "the batch job finishing", |allocs| {
        with_status(allocs, "complete").len() == 1
    });
    wait_until_dead(&agent, "done");
    assert!(caravan(&agent, &["job", "status", "done"])
        .ok()
        .contains("dead"));

    // Nomad's `system gc` prints nothing on success.
    let gc = caravan(&agent, &["system", "gc"]);
    assert_eq!(gc.ok(), "", "{gc:#?}");
    assert_eq!(gc.stderr, "", "{gc:#?}");

    assert_eq!(agent.get("/v1/job/done").status, 404);
    let alloc = finished[0]["ID"].as_str().expect("alloc ID");
    assert_eq!(agent.get(&format!("/v1/allocation/{alloc}")).status, 404);
    let status = caravan(&agent, &["job", "status", "done"]);
    assert!(
        status
            .failed()
            .contains("No job(s) with prefix or ID \"done\" found"),
        "{status:#?}"
    );

    // As Nomad's, it prints nothing on success either.
    let reconcile = caravan(&agent, &["system", "reconcile", "summaries"]);
    assert_eq!(reconcile.ok(), "", "{reconcile:#?}");

    // The SDK's calls: a recount is always a write; a collection with
    // nothing left to collect writes nothing and still succeeds.
    let sdk = agent.sdk();
    let options = WriteOptions::default();
    let written = common::block_on(sdk.system().reconcile_summaries(&options))
        .unwrap_or_else(|error| panic!("reconcile: {error}"));
    assert!(written.last_index > 0, "{written:?}");
    common::block_on(sdk.system().gc(&options)).unwrap_or_else(|error| panic!("gc: {error}"));
}

#[test]
fn usage_errors_help_and_the_group() {
    // Usage errors stop before any call: no agent is needed, and an
    // address nothing listens on proves none is made.
    let nowhere = [("NOMAD_ADDR", "http://127.0.0.1:1")];
    let extra = caravan_with(&nowhere, &["system", "gc", "extra"]);
    let stderr = extra.failed();
    assert!(
        stderr.contains("This command takes no arguments")
            && stderr.contains("For additional help try 'caravan system gc -help'"),
        "{extra:#?}"
    );
    let extra = caravan_with(&nowhere, &["system", "reconcile", "summaries", "x"]);
    assert!(
        extra.failed().contains("This command takes no arguments"),
        "{extra:#?}"
    );
    let flag = caravan_with(&nowhere, &["system", "gc", "-nope"]);
    assert!(
        flag.failed()
            .contains("flag provided but not defined: -nope"),
        "{flag:#?}"
    );

    let help = caravan_with(&nowhere, &["system", "gc", "-help"]);
    assert_eq!(help.code, 0, "{help:#?}");
    assert!(
        help.stderr
            .starts_with("Usage: caravan system gc [options]"),
        "{help:#?}"
    );

    // The group alone lists its commands, as `caravan job` does.
    let group = caravan_with(&nowhere, &["system"]);
    assert_eq!(group.code, 0, "{group:#?}");
    for line in [
        "system gc ",
        "Run the system garbage collection process",
        "system reconcile summaries ",
        "Reconciles the summaries of all registered jobs",
    ] {
        assert!(group.stderr.contains(line), "{line}: {group:#?}");
    }

    // An agent that cannot be reached is the call's failure, in Nomad's words.
    let down = caravan_with(&nowhere, &["system", "gc"]);
    assert!(
        down.failed()
            .starts_with("Error running system garbage-collection: "),
        "{down:#?}"
    );
}

#[test]
fn with_acls_only_a_management_token_may() {
    let agent = Agent::start(&["-dev", "-acl-enabled"], "");
    let management = common::acl::bootstrap(&agent);
    common::acl::create_policy(
        &agent,
        &management,
        "writer",
        "namespace \"default\" {\n  policy = \"write\"\n}\nnode {\n  policy = \"write\"\n}\n",
    );
    let client_token = common::acl::create_token(&agent, &management, &["writer"]);
    let client_secret = client_token["SecretID"].as_str().expect("SecretID");
    let address = agent.url("");

    for (words, doing) in [
        (&["system", "gc"][..], "garbage-collection"),
        (
            &["system", "reconcile", "summaries"][..],
            "summary reconciliation",
        ),
    ] {
        let denied = caravan(&agent, words);
        let stderr = denied.failed();
        assert!(
            stderr.starts_with(&format!("Error running system {doing}: "))
                && stderr.contains("403")
                && stderr.contains("Permission denied"),
            "{denied:#?}"
        );
        let refused = caravan_with(
            &[("NOMAD_ADDR", &address), ("NOMAD_TOKEN", client_secret)],
            words,
        );
        assert!(refused.failed().contains("403"), "{refused:#?}");
        let allowed = caravan_with(
            &[("NOMAD_ADDR", &address), ("NOMAD_TOKEN", &management)],
            words,
        );
        assert_eq!(allowed.ok(), "", "{allowed:#?}");
        let flagged = caravan(
            &agent,
            &[words, &["-token", management.as_str()][..]].concat(),
        );
        assert_eq!(flagged.ok(), "", "{flagged:#?}");
    }

    // The SDK keeps the server's status; a token for the call is honoured.
    let sdk = agent.sdk();
    let denied = common::block_on(sdk.system().gc(&WriteOptions::default()))
        .expect_err("no token is denied");
    assert_eq!(denied.status(), Some(403), "{denied}");
    let with_token = WriteOptions {
        token: Some(management.clone()),
        ..WriteOptions::default()
    };
    common::block_on(sdk.system().gc(&with_token)).unwrap_or_else(|error| panic!("gc: {error}"));
    common::block_on(sdk.system().reconcile_summaries(&with_token))
        .unwrap_or_else(|error| panic!("reconcile: {error}"));
}
