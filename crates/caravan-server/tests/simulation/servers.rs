//! The simulated servers and how requests travel between them: framed
//! JSON over turmoil's TCP for Raft's messages, the read index and
//! forwarded requests (the RPC port), and the client's requests (the API
//! port). A server handles a client's request as the HTTP layer does, with
//! the server's shared forwarding rules.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use caravan_api_types::operator::{AutopilotConfiguration, SchedulerConfiguration};
use caravan_rpc::RpcError;
use caravan_server::autopilot::NoGossip;
use caravan_server::forward::{forward_with_hold, ForwardFailure, Placement, SendFailure};
use caravan_server::heartbeat::HeartbeatConfig;
use caravan_server::memory_disk::{MemoryDisk, Storage};
use caravan_server::raft_types::ServerNode;
use caravan_server::transport::{RaftMessage, RaftReply, RaftTransport, TransportError};
use caravan_server::{Server, ServerOptions};
use caravan_state::Command;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const SERVERS: [&str; 3] = ["s1", "s2", "s3"];
pub const RAFT_PORT: u16 = 4647;
pub const API_PORT: u16 = 4646;

pub async fn write_frame(
    stream: &mut turmoil::net::TcpStream,
    bytes: &[u8],
) -> std::io::Result<()> {
    stream
        .write_all(&(bytes.len() as u32).to_be_bytes())
        .await?;
    stream.write_all(bytes).await?;
    stream.flush().await
}

pub async fn read_frame(stream: &mut turmoil::net::TcpStream) -> std::io::Result<Vec<u8>> {
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).await?;
    let mut bytes = vec![0u8; u32::from_be_bytes(length) as usize];
    stream.read_exact(&mut bytes).await?;
    Ok(bytes)
}

/// One request, one answer, over turmoil's TCP. A failure to connect is
/// `NotSent` (the request never left); any later failure `MaybeRan`.
pub async fn exchange<Q: Serialize, A: serde::de::DeserializeOwned>(
    address: &str,
    request: &Q,
    timeout: Duration,
) -> Result<A, SendFailure<TransportError>> {
    let network =
        |error: std::io::Error| SendFailure::MaybeRan(TransportError::Network(error.to_string()));
    let bytes = serde_json::to_vec(request)
        .map_err(|error| SendFailure::NotSent(TransportError::Network(error.to_string())))?;
    let mut stream =
        match tokio::time::timeout(timeout, turmoil::net::TcpStream::connect(address)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                return Err(SendFailure::NotSent(TransportError::Unreachable(
                    error.to_string(),
                )))
            }
            Err(_) => return Err(SendFailure::NotSent(TransportError::Timeout)),
        };
    let answer = tokio::time::timeout(timeout, async {
        write_frame(&mut stream, &bytes).await.map_err(network)?;
        read_frame(&mut stream).await.map_err(network)
    })
    .await
    .map_err(|_| SendFailure::MaybeRan(TransportError::Timeout))??;
    serde_json::from_slice(&answer)
        .map_err(|error| SendFailure::MaybeRan(TransportError::Network(error.to_string())))
}

pub fn sent_error(failure: SendFailure<TransportError>) -> TransportError {
    match failure {
        SendFailure::NotSent(error) | SendFailure::MaybeRan(error) => error,
    }
}

/// What travels to a server's RPC port: Raft's messages, the read index
/// a follower asks for, and requests forwarded by another server.
#[derive(Serialize, Deserialize)]
pub enum PeerFrame {
    Raft(RaftMessage),
    ReadIndex,
    Forwarded(ClientRequest),
}

/// A client's request (what the simulation keeps of an HTTP request).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ClientRequest {
    /// A write, as a handler builds it; runs on the leader.
    Write { command: Box<Command>, hops: u32 },
    /// Whether a policy exists: through the leader (`barrier == false`,
    /// the default consistency of a read) or through this server's read
    /// barrier and local state (`barrier == true`, how token checks read).
    Read {
        policy: String,
        hops: u32,
        barrier: bool,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Answer {
    /// Applied at this index, by this server.
    Written {
        index: u64,
        by: String,
    },
    Found(bool),
}

/// Raft traffic over the simulated network.
pub struct SimTransport;

impl RaftTransport for SimTransport {
    fn send(
        &self,
        target: &ServerNode,
        message: RaftMessage,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<RaftReply, TransportError>> {
        let address = target.rpc_addr.clone();
        Box::pin(async move {
            let reply: Result<RaftReply, RpcError> =
                exchange(&address, &PeerFrame::Raft(message), timeout)
                    .await
                    .map_err(sent_error)?;
            reply.map_err(|error| TransportError::Remote(error.to_string()))
        })
    }

    fn read_index(
        &self,
        target: &ServerNode,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<u64, TransportError>> {
        let address = target.rpc_addr.clone();
        Box::pin(async move {
            let reply: Result<u64, RpcError> = exchange(&address, &PeerFrame::ReadIndex, timeout)
                .await
                .map_err(sent_error)?;
            reply.map_err(|error| TransportError::Remote(error.to_string()))
        })
    }
}

/// Runs a client's request on `server` the way the HTTP layer runs an
/// API request: placed on the leader and forwarded there by the server's
/// shared forwarding rules, or read through the read barrier.
pub async fn serve(server: &Server, request: ClientRequest) -> Result<Answer, RpcError> {
    let (hops, barrier) = match &request {
        ClientRequest::Write { hops, .. } => (*hops, false),
        ClientRequest::Read { hops, barrier, .. } => (*hops, *barrier),
    };
    let read_here =
        |policy: &str| Answer::Found(server.store().snapshot().acl_policy(policy).is_some());
    if barrier {
        if let ClientRequest::Read { policy, .. } = &request {
            server.read_barrier().await?;
            return Ok(read_here(policy));
        }
    }
    match server.place_on_leader(hops).await? {
        Placement::Here => match request {
            ClientRequest::Write { command, .. } => {
                let applied = server.apply(*command).await?;
                Ok(Answer::Written {
                    index: applied.index,
                    by: server.node().name.clone(),
                })
            }
            ClientRequest::Read { policy, .. } => Ok(read_here(&policy)),
        },
        Placement::Leader(leader) => {
            let is_read = matches!(request, ClientRequest::Read { .. });
            let forwarded = match request {
                ClientRequest::Write { command, hops } => ClientRequest::Write {
                    command,
                    hops: hops + 1,
                },
                ClientRequest::Read {
                    policy,
                    hops,
                    barrier,
                } => ClientRequest::Read {
                    policy,
                    hops: hops + 1,
                    barrier,
                },
            };
            let frame = PeerFrame::Forwarded(forwarded);
            let frame = &frame;
            let reply = forward_with_hold(Some(server), vec![leader.rpc_addr], is_read, |target| {
                let target = target.to_string();
                async move {
                    exchange::<_, Result<Answer, RpcError>>(
                        &target,
                        frame,
                        caravan_server::LEADER_WAIT,
                    )
                    .await
                }
            })
            .await;
            match reply {
                Ok(answer) => answer,
                Err(ForwardFailure::MaybeRan { target, error }) => {
                    Err(RpcError::Forward(format!("{target}: {error}")))
                }
                Err(ForwardFailure::NoTarget(last)) => Err(RpcError::Forward(format!("{last:?}"))),
            }
        }
    }
}

pub fn node_id(index: usize) -> String {
    format!("{}0000000-0000-4000-8000-000000000000", index + 1)
}

pub fn server_nodes() -> Vec<ServerNode> {
    SERVERS
        .iter()
        .enumerate()
        .map(|(index, name)| ServerNode {
            id: node_id(index),
            name: format!("{name}.global"),
            rpc_addr: format!("{name}:{RAFT_PORT}"),
            http_addr: format!("{name}:{API_PORT}"),
        })
        .collect()
}

pub type Registry = Arc<Mutex<HashMap<String, Arc<Server>>>>;

/// Answers one framed request per connection with `handle`.
pub async fn accept_loop<Q, A, F, Fut>(
    listener: turmoil::net::TcpListener,
    server: Arc<Server>,
    handle: F,
) -> turmoil::Result
where
    Q: serde::de::DeserializeOwned + Send + 'static,
    A: Serialize + Send + 'static,
    F: Fn(Arc<Server>, Q) -> Fut + Copy + Send + 'static,
    Fut: std::future::Future<Output = A> + Send + 'static,
{
    loop {
        let (mut stream, _) = listener.accept().await?;
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            let Ok(bytes) = read_frame(&mut stream).await else {
                return;
            };
            let Ok(request) = serde_json::from_slice::<Q>(&bytes) else {
                return;
            };
            let answer = handle(server, request).await;
            if let Ok(bytes) = serde_json::to_vec(&answer) {
                let _ = write_frame(&mut stream, &bytes).await;
            }
        });
    }
}

pub async fn serve_peer(server: Arc<Server>, frame: PeerFrame) -> serde_json::Value {
    let answer = match frame {
        PeerFrame::Raft(message) => serde_json::to_value(server.handle_raft(message).await),
        PeerFrame::ReadIndex => serde_json::to_value(server.read_index().await),
        PeerFrame::Forwarded(request) => serde_json::to_value(serve(&server, request).await),
    };
    answer.unwrap_or(serde_json::Value::Null)
}

pub async fn serve_client(server: Arc<Server>, request: ClientRequest) -> Result<Answer, RpcError> {
    serve(&server, request).await
}

pub async fn run_server(
    index: usize,
    disk: MemoryDisk,
    data_dir: std::path::PathBuf,
    registry: Registry,
) -> turmoil::Result {
    let name = SERVERS[index];
    let options = ServerOptions {
        data_dir,
        node_name: name.to_string(),
        region: "global".into(),
        datacenter: "dc1".into(),
        rpc_advertise: format!("{name}:{RAFT_PORT}"),
        http_advertise: format!("{name}:{API_PORT}"),
        bootstrap_expect: 0,
        raft_multiplier: 1,
        snapshot_threshold: 40,
        trailing_logs: 10,
        default_scheduler_config: SchedulerConfiguration::initial(),
        autopilot: AutopilotConfiguration::initial(),
        heartbeat: HeartbeatConfig::default(),
        storage: Storage::Memory(disk),
        cluster_key: None,
        rpc_tls: false,
        num_schedulers: 0,
        enabled_schedulers: Vec::new(),
        gc: Default::default(),
    };
    let server = Server::start(
        options,
        Arc::new(SimTransport),
        {
            caravan_tls::install_default_provider();
            reqwest::Client::new()
        },
        Arc::new(NoGossip),
    )
    .await
    .map_err(|error| error.to_string())?;
    if !server.is_initialized().await {
        // Every server proposes the same three voters.
        let _ = server.initialize_cluster(server_nodes()).await;
    }
    registry
        .lock()
        .unwrap()
        .insert(name.to_string(), Arc::clone(&server));

    let raft_listener = turmoil::net::TcpListener::bind(("0.0.0.0", RAFT_PORT)).await?;
    let api_listener = turmoil::net::TcpListener::bind(("0.0.0.0", API_PORT)).await?;
    let api = accept_loop(api_listener, Arc::clone(&server), serve_client);
    tokio::spawn(async move {
        // It ends only when the host crashes.
        let _ = api.await;
    });
    accept_loop(raft_listener, server, serve_peer).await
}
