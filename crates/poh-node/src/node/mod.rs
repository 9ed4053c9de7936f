//! [`Node`]: one handle that owns every part of a running node.
//!
//! `Node::spawn` starts the node in stages: the listeners' ports (so a port in use fails before
//! anything is opened), the store, the pipeline, the ingress servers, the network tasks. A
//! supervisor stops the whole node when any part ends on its own, so a node is never
//! half-alive. Shutdown is ordered: the listeners stop accepting and finish their in-flight
//! requests, then the pipeline commits everything still queued, then the PoH generator stops
//! and its last entries are stored.

mod stages;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{net::TcpListener, sync::watch, task::JoinSet};
use tokio_util::sync::CancellationToken;

use stages::{
    bind_ports, describe_node, durable_every, load_federation, open_store, role, start_federation,
    start_ingress, start_network, start_reload, start_replica, start_retention,
};

use crate::{
    NodeConfig, NodeError,
    federation::prove::{Prover, Upward},
    ingress::{
        Services, auth::Authenticator, limits::ClientLimiter, subscribe::Subscriptions, udp,
    },
    metrics::Metrics,
    network::{client::ClientTls, peers::PeersCache, relay},
    pipeline::{IngestPipeline, PipelineJoin, Relay, ReplicaAcks},
    reload::Reloader,
    replica::Replicas,
    shared::ByteBudget,
    tls::NodeTls,
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
        // A replica stores only what its primary stored: nothing of it is relayed.
        let following = config.replica.follow.is_some();
        let (relay_sender, relay_queue) = match config.relay && !following {
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
            config.replica.follow.as_deref().map(Arc::from),
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
        let sealed = Arc::new(sealed);
        let role = role(&config, &pipeline, &store, &federation, &metrics, &shutdown)?;
        let replicas = Arc::new(Replicas::new(config.replica.min_replica_acks));
        if config.replica.min_replica_acks > 0 {
            pipeline.require_replica_acks(ReplicaAcks {
                acked: replicas.acked(),
                stopping: shutdown.clone(),
            });
        }
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
            hashes_per_tick: config.poh.hashes_per_tick,
            replicas: replicas.clone(),
            follow: role.follow.clone(),
            promotion: role.promotion.clone(),
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
        start_replica(&config, &peers_tls, &services, &role, &sealed, &mut tasks)?;
        let leading = role.leading.clone();
        start_federation(
            &config, &peers_tls, &services, node_key, sealed, leading, &mut tasks,
        )?;
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
