//! Files written by an earlier version that this and every later version
//! must still read: a Raft log (the values redb stores, entry format 1) and
//! a snapshot (format 2, with its checksum), in `tests/golden/`.
//!
//! Never regenerate them to make this test pass: a change that breaks it
//! breaks the upgrade of every existing data dir. When a format changes,
//! add files for the new one beside these (`CARAVAN_WRITE_GOLDEN=1` writes
//! the current version's files under new names once they are renamed
//! below) and keep reading the old ones.

use std::path::PathBuf;
use std::sync::Arc;

use caravan_api_types::acl::{AclPolicy, AclToken};
use caravan_api_types::operator::SchedulerConfiguration;
use caravan_server::log_store::{decode_entry, encode_entry, ENTRY_FORMAT};
use caravan_server::raft_types::{Entry, LogId, RaftRequest, ServerNode, SnapshotMeta};
use caravan_server::state_machine::{split_snapshot, StateMachine, SNAPSHOT_FILE};
use caravan_state::{Command, State, StateStore};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, Membership};

const LOG_FILE: &str = "raft-log-format-1.jsonl";
const SNAPSHOT: &str = "state-format-2.snap";

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

const ACCESSOR: &str = "a1b2c3d4-0000-4000-8000-000000000001";
const SECRET: &str = "5ec7e75e-0000-4000-8000-000000000002";
const SERVER_ID: &str = "10000000-0000-4000-8000-000000000000";

/// What the golden log holds, as this version builds it.
fn entries() -> Vec<Entry> {
    let server = ServerNode {
        id: SERVER_ID.into(),
        name: "s1.global".into(),
        rpc_addr: "127.0.0.1:4647".into(),
        http_addr: "127.0.0.1:4646".into(),
    };
    let raft_id = caravan_server::raft_types::raft_id_of(SERVER_ID);
    let membership = Membership::new(
        vec![[raft_id].into_iter().collect()],
        std::collections::BTreeMap::from([(raft_id, server)]),
    )
    .unwrap();
    let normal = |index: u64, command: Command| Entry {
        log_id: LogId::new_term_index(1, index),
        payload: EntryPayload::Normal(RaftRequest(command)),
    };
    vec![
        Entry {
            log_id: LogId::new_term_index(0, 0),
            payload: EntryPayload::Membership(membership),
        },
        Entry {
            log_id: LogId::new_term_index(1, 1),
            payload: EntryPayload::Blank,
        },
        normal(
            2,
            Command::SchedulerConfigInit {
                config: SchedulerConfiguration::initial(),
            },
        ),
        normal(
            3,
            Command::AclPolicyUpsert {
                policies: vec![AclPolicy {
                    name: "readers".into(),
                    description: "read nodes".into(),
                    rules: "node {\n  policy = \"read\"\n}\n".into(),
                    ..AclPolicy::default()
                }],
            },
        ),
        normal(
            4,
            Command::AclTokenUpsert {
                tokens: vec![AclToken {
                    accessor_id: ACCESSOR.into(),
                    secret_id: SECRET.into(),
                    name: "reader".into(),
                    token_type: "client".into(),
                    policies: vec!["readers".into()],
                    ..AclToken::default()
                }],
            },
        ),
    ]
}

/// The stored value bytes, one line each: `{"index":..,"format":..,"json":..}`.
fn read_log() -> Vec<(u64, Vec<u8>)> {
    let text = std::fs::read_to_string(golden(LOG_FILE)).expect("the golden log");
    text.lines()
        .map(|line| {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            let mut bytes = vec![u8::try_from(line["format"].as_u64().unwrap()).unwrap()];
            bytes.extend_from_slice(line["json"].as_str().unwrap().as_bytes());
            (line["index"].as_u64().unwrap(), bytes)
        })
        .collect()
}

fn check_state(state: &State) {
    assert_eq!(
        state
            .scheduler_config()
            .map(|config| config.scheduler_algorithm.clone()),
        Some(SchedulerConfiguration::initial().scheduler_algorithm)
    );
    let policy = state.acl_policy("readers").expect("the policy");
    assert_eq!(policy.description, "read nodes");
    assert_eq!(policy.create_index, 3);
    let token = state.acl_token(ACCESSOR).expect("the token");
    assert_eq!(token.policies, vec!["readers".to_string()]);
    assert_eq!(
        state
            .acl_token_by_secret(SECRET)
            .map(|t| t.accessor_id.as_str()),
        Some(ACCESSOR)
    );
    assert_eq!(state.acl_policies().count(), 1);
    assert_eq!(state.acl_tokens().count(), 1);
}

/// Every entry of the golden log decodes to what was written, and applying
/// them gives the expected state.
#[test]
fn the_golden_log_still_reads() {
    let stored = read_log();
    let expected = entries();
    assert_eq!(stored.len(), expected.len() + 1);
    let store = StateStore::new();
    for (index, bytes) in &stored {
        let entry = decode_entry(*index, bytes).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(entry.log_id.index, *index);
        match expected.iter().find(|known| known.log_id.index == *index) {
            Some(known) => assert_eq!(&entry, known, "entry {index}"),
            // The last one is a command of a newer version, flagged
            // ignorable: skipped.
            None => match &entry.payload {
                EntryPayload::Normal(RaftRequest(Command::Unknown { variant, .. })) => {
                    assert_eq!(variant, "FromTheFuture");
                    // It is passed on exactly as it came.
                    assert_eq!(&encode_entry(&entry).unwrap(), bytes);
                }
                other => panic!("entry {index}: {other:?}"),
            },
        }
        match entry.payload {
            EntryPayload::Normal(RaftRequest(command)) => {
                store.apply(*index, &command);
            }
            _ => store.note_index(*index),
        }
    }
    check_state(&store.snapshot());
    assert_eq!(store.snapshot().latest_index(), 5);
}

/// The golden snapshot passes its checksum and loads into a state with the
/// expected contents, both as bytes and as a state machine's file.
#[test]
fn the_golden_snapshot_still_loads() {
    let bytes = std::fs::read(golden(SNAPSHOT)).expect("the golden snapshot");
    let (meta, state) = split_snapshot(&bytes).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(meta.last_log_id, Some(LogId::new_term_index(1, 4)));
    assert!(meta.last_membership.membership().voter_ids().count() == 1);
    let store = StateStore::new();
    store.restore(state).unwrap();
    check_state(&store.snapshot());

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(SNAPSHOT_FILE), &bytes).unwrap();
    let store = Arc::new(StateStore::new());
    let machine = StateMachine::open(dir.path(), Arc::clone(&store)).unwrap();
    assert_eq!(machine.last_applied(), Some(LogId::new_term_index(1, 4)));
    check_state(&store.snapshot());
}

/// Writes the files above from this version (run with
/// `CARAVAN_WRITE_GOLDEN=1`; only when adding files for a new format).
#[tokio::test]
async fn write_golden_files() {
    if std::env::var_os("CARAVAN_WRITE_GOLDEN").is_none() {
        return;
    }
    let mut lines = String::new();
    for entry in entries() {
        let bytes = encode_entry(&entry).unwrap();
        assert_eq!(bytes[0], ENTRY_FORMAT);
        let line = serde_json::json!({
            "index": entry.log_id.index,
            "format": bytes[0],
            "json": std::str::from_utf8(&bytes[1..]).unwrap(),
        });
        lines.push_str(&line.to_string());
        lines.push('\n');
    }
    // A newer version's command, flagged ignorable.
    let mut future = serde_json::to_value(Entry {
        log_id: LogId::new_term_index(1, 5),
        payload: EntryPayload::Blank,
    })
    .unwrap();
    future["payload"] = serde_json::json!({
        "Normal": {"ignorable": true, "command": {"FromTheFuture": {"x": 1}}}
    });
    lines.push_str(
        &serde_json::json!({"index": 5, "format": ENTRY_FORMAT, "json": future.to_string()})
            .to_string(),
    );
    lines.push('\n');
    std::fs::write(golden(LOG_FILE), lines).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut machine = StateMachine::open(dir.path(), Arc::new(StateStore::new())).unwrap();
    let applied: Vec<Result<_, std::io::Error>> = entries()
        .into_iter()
        .map(|entry| Ok((entry, None)))
        .collect();
    machine.apply(futures::stream::iter(applied)).await.unwrap();
    let snapshot = machine.build_snapshot().await.unwrap();
    let _: &SnapshotMeta = &snapshot.meta;
    std::fs::write(golden(SNAPSHOT), snapshot.snapshot.into_inner()).unwrap();
}
