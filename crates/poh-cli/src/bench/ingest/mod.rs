//! `poh bench ingest`: a load generator. It starts a fresh node on a temporary data dir (or
//! drives `--target`), sends `--count` transactions over one transport, waits for every answer
//! (UDP has none: it counts what the node stored) and reports throughput and latency
//! percentiles. The node it starts has the per-client rate limit off (see `NodeProcess`).
//!
//! One sender per transport: [`grpc`] (unary calls, client streams), [`http`] (batches),
//! [`quic`] and [`udp`] (`sendmmsg`, counted against what the node stored). `bench soak`
//! paces the same senders' single steps.

pub(super) mod grpc;
pub(super) mod http;
pub(super) mod quic;
pub(super) mod udp;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use hdrhistogram::Histogram;
use poh_core::{SigningKey, Tx};
use poh_proto::v1 as pb;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{cpu, node::NodeProcess};
use udp::UdpCounts;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum IngestTransport {
    /// One `Broadcast` call per transaction, `--concurrency` calls in flight.
    GrpcUnary,
    /// `BroadcastStream`, `--concurrency` streams.
    GrpcStream,
    /// `POST /v1/tx/batch` of `--batch` transactions, `--concurrency` requests in flight.
    HttpBatch,
    /// One datagram per transaction, at most `--concurrency` sent and neither stored nor
    /// known lost; `tx_per_s` counts the datagrams stored.
    Udp,
    /// `--concurrency` streams over one QUIC connection, `--batch` transactions each.
    Quic,
}

impl IngestTransport {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::GrpcUnary => "grpc-unary",
            Self::GrpcStream => "grpc-stream",
            Self::HttpBatch => "http-batch",
            Self::Udp => "udp",
            Self::Quic => "quic",
        }
    }
}

#[derive(clap::Args)]
pub struct IngestArgs {
    /// How transactions are sent.
    #[arg(long, value_enum)]
    transport: IngestTransport,
    /// Transactions to send.
    #[arg(long, default_value_t = 100_000)]
    count: usize,
    /// Requests (or streams) in flight [default: 64 unary, 4 gRPC streams, 8 batches, 4 QUIC
    /// streams, 4096 UDP datagrams sent and not yet stored].
    #[arg(long)]
    concurrency: Option<usize>,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 200)]
    payload_bytes: usize,
    /// Transactions per HTTP batch or QUIC stream, at most 10,000 (SPEC §4) [default: 2500
    /// HTTP, 1000 QUIC].
    #[arg(long)]
    batch: Option<usize>,
    /// Sign every transaction with ML-DSA-87 (the node verifies each signature).
    #[arg(long)]
    signed: bool,
    /// UDP: send every datagram at once, as fast as the socket takes them, instead of keeping
    /// a window in flight; what the node's receive buffer could not absorb is the loss reported.
    #[arg(long, conflicts_with = "concurrency")]
    unpaced: bool,
    /// Run the started node without fsync, to show what durability costs.
    #[arg(long, conflicts_with = "target")]
    no_fsync: bool,
    /// Drive a running node instead: host:port for gRPC, UDP and QUIC, a URL for HTTP.
    #[arg(long)]
    target: Option<String>,
    /// With --transport udp and --target: the node's HTTP URL, whose GET /v1/poh counts what
    /// was stored (nothing else may write to that node meanwhile).
    #[arg(long, requires = "target")]
    target_http: Option<String>,
    /// With --transport quic and --target: the SHA-256 fingerprint of the node's certificate
    /// (without it, the certificate must be one the system trusts).
    #[arg(long, requires = "target", value_parser = poh_node::tls::parse_pin)]
    tls_pin: Option<String>,
    /// Read the started node's resident memory each time this many more transactions were
    /// answered (UDP: sent), to show whether it stays flat.
    #[arg(long, conflicts_with = "target")]
    memory_every: Option<usize>,
    /// Print one JSON object (keys are stable: scripts read them).
    #[arg(long)]
    json: bool,
}

impl IngestArgs {
    fn batch(&self) -> usize {
        self.batch.unwrap_or(match self.transport {
            IngestTransport::Quic => 1000,
            _ => 2500,
        })
    }
}

/// The keys are a stable interface; `sent` and `stored` only for UDP.
#[derive(Serialize)]
struct IngestReport {
    transport: &'static str,
    count: usize,
    tx_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    durable: bool,
    /// The node process's CPU (user + system) per transaction stored, its idle PoH clock
    /// included; `null` against a `--target` (no process to read).
    node_cpu_us_per_tx: Option<f64>,
    /// This client's CPU per transaction.
    client_cpu_us_per_tx: f64,
    /// The mean size of a transaction in protobuf, as a client sends it.
    encoded_bytes_per_tx: f64,
    /// The started node's data dir on disk (allocated blocks) per transaction stored, and its
    /// resident memory at the end; `null` against a `--target`.
    disk_bytes_per_tx: Option<f64>,
    node_rss_mib: Option<f64>,
    /// With `--memory-every`: the node's resident memory after each step.
    #[serde(skip_serializing_if = "Option::is_none")]
    memory: Option<Vec<MemorySample>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sent: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stored: Option<u64>,
    /// UDP: refused by the node, and dropped by the kernel at the node's socket (only when
    /// the node is on this machine); with `stored`, they add up to `sent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    refused: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel_dropped: Option<u64>,
}

/// The node's resident memory once `transactions` were answered.
#[derive(Clone, Copy, Serialize)]
struct MemorySample {
    transactions: u64,
    rss_mib: f64,
}

/// `bytes` in MiB, to 0.1 MiB.
pub(super) fn mib(bytes: u64) -> f64 {
    (bytes as f64 / (1 << 20) as f64 * 10.0).round() / 10.0
}

/// Where the transactions go.
struct Target {
    /// `host:port`, or the URL for HTTP.
    addr: String,
    /// For UDP: the node's HTTP URL, to count what was stored.
    http: Option<String>,
    /// For QUIC: the certificate to pin.
    pin: Option<String>,
}

/// What one run measured.
struct Measured {
    latencies: Histogram<u64>,
    /// Seconds taken.
    elapsed: f64,
    /// For UDP: what became of the datagrams.
    udp: Option<UdpCounts>,
    /// CPU seconds the node (when the bench started it) and this client spent in the run.
    node_cpu: Option<f64>,
    client_cpu: f64,
    encoded_bytes_per_tx: f64,
    /// The started node's disk bytes and resident bytes at the end, and the samples taken.
    node_disk: Option<u64>,
    node_rss: Option<u64>,
    memory: Option<Vec<MemorySample>>,
}

pub fn run(args: &IngestArgs) -> anyhow::Result<()> {
    if args.unpaced && args.transport != IngestTransport::Udp {
        bail!("--unpaced is for --transport udp");
    }
    if args.count == 0 || args.payload_bytes > (1 << 20) || !(1..=10_000).contains(&args.batch()) {
        bail!(
            "--count must be at least 1, --batch from 1 to 10000, --payload-bytes at most 1048576"
        );
    }
    if args.target_http.is_some() && args.transport != IngestTransport::Udp {
        bail!("--target-http is for --transport udp only");
    }
    if args.memory_every == Some(0) {
        bail!("--memory-every must be at least 1");
    }
    // The clients share one thread, as a client process would; the node, unless --target
    // names one, is a `poh serve` process of its own, as operators run it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;

    if !args.json {
        eprintln!("preparing {} transactions…", args.count);
    }
    let txs = make_txs(args)?;
    let encoded_bytes_per_tx = {
        use prost::Message as _;
        let total: usize = txs
            .iter()
            .map(|tx| poh_node::tx_to_pb(tx.clone()).encoded_len())
            .sum();
        (total as f64 / txs.len().max(1) as f64 * 10.0).round() / 10.0
    };
    let (node, target) = match &args.target {
        Some(t) => {
            let http = args.target_http.clone();
            if args.transport == IngestTransport::Udp && http.is_none() {
                bail!(
                    "--transport udp with --target needs --target-http: datagrams have no \
                     answer, the node's GET /v1/poh counts what was stored"
                );
            }
            let (addr, pin) = (t.clone(), args.tls_pin.clone());
            (None, Target { addr, http, pin })
        }
        None => {
            let node = NodeProcess::start(!args.no_fsync, &[])?;
            let addr = match args.transport {
                IngestTransport::HttpBatch => format!("http://{}", node.http),
                IngestTransport::Udp => node.udp.clone(),
                IngestTransport::Quic => node.quic.clone(),
                IngestTransport::GrpcUnary | IngestTransport::GrpcStream => node.grpc.clone(),
            };
            let http = Some(format!("http://{}", node.http));
            let pin = Some(node.quic_pin.clone());
            (Some(node), Target { addr, http, pin })
        }
    };
    let node_cpu = || node.as_ref().map(NodeProcess::cpu_seconds).transpose();
    let progress = progress_bar(args);
    let (node_before, client_before) = (node_cpu()?, cpu::seconds("self")?);
    let mut measured = std::thread::scope(|scope| {
        let done = CancellationToken::new();
        let sampler = match (&node, args.memory_every) {
            (Some(node), Some(every)) => {
                let (progress, done) = (progress.clone(), done.clone());
                Some(scope.spawn(move || sample_memory(node, &progress, every as u64, &done)))
            }
            _ => None,
        };
        let measured = runtime.block_on(send_all(args, txs, &target, &progress));
        done.cancel();
        let samples = sampler
            .map(|s| {
                s.join()
                    .unwrap_or_else(|_| bail!("the memory sampler panicked"))
            })
            .transpose();
        anyhow::Ok((measured?, samples?))
    })
    .map(|(mut measured, samples)| {
        measured.memory = samples;
        measured
    })?;
    // Read before the node is stopped: its shutdown is not part of the run.
    let (node_after, client_after) = (node_cpu()?, cpu::seconds("self")?);
    measured.node_cpu = node_before.zip(node_after).map(|(b, a)| a - b);
    measured.client_cpu = client_after - client_before;
    measured.encoded_bytes_per_tx = encoded_bytes_per_tx;
    measured.node_disk = node.as_ref().map(NodeProcess::disk_bytes).transpose()?;
    measured.node_rss = node.as_ref().map(NodeProcess::rss_bytes).transpose()?;
    drop(node);
    report(args, &measured)
}

/// The node's resident memory each time `every` more transactions were answered, until
/// `done`.
fn sample_memory(
    node: &NodeProcess,
    progress: &indicatif::ProgressBar,
    every: u64,
    done: &CancellationToken,
) -> anyhow::Result<Vec<MemorySample>> {
    let mut samples = Vec::new();
    let mut next = every;
    loop {
        // Read before the last look, so the steps reached by the end are all taken.
        let finished = done.is_cancelled();
        while progress.position() >= next {
            samples.push(MemorySample {
                transactions: next,
                rss_mib: mib(node.rss_bytes()?),
            });
            next += every;
        }
        if finished {
            return Ok(samples);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends every transaction and waits for every answer (for UDP: until what was sent is
/// stored, or nothing more is).
async fn send_all(
    args: &IngestArgs,
    txs: Vec<Tx>,
    target: &Target,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<Measured> {
    let concurrency = args.concurrency.unwrap_or(match args.transport {
        IngestTransport::GrpcUnary => 64,
        IngestTransport::GrpcStream | IngestTransport::Quic => 4,
        IngestTransport::HttpBatch => 8,
        IngestTransport::Udp => 4096,
    });
    let concurrency = match args.unpaced {
        true => args.count,
        false => concurrency.clamp(1, args.count),
    };
    let addr = target.addr.as_str();
    if !args.json {
        eprintln!(
            "sending over {} to {addr}, {concurrency} in flight…",
            args.transport.name()
        );
    }
    let started = Instant::now();
    // For UDP: sent, stored, and the seconds until the last one stored.
    let mut udp_counts = None;
    let latencies = match args.transport {
        IngestTransport::GrpcUnary => grpc::unary(addr, txs, concurrency, progress).await?,
        IngestTransport::GrpcStream => grpc::stream(addr, txs, concurrency, progress).await?,
        IngestTransport::HttpBatch => {
            http::batch(addr, txs, args.batch(), concurrency, progress).await?
        }
        IngestTransport::Quic => {
            let pin = target.pin.as_deref();
            quic::quic(addr, pin, txs, args.batch(), concurrency, progress).await?
        }
        IngestTransport::Udp => {
            let http = target
                .http
                .as_deref()
                .context("the node's HTTP address is unknown")?;
            let outcome = udp::udp(addr, http, txs, concurrency, progress).await?;
            udp_counts = Some((outcome.counts, outcome.elapsed));
            outcome.latencies
        }
    };
    progress.finish_and_clear();
    // UDP: from the first send to the last datagram stored, not to the end of the wait.
    let elapsed = udp_counts.map_or_else(|| started.elapsed().as_secs_f64(), |(_, e)| e);
    Ok(Measured {
        latencies,
        elapsed,
        udp: udp_counts.map(|(counts, _)| counts),
        node_cpu: None,
        client_cpu: 0.0,
        encoded_bytes_per_tx: 0.0,
        node_disk: None,
        node_rss: None,
        memory: None,
    })
}

fn report(args: &IngestArgs, measured: &Measured) -> anyhow::Result<()> {
    let Measured {
        latencies,
        elapsed,
        udp,
        node_cpu,
        client_cpu,
        encoded_bytes_per_tx,
        node_disk,
        node_rss,
        memory,
    } = measured;
    // UDP: the datagrams stored are the ones that count.
    let done = udp.map_or(args.count as f64, |u| u.stored as f64);
    let report = IngestReport {
        transport: args.transport.name(),
        count: args.count,
        tx_per_s: if *elapsed > 0.0 { done / elapsed } else { 0.0 },
        p50_ms: latencies.value_at_quantile(0.50) as f64 / 1e3,
        p99_ms: latencies.value_at_quantile(0.99) as f64 / 1e3,
        durable: !args.no_fsync,
        node_cpu_us_per_tx: node_cpu.map(|spent| cpu::us_per_tx(0.0, spent, done)),
        client_cpu_us_per_tx: cpu::us_per_tx(0.0, *client_cpu, done),
        encoded_bytes_per_tx: *encoded_bytes_per_tx,
        disk_bytes_per_tx: node_disk
            .filter(|_| done > 0.0)
            .map(|bytes| (bytes as f64 / done).round()),
        node_rss_mib: node_rss.map(mib),
        memory: memory.clone(),
        sent: udp.map(|u| u.sent),
        stored: udp.map(|u| u.stored),
        refused: udp.map(|u| u.refused),
        kernel_dropped: udp.and_then(|u| u.kernel_dropped),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let counted = match udp {
            Some(u) => {
                let lost = (u.sent as u64).saturating_sub(u.stored);
                let share = 100.0 * lost as f64 / u.sent.max(1) as f64;
                let kernel = u.kernel_dropped.map_or_else(
                    || "the kernel's drops unknown".to_string(),
                    |d| format!("{d} dropped by the kernel"),
                );
                format!(
                    "{} datagrams sent, {} stored, {lost} lost ({share:.2} %: {} refused by the \
                     node, {kernel})",
                    u.sent, u.stored, u.refused
                )
            }
            None => format!("{} transactions", report.count),
        };
        let node_cpu = report
            .node_cpu_us_per_tx
            .map_or_else(|| "n/a (--target)".to_string(), |us| format!("{us:.1} µs"));
        println!(
            "{}: {counted} in {elapsed:.2} s = {:.0} tx/s, latency p50 {:.2} ms, p99 {:.2} ms \
             ({}); CPU per transaction: node {node_cpu}, client {:.1} µs",
            report.transport,
            report.tx_per_s,
            report.p50_ms,
            report.p99_ms,
            if report.durable {
                "durable: fsync per commit"
            } else {
                "no fsync"
            },
            report.client_cpu_us_per_tx,
        );
        if let (Some(disk), Some(rss)) = (report.disk_bytes_per_tx, report.node_rss_mib) {
            println!(
                "node: {disk:.0} bytes on disk per transaction ({:.1} bytes encoded, {:.2}×), \
                 {rss:.1} MiB resident at the end",
                report.encoded_bytes_per_tx,
                disk / report.encoded_bytes_per_tx.max(1.0),
            );
        }
        for sample in report.memory.iter().flatten() {
            println!(
                "  {:>12} transactions: {:.1} MiB resident",
                sample.transactions, sample.rss_mib
            );
        }
    }
    Ok(())
}

fn make_txs(args: &IngestArgs) -> anyhow::Result<Vec<Tx>> {
    transactions(args.count, args.payload_bytes, args.signed)
}

/// `count` transactions of `payload_bytes` each, signed with a fresh key when `signed`.
pub(super) fn transactions(
    count: usize,
    payload_bytes: usize,
    signed: bool,
) -> anyhow::Result<Vec<Tx>> {
    use rayon::prelude::*;
    // A per-run prefix, so runs against the same --target (or node) never collide.
    let run = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
    );
    let key = if signed {
        Some(SigningKey::generate()?)
    } else {
        None
    };
    (0..count)
        .into_par_iter()
        .map(|i| {
            let mut tx = Tx {
                tx_id: format!("bench-{run}-{i}"),
                // Many holders, as a ledger has: each is a key of the node's holder index.
                holder_id: format!("holder-{}", i % 10_000),
                timestamp: 1_700_000_000.0 + i as f64,
                payload: (0..payload_bytes).map(|b| (b ^ i) as u8).collect(),
                ..Tx::default()
            };
            if let Some(key) = &key {
                tx.sign(key)?;
            }
            Ok(tx)
        })
        .collect()
}

fn progress_bar(args: &IngestArgs) -> indicatif::ProgressBar {
    use std::io::IsTerminal as _;
    if args.json || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(args.count as u64);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} tx  {per_sec}  eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

/// A plain-HTTP client with this timeout per request.
pub(super) fn http_client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    // reqwest is built without a TLS provider of its own and panics when the process has none,
    // even for plain HTTP: the node's (aws-lc-rs) is made the default; one already set stays.
    let _ = Arc::unwrap_or_clone(poh_node::tls::provider()).install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .context("cannot make the HTTP client")
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    // Microseconds, up to an hour, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).context("histogram bounds")
}

fn check_ack(ack: &pb::Ack) -> anyhow::Result<()> {
    if !ack.success {
        bail!(
            "the node refused a transaction: {:?} {}",
            ack.code(),
            ack.message
        );
    }
    Ok(())
}

async fn merge(
    mut tasks: tokio::task::JoinSet<anyhow::Result<Histogram<u64>>>,
) -> anyhow::Result<Histogram<u64>> {
    let mut all = histogram()?;
    while let Some(result) = tasks.join_next().await {
        let h = result.context("a sender task failed")??;
        all.add(&h).context("merging latencies")?;
    }
    Ok(all)
}
