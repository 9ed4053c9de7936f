//! [`Node`]: one handle that owns every part of a running node.
//!
//! `Node::spawn` binds the listeners, opens the store, resumes the PoH chain and starts the
//! committer and the servers; `shutdown` asks it to stop; `join` waits. A supervisor stops the
//! whole node when any part ends on its own, so a node is never half-alive. Shutdown is
//! ordered: the listeners stop accepting and finish their in-flight requests, then the
//! pipeline commits everything still queued, then the PoH generator stops and its last
//! entries are stored.

use std::{net::SocketAddr, sync::Arc};

use poh_store::{RedbStore, Store};
use tokio::{net::TcpListener, sync::oneshot, task::JoinSet};
use tokio_util::sync::CancellationToken;

use crate::{
    NodeConfig, NodeError, Services,
    broadcast::{Broadcaster, ClientTls},
    config::TlsConfig,
    grpc, http, listener,
    metrics::Metrics,
    pipeline::{Committer, IngestPipeline, committer::CommitSettings},
    quic,
    relay::{self, PeersCache},
    tls::{ClientAuth, Identity, ServerTrust},
    udp,
};

/// A running node.
pub struct Node {
    grpc_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    udp_addr: Option<SocketAddr>,
    quic_addr: Option<SocketAddr>,
    pipeline: IngestPipeline,
    metrics: Metrics,
    shutdown: CancellationToken,
    supervisor: tokio::task::JoinHandle<Result<(), NodeError>>,
}

impl Node {
    /// Starts a node. Fails, with nothing left running, when a port is taken, the data
    /// directory is unusable, the store holds another chain, or a setting cannot work.
    pub async fn spawn(config: NodeConfig) -> Result<Self, NodeError> {
        config.validate()?;
        let grpc_listener = match &config.grpc {
            Some(c) => Some(bind("gRPC", SocketAddr::new(config.bind, c.port)).await?),
            None => None,
        };
        let http_listener = match &config.http {
            Some(c) => Some(bind("HTTP", SocketAddr::new(config.bind, c.port)).await?),
            None => None,
        };
        let udp_listener = match &config.udp {
            Some(c) => Some(udp::UdpListener::bind(SocketAddr::new(config.bind, c.port), c).await?),
            None => None,
        };

        let db_path = config.db_path();
        let dir = db_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(std::path::Path::to_path_buf);
        let cache_mb = config.db_cache_mb;
        let store: Arc<dyn Store> = tokio::task::spawn_blocking(move || {
            if let Some(dir) = &dir {
                std::fs::create_dir_all(dir).map_err(|source| NodeError::DataDir {
                    path: dir.clone(),
                    source,
                })?;
            }
            Ok::<_, NodeError>(Arc::new(RedbStore::open_with_cache(
                &db_path,
                cache_mb.saturating_mul(1 << 20),
            )?))
        })
        .await
        .map_err(|_| NodeError::TaskFailed("store"))??;

        let metrics = Metrics::new();
        let (jobs, queue) = std::sync::mpsc::channel();
        let settings = CommitSettings {
            max_batch: config.ingest.max_batch,
            durable: config.ingest.fsync,
        };
        let (relay_sender, relay_queue) = match config.relay {
            true => {
                let (tx, rx) = tokio::sync::mpsc::channel(config.peers.relay_queue.max(1));
                (Some(tx), Some(rx))
            }
            false => (None, None),
        };
        let (committer, view) = Committer::start(
            store.clone(),
            &config.chain_id,
            config.poh,
            settings,
            metrics.ingest.clone(),
            (jobs.clone(), queue),
            relay_sender,
        )?;
        let pipeline = IngestPipeline::new(
            jobs,
            config.ingest.queue_bytes,
            config.ingest.limits(),
            metrics.ingest.clone(),
            view,
        );
        let (committed, committer_done) = oneshot::channel();
        std::thread::Builder::new()
            .name("poh-committer".into())
            .spawn(move || {
                let _ = committed.send(committer.run());
            })
            .map_err(|_| NodeError::TaskFailed("committer"))?;

        let services = Services {
            pipeline: pipeline.clone(),
            store,
            metrics: metrics.clone(),
            peers_file: config.peers_file.clone(),
            auth: config
                .auth
                .as_ref()
                .map(crate::auth::Authenticator::from_config)
                .transpose()?,
            limiter: crate::limits::ClientLimiter::new(&config.limits),
        };
        let shutdown = CancellationToken::new();
        let mut listeners = JoinSet::new();
        let security = Security::load(config.tls.as_ref())?;
        let mut grpc_addr = None;
        if let (Some(l), Some(c)) = (grpc_listener, &config.grpc) {
            grpc_addr = l.local_addr().ok();
            let router = grpc::router(services.clone(), c).await;
            listeners.spawn(listener::serve(
                l,
                router,
                grpc::conn_limits(c),
                services.limiter.clone(),
                acceptor(&security, &[b"h2"])?,
                shutdown.clone(),
            ));
        }
        let mut http_addr = None;
        if let (Some(l), Some(c)) = (http_listener, &config.http) {
            http_addr = l.local_addr().ok();
            let router = http::router(services.clone(), c);
            listeners.spawn(listener::serve(
                l,
                router,
                http::conn_limits(c),
                services.limiter.clone(),
                acceptor(&security, &[b"h2", b"http/1.1"])?,
                shutdown.clone(),
            ));
        }
        let mut udp_addr = None;
        if let (Some(l), Some(c)) = (udp_listener, &config.udp) {
            udp_addr = l.local_addr().ok();
            listeners.spawn(udp::serve(l, services.clone(), c.clone(), shutdown.clone()));
        }
        let mut quic_addr = None;
        if let Some(c) = &config.quic {
            std::fs::create_dir_all(&config.data_dir).map_err(|source| NodeError::DataDir {
                path: config.data_dir.clone(),
                source,
            })?;
            let endpoint = quic::bind(
                SocketAddr::new(config.bind, c.port),
                c,
                &config.data_dir,
                security.identity.clone(),
                &security.auth,
            )?;
            quic_addr = endpoint.local_addr().ok();
            listeners.spawn(quic::serve(
                endpoint,
                services.clone(),
                c.clone(),
                shutdown.clone(),
            ));
        }
        if relay_queue.is_some() || config.peers.health_interval_secs > 0 {
            let broadcaster = Arc::new(
                Broadcaster::new(
                    config.peers.clone(),
                    ClientTls {
                        token: config
                            .peers
                            .token_file
                            .as_deref()
                            .map(crate::auth::read_token_file)
                            .transpose()?,
                        ..security.client_tls()
                    },
                    Some(metrics.broadcast.clone()),
                )
                .await?,
            );
            if let Some(queue) = relay_queue {
                listeners.spawn(relay::relay(
                    queue,
                    broadcaster.clone(),
                    PeersCache::new(config.peers_file.clone()),
                    shutdown.clone(),
                ));
            }
            if config.peers.health_interval_secs > 0 {
                listeners.spawn(relay::health(
                    broadcaster,
                    PeersCache::new(config.peers_file.clone()),
                    metrics.clone(),
                    std::time::Duration::from_secs(config.peers.health_interval_secs),
                    shutdown.clone(),
                ));
            }
        }
        let show = |a: Option<SocketAddr>| a.map_or_else(|| "off".to_string(), |a| a.to_string());
        tracing::info!(
            chain_id = %config.chain_id,
            grpc = %show(grpc_addr),
            http = %show(http_addr),
            udp = %show(udp_addr),
            quic = %show(quic_addr),
            db = %config.db_path().display(),
            relay = config.relay,
            "node started"
        );
        let supervisor = tokio::spawn(supervise(
            listeners,
            committer_done,
            pipeline.clone(),
            shutdown.clone(),
        ));
        Ok(Self {
            grpc_addr,
            http_addr,
            udp_addr,
            quic_addr,
            pipeline,
            metrics,
            shutdown,
            supervisor,
        })
    }

    /// Where the gRPC listener is bound.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc_addr
    }

    /// Where the HTTP listener is bound.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Where the UDP listener is bound.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp_addr
    }

    /// Where the QUIC listener is bound.
    pub fn quic_addr(&self) -> Option<SocketAddr> {
        self.quic_addr
    }

    /// The ingest pipeline (for in-process transports).
    pub fn pipeline(&self) -> &IngestPipeline {
        &self.pipeline
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// A token that stops the node when cancelled (for signal handlers).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Asks the node to stop; [`Node::join`] waits for it.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Waits until the node has stopped: `Ok` after a requested shutdown with everything
    /// flushed, the first failure when a part of the node failed.
    pub async fn join(self) -> Result<(), NodeError> {
        self.supervisor
            .await
            .map_err(|_| NodeError::TaskFailed("supervisor"))?
    }
}

/// The node's TLS material, loaded once at start.
struct Security {
    identity: Option<Identity>,
    auth: ClientAuth,
    trust: ServerTrust,
}

impl Security {
    fn load(config: Option<&TlsConfig>) -> Result<Self, NodeError> {
        let Some(config) = config else {
            return Ok(Self {
                identity: None,
                auth: ClientAuth::default(),
                trust: ServerTrust::AnyCertificate,
            });
        };
        let identity = Identity::from_config(config)?;
        if identity.is_none() {
            return Err(NodeError::Config(
                "[tls] needs the node's certificate: cert and key, or pkcs12".into(),
            ));
        }
        Ok(Self {
            identity,
            auth: ClientAuth {
                ca: config.ca.clone(),
                allowed: config.allowed_clients.clone(),
            },
            trust: config
                .ca
                .clone()
                .map_or(ServerTrust::AnyCertificate, ServerTrust::Ca),
        })
    }

    /// How this node connects to its peers: trusting its CA, presenting its certificate.
    fn client_tls(&self) -> ClientTls {
        ClientTls {
            trust: self.trust.clone(),
            identity: self.identity.clone(),
            token: None,
        }
    }
}

/// The TLS acceptor for a TCP listener offering `alpn`, when the node has TLS on.
fn acceptor(
    security: &Security,
    alpn: &[&[u8]],
) -> Result<Option<tokio_rustls::TlsAcceptor>, NodeError> {
    let Some(identity) = &security.identity else {
        return Ok(None);
    };
    let config = crate::tls::server_config(identity.clone(), &security.auth, alpn)?;
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, NodeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Bind { what, addr, source })
}

async fn supervise(
    mut listeners: JoinSet<()>,
    mut committer_done: oneshot::Receiver<Result<(), NodeError>>,
    pipeline: IngestPipeline,
    shutdown: CancellationToken,
) -> Result<(), NodeError> {
    let mut failure = None;
    let mut committed = None;
    tokio::select! {
        biased;
        () = shutdown.cancelled() => {}
        // A listener ends on its own only after shutdown was asked for, or when it failed.
        Some(_) = listeners.join_next() => if !shutdown.is_cancelled() {
            failure = Some(NodeError::TaskFailed("listener"));
        },
        result = &mut committer_done => {
            committed = Some(result.unwrap_or(Err(NodeError::TaskFailed("committer"))));
            failure = Some(NodeError::TaskFailed("committer"));
        }
    }
    if let Some(f) = &failure {
        tracing::error!(error = %f, "stopping the node");
    }
    shutdown.cancel();
    while listeners.join_next().await.is_some() {}
    pipeline.close();
    let committed = match committed {
        Some(result) => result,
        None => committer_done
            .await
            .unwrap_or(Err(NodeError::TaskFailed("committer"))),
    };
    tracing::info!("node stopped");
    match (committed, failure) {
        (Err(e), _) => Err(e),
        (Ok(()), Some(f)) => Err(f),
        (Ok(()), None) => Ok(()),
    }
}
