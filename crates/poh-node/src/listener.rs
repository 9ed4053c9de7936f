//! The one shape every TCP listener has: a [`CancellationToken`] to stop it, a [`JoinSet`] of
//! connection tasks, and a semaphore acquired *before* `accept`, so a node at its connection
//! limit leaves new connections in the kernel's backlog instead of taking on more work.
//!
//! gRPC (tonic's `Routes` are an axum router) and HTTP both serve an [`axum::Router`] here; on
//! shutdown the listener stops accepting, every connection finishes its in-flight requests
//! (HTTP/2 GOAWAY, HTTP/1 close after the response), and connections still busy after
//! [`DRAIN_TIMEOUT`] are cut.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::extract::ConnectInfo;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// How long in-flight requests get to finish on shutdown.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

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
}

/// How long a client gets to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` (over TLS when `tls` is given) until `shutdown`, then drains.
pub(crate) async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnLimits,
    clients: Arc<crate::limits::ClientLimiter>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let semaphore = Arc::new(Semaphore::new(limits.max_connections.max(1)));
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

    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = semaphore.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(listener = limits.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // A client at its connection limit is closed at once: its flood costs no task.
        let Some(slot) = clients.connect(peer.ip()) else {
            tracing::debug!(listener = limits.name, %peer, "client at its connection limit");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service =
            router
                .clone()
                .map_request(move |mut req: http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                    req
                });
        let builder = builder.clone();
        let stop = shutdown.clone();
        let name = limits.name;
        let tls = tls.clone();
        connections.spawn(async move {
            let _permit = permit;
            let _slot = slot;
            let service = TowerToHyperService::new(service);
            let result = match tls {
                None => serve_connection(&builder, TokioIo::new(stream), service, stop).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            serve_connection(&builder, TokioIo::new(stream), service, stop).await
                        }
                        // A refused certificate, a plaintext client, a slow one: logged, and
                        // the connection is closed without answering.
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
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            listener = limits.name,
            open = connections.len(),
            "connections still busy after the drain timeout; closing them"
        );
        connections.shutdown().await;
    }
}

async fn serve_connection<I, S>(
    builder: &auto::Builder<TokioExecutor>,
    io: TokioIo<I>,
    service: TowerToHyperService<S>,
    stop: CancellationToken,
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
    }
}
