//! [`Node`]: one handle that owns every part of a running node.
//!
//! `Node::spawn` starts the node in stages: the listeners' ports (so a port in use fails before
//! anything is opened), the store, the pipeline, the ingress servers, the network tasks. A
//! supervisor stops the whole node when any part ends on its own, so a node is never
//! half-alive. Shutdown is ordered: the listeners stop accepting and finish their in-flight
//! requests, then the pipeline commits everything still queued, then the PoH generator stops
//! and its last entries are stored.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use poh_store::Store;
use tokio::{
    net::TcpListener,
    sync::{mpsc, watch},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use poh_core::{PohMode, SigningKey};

use crate::{
    NodeConfig, NodeError,
    federation::{
        Federation,
        link::ChildLink,
        prove::{Prover, Upward},
        sealer::{Schedule, Sealer},
    },
    ingress::{
        Services, auth::Authenticator, grpc, http, limits::ClientLimiter, listener, quic,
        subscribe::Subscriptions, udp,
    },
    metrics::{Metrics, NodeFacts},
    network::{Broadcaster, client::ClientTls, health, peers::PeersCache, relay, repair::Repairer},
    pipeline::{IngestPipeline, PipelineJoin, Relay},
    reload::{Parts, Reloader},
    retention::ttl::{self, Sweeper},
    shared::ByteBudget,
    tls::{NodeTls, acceptor},
};

/// A running node.
pub struct Node {
    addrs: Addrs,
    pipeline: IngestPipeline,
    metrics: Metrics,
    shutdown: CancellationToken,
    supervisor: tokio::task::JoinHandle<Result<(), NodeError>>,
    /// Reloads what can change live.
    reloader: Arc<Reloader>,
}

/// Where each listener is bound (`None`: turned off).
#[derive(Clone, Copy, Debug, Default)]
struct Addrs {
    grpc: Option<SocketAddr>,
    http: Option<SocketAddr>,
    udp: Option<SocketAddr>,
    quic: Option<SocketAddr>,
}

/// The ports bound before anything else starts.
struct Ports {
    grpc: Option<TcpListener>,
    http: Option<TcpListener>,
    udp: Option<udp::UdpListener>,
}

impl Node {
    /// Starts a node. Fails, with nothing left running, when a port is taken, the data
    /// directory is unusable, the store holds another chain, or a setting cannot work.
    pub async fn spawn(config: NodeConfig) -> Result<Self, NodeError> {
        config.validate()?;
        let ports = bind_ports(&config).await?;
        let (store, compacted) = open_store(&config).await?;
        let metrics = Metrics::new();
        metrics.gc_events[1].increment(u64::from(compacted));
        let (relay_sender, relay_queue) = match config.relay {
            true => {
                let dropped = metrics.relay_dropped.clone();
                let (tx, rx) = relay::queue(config.peers.relay_queue_bytes, dropped);
                (Some(Box::new(tx) as Box<dyn Relay>), Some(rx))
            }
            false => (None, None),
        };
        let (pipeline, pipeline_done) = IngestPipeline::start(
            store.clone(),
            &config.chain_id,
            config.poh,
            &config.ingest,
            durable_every(&config),
            metrics.ingest.clone(),
            relay_sender,
        )?;
        let metrics = describe_node(&config, metrics, &pipeline);
        let tls = NodeTls::load(&config)?;
        let peers_tls = ClientTls::of_node(&config, &tls)?;
        let (federation, node_key) = load_federation(&config).await?;
        let timeout = Duration::from_millis(config.peers.timeout_ms);
        let upward = (config.federation.parent.as_ref())
            .map(|parent| Upward::new(parent, &peers_tls, timeout))
            .transpose()?;
        let shutdown = CancellationToken::new();
        let (sealed, sealed_rx) = watch::channel(0);
        let services = Services {
            subscriptions: Subscriptions::new(&config.limits, metrics.subscribers.clone()),
            sealed: sealed_rx,
            shutdown: shutdown.clone(),
            federation: Arc::new(federation),
            prover: Arc::new(Prover::new(
                store.clone(),
                upward,
                metrics.federation.proof_trees.clone(),
            )),
            pipeline: pipeline.clone(),
            store,
            metrics: Arc::new(metrics.clone()),
            peers: Arc::new(PeersCache::new(config.peers_file.clone())),
            auth: config
                .auth
                .as_ref()
                .map(Authenticator::from_config)
                .transpose()?,
            limiter: ClientLimiter::new(&config.limits),
            buffered: ByteBudget::new(
                config.limits.buffered_bytes,
                config.limits.buffered_bytes_per_client,
                metrics.buffered_bytes.clone(),
            ),
            link_buffered: ByteBudget::new(
                config.federation.link_buffered_bytes,
                crate::config::LINK_SHARE_BYTES,
                metrics.federation.link_buffered_bytes.clone(),
            ),
        };
        let mut tasks = JoinSet::new();
        tasks.spawn(metrics.clone().upkeep(shutdown.clone()));
        let addrs = start_ingress(&config, ports, &services, &tls, &shutdown, &mut tasks).await?;
        start_network(
            &config,
            &peers_tls,
            &services,
            relay_queue,
            &shutdown,
            &mut tasks,
        )
        .await?;
        start_federation(&config, &peers_tls, &services, node_key, sealed, &mut tasks)?;
        start_retention(&config, &services, &shutdown, &mut tasks);
        let reloader = start_reload(&config, &tls, &peers_tls, &services, &mut tasks);
        log_started(&config, &addrs);
        let supervisor = tokio::spawn(supervise(
            tasks,
            pipeline_done,
            pipeline.clone(),
            shutdown.clone(),
        ));
        Ok(Self {
            addrs,
            pipeline,
            metrics,
            shutdown,
            supervisor,
            reloader,
        })
    }

    /// Where the gRPC listener is bound.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.addrs.grpc
    }

    /// Where the HTTP listener is bound.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.addrs.http
    }

    /// Where the UDP listener is bound.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.addrs.udp
    }

    /// Where the QUIC listener is bound.
    pub fn quic_addr(&self) -> Option<SocketAddr> {
        self.addrs.quic
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

    /// Applies `config` where it can change live (what `SIGHUP` does, with the configuration
    /// read again): the certificate and key, the client CA and allow-list, the token file and
    /// JWT keys (every file read again), and `[limits]`. Each other setting that differs from
    /// the running one is logged, one line each, and waits for a restart. New connections get
    /// the new certificate and checks; established ones keep theirs. On error nothing changes.
    /// A changed certificate, key, CA, token or JWT key file is also reloaded by itself, with
    /// the settings applied last, within seconds.
    pub fn reload(&self, config: &NodeConfig) -> Result<(), NodeError> {
        self.reloader.reload(config)
    }

    /// Records a reload that could not start (its configuration could not be read): logged
    /// and counted as a failure like any other; nothing changes.
    pub fn reload_failed(&self, error: &str) {
        self.reloader.failed(error);
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

/// How often idle ticks are made durable: once a second, or as often as the sealer may seal.
fn durable_every(config: &NodeConfig) -> Duration {
    Duration::from_secs_f64(config.federation.min_batch_interval).min(Duration::from_secs(1))
}

/// Stage 1: the TCP and UDP ports, so a port in use fails before the store is touched.
async fn bind_ports(config: &NodeConfig) -> Result<Ports, NodeError> {
    let at = |port| SocketAddr::new(config.bind, port);
    Ok(Ports {
        grpc: match &config.grpc {
            Some(c) => Some(bind("gRPC", at(c.port)).await?),
            None => None,
        },
        http: match &config.http {
            Some(c) => Some(bind("HTTP", at(c.port)).await?),
            None => None,
        },
        udp: match &config.udp {
            Some(c) => Some(udp::UdpListener::bind(at(c.port), c).await?),
            None => None,
        },
    })
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, NodeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Bind { what, addr, source })
}

/// Stage 2: the embedded store, its directory made if missing (off the async threads: it is
/// file I/O), moved first from an earlier release's file when it finds one, compacted when the TTL removed enough since the last time (a compaction
/// holds the whole store, so it only runs before the node serves); whether it was.
async fn open_store(config: &NodeConfig) -> Result<(Arc<dyn Store>, bool), NodeError> {
    let db_path = config.db_path();
    let dir = db_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(std::path::Path::to_path_buf);
    let ttl = config.ttl.clone();
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir).map_err(|source| NodeError::DataDir {
                path: dir.clone(),
                source,
            })?;
        }
        crate::retention::migrate::migrate_if_needed(&config)?;
        let store = config.open_store()?;
        let compacted = ttl::compact_if_due(store.as_ref(), &ttl);
        Ok((store, compacted))
    })
    .await
    .map_err(|_| NodeError::TaskFailed("store"))?
}

/// Stage 3: the servers, each on its bound port; QUIC binds here, since its certificate may
/// be the development one kept in the data directory.
async fn start_ingress(
    config: &NodeConfig,
    ports: Ports,
    services: &Services,
    tls: &NodeTls,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Result<Addrs, NodeError> {
    let mut addrs = Addrs::default();
    if let (Some(l), Some(c)) = (ports.grpc, &config.grpc) {
        addrs.grpc = l.local_addr().ok();
        let router = grpc::router(services.clone(), c).await;
        let limits = grpc::conn_limits(c);
        tasks.spawn(serve_tcp(l, router, limits, services, tls, shutdown)?);
    }
    if let (Some(l), Some(c)) = (ports.http, &config.http) {
        addrs.http = l.local_addr().ok();
        let router = http::router(services.clone(), c);
        let limits = http::conn_limits(c);
        tasks.spawn(serve_tcp(l, router, limits, services, tls, shutdown)?);
    }
    if let (Some(l), Some(c)) = (ports.udp, &config.udp) {
        addrs.udp = l.local_addr().ok();
        tasks.spawn(udp::serve(l, services.clone(), c.clone(), shutdown.clone()));
    }
    if let Some(c) = &config.quic {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| NodeError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let at = SocketAddr::new(config.bind, c.port);
        let endpoint = quic::bind(
            at,
            c,
            &config.data_dir,
            tls.cert.clone().or_else(|| tls.quic_cert.clone()),
            tls.clients.clone(),
        )?;
        addrs.quic = endpoint.local_addr().ok();
        tasks.spawn(quic::serve(
            endpoint,
            services.clone(),
            c.clone(),
            shutdown.clone(),
        ));
    }
    Ok(addrs)
}

/// A TCP listener serving `router`, over TLS when the node has it.
fn serve_tcp(
    listener: TcpListener,
    router: axum::Router,
    limits: listener::ConnLimits,
    services: &Services,
    tls: &NodeTls,
    shutdown: &CancellationToken,
) -> Result<impl Future<Output = ()> + use<>, NodeError> {
    let tls = acceptor(tls, limits.alpn)?;
    let limiter = services.limiter.clone();
    Ok(listener::serve(
        listener,
        router,
        limits,
        limiter,
        tls,
        shutdown.clone(),
    ))
}

/// Stage 4: what goes out: relaying newly stored transactions, the peer health checks, and
/// catch-up and repair, sharing one broadcaster (its connections) and the node's one view of
/// the peers file.
async fn start_network(
    config: &NodeConfig,
    peers_tls: &ClientTls,
    services: &Services,
    relay_queue: Option<mpsc::UnboundedReceiver<relay::Queued>>,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Result<(), NodeError> {
    let health_every = config.peers.health_interval_secs;
    let repair = Repairer::is_on(&config.repair);
    if relay_queue.is_none() && health_every == 0 && !repair {
        return Ok(());
    }
    let metrics = Some(services.metrics.broadcast.clone());
    let broadcaster =
        Arc::new(Broadcaster::new(config.peers.clone(), peers_tls.clone(), metrics).await?);
    if let Some(queue) = relay_queue {
        let (b, peers) = (broadcaster.clone(), services.peers.clone());
        tasks.spawn(relay::relay(queue, b, peers, shutdown.clone()));
    }
    if health_every > 0 {
        tasks.spawn(health::health(
            broadcaster.clients().clone(),
            services.peers.clone(),
            (*services.metrics).clone(),
            Duration::from_secs(health_every),
            Duration::from_millis(config.peers.timeout_ms),
            shutdown.clone(),
        ));
    }
    if repair {
        let repairer = Repairer::new(
            services.store.clone(),
            services.pipeline.clone(),
            broadcaster.clients().clone(),
            services.peers.clone(),
            config.repair.clone(),
            services.metrics.repair.clone(),
            Duration::from_millis(config.peers.timeout_ms),
        );
        tasks.spawn(repairer.run(shutdown.clone()));
    }
    Ok(())
}

/// What the metrics say of the node itself: its configured PoH rate, header interval and
/// children, and, at each scrape, its hash count and disk.
fn describe_node(config: &NodeConfig, metrics: Metrics, pipeline: &IngestPipeline) -> Metrics {
    let poh = &config.poh;
    let facts = NodeFacts {
        target_hashes_per_second: match poh.mode {
            PohMode::Unpaced => 0.0,
            PohMode::Paced | PohMode::LowPower => poh.target_hashes_per_second(),
        },
        max_batch_interval: config.federation.max_batch_interval,
        children: config
            .federation
            .children
            .iter()
            .map(|c| c.chain_id.clone())
            .collect(),
        data_dir: config.data_dir.clone(),
        db_path: config.db_path(),
    };
    metrics.with_node(facts, pipeline.hashes_total())
}

/// Stage 2b: the node's signing key and its children's keys (file I/O, off the async
/// threads).
async fn load_federation(config: &NodeConfig) -> Result<(Federation, SigningKey), NodeError> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || Federation::load(&config))
        .await
        .map_err(|_| NodeError::TaskFailed("federation"))?
}

/// Stage 5: the sealer, and the link to the parent when there is one.
fn start_federation(
    config: &NodeConfig,
    peers_tls: &ClientTls,
    services: &Services,
    key: SigningKey,
    sealed: watch::Sender<u64>,
    tasks: &mut JoinSet<()>,
) -> Result<(), NodeError> {
    let (shutdown, sealed_rx) = (&services.shutdown, &services.sealed);
    let sealer = Sealer {
        store: services.store.clone(),
        pipeline: services.pipeline.clone(),
        chain_id: config.chain_id.clone(),
        level: config.federation.level,
        key: Arc::new(key),
        hashes_per_tick: config.poh.hashes_per_tick,
        schedule: Schedule::new(&config.federation),
        metrics: services.metrics.federation.clone(),
        sealed,
    };
    let token = shutdown.clone();
    tasks.spawn(async move {
        if let Err(e) = sealer.run(token).await {
            tracing::error!(error = %e, "the sealer stopped");
        }
    });
    if let Some(parent) = &config.federation.parent {
        let link = ChildLink {
            store: services.store.clone(),
            parent: parent.clone(),
            chain_id: config.chain_id.clone(),
            hashes_per_tick: config.poh.hashes_per_tick,
            tls: peers_tls.clone(),
            timeout: Duration::from_millis(config.peers.timeout_ms),
            sealed: sealed_rx.clone(),
        };
        tasks.spawn(link.run(shutdown.clone()));
    }
    if !config.fragments.locations.is_empty() {
        let writer = crate::retention::fragments::FragmentWriter::new(
            &config.fragments,
            services.store.clone(),
            services.metrics.fragments.clone(),
        )?;
        let (token, sealed) = (shutdown.clone(), sealed_rx.clone());
        tasks.spawn(async move {
            if let Err(e) = writer.run(sealed, token).await {
                tracing::error!(error = %e, "the fragment writer stopped");
            }
        });
    }
    Ok(())
}

/// Stage 6: the TTL sweep, when a TTL is set.
fn start_retention(
    config: &NodeConfig,
    services: &Services,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
) {
    let fragments = !config.fragments.locations.is_empty();
    let metrics = &services.metrics;
    if let Some(sweeper) = Sweeper::new(services.store.clone(), &config.ttl, fragments, metrics) {
        tasks.spawn(sweeper.run(shutdown.clone()));
    }
}

/// Stage 7: what reloads live (on SIGHUP or a changed file), and the certificate's expiry as
/// a metric and a daily warning before it.
fn start_reload(
    config: &NodeConfig,
    tls: &NodeTls,
    peers_tls: &ClientTls,
    services: &Services,
    tasks: &mut JoinSet<()>,
) -> Arc<Reloader> {
    let expiry = match (&config.tls, &tls.cert) {
        (Some(settings), Some(cert)) => {
            let expiry = services.metrics.tls_cert_expiry();
            tasks.spawn(crate::tls::expiry::watch(
                cert.clone(),
                settings.expiry_warning_days,
                expiry.clone(),
                services.shutdown.clone(),
            ));
            Some(expiry)
        }
        _ => None,
    };
    let parts = Parts::of(tls, peers_tls, services, expiry);
    let reloader = Arc::new(Reloader::new(
        config,
        parts,
        services.metrics.reloads.clone(),
    ));
    tasks.spawn(reloader.clone().watch_files(services.shutdown.clone()));
    reloader
}

fn log_started(config: &NodeConfig, addrs: &Addrs) {
    let show = |a: Option<SocketAddr>| a.map_or_else(|| "off".to_string(), |a| a.to_string());
    tracing::info!(
        chain_id = %config.chain_id,
        grpc = %show(addrs.grpc),
        http = %show(addrs.http),
        udp = %show(addrs.udp),
        quic = %show(addrs.quic),
        db = %config.db_path().display(),
        relay = config.relay,
        "node started"
    );
}

async fn supervise(
    mut tasks: JoinSet<()>,
    mut pipeline_done: PipelineJoin,
    pipeline: IngestPipeline,
    shutdown: CancellationToken,
) -> Result<(), NodeError> {
    let mut failure = None;
    let mut committed = None;
    tokio::select! {
        biased;
        () = shutdown.cancelled() => {}
        // A task ends on its own only after shutdown was asked for, or when it failed.
        Some(_) = tasks.join_next() => if !shutdown.is_cancelled() {
            failure = Some(NodeError::TaskFailed("listener, network or sealer task"));
        },
        result = &mut pipeline_done => {
            committed = Some(result);
            failure = Some(NodeError::TaskFailed("committer"));
        }
    }
    if let Some(f) = &failure {
        tracing::error!(error = %f, "stopping the node");
    }
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    pipeline.close();
    let committed = match committed {
        Some(result) => result,
        None => pipeline_done.await,
    };
    tracing::info!("node stopped");
    match (committed, failure) {
        (Err(e), _) => Err(e),
        (Ok(()), Some(f)) => Err(f),
        (Ok(()), None) => Ok(()),
    }
}
