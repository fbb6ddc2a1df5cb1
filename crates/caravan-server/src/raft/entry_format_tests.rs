//! Entry format 2 (MessagePack) keeps format 1's rules for commands of
//! newer versions: flagged ignorable, skipped; unflagged, refused.

use caravan_state::{Command, StateStore};
use openraft::EntryPayload;
use serde_json::json;

use super::*;
use crate::raft::types::RaftRequest;

/// A format 2 entry at `index` whose payload is `command` (a command's
/// JSON shape, possibly one this version does not know).
fn stored(index: u64, command: serde_json::Value) -> Vec<u8> {
    let entry = json!({
        "log_id": {"leader_id": 1, "index": index},
        "payload": {"Normal": command},
    });
    let mut bytes = vec![ENTRY_FORMAT];
    caravan_state::codec::encode_into(&entry, &mut bytes).unwrap();
    bytes
}

#[test]
fn an_unknown_ignorable_command_is_skipped() {
    let flagged = json!({"ignorable": true, "command": {"NodePoolUpsert": {"pools": [1]}}});
    let bytes = stored(4, flagged);
    let entry = decode_entry(4, &bytes).unwrap();
    let EntryPayload::Normal(RaftRequest(command)) = &entry.payload else {
        panic!("{entry:?}");
    };
    let Command::Unknown { variant, .. } = command else {
        panic!("{command:?}");
    };
    assert_eq!(variant, "NodePoolUpsert");
    // Passed on unchanged: written again it is the same bytes.
    assert_eq!(encode_entry(&entry).unwrap(), bytes);
    // Applying it changes nothing but the index.
    let store = StateStore::new();
    assert!(store.apply(4, command).applied());
    let blank = StateStore::new();
    blank.note_index(4);
    assert_eq!(*store.snapshot(), *blank.snapshot());
}

#[test]
fn an_unknown_command_not_flagged_is_refused_by_index_and_name() {
    for command in [
        json!({"NodePoolUpsert": {"pools": []}}),
        json!({"ignorable": false, "command": {"NodePoolUpsert": {}}}),
        json!("NodePoolUpsert"),
    ] {
        let error = decode_entry(6, &stored(6, command))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("raft log entry 6: unknown command \"NodePoolUpsert\""),
            "{error}"
        );
        assert!(error.contains("refuses to apply"), "{error}");
    }
}

#[tokio::test]
async fn an_unflagged_unknown_command_in_a_format_2_log_stops_the_start() {
    let disk = MemoryDisk::new();
    let mut store = LogStore::in_memory(disk.clone()).unwrap();
    store.save_vote(&Vote::new(1, 1)).await.unwrap();
    let known = |index| Entry {
        log_id: LogId::new_term_index(1, index),
        payload: EntryPayload::Normal(RaftRequest(Command::AclPolicyDelete {
            names: vec!["a".into()],
        })),
    };
    store
        .append(vec![known(1), known(2)], IOFlushed::noop())
        .await
        .unwrap();
    drop(store);
    tokio::task::yield_now().await;
    disk.image()
        .logs
        .insert(3, stored(3, json!({"NodePoolUpsert": {"pools": []}})));
    disk.image().sync();
    let error = match LogStore::in_memory(disk.clone()) {
        Ok(_) => panic!("opened"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.starts_with("raft log entry 3: unknown command \"NodePoolUpsert\""),
        "{error}"
    );
}

#[test]
fn fields_unknown_or_missing_in_a_command_follow_serde_defaults() {
    // A newer version's extra field is ignored, as in JSON.
    let bytes = stored(
        2,
        json!({"AclPolicyDelete": {"names": ["a"], "added_later": 1}}),
    );
    let entry = decode_entry(2, &bytes).unwrap();
    assert_eq!(
        entry.payload,
        EntryPayload::Normal(RaftRequest(Command::AclPolicyDelete {
            names: vec!["a".into()]
        }))
    );
    // A damaged entry is an error naming the index, not a panic.
    let mut damaged = bytes.clone();
    damaged.truncate(bytes.len() - 3);
    let error = decode_entry(2, &damaged).unwrap_err().to_string();
    assert!(error.starts_with("raft log entry 2: "), "{error}");
}
