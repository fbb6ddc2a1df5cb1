//! The HTTP and RPC listeners: one accept loop with Nomad's `limits`.
//!
//! `axum::serve` cannot bound a connection, so each one is served here with
//! hyper directly:
//! - at most `max_conns_per_client` open connections per client IP; past
//!   it the connection gets Nomad's 429 and is closed;
//! - request headers must arrive within the handshake timeout (a client
//!   that sends half a header, or nothing, is cut off; idle keep-alive
//!   connections too, since the wait for the next request's headers is
//!   timed the same way);
//! - a request body may pause at most that long between two chunks;
//! - an accept error (out of file descriptors) backs off instead of
//!   spinning;
//! - with TLS, the handshake must finish within the handshake timeout, and
//!   the peer's certificate becomes a [`PeerIdentity`] in every request's
//!   extensions (server-only RPC routes require a server of the region).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use caravan_rpc::PeerIdentity;
use http_body::{Body as HttpBody, Frame};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

/// Nomad's answer past the per-client connection limit.
const TOO_MANY_CONNECTIONS: &str =
    "Your IP is issuing too many concurrent connections, please rate limit your calls\n";

/// TLS on a listener: the rustls configuration (whose certificate is
/// resolved per handshake, so a SIGHUP reload applies to new connections)
/// and the region whose server certificates count as servers.
#[derive(Clone)]
pub struct ListenerTls {
    pub config: Arc<rustls::ServerConfig>,
    pub region: String,
}

/// What bounds one listener's connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Time allowed to send a request's headers, and the longest pause
    /// inside a body; zero disables it.
    pub handshake_timeout: Duration,
    /// Open connections allowed per client IP; zero is unlimited.
    pub max_conns_per_client: u32,
}

/// Open connections per client IP.
#[derive(Default)]
struct ConnectionCounts {
    open: Mutex<HashMap<IpAddr, u32>>,
}

/// One counted connection; uncounted when dropped.
struct CountedConnection {
    counts: Arc<ConnectionCounts>,
    ip: IpAddr,
}

impl ConnectionCounts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, u32>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn acquire(self: &Arc<Self>, ip: IpAddr, limit: u32) -> Option<CountedConnection> {
        let mut open = self.lock();
        let count = open.entry(ip).or_insert(0);
        if limit != 0 && *count >= limit {
            return None;
        }
        *count += 1;
        Some(CountedConnection {
            counts: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for CountedConnection {
    fn drop(&mut self) {
        let mut open = self.counts.lock();
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Serves `router` on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    tls: Option<ListenerTls>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let counts = Arc::new(ConnectionCounts::default());
    let acceptor = tls
        .as_ref()
        .map(|tls| tokio_rustls::TlsAcceptor::from(Arc::clone(&tls.config)));
    let region = tls.map(|tls| tls.region).unwrap_or_default();
    loop {
        let stopping = shutdown.wait_for(|stop| *stop);
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopping => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                let _ = accepted.0.set_nodelay(true);
                accepted
            }
            Err(error) => {
                // Usually out of descriptors: let connections close first.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(counted) = counts.acquire(peer.ip(), limits.max_conns_per_client) else {
            tracing::debug!(client = %peer.ip(), "too many connections from one client");
            tokio::spawn(refuse(stream));
            continue;
        };
        let router = router.clone();
        let shutdown = shutdown.clone();
        let Some(acceptor) = acceptor.clone() else {
            tokio::spawn(serve_connection(
                stream,
                router,
                limits,
                PeerIdentity::default(),
                shutdown,
                counted,
            ));
            continue;
        };
        let region = region.clone();
        tokio::spawn(async move {
            let handshake = acceptor.accept(stream);
            let stream = match limits.handshake_timeout.is_zero() {
                true => handshake.await,
                false => match tokio::time::timeout(limits.handshake_timeout, handshake).await {
                    Ok(result) => result,
                    Err(_) => {
                        tracing::debug!(client = %peer.ip(), "TLS handshake timed out");
                        return;
                    }
                },
            };
            let stream = match stream {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::debug!(client = %peer.ip(), %error, "TLS handshake failed");
                    return;
                }
            };
            let identity = match stream.get_ref().1.peer_certificates() {
                Some(certs) if !certs.is_empty() => PeerIdentity {
                    verified: true,
                    server_of_region: caravan_tls::peer_is_server(certs, &region),
                },
                _ => PeerIdentity::default(),
            };
            serve_connection(stream, router, limits, identity, shutdown, counted).await;
        });
    }
}

async fn refuse(mut stream: TcpStream) {
    let response = format!(
        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{TOO_MANY_CONNECTIONS}",
        TOO_MANY_CONNECTIONS.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

async fn serve_connection<S>(
    stream: S,
    router: axum::Router,
    limits: ConnectionLimits,
    identity: PeerIdentity,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    counted: CountedConnection,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let _counted = counted;
    let pause = (!limits.handshake_timeout.is_zero()).then_some(limits.handshake_timeout);
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let router = router.clone();
            async move {
                let mut request = request.map(|body| {
                    axum::body::Body::new(PausingBody {
                        inner: body,
                        pause,
                        deadline: None,
                    })
                });
                request.extensions_mut().insert(identity);
                let request = caravan_http::normalize_path(request);
                Ok::<_, Infallible>(match router.oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                })
            }
        });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).keep_alive(true);
    builder.header_read_timeout(pause);
    // Upgrades allowed: `alloc exec` is a websocket.
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    let stopping = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended with an error");
            }
            return;
        }
        () = stopping => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

/// Why a body stopped.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("request body stalled for longer than {0:?}")]
    Stalled(Duration),
    #[error(transparent)]
    Hyper(#[from] hyper::Error),
}

/// A request body that fails when the client pauses too long between two
/// chunks, so a half-sent body cannot hold a handler forever.
struct PausingBody {
    inner: hyper::body::Incoming,
    pause: Option<Duration>,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl HttpBody for PausingBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.deadline = None;
                Poll::Ready(frame.map(|frame| frame.map_err(BodyError::from)))
            }
            Poll::Pending => {
                let Some(pause) = this.pause else {
                    return Poll::Pending;
                };
                let deadline = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(pause)));
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(BodyError::Stalled(pause)))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
