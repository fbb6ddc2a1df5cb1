//! The openraft type configuration: what a log entry carries and how a
//! server is named inside Raft.

use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::time::Duration;

use caravan_state::{Command, CommandResult};
use serde::{Deserialize, Serialize};

/// A server as Raft's membership records it. Raft needs a `u64` id; the
/// server's real identity is its node UUID (`id`), which is what Nomad shows
/// as the Raft server ID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerNode {
    /// The server's node UUID.
    pub id: String,
    /// Gossip name, `<node>.<region>`.
    pub name: String,
    /// Advertised RPC address (`ip:port`): Raft traffic and forwarding.
    pub rpc_addr: String,
    /// Advertised HTTP address (`ip:port`).
    pub http_addr: String,
}

/// What a log entry carries: one state command. Its `Display` (what
/// openraft's log lines show) is the command's kind and keys, and its
/// `Debug` redacts secrets; neither shows one.
///
/// On the wire and in the log it is the command's JSON
/// (`{"<Variant>": {...}}`). A command that older versions may skip is
/// written flagged, as `{"ignorable": true, "command": {"<Variant>": ...}}`
/// (Nomad's rule for unknown message types): a version that does not know
/// the variant reads a flagged one as [`Command::Unknown`], applied as a
/// no-op with a warning and passed on unchanged, and refuses an unflagged
/// one with an error naming the variant, so that the entry (and everything
/// after it) is not applied rather than the state silently diverging.
#[derive(Debug, Clone, PartialEq)]
pub struct RaftRequest(pub Command);

/// The key that flags a command ignorable, and the key of the command then.
const IGNORABLE: &str = "ignorable";
const FLAGGED_COMMAND: &str = "command";

impl Serialize for RaftRequest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Command::Unknown { raw, .. } => raw.serialize(serializer),
            command => command.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for RaftRequest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        decode_request(value).map_err(serde::de::Error::custom)
    }
}

/// Reads a command, applying the rule for unknown variants.
fn decode_request(value: serde_json::Value) -> Result<RaftRequest, String> {
    let (ignorable, command) = match value.get(IGNORABLE) {
        Some(flag) => (
            flag.as_bool() == Some(true),
            value
                .get(FLAGGED_COMMAND)
                .ok_or_else(|| format!("a flagged command without {FLAGGED_COMMAND:?}"))?,
        ),
        None => (false, &value),
    };
    let error = match Command::deserialize(command) {
        Ok(command) => return Ok(RaftRequest(command)),
        Err(error) => error,
    };
    let variant = match command {
        serde_json::Value::String(name) => Some(name.clone()),
        serde_json::Value::Object(map) if map.len() == 1 => map.keys().next().cloned(),
        _ => None,
    };
    let unknown = error.to_string().starts_with("unknown variant");
    match variant {
        Some(variant) if unknown && ignorable => {
            tracing::warn!(
                %variant,
                "skipping a command this version does not know (flagged ignorable)"
            );
            Ok(RaftRequest(Command::Unknown {
                variant,
                raw: value,
            }))
        }
        Some(variant) if unknown => Err(format!(
            "unknown command {variant:?}, not flagged ignorable: it was written by a newer \
             Caravan, and this server refuses to apply it (or anything after it) rather \
             than diverge from the servers that can; upgrade this server"
        )),
        _ => Err(format!("bad command: {error}")),
    }
}

impl std::fmt::Display for RaftRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What applying an entry answered. Blank and membership entries answer
/// `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RaftResponse(pub Option<CommandResult>);

openraft::declare_raft_types!(
    /// Caravan's Raft types.
    pub TypeConfig:
        D = RaftRequest,
        R = RaftResponse,
        NodeId = u64,
        Node = ServerNode,
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, u64>,
        AsyncRuntime = crate::raft::runtime::CaravanRuntime,
);

pub type RaftId = u64;
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;

/// A snapshot as openraft hands it around: the snapshot file itself (a
/// server's data dir), or its bytes (the simulations' in-memory disk, and
/// a snapshot that arrived from a leader as one HTTP body).
#[derive(Debug)]
pub enum SnapshotData {
    File(std::fs::File),
    Bytes(Cursor<Vec<u8>>),
}

impl From<Vec<u8>> for SnapshotData {
    fn from(bytes: Vec<u8>) -> Self {
        Self::Bytes(Cursor::new(bytes))
    }
}

impl Read for SnapshotData {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::File(file) => file.read(buffer),
            Self::Bytes(bytes) => bytes.read(buffer),
        }
    }
}

impl Seek for SnapshotData {
    fn seek(&mut self, position: SeekFrom) -> io::Result<u64> {
        match self {
            Self::File(file) => file.seek(position),
            Self::Bytes(bytes) => bytes.seek(position),
        }
    }
}

impl SnapshotData {
    /// The whole snapshot, from its start, as bytes (what the transport
    /// sends). Reading a file blocks: call it off the async threads.
    pub fn into_bytes(self) -> io::Result<Vec<u8>> {
        match self {
            Self::Bytes(bytes) => Ok(bytes.into_inner()),
            Self::File(mut file) => {
                file.seek(SeekFrom::Start(0))?;
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes)?;
                Ok(bytes)
            }
        }
    }
}

pub type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, SnapshotData>;

/// Raft's numeric id for a server, taken from its node UUID so that every
/// server computes the same number for the same peer.
pub fn raft_id_of(node_id: &str) -> RaftId {
    match uuid::Uuid::parse_str(node_id) {
        Ok(uuid) => {
            let bytes = uuid.as_bytes();
            let mut high = [0u8; 8];
            high.copy_from_slice(&bytes[..8]);
            u64::from_be_bytes(high) & (u64::MAX >> 1)
        }
        // Non-UUID ids are not produced by Caravan; hash them stably anyway.
        Err(_) => {
            node_id
                .bytes()
                .fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
                    (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
                })
                & (u64::MAX >> 1)
        }
    }
}

/// A write that went through Raft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedWrite {
    /// The Raft index the write was committed at.
    pub index: u64,
    pub result: CommandResult,
}

/// What the leader knows of a follower's replication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerProgress {
    pub last_index: u64,
    pub last_term: u64,
    /// Since the follower last acknowledged the leader; `None` if never.
    pub last_contact: Option<Duration>,
}

/// One member of the Raft configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftMember {
    pub node: ServerNode,
    pub voter: bool,
    pub leader: bool,
}

/// The highest term or log index a peer may send. Real clusters never come
/// near it (a term is one election); a forged message with a term near
/// `u64::MAX` would make openraft overflow and panic at the next election,
/// and, being persisted, again at every restart.
pub const MAX_RAFT_NUMBER: u64 = 1 << 48;

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<RaftRequest, String> {
        serde_json::from_str(json).map_err(|error| error.to_string())
    }

    #[test]
    fn known_commands_read_and_write_as_before() {
        let command = Command::AclPolicyDelete {
            names: vec!["a".into()],
        };
        let json = serde_json::to_string(&RaftRequest(command.clone())).unwrap();
        assert_eq!(json, serde_json::to_string(&command).unwrap());
        assert_eq!(read(&json).unwrap(), RaftRequest(command.clone()));
        // Flagged ignorable by a newer version, a known command still applies.
        let flagged = format!(r#"{{"ignorable":true,"command":{json}}}"#);
        assert_eq!(read(&flagged).unwrap(), RaftRequest(command));
    }

    #[test]
    fn an_unknown_ignorable_command_is_a_no_op_passed_on_unchanged() {
        let json = r#"{"command":{"NodePoolUpsert":{"pools":[]}},"ignorable":true}"#;
        let request = read(json).unwrap();
        let Command::Unknown { variant, .. } = &request.0 else {
            panic!("{request:?}");
        };
        assert_eq!(variant, "NodePoolUpsert");
        assert_eq!(serde_json::to_string(&request).unwrap(), json);
        // Applying it changes nothing but the index, as a blank entry.
        let store = caravan_state::StateStore::new();
        assert!(store.apply(7, &request.0).applied());
        let blank = caravan_state::StateStore::new();
        blank.note_index(7);
        assert_eq!(
            serde_json::to_value(&*store.snapshot()).unwrap(),
            serde_json::to_value(&*blank.snapshot()).unwrap()
        );
    }

    #[test]
    fn an_unknown_command_not_flagged_is_refused_by_name() {
        for json in [
            r#"{"NodePoolUpsert":{"pools":[]}}"#,
            r#"{"ignorable":false,"command":{"NodePoolUpsert":{}}}"#,
            r#""NodePoolUpsert""#,
        ] {
            let error = read(json).unwrap_err();
            assert!(
                error.contains("unknown command \"NodePoolUpsert\""),
                "{error}"
            );
            assert!(error.contains("refuses to apply"), "{error}");
        }
        // A known command with bad fields is an error too, flagged or not.
        for json in [
            r#"{"AclPolicyDelete":{"names":7}}"#,
            r#"{"ignorable":true,"command":{"AclPolicyDelete":{"names":7}}}"#,
        ] {
            let error = read(json).unwrap_err();
            assert!(error.starts_with("bad command"), "{error}");
        }
    }
}
