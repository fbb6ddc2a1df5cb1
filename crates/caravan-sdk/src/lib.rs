//! A typed async client for the Caravan HTTP API, which is Nomad's `/v1/`
//! API: what Nomad's Go `api` package is, for Rust. The CLI and the
//! project's own integration tests use it.
//!
//! ```no_run
//! # async fn example() -> Result<(), caravan_sdk::Error> {
//! // NOMAD_ADDR, NOMAD_TOKEN, NOMAD_REGION, NOMAD_NAMESPACE, ... as Nomad's.
//! let client = caravan_sdk::Client::from_env()?;
//! let leader = client.status().leader().await?;
//! println!("the leader is {leader}");
//! # Ok(())
//! # }
//! ```
//!
//! Every call takes its options ([`QueryOptions`] for reads, which may
//! block until the index moves; [`WriteOptions`] for writes) and answers
//! with the server's JSON decoded into `caravan-api-types`' types, with
//! the response's index and leader headers for reads ([`QueryMeta`]). An
//! error keeps the status and the server's own text ([`Error::Api`]).

mod client;
mod config;
mod error;
mod options;

pub mod acl;
pub mod agent;
pub mod allocations;
pub mod client_endpoints;
pub mod evaluations;
pub mod jobs;
pub mod namespaces;
pub mod nodes;
pub mod operator;
pub mod status;
pub mod system;
pub mod watch;

pub use client::{Client, RawResponse, RAW_BODY_LIMIT};
pub use config::{percent_decode, Config};
pub use error::Error;
pub use options::{QueryMeta, QueryOptions, WriteMeta, WriteOptions};
