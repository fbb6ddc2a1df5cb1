//! The Rust SDK (`caravan-sdk`) against a real agent: each area's calls,
//! errors that keep the server's status and text, an unreachable agent,
//! and a blocking query followed as a stream.

mod common;

use std::time::Duration;

use caravan_sdk::{Client, Config, Error, QueryOptions, WriteOptions};
use common::jobs::{marker, ProcessReaper, SERVER_AND_CLIENT};
use common::Agent;
use futures::StreamExt;
use serde_json::json;

fn client(agent: &Agent) -> Client {
    let config = Config::from_lookup(|_| None)
        .and_then(|config| config.with_address(&agent.url("")))
        .unwrap_or_default();
    Client::new(config).unwrap_or_else(|error| panic!("{error}"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|error| panic!("{error}"))
}

#[test]
fn every_area_answers_with_typed_values() {
    let tag = marker("sdk");
    let _reaper = ProcessReaper(tag.clone());
    let agent = Agent::start_with_data_dir(&[], SERVER_AND_CLIENT);
    let client = client(&agent);
    runtime().block_on(async {
        let leader = client.status().leader().await.unwrap();
        assert!(client.status().peers().await.unwrap().contains(&leader));
        let members = client.agent().members().await.unwrap();
        assert_eq!(members.members.len(), 1);

        let options = QueryOptions::default();
        let node = loop {
            let (nodes, meta) = client.nodes().list(&options).await.unwrap();
            assert!(meta.last_index > 0 && meta.known_leader);
            if let Some(node) = nodes.into_iter().find(|node| node.status == "ready") {
                break node;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let (full, _) = client.nodes().info(&node.id, &options).await.unwrap();
        assert_eq!(full.name, node.name);

        let job = serde_json::from_value(json!({
            "ID": "sdk-job",
            "TaskGroups": [{"Name": "g", "Tasks": [{
                "Name": "t", "Driver": "raw_exec", "Env": {"CARAVAN_TEST_MARKER": tag},
                "Config": {"command": "/bin/sleep", "args": ["600"]}}]}]
        }))
        .unwrap();
        let registered = client
            .jobs()
            .register(&job, &WriteOptions::default())
            .await
            .unwrap();
        assert!(!registered.eval_id.is_empty());
        let (evaluation, _) = client
            .evaluations()
            .info(&registered.eval_id, &options)
            .await
            .unwrap();
        assert_eq!(evaluation.job_id, "sdk-job");
        let (job, _) = client.jobs().info("sdk-job", &options).await.unwrap();
        assert_eq!(job.id, "sdk-job");
        let (jobs, _) = client.jobs().list(&options).await.unwrap();
        assert!(jobs.iter().any(|stub| stub.id == "sdk-job"));
        let allocation = loop {
            let (allocations, _) = client.jobs().allocations("sdk-job", &options).await.unwrap();
            if let Some(running) = allocations.into_iter().find(|a| a.client_status == "running") {
                break running;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let (full, _) = client.allocations().info(&allocation.id, &options).await.unwrap();
        assert_eq!(full.job_id, "sdk-job");

        let (raft, _) = client.operator().raft_configuration(&options).await.unwrap();
        assert_eq!(raft.servers.len(), 1);
        let (scheduler, _) = client.operator().scheduler_configuration(&options).await.unwrap();
        assert_eq!(scheduler.scheduler_config.scheduler_algorithm, "binpack");

        let parsed = client
            .jobs()
            .parse("job \"p\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"raw_exec\"\n    }\n  }\n}\n", true)
            .await
            .unwrap();
        assert_eq!(parsed.id.as_deref(), Some("p"));

        client
            .jobs()
            .deregister("sdk-job", true, &WriteOptions::default())
            .await
            .unwrap();
    });
}

#[test]
fn errors_keep_the_servers_status_and_text() {
    let agent = Agent::start_with_data_dir(&[], SERVER_AND_CLIENT);
    let client = client(&agent);
    runtime().block_on(async {
        let error = client
            .jobs()
            .info("no-such-job", &QueryOptions::default())
            .await
            .unwrap_err();
        assert_eq!(error.status(), Some(404));
        assert!(error.to_string().contains("job not found"), "{error}");

        // A port nothing listens on.
        let (_, _, free) = common::free_ports();
        let nowhere = Config::from_lookup(|_| None)
            .and_then(|config| config.with_address(&format!("127.0.0.1:{free}")))
            .and_then(Client::new)
            .unwrap();
        match nowhere.status().leader().await {
            Err(Error::Transport { address, .. }) => {
                assert_eq!(address, format!("http://127.0.0.1:{free}"))
            }
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn a_blocking_query_is_followed_as_a_stream() {
    let agent = Agent::start_with_data_dir(&["-server", "-bootstrap-expect", "1"], "");
    let client = client(&agent);
    runtime().block_on(async {
        let watcher = client.clone();
        let jobs = caravan_sdk::watch::watch(QueryOptions::default(), move |options| {
            let client = watcher.clone();
            async move { client.jobs().list(&options).await }
        });
        futures::pin_mut!(jobs);
        let (first, meta) = jobs.next().await.unwrap().unwrap();
        assert!(first.is_empty());
        let job = serde_json::from_value(json!({
            "ID": "watched",
            "TaskGroups": [{"Name": "g", "Tasks": [{
                "Name": "t", "Driver": "raw_exec",
                "Config": {"command": "/bin/true"}}]}]
        }))
        .unwrap();
        client
            .jobs()
            .register(&job, &WriteOptions::default())
            .await
            .unwrap();
        let (next, next_meta) = tokio::time::timeout(Duration::from_secs(30), jobs.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(next_meta.last_index > meta.last_index);
        assert!(next.iter().any(|stub| stub.id == "watched"));
    });
}
