//! Every route the RPC listener serves besides the HTTP API (which it also
//! serves, for requests forwarded to the leader).
//!
//! Server-only routes ([`SERVER_ONLY`]) accept only callers that prove
//! the cluster key; node routes accept only the node's own secret.

/// Raft messages (append, vote, pre-vote, transfer-leader) as JSON.
pub const RAFT: &str = "/rpc/raft";
/// A whole snapshot as a raw body, with the vote in the query ([`snapshot_path`]).
pub const RAFT_SNAPSHOT: &str = "/rpc/raft/snapshot";
/// The query parameter carrying the sender's vote with a snapshot (hex of
/// its JSON). It rides in the path so the cluster key's signature, which
/// covers the path and query, covers the vote too.
pub const VOTE_PARAM: &str = "vote";

/// The snapshot route with `vote_json` in its query.
pub fn snapshot_path(vote_json: &str) -> String {
    use std::fmt::Write;
    let mut path = format!("{RAFT_SNAPSHOT}?{VOTE_PARAM}=");
    for byte in vote_json.as_bytes() {
        let _ = write!(path, "{byte:02x}");
    }
    path
}

/// The vote JSON in a snapshot request's query, if well formed.
pub fn vote_from_query(query: &str) -> Option<String> {
    let hex = query
        .split('&')
        .find_map(|pair| pair.strip_prefix(VOTE_PARAM)?.strip_prefix('='))?;
    if !hex.len().is_multiple_of(2) || hex.len() > 4096 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(hex.get(at..at + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}
/// The leader's commit index confirmed by a quorum (follower reads).
pub const RAFT_READ_INDEX: &str = "/rpc/raft/read-index";
/// A follower asks the leader to remove a server from Raft.
pub const RAFT_REMOVE_PEER: &str = "/rpc/raft/remove-peer";
/// Whether a server already has a Raft configuration (before bootstrap).
pub const RAFT_STATUS: &str = "/rpc/raft/status";
/// A client checks a server's region before adopting it.
pub const PING: &str = "/rpc/ping";
/// Nomad's `Node.Register`.
pub const NODE_REGISTER: &str = "/rpc/node/register";
/// Nomad's `Node.UpdateStatus` (the heartbeat).
pub const NODE_HEARTBEAT: &str = "/rpc/node/heartbeat";
/// Nomad's `Node.EmitEvents`.
pub const NODE_EVENTS: &str = "/rpc/node/events";
/// Nomad's `Node.GetClientAllocs` (a blocking query).
pub const NODE_ALLOCS: &str = "/rpc/node/allocs";
/// Nomad's `Node.UpdateAlloc` (batched client updates).
pub const NODE_ALLOCS_UPDATE: &str = "/rpc/node/allocs/update";

/// The server-to-server routes, which only a server of the region may use
/// (the server's router guards exactly these; a test holds them equal).
pub const SERVER_ONLY: &[&str] = &[
    RAFT,
    RAFT_SNAPSHOT,
    RAFT_READ_INDEX,
    RAFT_REMOVE_PEER,
    RAFT_STATUS,
];

#[cfg(test)]
mod tests {
    #[test]
    fn a_vote_survives_the_query() {
        let vote = r#"{"leader_id":{"term":3,"voted_for":7},"committed":true}"#;
        let path = super::snapshot_path(vote);
        let query = path.split_once('?').unwrap().1;
        assert_eq!(super::vote_from_query(query).as_deref(), Some(vote));
        assert_eq!(super::vote_from_query("vote=zz"), None);
        assert_eq!(super::vote_from_query("other=1"), None);
    }
}
