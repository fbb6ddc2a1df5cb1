//! Query and write options, and what a response says about itself.

use std::time::Duration;

use reqwest::header::HeaderMap;

/// Options of a read, as Nomad's `QueryOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryOptions {
    /// The region to ask (else the client's, else the agent's).
    pub region: Option<String>,
    /// The namespace (else the client's, else `default`); `*` for all.
    pub namespace: Option<String>,
    /// Any server may answer, not only the leader.
    pub allow_stale: bool,
    /// Block until the index passes this one (a blocking query).
    pub wait_index: u64,
    /// How long a blocking query may wait (the server caps it).
    pub wait_time: Option<Duration>,
    /// Only objects whose ID starts with this.
    pub prefix: Option<String>,
    /// A filter expression (`?filter=`).
    pub filter: Option<String>,
    /// Page size and the token of the page to read.
    pub per_page: Option<u32>,
    pub next_token: Option<String>,
    /// A token for this call only (else the client's).
    pub token: Option<String>,
}

/// Options of a write, as Nomad's `WriteOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOptions {
    pub region: Option<String>,
    pub namespace: Option<String>,
    /// A token for this call only (else the client's).
    pub token: Option<String>,
    /// Makes a retried write apply once (`?idempotency_token=`).
    pub idempotency_token: Option<String>,
}

/// What a read's response says about the state it came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryMeta {
    /// `X-Nomad-Index`: pass it as the next `wait_index` to block.
    pub last_index: u64,
    /// `X-Nomad-KnownLeader`.
    pub known_leader: bool,
    /// `X-Nomad-LastContact`: how stale a follower's answer may be.
    pub last_contact: Duration,
    /// `X-Nomad-NextToken`: the next page, if there is one.
    pub next_token: Option<String>,
}

impl QueryMeta {
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        Self {
            last_index: text("x-nomad-index")
                .and_then(|index| index.parse().ok())
                .unwrap_or(0),
            known_leader: text("x-nomad-knownleader") == Some("true"),
            last_contact: Duration::from_millis(
                text("x-nomad-lastcontact")
                    .and_then(|ms| ms.parse().ok())
                    .unwrap_or(0),
            ),
            next_token: text("x-nomad-nexttoken").map(str::to_string),
        }
    }
}

/// What a write's response says: the Raft index it was applied at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteMeta {
    pub last_index: u64,
}

impl WriteMeta {
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        Self {
            last_index: headers
                .get("x-nomad-index")
                .and_then(|value| value.to_str().ok())
                .and_then(|index| index.parse().ok())
                .unwrap_or(0),
        }
    }
}

/// Go's duration text for a wait (`300000ms`), which Nomad parses.
pub(crate) fn go_duration(duration: Duration) -> String {
    format!("{}ms", duration.as_millis())
}
