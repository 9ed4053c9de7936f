//! Prometheus metrics (SPEC §7), one registry per node.
//!
//! Each node owns its [`PrometheusRecorder`] instead of installing a global one, so several
//! nodes in one process (tests, `poh bench`) keep separate counts. Every SPEC family is
//! described and registered when the node starts, so `# HELP`/`# TYPE` are visible before
//! first use; the subsystems hold typed handles ([`IngestMetrics`], [`HttpMetrics`],
//! [`GrpcMetrics`]) instead of looking names up on the hot path.
//!
//! The exporter keeps every histogram sample recorded since samples were last folded into
//! their buckets and summaries, which otherwise happens only when `/metrics` is read: a node
//! nobody scrapes would hold about 40 bytes per transaction for ever. [`Metrics::upkeep`]
//! folds them every few seconds.
//!
//! Parts: [`ingest`] (the pipeline), [`network`] (broadcast, catch-up, repair),
//! [`federation`] (sealing, child headers, fragments), [`node`] (the PoH clock and the disk,
//! read at each render), [`replica`] (a replica's copy).

mod federation;
mod ingest;
mod network;
mod node;
mod replica;

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

pub use self::{
    federation::{ChildResult, FederationMetrics, FragmentMetrics},
    ingest::IngestMetrics,
    network::{BroadcastMetrics, RecordResult, RepairMetrics, RepairSource},
    node::{DiskMetrics, PohMetrics},
    replica::ReplicaMetrics,
};

const META: Metadata<'static> = Metadata::new("poh", Level::INFO, Some(module_path!()));

/// Latency buckets in seconds: 50 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

/// Transactions per commit.
const BATCH_BUCKETS: &[f64] = &[1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 10_000.0];

/// The node's registry and every subsystem's handles.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// What the ingest pipeline records.
    pub ingest: IngestMetrics,
    /// Connected peers that answered the last health check.
    pub active_peers: Gauge,
    /// Peers the last health check asked (`poh_peers`).
    pub peers: Gauge,
    /// What broadcasts and relaying send.
    pub broadcast: BroadcastMetrics,
    /// Storage reclamation events (SPEC §7 name), by `type`.
    pub gc_events: [Counter; 2],
    /// TTL sweeps finished (`poh_ttl_sweeps_total`), whether they removed anything or not.
    pub ttl_sweeps: Counter,
    /// Newly stored transactions not relayed: the relay queue was full.
    pub relay_dropped: Counter,
    /// Bytes of requests held while they are read (`limits.buffered_bytes`).
    pub buffered_bytes: Gauge,
    /// Subscriptions open now (`poh_subscribers`).
    pub subscribers: Gauge,
    /// Reloads of the TLS certificate: `result="success"`, `result="failure"`.
    pub reloads: [Counter; 2],
    /// Headers sealed and child headers judged.
    pub federation: FederationMetrics,
    /// Catch-up and repair from peers.
    pub repair: RepairMetrics,
    /// Erasure-coded fragments of sealed batches.
    pub fragments: FragmentMetrics,
    /// The PoH clock's hashes and its configured rate.
    pub poh: PohMetrics,
    /// The data directory's file system and the database's size.
    pub disk: DiskMetrics,
    /// A replica's copy.
    pub replica: ReplicaMetrics,
}

/// What a node tells its metrics about itself at start.
#[derive(Clone, Debug, Default)]
pub struct NodeFacts {
    /// The configured PoH rate; 0 when unpaced.
    pub target_hashes_per_second: f64,
    /// `federation.max_batch_interval`, seconds.
    pub max_batch_interval: f64,
    /// The chain ids of the configured children.
    pub children: Vec<String>,
    /// The data directory, whose file system is read at each render.
    pub data_dir: PathBuf,
    /// The database file, whose size is read at each render.
    pub db_path: PathBuf,
}

/// Reads a value that lives elsewhere (a counter of another thread, the disk) into its
/// metric just before the text is rendered.
type Sampler = Box<dyn Fn() + Send + Sync>;

struct Registry {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    samplers: Mutex<Vec<Sampler>>,
}

impl Registry {
    fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        self.recorder.register_counter(&key(name, labels), &META)
    }
    fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        self.recorder.register_gauge(&key(name, labels), &META)
    }
    fn histogram(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Histogram {
        self.recorder.register_histogram(&key(name, labels), &META)
    }
}

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    Key::from_parts(
        name,
        labels
            .iter()
            .map(|(k, v)| Label::new(*k, v.to_string()))
            .collect::<Vec<_>>(),
    )
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every SPEC §7 family described and registered.
    pub fn new() -> Self {
        // The latency histograms get buckets; `poh_issue_latency_summary_seconds` is left
        // without, which is how this exporter renders a distribution as a summary.
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_latency_seconds".into()), LATENCY_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("poh_commit_seconds".into()),
                    LATENCY_BUCKETS,
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("poh_commit_batch_size".into()),
                    BATCH_BUCKETS,
                )
            });
        // Only refused for empty bucket lists, which these are not.
        let builder = builder.unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let registry = Arc::new(Registry {
            recorder,
            handle,
            samplers: Mutex::default(),
        });
        describe(&registry.recorder);

        let ingest = IngestMetrics::new(&registry);
        let active_peers = registry.gauge("active_peers", &[]);
        let peers = registry.gauge("poh_peers", &[]);
        peers.set(0.0);
        let gc_events =
            ["minor", "major"].map(|t| registry.counter("gc_events_total", &[("type", t)]));
        let ttl_sweeps = registry.counter("poh_ttl_sweeps_total", &[]);
        ttl_sweeps.increment(0);
        let broadcast = BroadcastMetrics::new(&registry);
        let relay_dropped = registry.counter("poh_relay_dropped_total", &[]);
        relay_dropped.increment(0);
        let buffered_bytes = registry.gauge("poh_buffered_bytes", &[]);
        buffered_bytes.set(0.0);
        let subscribers = registry.gauge("poh_subscribers", &[]);
        subscribers.set(0.0);
        let reloads = ["success", "failure"].map(|r| {
            let c = registry.counter("poh_reload_total", &[("result", r)]);
            c.increment(0);
            c
        });
        let federation = FederationMetrics::new(&registry);
        let repair = RepairMetrics::new(&registry);
        let fragments = FragmentMetrics::new(&registry);
        let poh = PohMetrics::new(&registry);
        let disk = DiskMetrics::new(&registry);
        let replica = ReplicaMetrics::new(&registry);
        Self {
            replica,
            poh,
            disk,
            peers,
            federation,
            repair,
            fragments,
            registry,
            ingest,
            active_peers,
            broadcast,
            gc_events,
            ttl_sweeps,
            relay_dropped,
            buffered_bytes,
            subscribers,
            reloads,
        }
    }

    /// Folds the histogram samples recorded so far into their buckets and summaries every
    /// few seconds, until `shutdown`.
    pub async fn upkeep(self, shutdown: tokio_util::sync::CancellationToken) {
        const EVERY: Duration = Duration::from_secs(5);
        let mut every = tokio::time::interval(EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = every.tick() => self.registry.handle.run_upkeep(),
            }
        }
    }

    /// Sets what the node knows of itself at start, and reads its disk and `hashes_total`
    /// (the PoH clock's running count) at each render from then on.
    pub fn with_node(
        mut self,
        facts: NodeFacts,
        hashes_total: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> Self {
        self.poh.target.set(facts.target_hashes_per_second);
        self.federation
            .max_batch_interval
            .set(facts.max_batch_interval);
        self.federation
            .watch_children(&self.registry, facts.children.iter().map(String::as_str));
        let hashes = self.poh.hashes.clone();
        let disk = self.disk.clone();
        let sampler = move || {
            hashes.absolute(hashes_total());
            disk.sample(&facts.data_dir, &facts.db_path);
        };
        self.registry
            .samplers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(sampler));
        self
    }

    /// `poh_tls_cert_expiry_seconds`, registered only by a node with a certificate, so a node
    /// without TLS has no series an expiry alert could misread.
    pub(crate) fn tls_cert_expiry(&self) -> Gauge {
        self.registry.gauge("poh_tls_cert_expiry_seconds", &[])
    }

    /// The Prometheus text exposition of everything recorded so far.
    pub fn render(&self) -> String {
        for sample in self
            .registry
            .samplers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            sample();
        }
        self.registry.handle.render()
    }

    /// Counts an HTTP request by route template.
    pub fn http_request(&self, method: &str, path: &str, status: u16) {
        let status = status.to_string();
        self.registry
            .counter(
                "http_requests_total",
                &[("method", method), ("path", path), ("status", &status)],
            )
            .increment(1);
    }

    /// Counts a finished gRPC call by method and status code name.
    pub fn grpc_request(&self, method: &str, code: &str) {
        self.registry
            .counter("grpc_requests_total", &[("method", method), ("code", code)])
            .increment(1);
    }

    /// Makes a label set visible at zero before its first use.
    pub(crate) fn preregister_http(&self, method: &str, path: &str, status: u16) {
        let status = status.to_string();
        self.registry
            .counter(
                "http_requests_total",
                &[("method", method), ("path", path), ("status", &status)],
            )
            .increment(0);
    }

    /// Makes a label set visible at zero before its first use.
    pub(crate) fn preregister_grpc(&self, method: &str) {
        self.registry
            .counter("grpc_requests_total", &[("method", method), ("code", "OK")])
            .increment(0);
    }
}

fn describe(r: &PrometheusRecorder) {
    let counters: [(&'static str, &'static str); 11] = [
        (
            "poh_issued_total",
            "Transactions the ingest pipeline finished, by result (success: stored or duplicate).",
        ),
        (
            "gc_events_total",
            "Storage reclamation events, by type (minor, major).",
        ),
        (
            "poh_ttl_sweeps_total",
            "TTL sweeps finished, whether they expired anything or not.",
        ),
        (
            "http_requests_total",
            "HTTP requests, by method, route template and status.",
        ),
        (
            "grpc_requests_total",
            "gRPC calls, by method and status code.",
        ),
        (
            "poh_tx_received_total",
            "Transactions decoded from a transport (duplicates and invalid ones included).",
        ),
        (
            "poh_tx_rejected_total",
            "Transactions refused, by transport and reason.",
        ),
        (
            "poh_broadcast_total",
            "Broadcast sends to peers, by protocol and result.",
        ),
        (
            "poh_relay_dropped_total",
            "Newly stored transactions not relayed because the relay queue was full.",
        ),
        ("poh_block_count", "Headers this node sealed."),
        (
            "poh_child_headers_total",
            "Headers from child chains, by result (accepted, duplicate, rejected).",
        ),
    ];
    for (name, help) in counters {
        r.describe_counter(name.into(), None, help.into());
    }
    r.describe_gauge(
        "active_peers".into(),
        None,
        "Peers that answered the last reachability check.".into(),
    );
    r.describe_gauge(
        "poh_peers".into(),
        None,
        "Peers the last reachability check asked (UDP peers, which cannot answer, are not).".into(),
    );
    r.describe_gauge(
        "poh_buffered_bytes".into(),
        Some(Unit::Bytes),
        "Bytes of request bodies and QUIC frames held while they are read.".into(),
    );
    r.describe_gauge(
        "poh_tls_cert_expiry_seconds".into(),
        Some(Unit::Seconds),
        "When the node's TLS certificate lapses (its notAfter, Unix seconds).".into(),
    );
    r.describe_counter(
        "poh_reload_total".into(),
        None,
        "Reloads of the node's TLS certificate (SIGHUP or a changed file), by result.".into(),
    );
    r.describe_gauge(
        "poh_storage_full".into(),
        None,
        "1 while the store's disk is full and writes are refused (reads go on); 0 otherwise."
            .into(),
    );
    r.describe_gauge(
        "poh_subscribers".into(),
        None,
        "Subscriptions open now (gRPC Subscribe and GET /v1/events).".into(),
    );
    let histograms = [
        (
            "poh_issue_latency_seconds",
            "Time from submission to answer, per transaction.",
        ),
        (
            "poh_issue_latency_summary_seconds",
            "Time from submission to answer, per transaction (quantiles).",
        ),
        (
            "poh_verify_latency_seconds",
            "Time to verify one ML-DSA-87 transaction signature, or one child header with its entries.",
        ),
        (
            "poh_commit_batch_size",
            "Transactions per durable commit (group commit).",
        ),
        (
            "poh_commit_seconds",
            "Time of one storage commit, fsync included.",
        ),
    ];
    for (name, help) in histograms {
        let unit = name.ends_with("_seconds").then_some(Unit::Seconds);
        r.describe_histogram(name.into(), unit, help.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Folding keeps every sample (buckets and summaries count what was recorded before), and
    /// the upkeep task ends with the node.
    #[tokio::test(start_paused = true)]
    async fn upkeep_folds_samples_without_losing_them_and_stops_on_shutdown() {
        let metrics = Metrics::new();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let upkeep = tokio::spawn(metrics.clone().upkeep(shutdown.clone()));
        for i in 0..1000 {
            metrics.ingest.commit_seconds.record(f64::from(i) / 1e4);
            metrics.ingest.latency_summary.record(f64::from(i) / 1e4);
        }
        // Two folds, at 0 s and 5 s.
        tokio::time::sleep(Duration::from_secs(6)).await;
        metrics.ingest.commit_seconds.record(0.5);
        let text = metrics.render();
        let count = |family: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("{family}_count")))
                .and_then(|l| l.rsplit(' ').next())
                .map(|v| v.parse::<u64>().unwrap())
        };
        assert_eq!(count("poh_commit_seconds"), Some(1001), "{text}");
        assert_eq!(
            count("poh_issue_latency_summary_seconds"),
            Some(1000),
            "{text}"
        );
        shutdown.cancel();
        upkeep.await.unwrap();
    }
}
