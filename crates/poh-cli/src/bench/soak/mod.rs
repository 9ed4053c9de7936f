//! `poh bench soak`: whether a node's resources stay bounded under steady load. It starts a
//! node as `bench ingest` does (temporary data dir, ephemeral ports, by default a TTL so the
//! store itself stays bounded), keeps [`load`]'s paced senders on all five ingest paths
//! (gRPC unary and stream, HTTP batches, UDP, QUIC) and [`subscribers`] (gRPC `Subscribe`,
//! SSE) going for `--minutes`, and every `--interval-secs` samples the node process's resident
//! memory, open file descriptors and threads from `/proc`, with the transactions acknowledged
//! so far. At the end [`verdict`] decides whether any of the three grows without bound.
//!
//! It fails (an error line, a non-zero exit, after the report) when the node died, stopped
//! acknowledging, a transport acknowledged nothing, or something grew past its slack.

mod load;
mod subscribers;
mod verdict;

use std::{
    collections::BTreeMap,
    str::FromStr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use anyhow::{Context as _, bail};
use poh_node::config::Span;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{
    ingest::{mib, udp},
    node::NodeProcess,
};
use load::{Addresses, Sender, TRANSPORTS};
use subscribers::{Kind, Subscriber};

/// How often the TTL sweep runs when `--ttl` is on: often enough that a sweep's share of the
/// work is small, and the store's size is flat at the scale of a sampling interval.
const TTL_SWEEP: &str = "15s";

#[derive(clap::Args)]
pub struct SoakArgs {
    /// How long to load the node, in minutes (fractions allowed).
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// How long to load the node, in seconds, instead of --minutes (for short runs).
    #[arg(long, conflicts_with = "minutes")]
    seconds: Option<f64>,
    /// Seconds between two samples of the node; the run must cover at least 3.
    #[arg(long, default_value_t = 10.0)]
    interval_secs: f64,
    /// Transactions per second offered in all, an even share over the five senders.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 200)]
    payload_bytes: usize,
    /// Subscriptions of each kind (gRPC `Subscribe`, SSE `/v1/events`) kept open.
    #[arg(long, default_value_t = 2)]
    subscribers: usize,
    /// The node's TTL (`poh serve --ttl`, swept every 15 s), so its store stays bounded on a
    /// long run; `off` for none.
    #[arg(long, default_value = "2m", value_parser = parse_ttl)]
    ttl: Ttl,
    /// Run the node without fsync.
    #[arg(long)]
    no_fsync: bool,
    /// Print one JSON object (keys are stable: scripts read them).
    #[arg(long)]
    json: bool,
}

/// `--ttl`: a duration, or none.
#[derive(Clone)]
struct Ttl(Option<Span>);

fn parse_ttl(text: &str) -> Result<Ttl, String> {
    match text.trim() {
        "off" | "none" => Ok(Ttl(None)),
        text => Span::from_str(text).map(|span| Ttl(Some(span))),
    }
}

/// One sample of the node. The keys are a stable interface.
#[derive(Clone, Copy, Debug, Serialize)]
struct Sample {
    /// Seconds since the load started.
    t_s: f64,
    /// Transactions acknowledged so far, every transport (UDP: received and not refused).
    acked: u64,
    /// Acknowledged per second since the previous sample.
    tx_per_s: f64,
    rss_mib: f64,
    fds: u64,
    threads: u64,
    /// Transactions refused or lost so far, every transport.
    errors: u64,
}

/// What one transport's sender counted. The keys are a stable interface.
#[derive(Serialize)]
struct TransportReport {
    sent: u64,
    acked: u64,
    errors: u64,
    last_error: Option<String>,
}

/// What one subscriber counted. The keys are a stable interface.
#[derive(Serialize)]
struct SubscriberReport {
    kind: Kind,
    received: u64,
    errors: u64,
    last_error: Option<String>,
}

/// The keys are a stable interface.
#[derive(Serialize)]
struct SoakReport {
    seconds: f64,
    interval_secs: f64,
    rate: f64,
    payload_bytes: usize,
    /// The node's TTL (as `--ttl` takes it), `null` when off.
    ttl: Option<String>,
    durable: bool,
    /// Seconds from the start of the load to its end: the last sample, or the one that found
    /// the node dead.
    elapsed_s: f64,
    /// What the transports below acknowledged and lost in all, by the end.
    acked: u64,
    tx_per_s: f64,
    errors: u64,
    /// By transport name, as `bench ingest --transport` takes it.
    transports: BTreeMap<&'static str, TransportReport>,
    subscribers: Vec<SubscriberReport>,
    samples: Vec<Sample>,
    /// The means compared, `null` when there were fewer than 3 samples (the node died).
    growth: Option<verdict::Growth>,
    ok: bool,
    /// Why it failed, one line; `null` when it passed.
    reason: Option<String>,
}

pub fn run(args: &SoakArgs) -> anyhow::Result<()> {
    let seconds = args.seconds.unwrap_or(args.minutes * 60.0);
    if !(seconds.is_finite() && seconds > 0.0) {
        bail!("--minutes and --seconds must be above 0");
    }
    if !(args.interval_secs.is_finite() && args.interval_secs >= 0.1) {
        bail!("--interval-secs must be at least 0.1");
    }
    // A hair of tolerance, so 30 s at 10 s a sample is 3 samples, not 2.99.
    let count = (seconds / args.interval_secs + 1e-9).floor() as u64;
    if count < 3 {
        bail!("the run must cover at least 3 intervals of --interval-secs (it is cut in thirds)");
    }
    if !(args.rate.is_finite() && args.rate > 0.0 && args.rate <= 1e6) {
        bail!("--rate must be above 0 and at most 1000000");
    }
    // A datagram holds one transaction's JSON, base64 payload included (SPEC §4).
    if args.payload_bytes > 32 << 10 {
        bail!("--payload-bytes must be at most 32768 (a UDP datagram holds one transaction)");
    }
    let mut serve_args = Vec::new();
    if let Some(ttl) = &args.ttl.0 {
        serve_args.extend([
            "--ttl".to_string(),
            ttl.to_string(),
            "--ttl-sweep-interval".into(),
            TTL_SWEEP.into(),
        ]);
    }
    let mut node = NodeProcess::start(!args.no_fsync, &serve_args)?;
    // The clients share one thread, as in `bench ingest`, and leave the other core to the
    // node.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let plan = Plan {
        seconds,
        interval: Duration::from_secs_f64(args.interval_secs),
        count,
    };
    let report = runtime.block_on(soak(args, &plan, &mut node))?;
    drop(node);
    print(args, &report)?;
    match report.reason {
        Some(reason) => bail!("{reason}"),
        None => Ok(()),
    }
}

/// How long, and how often to sample.
struct Plan {
    seconds: f64,
    interval: Duration,
    count: u64,
}

async fn soak(args: &SoakArgs, plan: &Plan, node: &mut NodeProcess) -> anyhow::Result<SoakReport> {
    let addresses = Addresses {
        grpc: node.grpc.clone(),
        http: format!("http://{}", node.http),
        udp: node.udp.clone(),
        quic: node.quic.clone(),
        quic_pin: node.quic_pin.clone(),
    };
    let stop = CancellationToken::new();
    // Stops every task however this function ends.
    let _stop = stop.clone().drop_guard();
    let mut tasks = tokio::task::JoinSet::new();
    let mut subscribers = Vec::new();
    // An SSE request outlives the run by a margin, so only a stuck stream meets its timeout.
    let longest = Duration::from_secs_f64(plan.seconds) + Duration::from_secs(60);
    for kind in [Kind::Grpc, Kind::Sse] {
        for _ in 0..args.subscribers {
            let me = Arc::new(Subscriber::new(kind));
            subscribers.push(me.clone());
            let stop = stop.clone();
            match kind {
                Kind::Grpc => tasks.spawn(subscribers::grpc(addresses.grpc.clone(), me, stop)),
                Kind::Sse => {
                    tasks.spawn(subscribers::sse(addresses.http.clone(), me, longest, stop))
                }
            };
        }
    }
    let udp_node = udp::Node::new(&addresses.http)?;
    let udp_base = udp_node.counters(udp::Counters::default()).await?;
    let udp_port = addresses
        .udp
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|a| a.port());
    let drops_base = udp_port.and_then(udp::kernel_drops);
    let senders = load::start(&addresses, args.rate, args.payload_bytes, &stop, &mut tasks).await?;
    let started = tokio::time::Instant::now();
    if !args.json {
        eprintln!(
            "soaking a node for {:.0} s at {:.0} tx/s over {} transports, {} subscribers, a \
             sample every {:.1} s…",
            plan.seconds,
            args.rate,
            TRANSPORTS.len(),
            subscribers.len(),
            args.interval_secs
        );
        println!("  time      acked    tx/s   RSS MiB    fds  threads   errors");
    }
    let mut samples: Vec<Sample> = Vec::new();
    let mut udp_seen = Udp::default();
    let mut died = None;
    for k in 1..=plan.count {
        tokio::time::sleep_until(started + plan.interval * k as u32).await;
        let t_s = started.elapsed().as_secs_f64();
        if let Some(status) = node.exited()? {
            died = Some(format!("the node exited ({status}) after {t_s:.0} s"));
            break;
        }
        match udp_node.counters(udp_base).await {
            Ok(counters) => {
                let drops = udp_port.and_then(udp::kernel_drops);
                udp_seen = Udp {
                    acked: counters.received.saturating_sub(counters.rejected),
                    lost: counters.rejected
                        + drops_base
                            .zip(drops)
                            .map_or(0, |(before, after)| after.saturating_sub(before)),
                };
            }
            // The previous counts stand; a node that stopped answering shows as a stall.
            Err(e) => tracing::debug!("cannot read the node's UDP counters: {e:#}"),
        }
        let read = (node.rss_bytes(), node.open_fds(), node.threads());
        let (rss, fds, threads) = match read {
            (Ok(rss), Ok(fds), Ok(threads)) => (rss, fds, threads),
            (rss, fds, threads) => {
                if let Some(status) = node.exited()? {
                    died = Some(format!("the node exited ({status}) after {t_s:.0} s"));
                    break;
                }
                (rss?, fds?, threads?)
            }
        };
        let acked = acked(&senders, udp_seen);
        let previous = samples.last().map_or((0.0, 0), |s| (s.t_s, s.acked));
        let sample = Sample {
            t_s: (t_s * 10.0).round() / 10.0,
            acked,
            tx_per_s: ((acked - previous.1) as f64 / (t_s - previous.0).max(1e-3)).round(),
            rss_mib: mib(rss),
            fds,
            threads,
            errors: errors(&senders, udp_seen),
        };
        if !args.json {
            println!(
                "{:>5.0} s {:>10} {:>7.0} {:>9.1} {:>6} {:>8} {:>8}",
                sample.t_s,
                sample.acked,
                sample.tx_per_s,
                sample.rss_mib,
                sample.fds,
                sample.threads,
                sample.errors
            );
        }
        samples.push(sample);
    }
    stop.cancel();
    let elapsed = started.elapsed().as_secs_f64();
    tasks.shutdown().await;
    let seen = Seen {
        elapsed,
        senders: &senders,
        udp: udp_seen,
        subscribers: &subscribers,
    };
    Ok(report(args, plan, &seen, samples, died))
}

/// `e` in one line: a gRPC status by its code and message (its own text adds the details of
/// every layer below), anything else with its causes.
fn brief(e: &anyhow::Error) -> String {
    match e.downcast_ref::<tonic::Status>() {
        Some(status) => format!("{:?}: {}", status.code(), status.message()),
        None => format!("{e:#}"),
    }
}

/// What the node's counters say of the UDP datagrams: received and not refused, and refused
/// or dropped by the kernel at its socket.
#[derive(Clone, Copy, Default)]
struct Udp {
    acked: u64,
    lost: u64,
}

fn acked(senders: &[Sender], udp: Udp) -> u64 {
    let answered: u64 = senders
        .iter()
        .map(|s| s.tally.acked.load(Ordering::Relaxed))
        .sum();
    answered + udp.acked
}

fn errors(senders: &[Sender], udp: Udp) -> u64 {
    let failed: u64 = senders
        .iter()
        .map(|s| s.tally.failed.load(Ordering::Relaxed))
        .sum();
    failed + udp.lost
}

/// What the clients counted by the end of the load.
struct Seen<'a> {
    /// Seconds from the start of the load to its end.
    elapsed: f64,
    senders: &'a [Sender],
    /// The node's UDP counters as last read.
    udp: Udp,
    subscribers: &'a [Arc<Subscriber>],
}

fn report(
    args: &SoakArgs,
    plan: &Plan,
    seen: &Seen<'_>,
    samples: Vec<Sample>,
    died: Option<String>,
) -> SoakReport {
    let udp_seen = seen.udp;
    let transports: BTreeMap<_, _> = seen
        .senders
        .iter()
        .map(|s| {
            let tally = &s.tally;
            let is_udp = s.transport == super::ingest::IngestTransport::Udp;
            let failed = tally.failed.load(Ordering::Relaxed);
            let report = TransportReport {
                sent: tally.sent.load(Ordering::Relaxed),
                acked: match is_udp {
                    true => udp_seen.acked,
                    false => tally.acked.load(Ordering::Relaxed),
                },
                errors: failed + if is_udp { udp_seen.lost } else { 0 },
                last_error: tally.last_error(),
            };
            (s.transport.name(), report)
        })
        .collect();
    let subscribers = seen
        .subscribers
        .iter()
        .map(|s| SubscriberReport {
            kind: s.kind,
            received: s.received.load(Ordering::Relaxed),
            errors: s.errors.load(Ordering::Relaxed),
            last_error: s.last_error(),
        })
        .collect();
    let growth = (samples.len() >= 3).then(|| verdict::growth(&samples));
    let mut reasons: Vec<String> = died.into_iter().collect();
    if samples.len() >= 3 && verdict::stalled(&samples) {
        reasons.push("the node acknowledged nothing over the last third of the run".into());
    }
    for (name, t) in &transports {
        if t.acked == 0 {
            reasons.push(format!("{name} acknowledged nothing"));
        }
    }
    reasons.extend(growth.iter().flat_map(verdict::unbounded));
    let elapsed_s = (seen.elapsed * 10.0).round() / 10.0;
    let acked = transports.values().map(|t| t.acked).sum();
    SoakReport {
        seconds: plan.seconds,
        interval_secs: args.interval_secs,
        rate: args.rate,
        payload_bytes: args.payload_bytes,
        ttl: args.ttl.0.as_ref().map(ToString::to_string),
        durable: !args.no_fsync,
        elapsed_s,
        acked,
        tx_per_s: if seen.elapsed > 0.0 {
            (acked as f64 / seen.elapsed).round()
        } else {
            0.0
        },
        errors: transports.values().map(|t| t.errors).sum(),
        transports,
        subscribers,
        samples,
        growth,
        ok: reasons.is_empty(),
        reason: (!reasons.is_empty()).then(|| reasons.join("; ")),
    }
}

fn print(args: &SoakArgs, report: &SoakReport) -> anyhow::Result<()> {
    if args.json {
        println!("{}", serde_json::to_string(report)?);
        return Ok(());
    }
    println!(
        "{} acknowledged in {:.0} s ({:.0} tx/s of {:.0} offered), {} errors",
        report.acked, report.elapsed_s, report.tx_per_s, report.rate, report.errors
    );
    for (name, t) in &report.transports {
        let last = t
            .last_error
            .as_deref()
            .map_or_else(String::new, |e| format!(" (last: {e})"));
        println!(
            "  {name:<12} sent {:>10}  acked {:>10}  errors {:>6}{last}",
            t.sent, t.acked, t.errors
        );
    }
    for s in &report.subscribers {
        let kind = match s.kind {
            Kind::Grpc => "subscribe",
            Kind::Sse => "sse",
        };
        let last = s
            .last_error
            .as_deref()
            .map_or_else(String::new, |e| format!(" (last: {e})"));
        println!(
            "  {kind:<12} received {:>10}  errors {:>6}{last}",
            s.received, s.errors
        );
    }
    if let Some(g) = &report.growth {
        println!(
            "middle → last third: RSS {:.1} → {:.1} MiB (allowed +{:.1}), fds {:.1} → {:.1} \
             (allowed +{}), threads {:.1} → {:.1} (allowed +{})",
            g.rss_mib.middle,
            g.rss_mib.last,
            verdict::rss_allowed(g.rss_mib.middle),
            g.fds.middle,
            g.fds.last,
            verdict::FD_SLACK,
            g.threads.middle,
            g.threads.last,
            verdict::THREAD_SLACK,
        );
    }
    if report.ok {
        println!("ok: nothing grew without bound");
    }
    Ok(())
}
