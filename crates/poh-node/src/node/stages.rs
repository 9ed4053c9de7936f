//! The stages [`Node::spawn`](super::Node::spawn) runs, in order, each a short function.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use poh_core::{PohMode, SigningKey};
use poh_store::Store;
use tokio::{
    net::TcpListener,
    sync::{mpsc, watch},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use super::{Addrs, Ports};
use crate::{
    IngestPipeline, NodeConfig, NodeError,
    federation::{
        Federation,
        link::ChildLink,
        sealer::{Schedule, Sealer},
    },
    ingress::{Services, grpc, http, listener, quic, udp},
    metrics::{Metrics, NodeFacts},
    network::{Broadcaster, client::ClientTls, health, relay, repair::Repairer},
    reload::{Parts, Reloader},
    replica::{FollowStatus, follow::Follower, promote::Promotion},
    retention::ttl::{self, Sweeper},
    tls::{NodeTls, acceptor},
};

/// How often idle ticks are made durable: once a second, or as often as the sealer may seal.
pub(super) fn durable_every(config: &NodeConfig) -> Duration {
    Duration::from_secs_f64(config.federation.min_batch_interval).min(Duration::from_secs(1))
}

/// Stage 1: the TCP and UDP ports, so a port in use fails before the store is touched.
pub(super) async fn bind_ports(config: &NodeConfig) -> Result<Ports, NodeError> {
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
pub(super) async fn open_store(config: &NodeConfig) -> Result<(Arc<dyn Store>, bool), NodeError> {
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
pub(super) async fn start_ingress(
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
pub(super) async fn start_network(
    config: &NodeConfig,
    peers_tls: &ClientTls,
    services: &Services,
    relay_queue: Option<mpsc::UnboundedReceiver<relay::Queued>>,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Result<(), NodeError> {
    let health_every = config.peers.health_interval_secs;
    // A replica's transactions come from its primary alone.
    let repair = Repairer::is_on(&config.repair) && config.replica.follow.is_none();
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

/// The PoH rate the node is configured for; 0 when unpaced.
fn target_rate(config: &NodeConfig) -> f64 {
    match config.poh.mode {
        PohMode::Unpaced => 0.0,
        PohMode::Paced | PohMode::LowPower => config.poh.target_hashes_per_second(),
    }
}

/// What the metrics say of the node itself: its configured PoH rate, header interval and
/// children, and, at each scrape, its hash count and disk.
pub(super) fn describe_node(
    config: &NodeConfig,
    metrics: Metrics,
    pipeline: &IngestPipeline,
) -> Metrics {
    let facts = NodeFacts {
        // A replica makes no PoH until it is promoted, so nothing alerts on its rate.
        target_hashes_per_second: match config.replica.follow {
            Some(_) => 0.0,
            None => target_rate(config),
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
pub(super) async fn load_federation(
    config: &NodeConfig,
) -> Result<(Federation, SigningKey), NodeError> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || Federation::load(&config))
        .await
        .map_err(|_| NodeError::TaskFailed("federation"))?
}

/// Stage 5: the sealer, the link to the parent when there is one, and the fragments; on a
/// replica they wait for a promotion (`leading`).
#[allow(clippy::too_many_arguments)]
pub(super) fn start_federation(
    config: &NodeConfig,
    peers_tls: &ClientTls,
    services: &Services,
    key: SigningKey,
    sealed: Arc<watch::Sender<u64>>,
    leading: watch::Receiver<bool>,
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
    let (token, lead) = (shutdown.clone(), leading.clone());
    tasks.spawn(async move {
        if !once_leading(lead, &token).await {
            return;
        }
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
            replicated: (config.replica.min_replica_acks > 0)
                .then(|| services.replicas.acked_headers()),
        };
        let (token, lead) = (shutdown.clone(), leading.clone());
        tasks.spawn(async move {
            if once_leading(lead, &token).await {
                link.run(token).await;
            }
        });
    }
    if !config.fragments.locations.is_empty() {
        let writer = crate::retention::fragments::FragmentWriter::new(
            &config.fragments,
            services.store.clone(),
            services.metrics.fragments.clone(),
        )?;
        let (token, sealed) = (shutdown.clone(), sealed_rx.clone());
        tasks.spawn(async move {
            if !once_leading(leading, &token).await {
                return;
            }
            if let Err(e) = writer.run(sealed, token).await {
                tracing::error!(error = %e, "the fragment writer stopped");
            }
        });
    }
    Ok(())
}

/// Waits until this node leads its chain (at once on a primary); false when it stops first.
async fn once_leading(mut leading: watch::Receiver<bool>, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => false,
        led = leading.wait_for(|l| *l) => led.is_ok(),
    }
}

/// Whether this node follows a primary, and what it shares with the parts of a replica.
pub(super) struct Role {
    pub follow: Option<Arc<FollowStatus>>,
    pub promotion: Option<Arc<Promotion>>,
    /// Cancelled to stop the copy.
    pub copying: CancellationToken,
    /// True while this node leads its chain: sealing and the parent link run only then.
    pub leading: watch::Receiver<bool>,
}

/// Stage 2c: a primary leads at once; a replica follows until it is promoted.
pub(super) fn role(
    config: &NodeConfig,
    pipeline: &IngestPipeline,
    store: &Arc<dyn Store>,
    federation: &Federation,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> Result<Role, NodeError> {
    let copying = shutdown.child_token();
    let Some(primary) = &config.replica.follow else {
        let (_, leading) = watch::channel(true);
        return Ok(Role {
            follow: None,
            promotion: None,
            copying,
            leading,
        });
    };
    let chain_key = (config.replica.chain_key.as_deref())
        .map(crate::federation::key::read_public_key)
        .transpose()?;
    let (lead, leading) = watch::channel(false);
    let promotion = Promotion {
        pipeline: pipeline.clone(),
        store: store.clone(),
        node_key: federation.public_key.clone(),
        chain_key,
        copying: copying.clone(),
        leading: lead,
        once: Default::default(),
        target: (metrics.poh.target.clone(), target_rate(config)),
    };
    Ok(Role {
        follow: Some(Arc::new(FollowStatus::new(primary.clone()))),
        promotion: Some(Arc::new(promotion)),
        copying,
        leading,
    })
}

/// Stage 5, on a replica: the copy from the primary, in place of sealing and the link to a
/// parent (the primary's headers are copied, and reach the parent from the primary).
pub(super) fn start_replica(
    config: &NodeConfig,
    peers_tls: &ClientTls,
    services: &Services,
    role: &Role,
    sealed: &Arc<watch::Sender<u64>>,
    tasks: &mut JoinSet<()>,
) -> Result<(), NodeError> {
    let (Some(status), Some(promotion)) = (&role.follow, &role.promotion) else {
        return Ok(());
    };
    let follower = Follower {
        primary: status.primary.clone(),
        tls: peers_tls.clone(),
        timeout: Duration::from_millis(config.peers.timeout_ms),
        store: services.store.clone(),
        pipeline: services.pipeline.clone(),
        chain_id: config.chain_id.clone(),
        level: config.federation.level,
        hashes_per_tick: config.poh.hashes_per_tick,
        chain_key: promotion.chain_key.clone(),
        status: status.clone(),
        metrics: services.metrics.replica.clone(),
        sealed: sealed.clone(),
    };
    tasks.spawn(follower.run(role.copying.clone(), services.shutdown.clone()));
    Ok(())
}

/// Stage 6: the TTL sweep, when a TTL is set.
pub(super) fn start_retention(
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
pub(super) fn start_reload(
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
