use super::*;
use caravan_api_types::operator::{AutopilotConfiguration, SchedulerConfiguration};

fn spread() -> SchedulerConfiguration {
    SchedulerConfiguration {
        scheduler_algorithm: "spread".into(),
        ..SchedulerConfiguration::initial()
    }
}

#[test]
fn writes_stamp_indexes_and_keep_create_index() {
    let store = StateStore::new();
    store.apply(
        3,
        &Command::SchedulerConfigInit {
            config: SchedulerConfiguration::initial(),
        },
    );
    let result = store.apply(
        7,
        &Command::SchedulerConfigSet {
            config: spread(),
            cas: None,
        },
    );
    assert_eq!(result, CommandResult::Done);
    let state = store.snapshot();
    let config = state.scheduler_config().unwrap();
    assert_eq!((config.create_index, config.modify_index), (3, 7));
    assert_eq!(config.scheduler_algorithm, "spread");
    assert_eq!(state.table_index(Table::SchedulerConfig), 7);
    assert_eq!(state.latest_index(), 7);
}

#[test]
fn init_never_overwrites() {
    let store = StateStore::new();
    store.apply(
        2,
        &Command::AutopilotConfigInit {
            config: AutopilotConfiguration::initial(),
        },
    );
    store.apply(
        5,
        &Command::AutopilotConfigInit {
            config: AutopilotConfiguration::default(),
        },
    );
    let state = store.snapshot();
    assert_eq!(state.autopilot_config().unwrap().max_trailing_logs, 250);
    assert_eq!(state.table_index(Table::AutopilotConfig), 2);
}

#[test]
fn cas_applies_only_on_the_current_modify_index() {
    let store = StateStore::new();
    store.apply(
        4,
        &Command::SchedulerConfigInit {
            config: SchedulerConfiguration::initial(),
        },
    );
    let stale = store.apply(
        6,
        &Command::SchedulerConfigSet {
            config: spread(),
            cas: Some(3),
        },
    );
    assert_eq!(stale, CommandResult::Cas(false));
    assert_eq!(
        store
            .snapshot()
            .scheduler_config()
            .unwrap()
            .scheduler_algorithm,
        "binpack"
    );
    let fresh = store.apply(
        7,
        &Command::SchedulerConfigSet {
            config: spread(),
            cas: Some(4),
        },
    );
    assert_eq!(fresh, CommandResult::Cas(true));
    assert_eq!(store.snapshot().scheduler_config().unwrap().modify_index, 7);
}

#[test]
fn readers_keep_their_version() {
    let store = StateStore::new();
    store.apply(
        1,
        &Command::SchedulerConfigInit {
            config: SchedulerConfiguration::initial(),
        },
    );
    let before = store.snapshot();
    store.apply(
        2,
        &Command::SchedulerConfigSet {
            config: spread(),
            cas: None,
        },
    );
    assert_eq!(
        before.scheduler_config().unwrap().scheduler_algorithm,
        "binpack"
    );
    assert_eq!(
        store
            .snapshot()
            .scheduler_config()
            .unwrap()
            .scheduler_algorithm,
        "spread"
    );
}

/// A store with something in every table.
fn populated() -> StateStore {
    let store = StateStore::new();
    store.apply(1, &Command::SchedulerConfigInit { config: spread() });
    store.apply(
        2,
        &Command::AutopilotConfigInit {
            config: AutopilotConfiguration::initial(),
        },
    );
    store.apply(
        3,
        &Command::AclBootstrap {
            token: token("a1", "s1"),
            reset_index: None,
        },
    );
    store.apply(
        4,
        &Command::AclTokenUpsert {
            tokens: vec![token("a2", "s2")],
        },
    );
    store.apply(
        5,
        &Command::AclPolicyUpsert {
            policies: vec![caravan_api_types::acl::AclPolicy {
                name: "readonly".into(),
                rules: "node { policy = \"read\" }".into(),
                ..Default::default()
            }],
        },
    );
    store.apply(
        6,
        &Command::NodeRegister {
            node: Box::new(test_node("n1")),
            now: now(),
        },
    );
    store.apply(
        7,
        &Command::NamespaceUpsert {
            namespaces: vec![caravan_api_types::namespace::Namespace {
                name: "team".into(),
                ..Default::default()
            }],
        },
    );
    store.note_index(9);
    store
}

#[test]
fn snapshot_round_trip_restores_everything() {
    let store = populated();
    let original = store.snapshot();
    // Every table holds something, so a table the round trip drops shows.
    assert!(original.scheduler_config().is_some() && original.autopilot_config().is_some());
    assert_eq!(original.acl_tokens().count(), 2);
    assert_eq!(original.acl_policies().count(), 1);
    assert_eq!(original.node_count(), 1);
    assert_eq!(original.acl_bootstrap_index(), 3);
    assert_eq!(original.namespaces().len(), 2);
    let bytes = store.to_snapshot_bytes().unwrap();
    let restored = StateStore::new();
    restored.restore(&bytes).unwrap();
    let state = restored.snapshot();
    // The whole state, rebuilt indexes included.
    assert_eq!(*state, *original);
    assert_eq!(state.latest_index(), 9);
    assert_eq!(state.acl_token_by_secret("s2").unwrap().accessor_id, "a2");
    assert!(restored.restore(b"{not json").is_err());
}

#[test]
fn snapshots_of_the_previous_format_still_load() {
    // Written by the version before indexed tables: a digest map beside the
    // tokens, and no field for a table added since (here: nodes).
    let digest = secret_digest("s1");
    let old = format!(
        r#"{{"latest_index":4,"table_indexes":{{"AclTokens":3}},"scheduler_config":null,
        "autopilot_config":null,"acl_policies":{{}},
        "acl_tokens":{{"a1":{{"AccessorID":"a1","SecretID":"s1","Type":"management","CreateIndex":3,"ModifyIndex":3}}}},
        "acl_secret_digests":{{"{digest}":"a1"}},"acl_bootstrap_index":3}}"#
    );
    let store = StateStore::new();
    store.restore(old.as_bytes()).unwrap();
    let state = store.snapshot();
    assert_eq!(state.latest_index(), 4);
    assert_eq!(state.acl_token_by_secret("s1").unwrap().accessor_id, "a1");
    assert_eq!(state.node_count(), 0);
    // An empty object is an empty state.
    store.restore(b"{}").unwrap();
    assert_eq!(*store.snapshot(), State::default());
}

#[tokio::test]
async fn watchers_wake_only_for_their_table() {
    let store = StateStore::new();
    let mut scheduler = store.watch(Table::SchedulerConfig);
    let autopilot = store.watch(Table::AutopilotConfig);
    store.apply(
        5,
        &Command::SchedulerConfigInit {
            config: SchedulerConfiguration::initial(),
        },
    );
    assert!(scheduler.has_changed().unwrap());
    assert_eq!(*scheduler.borrow_and_update(), 5);
    assert!(!autopilot.has_changed().unwrap());
}

fn token(accessor: &str, secret: &str) -> caravan_api_types::acl::AclToken {
    caravan_api_types::acl::AclToken {
        accessor_id: accessor.to_string(),
        secret_id: secret.to_string(),
        token_type: "management".to_string(),
        ..Default::default()
    }
}

#[test]
fn acl_bootstrap_happens_once_unless_reset() {
    let store = StateStore::new();
    let first = store.apply(
        3,
        &Command::AclBootstrap {
            token: token("a1", "s1"),
            reset_index: None,
        },
    );
    assert_eq!(first, CommandResult::Done);
    let again = store.apply(
        4,
        &Command::AclBootstrap {
            token: token("a2", "s2"),
            reset_index: None,
        },
    );
    assert_eq!(
        again,
        CommandResult::Refused("ACL bootstrap already done (reset index: 3)".into())
    );
    assert!(store.snapshot().acl_token("a2").is_none());
    let reset = store.apply(
        5,
        &Command::AclBootstrap {
            token: token("a3", "s3"),
            reset_index: Some(3),
        },
    );
    assert_eq!(reset, CommandResult::Done);
    assert_eq!(store.snapshot().acl_bootstrap_index(), 5);
}

#[test]
fn tokens_are_found_by_secret_and_forgotten_on_delete() {
    let store = StateStore::new();
    store.apply(
        2,
        &Command::AclTokenUpsert {
            tokens: vec![token("acc", "secret-1")],
        },
    );
    let state = store.snapshot();
    assert_eq!(
        state.acl_token_by_secret("secret-1").unwrap().accessor_id,
        "acc"
    );
    assert!(state.acl_token_by_secret("secret-2").is_none());
    // Replacing a token's secret forgets the old one.
    store.apply(
        3,
        &Command::AclTokenUpsert {
            tokens: vec![token("acc", "secret-9")],
        },
    );
    let state = store.snapshot();
    assert!(state.acl_token_by_secret("secret-1").is_none());
    assert_eq!(state.acl_token("acc").unwrap().create_index, 2);
    assert_eq!(state.acl_token("acc").unwrap().modify_index, 3);
    store.apply(
        4,
        &Command::AclTokenDelete {
            accessors: vec!["acc".into()],
        },
    );
    assert!(store.snapshot().acl_token_by_secret("secret-9").is_none());
    assert!(secrets_equal("abc", "abc"));
    assert!(!secrets_equal("abc", "abd"));
    assert!(!secrets_equal("abc", "abcd"));
}

fn test_node(id: &str) -> caravan_api_types::node::Node {
    caravan_api_types::node::Node {
        id: id.to_string(),
        secret_id: "node-secret".to_string(),
        name: format!("node-{id}"),
        datacenter: "dc1".to_string(),
        ..Default::default()
    }
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

#[test]
fn node_register_keeps_server_owned_fields() {
    let store = StateStore::new();
    store.apply(
        5,
        &Command::NodeRegister {
            node: Box::new(test_node("n1")),
            now: now(),
        },
    );
    let node = store.snapshot().node("n1").cloned().unwrap();
    assert_eq!(node.status, "initializing");
    assert_eq!(node.scheduling_eligibility, "eligible");
    assert_eq!(node.node_pool, "default");
    assert_eq!(node.events.len(), 1);
    assert_eq!(node.events[0].message, "Node registered");
    assert_eq!(node.events[0].create_index, 5);
    store.apply(
        6,
        &Command::NodeUpdateEligibility {
            node_id: "n1".into(),
            eligibility: "ineligible".into(),
            now: now(),
        },
    );
    let mut again = test_node("n1");
    again.name = "renamed".into();
    store.apply(
        7,
        &Command::NodeRegister {
            node: Box::new(again),
            now: now(),
        },
    );
    let node = store.snapshot().node("n1").cloned().unwrap();
    assert_eq!(node.name, "renamed");
    assert_eq!(node.scheduling_eligibility, "ineligible");
    assert_eq!((node.create_index, node.modify_index), (5, 7));
    let mut impostor = test_node("n1");
    impostor.secret_id = "other".into();
    let refused = store.apply(
        8,
        &Command::NodeRegister {
            node: Box::new(impostor),
            now: now(),
        },
    );
    assert!(matches!(refused, CommandResult::Refused(reason) if reason.contains("secret")));
}

#[test]
fn node_status_drain_and_event_rules() {
    let store = StateStore::new();
    store.apply(
        1,
        &Command::NodeRegister {
            node: Box::new(test_node("n1")),
            now: now(),
        },
    );
    store.apply(
        2,
        &Command::NodeUpdateStatus {
            node_id: "n1".into(),
            status: "down".into(),
            event: Some(caravan_api_types::node::NodeEvent::new(
                "Cluster",
                "Node heartbeat missed",
            )),
            now: now(),
        },
    );
    let node = store.snapshot().node("n1").cloned().unwrap();
    assert_eq!(node.last_missed_heartbeat_index, 2);
    store.apply(
        3,
        &Command::NodeUpdateStatus {
            node_id: "n1".into(),
            status: "ready".into(),
            event: None,
            now: now(),
        },
    );
    let node = store.snapshot().node("n1").cloned().unwrap();
    assert_eq!(node.status, "ready");
    assert_eq!(node.last_missed_heartbeat_index, 0);
    assert_eq!(
        node.events.last().unwrap().message,
        "Node reregistered by heartbeat"
    );

    let drain = |index, spec| {
        store.apply(
            index,
            &Command::NodeUpdateDrain {
                node_id: "n1".into(),
                spec,
                mark_eligible: false,
                meta: None,
                accessor: "token:acls-disabled".into(),
                now: now(),
            },
        )
    };
    drain(
        4,
        Some(caravan_api_types::node::DrainSpec {
            deadline: 3_600_000_000_000,
            ignore_system_jobs: false,
        }),
    );
    let node = store.snapshot().node("n1").cloned().unwrap();
    assert!(
        node.drain
            && node
                .drain_strategy
                .as_ref()
                .unwrap()
                .force_deadline
                .is_some()
    );
    assert_eq!(node.scheduling_eligibility, "ineligible");
    assert_eq!(node.last_drain.as_ref().unwrap().status, "draining");
    let refused = store.apply(
        5,
        &Command::NodeUpdateEligibility {
            node_id: "n1".into(),
            eligibility: "eligible".into(),
            now: now(),
        },
    );
    assert!(
        matches!(refused, CommandResult::Refused(reason) if reason.contains("while it is draining"))
    );
    store.apply(
        6,
        &Command::NodeDrainComplete {
            node_id: "n1".into(),
            deadline_reached: false,
            now: now(),
        },
    );
    let node = store.snapshot().node("n1").cloned().unwrap();
    assert!(!node.drain && node.drain_strategy.is_none());
    assert_eq!(node.scheduling_eligibility, "ineligible");
    assert_eq!(node.last_drain.as_ref().unwrap().status, "complete");
    assert_eq!(node.events.last().unwrap().message, "Node drain complete");

    // Only the last ten events are kept.
    for index in 10..30 {
        let eligibility = if index % 2 == 0 {
            "eligible"
        } else {
            "ineligible"
        };
        store.apply(
            index,
            &Command::NodeUpdateEligibility {
                node_id: "n1".into(),
                eligibility: eligibility.into(),
                now: now(),
            },
        );
    }
    let node = store.snapshot().node("n1").cloned().unwrap();
    assert_eq!(node.events.len(), 10);
    assert_eq!(node.events.last().unwrap().create_index, 29);

    assert_eq!(
        store.apply(
            40,
            &Command::NodeDeregister {
                node_ids: vec!["n1".into()]
            }
        ),
        CommandResult::Done
    );
    assert!(store.snapshot().node("n1").is_none());
    assert!(matches!(
        store.apply(
            41,
            &Command::NodeDeregister {
                node_ids: vec!["n1".into()]
            }
        ),
        CommandResult::Refused(_)
    ));
}

#[test]
fn nodes_by_prefix() {
    let store = StateStore::new();
    for (index, id) in ["aa01", "aa02", "ab00", "b000"].iter().enumerate() {
        store.apply(
            index as u64 + 1,
            &Command::NodeRegister {
                node: Box::new(test_node(id)),
                now: now(),
            },
        );
    }
    let state = store.snapshot();
    let ids: Vec<String> = state
        .nodes_with_prefix("aa")
        .map(|n| n.id.clone())
        .collect();
    assert_eq!(ids, ["aa01", "aa02"]);
    assert_eq!(state.nodes_with_prefix("a").count(), 3);
    assert_eq!(state.nodes_with_prefix("c").count(), 0);
}

fn register(store: &StateStore, index: u64, id: &str) {
    let result = store.apply(
        index,
        &Command::NodeRegister {
            node: Box::new(test_node(id)),
            now: now(),
        },
    );
    assert_eq!(result, CommandResult::Done);
}

fn node_row(id: &str) -> WatchKey {
    WatchKey::Row(Table::Nodes, id.to_string())
}

#[test]
fn one_node_change_wakes_only_the_waiter_on_that_node() {
    let store = StateStore::new();
    let ids: Vec<String> = (0..1000).map(|i| format!("node-{i:04}")).collect();
    for (i, id) in ids.iter().enumerate() {
        register(&store, i as u64 + 1, id);
    }
    let watches: Vec<Watch> = ids
        .iter()
        .map(|id| store.watch_keys(&[node_row(id)]))
        .collect();
    let table = store.watch_keys(&[WatchKey::Table(Table::Nodes)]);
    let other_table = store.watch_keys(&[WatchKey::Table(Table::AclTokens)]);
    assert_eq!(store.registered_waiters(), 1002);
    let before = store.woken_waiters();
    store.apply(
        2000,
        &Command::NodeUpdateEligibility {
            node_id: "node-0500".into(),
            eligibility: "ineligible".into(),
            now: now(),
        },
    );
    // The node's waiter and the whole-table waiter; nobody else.
    assert_eq!(store.woken_waiters() - before, 2);
    let fired: Vec<&str> = watches
        .iter()
        .zip(&ids)
        .filter(|(watch, _)| watch.has_fired())
        .map(|(_, id)| id.as_str())
        .collect();
    assert_eq!(fired, ["node-0500"]);
    assert!(table.has_fired());
    assert!(!other_table.has_fired());
    // A refused write touches nothing.
    let before = store.woken_waiters();
    store.apply(
        2001,
        &Command::NodeUpdateEligibility {
            node_id: "node-0001".into(),
            eligibility: "bogus".into(),
            now: now(),
        },
    );
    assert_eq!(store.woken_waiters(), before);
    assert!(!watches[1].has_fired());
    drop(watches);
    drop(table);
    drop(other_table);
    assert_eq!(store.registered_waiters(), 0);
}

#[tokio::test]
async fn a_fired_watch_resolves_and_a_quiet_one_does_not() {
    let store = std::sync::Arc::new(StateStore::new());
    let quiet = store.watch_keys(&[node_row("n2")]);
    let watch = store.watch_keys(&[node_row("n1")]);
    let writer = {
        let store = std::sync::Arc::clone(&store);
        tokio::spawn(async move { register(&store, 1, "n1") })
    };
    watch.fired().await;
    writer.await.unwrap();
    // Registration came first, so the write had to wake it; the other key
    // was not touched.
    assert!(!quiet.has_fired());
    assert_eq!(store.woken_waiters(), 1);
    // A key that fires later still resolves a watch registered earlier.
    register(&store, 2, "n2");
    quiet.fired().await;
}

#[test]
fn deleting_a_row_fires_its_key_and_restore_fires_everything() {
    let store = StateStore::new();
    register(&store, 1, "n1");
    let gone = store.watch_keys(&[node_row("n1")]);
    let by_secret = store.watch_keys(&[WatchKey::Index(
        Table::AclTokens,
        TOKENS_BY_SECRET_DIGEST,
        secret_digest("s1"),
    )]);
    store.apply(
        2,
        &Command::NodeDeregister {
            node_ids: vec!["n1".into()],
        },
    );
    assert!(gone.has_fired());
    assert!(!by_secret.has_fired());
    // A token with that secret joins the index value.
    store.apply(
        3,
        &Command::AclTokenUpsert {
            tokens: vec![token("a1", "s1")],
        },
    );
    assert!(by_secret.has_fired());
    let bytes = store.to_snapshot_bytes().unwrap();
    let unrelated = store.watch_keys(&[node_row("zzz")]);
    store.restore(&bytes).unwrap();
    assert!(unrelated.has_fired());
}

#[test]
fn a_batch_publishes_once_and_wakes_each_waiter_once() {
    let store = StateStore::new();
    let table = store.watch_keys(&[WatchKey::Table(Table::Nodes)]);
    let n1 = store.watch_keys(&[node_row("n1"), node_row("n2")]);
    let mut nodes = store.watch(Table::Nodes);
    let commands: Vec<Command> = ["n1", "n2", "n3"]
        .iter()
        .map(|id| Command::NodeRegister {
            node: Box::new(test_node(id)),
            now: now(),
        })
        .collect();
    let before = store.publishes();
    let seen_before = store.snapshot();
    let results = store.apply_batch(commands.iter().enumerate().map(|(i, c)| (i as u64 + 10, c)));
    assert_eq!(results, vec![CommandResult::Done; 3]);
    assert_eq!(store.publishes() - before, 1);
    assert_eq!(store.woken_waiters(), 2);
    assert!(table.has_fired() && n1.has_fired());
    assert!(nodes.has_changed().unwrap());
    assert_eq!(*nodes.borrow_and_update(), 12);
    assert_eq!(seen_before.node_count(), 0);
    let state = store.snapshot();
    assert_eq!((state.node_count(), state.latest_index()), (3, 12));

    // A batch object: nothing is visible until it is committed.
    let mut batch = store.batch();
    batch.note_index(13);
    let refused = batch.apply(
        14,
        &Command::NodeDeregister {
            node_ids: vec!["nope".into()],
        },
    );
    assert!(matches!(refused, CommandResult::Refused(_)));
    assert!(batch.touched().is_empty());
    assert_eq!(store.snapshot().latest_index(), 12);
    assert_eq!(batch.commit(), 0);
    assert_eq!(store.snapshot().latest_index(), 14);
    assert_eq!(store.publishes() - before, 2);
    // An empty batch publishes nothing.
    let _ = store.batch().commit();
    assert_eq!(store.publishes() - before, 2);
}

#[tokio::test]
async fn snapshot_at_least_waits_for_the_index() {
    use std::time::Duration;
    let store = std::sync::Arc::new(StateStore::new());
    store.note_index(3);
    assert_eq!(
        store
            .snapshot_at_least(3, Duration::ZERO)
            .await
            .unwrap()
            .latest_index(),
        3
    );
    let error = store
        .snapshot_at_least(5, Duration::from_millis(10))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StateError::Timeout {
                wanted: 5,
                applied: 3
            }
        ),
        "{error}"
    );
    let waiter = {
        let store = std::sync::Arc::clone(&store);
        tokio::spawn(async move { store.snapshot_at_least(5, Duration::from_secs(60)).await })
    };
    // On this single-threaded runtime the waiter runs only when this task
    // yields: it must still be waiting after seeing index 4.
    tokio::task::yield_now().await;
    store.note_index(4);
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished(), "returned at index 4");
    store.note_index(6);
    assert_eq!(waiter.await.unwrap().unwrap().latest_index(), 6);
}
