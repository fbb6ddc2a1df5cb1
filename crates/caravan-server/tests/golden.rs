//! Files written by earlier versions that this and every later version
//! must still read, in `tests/golden/`: Raft logs (the values redb stores)
//! in entry format 1 (JSON) and 2 (MessagePack), and snapshots in format 2
//! (one JSON document with a checksum line) and 3 (streamed sections with
//! a checksum trailer).
//!
//! Never regenerate them to make this test pass: a change that breaks it
//! breaks the upgrade of every existing data dir. When a format changes,
//! add files for the new one beside these (point `LOG_FILE_CURRENT` and
//! `SNAPSHOT_CURRENT` at new names, then `CARAVAN_WRITE_GOLDEN=1 cargo
//! nextest run -p caravan-server --test golden` writes them) and keep
//! reading the old ones.

use std::path::PathBuf;
use std::sync::Arc;

use caravan_api_types::acl::{AclPolicy, AclToken};
use caravan_api_types::operator::SchedulerConfiguration;
use caravan_server::log_store::{decode_entry, encode_entry, encode_entry_json, ENTRY_FORMAT};
use caravan_server::raft::snapshot;
use caravan_server::raft_types::{Entry, LogId, RaftRequest, ServerNode, SnapshotMeta};
use caravan_server::state_machine::{StateMachine, SNAPSHOT_FILE};
use caravan_state::{Command, State, StateStore};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, Membership};

/// Written by the version before MessagePack: `{"index","format":1,"json"}`.
const LOG_FILE_1: &str = "raft-log-format-1.jsonl";
const SNAPSHOT_2: &str = "state-format-2.snap";
/// What this version writes: `{"index","format":2,"hex"}` lines (the
/// stored value after its format byte, hex-encoded), and a version 3
/// snapshot.
const LOG_FILE_CURRENT: &str = "raft-log-format-2.jsonl";
const SNAPSHOT_CURRENT: &str = "state-format-3.snap";

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

/// The stored value bytes, one line each: `{"index":..,"format":..,"json":..}`
/// (format 1) or `{"index":..,"format":..,"hex":..}` (format 2).
fn read_log(name: &str) -> Vec<(u64, Vec<u8>)> {
    let text = std::fs::read_to_string(golden(name)).expect("the golden log");
    text.lines()
        .map(|line| {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            let mut bytes = vec![u8::try_from(line["format"].as_u64().unwrap()).unwrap()];
            match (line["json"].as_str(), line["hex"].as_str()) {
                (Some(json), None) => bytes.extend_from_slice(json.as_bytes()),
                (None, Some(hex)) => bytes.extend(from_hex(hex)),
                _ => panic!("bad golden line {line}"),
            }
            (line["index"].as_u64().unwrap(), bytes)
        })
        .collect()
}

fn from_hex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&hex[at..at + 2], 16).unwrap())
        .collect()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
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

/// Every entry of a golden log decodes to what was written, and applying
/// them gives the expected state.
fn check_log(name: &str, format: u8) {
    let stored = read_log(name);
    let expected = entries();
    assert_eq!(stored.len(), expected.len() + 1);
    let store = StateStore::new();
    for (index, bytes) in &stored {
        assert_eq!(bytes[0], format, "entry {index}");
        let entry = decode_entry(*index, bytes).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(entry.log_id.index, *index);
        match expected.iter().find(|known| known.log_id.index == *index) {
            Some(known) => assert_eq!(&entry, known, "entry {index}"),
            // The last one is a command of a newer version, flagged
            // ignorable: skipped.
            None => match &entry.payload {
                EntryPayload::Normal(RaftRequest(Command::Unknown { variant, .. })) => {
                    assert_eq!(variant, "FromTheFuture");
                    // It is passed on exactly as it came: written again
                    // (in the current format) it reads back the same.
                    let again = encode_entry(&entry).unwrap();
                    assert_eq!(decode_entry(*index, &again).unwrap(), entry);
                    if format == 1 {
                        assert_eq!(&encode_entry_json(&entry).unwrap(), bytes);
                    }
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

#[test]
fn the_golden_log_still_reads() {
    check_log(LOG_FILE_1, 1);
}

#[test]
fn the_golden_format_2_log_still_reads() {
    check_log(LOG_FILE_CURRENT, 2);
}

/// A golden snapshot passes its checksum and loads into a state with the
/// expected contents, both as bytes and as a state machine's file.
fn check_snapshot(name: &str, version: u32) {
    let bytes = std::fs::read(golden(name)).expect("the golden snapshot");
    let loaded = snapshot::read(bytes.as_slice(), None).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(loaded.version, version);
    let meta = &loaded.meta;
    assert_eq!(meta.last_log_id, Some(LogId::new_term_index(1, 4)));
    assert!(meta.last_membership.membership().voter_ids().count() == 1);
    assert_eq!(
        snapshot::read_meta(bytes.as_slice()).unwrap().last_log_id,
        meta.last_log_id
    );
    check_state(&loaded.state);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(SNAPSHOT_FILE), &bytes).unwrap();
    let store = Arc::new(StateStore::new());
    let machine = StateMachine::open(dir.path(), Arc::clone(&store)).unwrap();
    assert_eq!(machine.last_applied(), Some(LogId::new_term_index(1, 4)));
    check_state(&store.snapshot());
}

#[test]
fn the_golden_snapshot_still_loads() {
    check_snapshot(SNAPSHOT_2, 2);
}

#[test]
fn the_golden_version_3_snapshot_still_loads() {
    check_snapshot(SNAPSHOT_CURRENT, 3);
}

/// Writes the current version's files (run with `CARAVAN_WRITE_GOLDEN=1`;
/// only when adding files for a new format, see the top of this file).
#[tokio::test]
async fn write_golden_files() {
    if std::env::var_os("CARAVAN_WRITE_GOLDEN").is_none() {
        return;
    }
    let line = |index: u64, bytes: &[u8]| {
        let line = serde_json::json!({
            "index": index,
            "format": bytes[0],
            "hex": to_hex(&bytes[1..]),
        });
        format!("{line}\n")
    };
    let mut lines = String::new();
    for entry in entries() {
        let bytes = encode_entry(&entry).unwrap();
        assert_eq!(bytes[0], ENTRY_FORMAT);
        lines.push_str(&line(entry.log_id.index, &bytes));
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
    let mut bytes = vec![ENTRY_FORMAT];
    bytes.extend(caravan_state::codec::encode(&future).unwrap());
    lines.push_str(&line(5, &bytes));
    std::fs::write(golden(LOG_FILE_CURRENT), lines).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut machine = StateMachine::open(dir.path(), Arc::new(StateStore::new())).unwrap();
    let applied: Vec<Result<_, std::io::Error>> = entries()
        .into_iter()
        .map(|entry| Ok((entry, None)))
        .collect();
    machine.apply(futures::stream::iter(applied)).await.unwrap();
    let snapshot = machine.build_snapshot().await.unwrap();
    let _: &SnapshotMeta = &snapshot.meta;
    std::fs::write(
        golden(SNAPSHOT_CURRENT),
        snapshot.snapshot.into_bytes().unwrap(),
    )
    .unwrap();
}
