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

#[test]
fn snapshot_round_trip_restores_everything() {
    let store = StateStore::new();
    store.apply(1, &Command::SchedulerConfigInit { config: spread() });
    store.note_index(9);
    let bytes = store.to_snapshot_bytes().unwrap();
    let restored = StateStore::new();
    restored.restore(&bytes).unwrap();
    let state = restored.snapshot();
    assert_eq!(state.latest_index(), 9);
    assert_eq!(
        state.scheduler_config().unwrap().scheduler_algorithm,
        "spread"
    );
    assert!(restored.restore(b"{not json").is_err());
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
