//! TCP serving ([`serve`]) in the accept-and-drain loop every listener runs
//! ([`accept_and_drain`]).
//!
//! gRPC (tonic's `Routes` are an axum router) and HTTP both serve an [`axum::Router`] through
//! [`serve`]; on shutdown every connection finishes its in-flight requests (HTTP/2 GOAWAY,
//! HTTP/1 close after the response).

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::extract::ConnectInfo;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use super::limits::{ClientLimiter, ClientSlot};
use crate::shared::{ClientKey, Source, accept_and_drain};

/// A TCP listener as a [`Source`]: each connection comes with its client's key and connection
/// slot; a client at its connection limit is closed at once, so its flood costs no task.
struct TcpSource {
    name: &'static str,
    listener: Option<TcpListener>,
    clients: Arc<ClientLimiter>,
}

impl Source for TcpSource {
    type Item = (TcpStream, SocketAddr, ClientKey, ClientSlot);

    async fn next(&mut self) -> Option<Self::Item> {
        let listener = self.listener.as_ref()?;
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let client = self.clients.key(peer.ip());
                    match self.clients.connect(client) {
                        Some(slot) => return Some((stream, peer, client, slot)),
                        None => {
                            tracing::debug!(listener = self.name, %peer, "client at its connection limit")
                        }
                    }
                }
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(listener = self.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Closing the socket makes the kernel refuse new connections during the drain.
    fn stop(&mut self) {
        self.listener = None;
    }
}

/// Connection-level settings of one listener.
#[derive(Clone, Debug)]
pub(crate) struct ConnLimits {
    /// What the listener is, for logs ("grpc", "http").
    pub name: &'static str,
    /// Connections served at once.
    pub max_connections: usize,
    /// Refuse HTTP/1 (gRPC).
    pub http2_only: bool,
    /// Concurrent HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// HTTP/2 keepalive ping interval and the time to wait for its answer.
    pub keepalive: Option<(Duration, Duration)>,
    /// Time a client gets to send a request's headers.
    pub header_read_timeout: Duration,
    /// The protocols offered in the TLS handshake.
    pub alpn: &'static [&'static [u8]],
    /// A connection with no request in flight for this long is closed (gracefully: HTTP/2
    /// GOAWAY), so idle clients do not keep connection slots.
    pub idle_timeout: Duration,
}

/// How long a client gets to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` (over TLS when `tls` is given) until `shutdown`, then drains.
pub(crate) async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnLimits,
    clients: Arc<ClientLimiter>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .keep_alive_interval(limits.keepalive.map(|(interval, _)| interval))
        .keep_alive_timeout(limits.keepalive.map_or(Duration::from_secs(20), |(_, t)| t));
    if limits.http2_only {
        builder = builder.http2_only();
    }
    let (name, idle_timeout) = (limits.name, limits.idle_timeout);
    let source = TcpSource {
        name,
        listener: Some(listener),
        clients,
    };
    let stop = shutdown.clone();
    accept_and_drain(
        name,
        source,
        limits.max_connections,
        shutdown,
        move |(stream, peer, client, slot)| {
            let _ = stream.set_nodelay(true);
            let activity = Arc::new(Activity::default());
            let service = Tracked {
                inner: router.clone().map_request(
                    move |mut req: http::Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                        // The key taken at accept: every request of the connection is counted
                        // against the client its connection is, whatever a reload does since.
                        req.extensions_mut().insert(client);
                        req
                    },
                ),
                activity: activity.clone(),
            };
            let (builder, stop, tls) = (builder.clone(), stop.clone(), tls.clone());
            let idle = Idle {
                activity,
                timeout: idle_timeout,
            };
            async move {
                let _slot = slot;
                let service = TowerToHyperService::new(service);
                let result = match tls {
                    None => {
                        serve_connection(&builder, TokioIo::new(stream), service, stop, idle).await
                    }
                    Some(acceptor) => {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                        {
                            Ok(Ok(stream)) => {
                                let io = TokioIo::new(stream);
                                serve_connection(&builder, io, service, stop, idle).await
                            }
                            // A refused certificate, a plaintext client, a slow one: logged,
                            // and the connection is closed without answering.
                            Ok(Err(e)) => {
                                tracing::debug!(listener = name, %peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(listener = name, %peer, "TLS handshake timed out");
                                return;
                            }
                        }
                    }
                };
                if let Err(e) = result {
                    tracing::debug!(listener = name, %peer, error = %e, "connection ended with an error");
                }
            }
        },
    )
    .await;
}

async fn serve_connection<I, S>(
    builder: &auto::Builder<TokioExecutor>,
    io: TokioIo<I>,
    service: TowerToHyperService<S>,
    stop: CancellationToken,
    idle: Idle,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<http::Request<hyper::body::Incoming>, Response = axum::response::Response>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => result,
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
        () = idle.elapsed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}

/// What a connection is doing: requests in flight (until their answer is sent) and when the
/// last one ended.
struct Activity {
    in_flight: std::sync::atomic::AtomicUsize,
    last: std::sync::Mutex<tokio::time::Instant>,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            last: std::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }
}

impl Activity {
    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Busy(self.clone())
    }

    /// How long the connection has had nothing in flight.
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(std::sync::atomic::Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }
}

/// One request in flight, until its whole answer is sent (or it is given up).
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        *self.0.last.lock().unwrap_or_else(|p| p.into_inner()) = tokio::time::Instant::now();
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Resolves once a connection has been idle for its timeout.
struct Idle {
    activity: Arc<Activity>,
    timeout: Duration,
}

impl Idle {
    async fn elapsed(&self) {
        loop {
            let idle = self.activity.idle_for();
            if idle >= self.timeout {
                return;
            }
            // Busy connections look again after a full timeout; idle ones when it would end.
            tokio::time::sleep(self.timeout - idle).await;
        }
    }
}

/// A connection's service, marking each request busy until its answer is sent.
#[derive(Clone)]
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> tower::Service<http::Request<hyper::body::Incoming>> for Tracked<S>
where
    S: tower::Service<
            http::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future =
        std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        let busy = self.activity.begin();
        let future = self.inner.call(req);
        Box::pin(async move {
            let response = future.await?;
            Ok(response.map(|body| super::Holding::body(body, busy)))
        })
    }
}
