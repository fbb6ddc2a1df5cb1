use std::collections::BTreeMap;
use std::io::Read;

use caravan_api_types::acl::{AclPolicy, AclToken};
use caravan_api_types::node::{DrainSpec, Node, NodeEvent};
use caravan_api_types::operator::{AutopilotConfiguration, SchedulerConfiguration};
use std::sync::Arc;

use caravan_state::{Command, StateStore};

use super::*;
use crate::raft::types::{LogId, StoredMembership};

pub(crate) fn meta(index: u64) -> SnapshotMeta {
    SnapshotMeta {
        last_log_id: Some(LogId::new_term_index(1, index)),
        last_membership: StoredMembership::default(),
    }
}

/// A node as a client registers it: attributes, meta, drivers, events.
pub(crate) fn node(number: usize) -> Node {
    let id = format!("{number:08x}-0000-4000-8000-000000000000");
    Node {
        id: id.clone(),
        secret_id: format!("{number:08x}-5ec7-4000-8000-000000000000"),
        name: format!("node-{number}"),
        datacenter: "dc1".into(),
        http_addr: format!("10.0.{}.{}:4646", number / 250 % 250, number % 250),
        node_pool: "default".into(),
        node_class: "web".into(),
        status: "ready".into(),
        scheduling_eligibility: "eligible".into(),
        attributes: (0..20)
            .map(|key| (format!("attr.{key}"), format!("value-{number}-{key}")))
            .collect(),
        meta: BTreeMap::from([("rack".to_string(), format!("r{}", number % 7))]),
        events: vec![NodeEvent::new("Cluster", "Node registered").with_detail("k", "v")],
        csi_node_plugins: Some(serde_json::json!({"x": [1, 2.5, null]})),
        ..Node::default()
    }
}

/// A state with rows in every table (`nodes` nodes) and every scalar part
/// set.
pub(crate) fn full_state_with(nodes: usize) -> Arc<State> {
    let store = StateStore::new();
    let now = chrono::Utc::now();
    let commands = [
        Command::SchedulerConfigInit {
            config: SchedulerConfiguration::initial(),
        },
        Command::AutopilotConfigInit {
            config: AutopilotConfiguration::initial(),
        },
        Command::AclBootstrap {
            token: AclToken {
                accessor_id: "boot-accessor".into(),
                secret_id: "boot-secret".into(),
                token_type: "management".into(),
                global: true,
                ..AclToken::default()
            },
            reset_index: None,
        },
        Command::AclPolicyUpsert {
            policies: vec![AclPolicy {
                name: "readers".into(),
                rules: "node { policy = \"read\" }".into(),
                ..AclPolicy::default()
            }],
        },
        Command::AclTokenUpsert {
            tokens: vec![AclToken {
                accessor_id: "reader-accessor".into(),
                secret_id: "reader-secret".into(),
                token_type: "client".into(),
                policies: vec!["readers".into()],
                expiration_time: Some(now),
                ..AclToken::default()
            }],
        },
        Command::NamespaceUpsert {
            namespaces: vec![caravan_api_types::namespace::Namespace {
                name: "team".into(),
                description: "a namespace".into(),
                ..Default::default()
            }],
        },
    ];
    let mut index = 1;
    for command in commands {
        assert!(store.apply(index, &command).applied(), "{command}");
        index += 1;
    }
    for number in 0..nodes {
        let command = Command::NodeRegister {
            node: Box::new(node(number)),
            now,
        };
        assert!(store.apply(index, &command).applied());
        index += 1;
    }
    let drain = Command::NodeUpdateDrain {
        node_id: node(nodes / 2).id,
        spec: Some(DrainSpec {
            deadline: 60_000_000_000,
            ignore_system_jobs: false,
        }),
        mark_eligible: false,
        meta: None,
        accessor: "boot-accessor".into(),
        now,
    };
    assert!(store.apply(index, &drain).applied());
    store.snapshot()
}

pub(crate) fn full_state() -> Arc<State> {
    full_state_with(50)
}

pub(crate) fn bytes_of(meta: &SnapshotMeta, state: &State) -> Vec<u8> {
    write(Vec::new(), meta, state).unwrap()
}

#[test]
fn every_table_round_trips_and_indexes_are_rebuilt() {
    let state = full_state();
    assert!(state.node_count() == 50 && state.acl_tokens().count() == 2);
    assert_eq!(state.namespaces().len(), 2);
    let bytes = bytes_of(&meta(60), &state);
    assert!(bytes.starts_with(b"CARAVAN-SNAPSHOT 3\n"));
    let loaded = read(bytes.as_slice(), Some(&meta(60))).unwrap();
    assert_eq!(loaded.version, 3);
    assert_eq!(loaded.meta.last_log_id, Some(LogId::new_term_index(1, 60)));
    assert!(loaded.skipped.is_empty());
    // The whole state, secondary indexes included, is what was written.
    assert_eq!(loaded.state, *state);
    assert_eq!(
        serde_json::to_value(&loaded.state).unwrap(),
        serde_json::to_value(&*state).unwrap()
    );
    assert_eq!(
        loaded
            .state
            .acl_token_by_secret("reader-secret")
            .map(|token| token.accessor_id.as_str()),
        Some("reader-accessor")
    );
    // Writing it again gives the same bytes.
    assert_eq!(bytes_of(&meta(60), &loaded.state), bytes);
    // An empty state too.
    let empty = State::default();
    let loaded = read(bytes_of(&meta(1), &empty).as_slice(), None).unwrap();
    assert_eq!(loaded.state, empty);
    // Only the header is needed for the metadata.
    assert_eq!(
        read_meta(bytes.as_slice()).unwrap().last_log_id,
        meta(60).last_log_id
    );
}

#[test]
fn a_flipped_byte_anywhere_is_refused() {
    // Small enough to try every position, with rows in every table.
    let state = full_state_with(2);
    let bytes = bytes_of(&meta(60), &state);
    // Every position of a snapshot with every table in it.
    for position in 0..bytes.len() {
        for flip in [0x01, 0x80] {
            let mut damaged = bytes.clone();
            damaged[position] ^= flip;
            let error = match read(damaged.as_slice(), None) {
                Ok(_) => panic!("a flip of {flip:#x} at {position} went unnoticed"),
                Err(error) => error,
            };
            assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
        }
    }
    let mut truncated = bytes.clone();
    truncated.truncate(bytes.len() - 1);
    let error = read(truncated.as_slice(), None).unwrap_err().to_string();
    assert!(error.contains("truncated"), "{error}");
    let mut longer = bytes.clone();
    longer.push(0);
    let error = read(longer.as_slice(), None).unwrap_err().to_string();
    assert!(error.contains("after the trailer"), "{error}");
}

/// A reader that counts what was taken from it.
struct Counting<'a> {
    bytes: &'a [u8],
    taken: usize,
}

impl Read for Counting<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.bytes.read(buffer)?;
        self.taken += read;
        Ok(read)
    }
}

#[test]
fn unsupported_versions_are_refused_before_any_state_is_read() {
    let bytes = bytes_of(&meta(7), &full_state());
    for version in ["4", "10", "0"] {
        let mut future = format!("{SNAPSHOT_MAGIC} {version}\n").into_bytes();
        let line = future.len();
        future.extend_from_slice(&bytes[b"CARAVAN-SNAPSHOT 3\n".len()..]);
        let mut input = Counting {
            bytes: &future,
            taken: 0,
        };
        let error = read(&mut input, None).expect_err("refused").to_string();
        assert!(
            error.contains(&format!("unsupported snapshot version \"{version}\"")),
            "{error}"
        );
        assert!(input.taken <= line, "read {} bytes", input.taken);
        assert!(read_meta(future.as_slice()).is_err());
    }
    // A header that disagrees with Raft's metadata stops before the tables.
    let mut input = Counting {
        bytes: &bytes,
        taken: 0,
    };
    let error = read(&mut input, Some(&meta(8))).expect_err("refused");
    assert!(error.to_string().contains("does not match"), "{error}");
    assert!(input.taken < 1024, "read {} bytes", input.taken);
    assert!(read(b"garbage\n".as_slice(), None).is_err());
    assert!(read(b"".as_slice(), None).is_err());
}

#[test]
fn versions_1_and_2_still_load() {
    let state = full_state();
    let v2 = encode_v2(&meta(7), &state).unwrap();
    assert!(v2.starts_with(b"CARAVAN-SNAPSHOT 2 sha256:"));
    let loaded = read(v2.as_slice(), Some(&meta(7))).unwrap();
    assert_eq!((loaded.version, &loaded.state), (2, &*state));
    assert_eq!(
        read_meta(v2.as_slice()).unwrap().last_log_id,
        meta(7).last_log_id
    );
    let newline = v2.iter().position(|byte| *byte == b'\n').unwrap();
    let v1 = &v2[newline + 1..];
    assert!(v1.starts_with(b"{\"meta\""));
    let loaded = read(v1, None).unwrap();
    assert_eq!((loaded.version, &loaded.state), (1, &*state));
    assert_eq!(read_meta(v1).unwrap().last_log_id, meta(7).last_log_id);
    // Version 2's checksum still guards it.
    for position in [0, 20, newline + 3, v2.len() / 2, v2.len() - 1] {
        let mut damaged = v2.clone();
        damaged[position] ^= 0x01;
        assert!(read(damaged.as_slice(), None).is_err(), "{position}");
    }
    // A damaged magic cannot make a version 2 file pass as version 1.
    let mut brace = v2.clone();
    brace[0] = b'{';
    assert!(read(brace.as_slice(), None).is_err());
    // A legacy header with anything more is not a legacy header.
    assert!(read(b"{\"meta\":null,\"x\":1}\n{}".as_slice(), None).is_err());
}

/// A section of a newer version's table is read past; the rest loads.
#[test]
fn unknown_sections_are_skipped() {
    let state = full_state();
    let mut out = HashingWriter {
        inner: Vec::new(),
        hasher: Sha256::new(),
    };
    writeln!(out, "{SNAPSHOT_MAGIC} {SNAPSHOT_VERSION}").unwrap();
    let header = caravan_state::codec::encode(&Header { meta: meta(3) }).unwrap();
    out.write_all(&u32::try_from(header.len()).unwrap().to_be_bytes())
        .unwrap();
    out.write_all(&header).unwrap();
    out.section("from_the_future", 2).unwrap();
    out.row(b"\x81\xa1a\x01").unwrap();
    out.row(b"\xc0").unwrap();
    state.write_sections(&mut out).unwrap();
    out.write_all(&[FRAME_END]).unwrap();
    let digest = out.hasher.finalize();
    let mut bytes = out.inner;
    bytes.extend_from_slice(&digest);
    let loaded = read(bytes.as_slice(), None).unwrap();
    assert_eq!(loaded.skipped, ["from_the_future"]);
    assert_eq!(loaded.state, *state);
}
