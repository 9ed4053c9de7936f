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

use std::{sync::Arc, time::Duration};

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::wire::Transport;

const META: Metadata<'static> = Metadata::new("poh", Level::INFO, Some(module_path!()));

/// Latency buckets in seconds: 50 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

/// Transactions per commit.
const BATCH_BUCKETS: &[f64] = &[1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 10_000.0];

/// Why a transaction was not stored, as the `reason` label of `poh_tx_rejected_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectReason {
    /// The bytes are not a transaction (bad JSON, bad protobuf, bad base64, bad frame).
    Malformed,
    /// A SPEC §2 rule is broken.
    Invalid,
    /// The payload is above the node's limit.
    TooLarge,
    /// A present signature does not verify.
    BadSignature,
    /// The id is stored with a different digest.
    Conflict,
    /// Refused because the node is at capacity.
    Overloaded,
    /// An internal error stopped it.
    Internal,
}

impl RejectReason {
    const ALL: [Self; 7] = [
        Self::Malformed,
        Self::Invalid,
        Self::TooLarge,
        Self::BadSignature,
        Self::Conflict,
        Self::Overloaded,
        Self::Internal,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Invalid => "invalid",
            Self::TooLarge => "too_large",
            Self::BadSignature => "bad_signature",
            Self::Conflict => "conflict",
            Self::Overloaded => "overloaded",
            Self::Internal => "internal",
        }
    }
}

/// `poh_broadcast_total{protocol,result}`, registered with every label set up front.
#[derive(Clone)]
pub struct BroadcastMetrics {
    /// By protocol (in `Transport::ALL` order), then ok / failed.
    sends: [[Counter; 2]; 4],
}

impl BroadcastMetrics {
    fn new(registry: &Registry) -> Self {
        let sends = Transport::ALL.map(|protocol| {
            ["ok", "failed"].map(|result| {
                let counter = registry.counter(
                    "poh_broadcast_total",
                    &[("protocol", protocol.as_str()), ("result", result)],
                );
                counter.increment(0);
                counter
            })
        });
        Self { sends }
    }

    /// Counts one send to one peer.
    pub fn record(&self, protocol: Transport, ok: bool) {
        self.sends[protocol as usize][usize::from(!ok)].increment(1);
    }
}

/// The node's registry and every subsystem's handles.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// What the ingest pipeline records.
    pub ingest: IngestMetrics,
    /// Connected peers that answered the last health check.
    pub active_peers: Gauge,
    /// What broadcasts and relaying send.
    pub broadcast: BroadcastMetrics,
    /// Storage reclamation events (SPEC §7 name), by `type`.
    pub gc_events: [Counter; 2],
    /// Newly stored transactions not relayed: the relay queue was full.
    pub relay_dropped: Counter,
    /// Bytes of requests held while they are read (`limits.buffered_bytes`).
    pub buffered_bytes: Gauge,
    /// Headers sealed and child headers judged.
    pub federation: FederationMetrics,
    /// Catch-up and repair from peers.
    pub repair: RepairMetrics,
    /// Erasure-coded fragments of sealed batches.
    pub fragments: FragmentMetrics,
}

/// Why a child header was or was not recorded: the `result` label of
/// `poh_child_headers_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildResult {
    /// Verified and recorded in this node's PoH.
    Accepted,
    /// Already recorded; nothing changed.
    Duplicate,
    /// Refused (the reason is logged).
    Rejected,
}

/// `poh_block_count` and `poh_child_headers_total{result}`.
#[derive(Clone)]
pub struct FederationMetrics {
    /// Headers this node sealed.
    pub block_count: Counter,
    child_headers: [Counter; 3],
}

impl FederationMetrics {
    fn new(registry: &Registry) -> Self {
        let block_count = registry.counter("poh_block_count", &[]);
        block_count.increment(0);
        let child_headers = ["accepted", "duplicate", "rejected"].map(|result| {
            let c = registry.counter("poh_child_headers_total", &[("result", result)]);
            c.increment(0);
            c
        });
        Self {
            block_count,
            child_headers,
        }
    }

    /// Counts one child header.
    pub fn child_header(&self, result: ChildResult) {
        self.child_headers[result as usize].increment(1);
    }
}

/// Which way a record came from a peer: the `source` label of the repair metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepairSource {
    /// Catch-up: a peer's `Sync` stream.
    Sync,
    /// Repair: a peer's `Repair` answer for ids this node asked for.
    Repair,
}

/// What became of one record a peer sent: the `result` label of `poh_repair_records_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordResult {
    /// Stored for the first time.
    Stored,
    /// Already stored, with the same digest.
    Duplicate,
    /// Refused: not asked for, invalid, a bad signature, or a conflict with what is stored.
    Refused,
}

/// `poh_repair_records_total{source, result}` and `poh_repair_requests_total{source, result}`.
#[derive(Clone)]
pub struct RepairMetrics {
    records: [[Counter; 3]; 2],
    requests: [[Counter; 2]; 2],
}

impl RepairMetrics {
    fn new(registry: &Registry) -> Self {
        let r = &registry.recorder;
        r.describe_counter(
            "poh_repair_records_total".into(),
            None,
            "Records received from peers by catch-up (sync) and repair, by what became of them."
                .into(),
        );
        r.describe_counter(
            "poh_repair_requests_total".into(),
            None,
            "Sync and Repair calls to peers, by result (ok, failed).".into(),
        );
        let sources = ["sync", "repair"];
        let records = sources.map(|source| {
            ["stored", "duplicate", "refused"].map(|result| {
                let c = registry.counter(
                    "poh_repair_records_total",
                    &[("source", source), ("result", result)],
                );
                c.increment(0);
                c
            })
        });
        let requests = sources.map(|source| {
            ["ok", "failed"].map(|result| {
                let c = registry.counter(
                    "poh_repair_requests_total",
                    &[("source", source), ("result", result)],
                );
                c.increment(0);
                c
            })
        });
        Self { records, requests }
    }

    /// Counts records from a peer.
    pub fn records(&self, source: RepairSource, result: RecordResult, n: u64) {
        self.records[source as usize][result as usize].increment(n);
    }

    /// Counts one call to a peer.
    pub fn request(&self, source: RepairSource, ok: bool) {
        self.requests[source as usize][usize::from(!ok)].increment(1);
    }
}

/// `poh_fragments_written_total`, `poh_fragment_write_failures_total` and
/// `poh_fragments_height`.
#[derive(Clone)]
pub struct FragmentMetrics {
    /// Fragments written to a location.
    pub written: Counter,
    /// Fragment writes that failed (each is retried).
    pub write_failures: Counter,
    /// The next height whose fragments are to be written: every height below has all of them.
    pub height: Gauge,
}

impl FragmentMetrics {
    fn new(registry: &Registry) -> Self {
        let r = &registry.recorder;
        r.describe_counter(
            "poh_fragments_written_total".into(),
            None,
            "Erasure-coded fragments of sealed batches written to their locations.".into(),
        );
        r.describe_counter(
            "poh_fragment_write_failures_total".into(),
            None,
            "Fragment writes that failed (each is retried until it succeeds).".into(),
        );
        r.describe_gauge(
            "poh_fragments_height".into(),
            None,
            "The next height whose fragments are to be written; every height below has all of them."
                .into(),
        );
        let written = registry.counter("poh_fragments_written_total", &[]);
        written.increment(0);
        let write_failures = registry.counter("poh_fragment_write_failures_total", &[]);
        write_failures.increment(0);
        let height = registry.gauge("poh_fragments_height", &[]);
        height.set(0.0);
        Self {
            written,
            write_failures,
            height,
        }
    }
}

struct Registry {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
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
        let registry = Arc::new(Registry { recorder, handle });
        describe(&registry.recorder);

        let ingest = IngestMetrics::new(&registry);
        let active_peers = registry.gauge("active_peers", &[]);
        let gc_events =
            ["minor", "major"].map(|t| registry.counter("gc_events_total", &[("type", t)]));
        let broadcast = BroadcastMetrics::new(&registry);
        let relay_dropped = registry.counter("poh_relay_dropped_total", &[]);
        relay_dropped.increment(0);
        let buffered_bytes = registry.gauge("poh_buffered_bytes", &[]);
        buffered_bytes.set(0.0);
        let federation = FederationMetrics::new(&registry);
        let repair = RepairMetrics::new(&registry);
        let fragments = FragmentMetrics::new(&registry);
        Self {
            federation,
            repair,
            fragments,
            registry,
            ingest,
            active_peers,
            broadcast,
            gc_events,
            relay_dropped,
            buffered_bytes,
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

    /// The Prometheus text exposition of everything recorded so far.
    pub fn render(&self) -> String {
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
    let counters: [(&'static str, &'static str); 10] = [
        (
            "poh_issued_total",
            "Transactions the ingest pipeline finished, by result (success: stored or duplicate).",
        ),
        (
            "gc_events_total",
            "Storage reclamation events, by type (minor, major).",
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
        "poh_buffered_bytes".into(),
        Some(Unit::Bytes),
        "Bytes of request bodies and QUIC frames held while they are read.".into(),
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

/// Handles the ingest pipeline records into.
#[derive(Clone)]
pub struct IngestMetrics {
    received: [Counter; 4],
    rejected: [[Counter; RejectReason::ALL.len()]; 4],
    /// `poh_issued_total{result="success"}`.
    pub issued_success: Counter,
    /// `poh_issued_total{result="failure"}`.
    pub issued_failure: Counter,
    /// `poh_issue_latency_seconds`.
    pub latency: Histogram,
    /// `poh_issue_latency_summary_seconds`.
    pub latency_summary: Histogram,
    /// `poh_verify_latency_seconds`.
    pub verify_latency: Histogram,
    /// Transactions per commit.
    pub batch_size: Histogram,
    /// Seconds per commit.
    pub commit_seconds: Histogram,
}

impl IngestMetrics {
    fn new(r: &Registry) -> Self {
        let received = Transport::ALL
            .map(|t| r.counter("poh_tx_received_total", &[("transport", t.as_str())]));
        let rejected = Transport::ALL.map(|t| {
            RejectReason::ALL.map(|reason| {
                r.counter(
                    "poh_tx_rejected_total",
                    &[("transport", t.as_str()), ("reason", reason.as_str())],
                )
            })
        });
        Self {
            received,
            rejected,
            issued_success: r.counter("poh_issued_total", &[("result", "success")]),
            issued_failure: r.counter("poh_issued_total", &[("result", "failure")]),
            latency: r.histogram("poh_issue_latency_seconds", &[]),
            latency_summary: r.histogram("poh_issue_latency_summary_seconds", &[]),
            verify_latency: r.histogram("poh_verify_latency_seconds", &[]),
            batch_size: r.histogram("poh_commit_batch_size", &[]),
            commit_seconds: r.histogram("poh_commit_seconds", &[]),
        }
    }

    /// Counts `n` transactions decoded from `transport`.
    pub fn received(&self, transport: Transport, n: u64) {
        self.received[transport as usize].increment(n);
    }

    /// Counts one refused transaction.
    pub fn rejected(&self, transport: Transport, reason: RejectReason) {
        let i = RejectReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(RejectReason::ALL.len() - 1);
        self.rejected[transport as usize][i].increment(1);
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
