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
