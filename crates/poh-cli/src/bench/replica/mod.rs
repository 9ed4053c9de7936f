//! `poh bench replica`: what a replica (SPEC §10) costs and how far it trails, in one run of
//! `poh serve` processes on loopback, each on a temporary data dir as `bench ingest` starts
//! them:
//!
//! 1. the copy from genesis: a primary loaded with `--count` transactions over gRPC
//!    `BroadcastStream`, then a replica started against it and timed until its
//!    `GET /v1/replica` holds every entry and item the primary held: records per second, and
//!    the replica process's CPU per record (start-up included);
//! 2. the lag under load: with that replica following, `--lag-count` more over gRPC streams
//!    while `poh_replica_lag_entries` and `lag_seconds` are sampled every 100 ms ([`watch`]),
//!    then the time the replica takes to hold everything once the load stops;
//! 3. what `--min-replica-acks` costs: a fresh primary and replica with N = 0 and N = 1, each
//!    loaded with `--acks-count` over gRPC streams and then `--unary-count` unary calls:
//!    throughput and latency percentiles, the same senders as `bench ingest`.

mod watch;

use std::time::Instant;

use anyhow::{Context as _, bail};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{
    cpu,
    ingest::{IngestTransport, grpc, transactions},
    node::NodeProcess,
};
use watch::{LagSample, Watch, quantile};

/// gRPC streams, and unary calls in flight: `bench ingest`'s defaults.
const STREAMS: usize = 4;
const UNARY_IN_FLIGHT: usize = 64;

#[derive(clap::Args)]
pub struct ReplicaArgs {
    /// Transactions in the primary before the replica starts: what it copies from genesis.
    #[arg(long, default_value_t = 1_000_000)]
    count: usize,
    /// Transactions sent while the replica follows and its lag is sampled [default: --count].
    #[arg(long)]
    lag_count: Option<usize>,
    /// Transactions sent over gRPC streams for each --min-replica-acks setting [default:
    /// --count / 20].
    #[arg(long)]
    acks_count: Option<usize>,
    /// Transactions sent as unary calls for each --min-replica-acks setting, fewer because
    /// each waits for its answer [default: --count / 100].
    #[arg(long)]
    unary_count: Option<usize>,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 200)]
    payload_bytes: usize,
    /// The nodes' PoH hashes per tick (a replica re-hashes every entry it copies) [default:
    /// the node's own, 12500].
    #[arg(long)]
    hashes_per_tick: Option<u64>,
    /// Run the nodes without fsync (a replica then acknowledges what it wrote, not what is
    /// on disk).
    #[arg(long)]
    no_fsync: bool,
    /// Print one JSON object (keys are stable: scripts read them).
    #[arg(long)]
    json: bool,
}

impl ReplicaArgs {
    fn lag_count(&self) -> usize {
        self.lag_count.unwrap_or(self.count).max(1)
    }

    /// What each transport sends per --min-replica-acks setting.
    fn acks_count(&self, transport: IngestTransport) -> usize {
        match transport {
            IngestTransport::GrpcUnary => self.unary_count.unwrap_or(self.count / 100),
            _ => self.acks_count.unwrap_or(self.count / 20),
        }
        .max(1)
    }

    /// Flags every node of the run gets.
    fn serve_args(&self) -> Vec<String> {
        match self.hashes_per_tick {
            Some(h) => vec!["--hashes-per-tick".into(), h.to_string()],
            None => Vec::new(),
        }
    }

    fn say(&self, what: impl std::fmt::Display) {
        if !self.json {
            eprintln!("{what}");
        }
    }
}

/// The keys are a stable interface.
#[derive(Serialize)]
struct ReplicaReport {
    count: usize,
    payload_bytes: usize,
    durable: bool,
    /// `null`: the node's default.
    hashes_per_tick: Option<u64>,
    copy: CopyReport,
    lag: LagReport,
    /// N = 0 then N = 1, each over gRPC streams then unary calls.
    acks: Vec<AcksReport>,
}

/// The copy from genesis.
#[derive(Serialize)]
struct CopyReport {
    /// What the replica copied: the primary's items and entries when it started.
    records: u64,
    entries: u64,
    /// From starting the replica's process until it held all of it.
    seconds: f64,
    records_per_s: f64,
    entries_per_s: f64,
    /// The replica process's CPU (user + system, start-up included) per record copied.
    replica_cpu_us_per_record: f64,
    /// How fast the primary took the transactions it was loaded with.
    load_tx_per_s: f64,
}

/// The lag while the primary takes load.
#[derive(Serialize)]
struct LagReport {
    count: usize,
    load_tx_per_s: f64,
    /// Samples taken, every 100 ms while the load ran.
    samples: usize,
    /// `poh_replica_lag_entries` on the replica.
    max_entries: f64,
    p99_entries: f64,
    /// `lag_seconds` of the replica's `GET /v1/replica`.
    max_seconds: f64,
    p99_seconds: f64,
    /// The primary's durable entries less the replica's, both read at the sample.
    observed_max_entries: f64,
    observed_p99_entries: f64,
    /// From the last answer to the load until the replica held everything.
    catch_up_seconds: f64,
}

/// One transport's load on a primary with `--min-replica-acks min_replica_acks`.
#[derive(Serialize)]
struct AcksReport {
    min_replica_acks: usize,
    transport: &'static str,
    count: usize,
    tx_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

pub fn run(args: &ReplicaArgs) -> anyhow::Result<()> {
    if args.count == 0 || args.payload_bytes > (1 << 20) || args.hashes_per_tick == Some(0) {
        bail!(
            "--count must be at least 1, --payload-bytes at most 1048576, --hashes-per-tick at least 1"
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let durable = !args.no_fsync;
    let serve = args.serve_args();

    let primary = NodeProcess::start(durable, &serve)?;
    let (mut replica, copy) = runtime.block_on(copy_from_genesis(args, &primary, &serve))?;
    let lag = lag_under_load(args, &runtime, &primary, &mut replica)?;
    drop((replica, primary));

    let mut acks = Vec::new();
    for n in [0, 1] {
        acks.extend(with_acks(args, &runtime, n)?);
    }
    let report = ReplicaReport {
        count: args.count,
        payload_bytes: args.payload_bytes,
        durable,
        hashes_per_tick: args.hashes_per_tick,
        copy,
        lag,
        acks,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_summary(&report);
    }
    Ok(())
}

/// Starts a replica of `primary`.
fn start_replica(
    durable: bool,
    primary: &NodeProcess,
    serve: &[String],
) -> anyhow::Result<NodeProcess> {
    let mut flags = serve.to_vec();
    flags.extend(["--follow".into(), primary.grpc.clone()]);
    NodeProcess::start(durable, &flags)
}

/// Sends `count` fresh transactions to `node` over `transport`: the latencies and the
/// transactions per second.
async fn load(
    args: &ReplicaArgs,
    node: &NodeProcess,
    transport: IngestTransport,
    count: usize,
) -> anyhow::Result<(hdrhistogram::Histogram<u64>, f64)> {
    let txs = transactions(count, args.payload_bytes, false)?;
    let progress = indicatif::ProgressBar::hidden();
    let started = Instant::now();
    let latencies = match transport {
        IngestTransport::GrpcUnary => {
            grpc::unary(&node.grpc, txs, UNARY_IN_FLIGHT.min(count), &progress).await?
        }
        _ => grpc::stream(&node.grpc, txs, STREAMS.min(count), &progress).await?,
    };
    let elapsed = started.elapsed().as_secs_f64();
    Ok((latencies, rate(count as f64, elapsed)))
}

fn rate(n: f64, seconds: f64) -> f64 {
    if seconds > 0.0 { n / seconds } else { 0.0 }
}

/// Phase 1: loads `primary`, then times a new replica's copy of all of it.
async fn copy_from_genesis(
    args: &ReplicaArgs,
    primary: &NodeProcess,
    serve: &[String],
) -> anyhow::Result<(NodeProcess, CopyReport)> {
    args.say(format_args!(
        "loading the primary with {} transactions over gRPC streams…",
        args.count
    ));
    let (_, load_tx_per_s) = load(args, primary, IngestTransport::GrpcStream, args.count).await?;
    let target = Watch::new(primary)?.stand().await?;
    if target.seq < args.count as u64 {
        bail!(
            "the primary holds {} items after {} transactions were acknowledged",
            target.seq,
            args.count
        );
    }
    args.say(format_args!(
        "starting a replica to copy {} entries and {} items…",
        target.entries, target.seq
    ));
    let started = Instant::now();
    let mut replica = start_replica(!args.no_fsync, primary, serve)?;
    Watch::new(&replica)?
        .caught_up(&mut replica, target.entries, target.seq)
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = replica.cpu_seconds()?;
    let copy = CopyReport {
        records: target.seq,
        entries: target.entries,
        seconds: (seconds * 1e3).round() / 1e3,
        records_per_s: rate(target.seq as f64, seconds).round(),
        entries_per_s: rate(target.entries as f64, seconds).round(),
        replica_cpu_us_per_record: cpu::us_per_tx(0.0, cpu_seconds, target.seq as f64),
        load_tx_per_s: load_tx_per_s.round(),
    };
    Ok((replica, copy))
}

/// Phase 2: loads `primary` while a thread of its own samples the replica's lag, so the
/// load's client does not delay the samples.
fn lag_under_load(
    args: &ReplicaArgs,
    runtime: &tokio::runtime::Runtime,
    primary: &NodeProcess,
    replica: &mut NodeProcess,
) -> anyhow::Result<LagReport> {
    let count = args.lag_count();
    args.say(format_args!(
        "loading the primary with {count} more over gRPC streams, sampling the replica's lag…"
    ));
    let done = CancellationToken::new();
    let (samples, load_tx_per_s, loaded) = std::thread::scope(|scope| {
        let sampler = {
            let (done, primary, replica) = (done.clone(), &*primary, &*replica);
            scope.spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("cannot start the sampler's runtime")?;
                runtime.block_on(async {
                    let (p, r) = (Watch::new(primary)?, Watch::new(replica)?);
                    watch::sample_lag(&p, &r, &done).await
                })
            })
        };
        let loaded = runtime.block_on(load(args, primary, IngestTransport::GrpcStream, count));
        let ended = Instant::now();
        done.cancel();
        let samples = sampler
            .join()
            .unwrap_or_else(|_| bail!("the lag sampler panicked"));
        let (_, tx_per_s) = loaded?;
        anyhow::Ok((samples?, tx_per_s, ended))
    })?;
    let catch_up_seconds = runtime.block_on(async {
        let target = Watch::new(primary)?.stand().await?;
        Watch::new(replica)?
            .caught_up(replica, target.entries, target.seq)
            .await?;
        anyhow::Ok(loaded.elapsed().as_secs_f64())
    })?;
    let pick = |f: fn(&LagSample) -> f64| samples.iter().map(f).collect::<Vec<f64>>();
    let (mut gauge, mut seconds, mut observed) = (
        pick(|s| s.gauge_entries),
        pick(|s| s.seconds),
        pick(|s| s.observed_entries as f64),
    );
    let ms = |s: f64| (s * 1e3).round() / 1e3;
    Ok(LagReport {
        count,
        load_tx_per_s: load_tx_per_s.round(),
        samples: samples.len(),
        max_entries: quantile(&mut gauge, 1.0),
        p99_entries: quantile(&mut gauge, 0.99),
        max_seconds: ms(quantile(&mut seconds, 1.0)),
        p99_seconds: ms(quantile(&mut seconds, 0.99)),
        observed_max_entries: quantile(&mut observed, 1.0),
        observed_p99_entries: quantile(&mut observed, 0.99),
        catch_up_seconds: ms(catch_up_seconds),
    })
}

/// Phase 3, for one N: a fresh primary with `--min-replica-acks N` and a replica following
/// it, loaded once the replica holds what the primary does.
fn with_acks(
    args: &ReplicaArgs,
    runtime: &tokio::runtime::Runtime,
    n: usize,
) -> anyhow::Result<Vec<AcksReport>> {
    args.say(format_args!(
        "--min-replica-acks {n}: a primary and a replica, {} transactions over gRPC streams, \
         then {} unary…",
        args.acks_count(IngestTransport::GrpcStream),
        args.acks_count(IngestTransport::GrpcUnary),
    ));
    let serve = args.serve_args();
    let mut flags = serve.clone();
    flags.extend(["--min-replica-acks".into(), n.to_string()]);
    let durable = !args.no_fsync;
    let primary = NodeProcess::start(durable, &flags)?;
    let mut replica = start_replica(durable, &primary, &serve)?;
    runtime.block_on(async {
        let target = Watch::new(&primary)?.stand().await?;
        Watch::new(&replica)?
            .caught_up(&mut replica, target.entries, target.seq)
            .await?;
        let mut out = Vec::new();
        for transport in [IngestTransport::GrpcStream, IngestTransport::GrpcUnary] {
            let count = args.acks_count(transport);
            let (latencies, tx_per_s) = load(args, &primary, transport, count).await?;
            let ms = |q| latencies.value_at_quantile(q) as f64 / 1e3;
            out.push(AcksReport {
                min_replica_acks: n,
                transport: transport.name(),
                count,
                tx_per_s: tx_per_s.round(),
                p50_ms: ms(0.50),
                p99_ms: ms(0.99),
            });
        }
        Ok(out)
    })
}

fn print_summary(r: &ReplicaReport) {
    let c = &r.copy;
    println!(
        "copy from genesis: {} records in {} entries in {:.2} s = {:.0} records/s ({:.0} \
         entries/s); replica CPU {:.1} µs per record (the primary took them at {:.0} tx/s)",
        c.records,
        c.entries,
        c.seconds,
        c.records_per_s,
        c.entries_per_s,
        c.replica_cpu_us_per_record,
        c.load_tx_per_s,
    );
    let l = &r.lag;
    println!(
        "lag under load ({} tx over gRPC streams at {:.0} tx/s; samples 100 ms apart: {}): \
         poh_replica_lag_entries max {:.0}, p99 {:.0} (observed max {:.0}, p99 {:.0}); \
         lag_seconds max {:.3}, p99 {:.3}; caught up {:.3} s after the load",
        l.count,
        l.load_tx_per_s,
        l.samples,
        l.max_entries,
        l.p99_entries,
        l.observed_max_entries,
        l.observed_p99_entries,
        l.max_seconds,
        l.p99_seconds,
        l.catch_up_seconds,
    );
    println!(
        "--min-replica-acks N, a replica following ({}):",
        if r.durable {
            "fsync per commit"
        } else {
            "no fsync"
        }
    );
    for a in &r.acks {
        println!(
            "  N={} {:<12} {:>8} tx {:>9.0} tx/s  p50 {:>8.2} ms  p99 {:>8.2} ms",
            a.min_replica_acks, a.transport, a.count, a.tx_per_s, a.p50_ms, a.p99_ms
        );
    }
    for transport in ["grpc-stream", "grpc-unary"] {
        let at = |n| {
            r.acks
                .iter()
                .find(|a| a.min_replica_acks == n && a.transport == transport)
        };
        if let (Some(zero), Some(one)) = (at(0), at(1)) {
            println!(
                "  {transport}: N=1 takes {:.0} % of N=0's throughput, p99 {:+.2} ms",
                100.0 * rate(one.tx_per_s, zero.tx_per_s),
                one.p99_ms - zero.p99_ms
            );
        }
    }
}
