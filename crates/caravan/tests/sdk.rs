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

        // The smaller calls: regions, health, a node's re-evaluation, a
        // job's deployments (none yet), a node-wide collection.
        assert_eq!(client.status().regions().await.unwrap(), ["global"]);
        let health = client.agent().health().await.unwrap();
        assert_eq!(health["server"]["ok"], json!(true), "{health}");
        let evaluated = client
            .nodes()
            .evaluate(&node.id, &WriteOptions::default())
            .await
            .unwrap();
        assert!(
            evaluated["EvalIDs"].as_array().is_some_and(|ids| !ids.is_empty()),
            "{evaluated}"
        );
        let (deployments, _) = client.jobs().deployments("sdk-job", &options).await.unwrap();
        assert!(deployments.is_empty());
        client.client().collect_all(None).await.unwrap();

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

#[test]
fn acl_policies_and_tokens_through_the_sdk() {
    let agent = Agent::start(&["-dev", "-acl-enabled"], "");
    let anonymous = client(&agent);
    runtime().block_on(async {
        let management = anonymous.acl().bootstrap().await.unwrap();
        assert_eq!(management.token_type, "management");
        // Bootstrapping again is refused, with the server's text.
        let again = anonymous.acl().bootstrap().await.unwrap_err();
        assert_eq!(again.status(), Some(400), "{again}");
        let admin = anonymous.with_token(&management.secret_id).unwrap();
        let write = WriteOptions::default();
        let rules = "node {\n  policy = \"read\"\n}\n";
        admin
            .acl()
            .upsert_policy("nodes", "read nodes", rules, &write)
            .await
            .unwrap();
        let options = QueryOptions::default();
        let (policy, _) = admin.acl().policy("nodes", &options).await.unwrap();
        assert_eq!(policy.rules, rules);
        let (policies, _) = admin.acl().policies(&options).await.unwrap();
        assert_eq!(policies.len(), 1);
        let token = admin
            .acl()
            .create_token("reader", "client", &["nodes"], &write)
            .await
            .unwrap();
        let reader = anonymous.with_token(&token.secret_id).unwrap();
        let (me, _) = reader.acl().token_self(&options).await.unwrap();
        assert_eq!(me.accessor_id, token.accessor_id);
        assert!(reader.nodes().list(&options).await.is_ok());
        let denied = reader.jobs().list(&options).await.unwrap_err();
        assert_eq!(denied.status(), Some(403));
        assert!(denied.to_string().contains("Permission denied"), "{denied}");
        admin
            .acl()
            .delete_token(&token.accessor_id, &write)
            .await
            .unwrap();
        let gone = reader.acl().token_self(&options).await.unwrap_err();
        assert_eq!(gone.status(), Some(403));
        admin.acl().delete_policy("nodes", &write).await.unwrap();
    });
}

#[test]
fn an_allocations_files_logs_and_signals_through_the_sdk() {
    let tag = marker("sdk-client");
    let _reaper = ProcessReaper(tag.clone());
    let agent = Agent::start_with_data_dir(&[], SERVER_AND_CLIENT);
    let client = client(&agent);
    runtime().block_on(async {
        let script = "echo hello; echo note > $NOMAD_ALLOC_DIR/data/n.txt; \
                      trap 'echo got-hup' HUP; while true; do sleep 0.2; done";
        let job = serde_json::from_value(json!({
            "ID": "sdk-files",
            "TaskGroups": [{"Name": "g", "Tasks": [{
                "Name": "t", "Driver": "raw_exec", "Env": {"CARAVAN_TEST_MARKER": tag},
                "Config": {"command": "/bin/sh", "args": ["-c", script]}}]}]
        }))
        .unwrap();
        client
            .jobs()
            .register(&job, &WriteOptions::default())
            .await
            .unwrap();
        let options = QueryOptions::default();
        let alloc = loop {
            let (allocations, _) = client
                .jobs()
                .allocations("sdk-files", &options)
                .await
                .unwrap();
            if let Some(running) = allocations
                .into_iter()
                .find(|a| a.client_status == "running")
            {
                break running.id;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let endpoints = client.client();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while endpoints
            .cat(&alloc, "alloc/data/n.txt")
            .await
            .ok()
            .as_deref()
            != Some("note\n")
        {
            assert!(std::time::Instant::now() < deadline, "the task's file");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let files = endpoints.list_files(&alloc, "alloc/data").await.unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].name, "n.txt");
        assert_eq!(
            endpoints
                .stat_file(&alloc, "alloc/data/n.txt")
                .await
                .unwrap()
                .size,
            5
        );
        assert!(endpoints
            .logs(&alloc, "t", "stdout")
            .await
            .unwrap()
            .starts_with("hello\n"));
        endpoints.signal(&alloc, "t", "SIGHUP").await.unwrap();
        while !endpoints
            .logs(&alloc, "t", "stdout")
            .await
            .unwrap()
            .contains("got-hup")
        {
            assert!(std::time::Instant::now() < deadline, "the signal");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let refused = endpoints.signal(&alloc, "t", "SIGBOGUS").await.unwrap_err();
        assert!(refused.to_string().contains("invalid signal"), "{refused}");
        let stats = endpoints.allocation_stats(&alloc).await.unwrap();
        assert!(stats["Tasks"]["t"].is_object(), "{stats}");
        let host = endpoints.host_stats(None).await.unwrap();
        assert!(host["Memory"]["Total"].as_u64().unwrap_or(0) > 0);
        let escaped = endpoints
            .cat(&alloc, "../../../etc/passwd")
            .await
            .unwrap_err();
        assert!(escaped.status().is_some_and(|status| status >= 400));
    });
}
