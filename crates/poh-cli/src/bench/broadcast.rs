//! `poh bench broadcast`: starts `--peers` nodes on loopback (each a `poh serve` process on a
//! temporary data dir), then broadcasts `--count` transactions one after another, each to every
//! node over every chosen protocol at once (SPEC §5), and reports the latency of a whole
//! broadcast (until the last peer answered) and the broadcasts per second.
//!
//! The peers share this machine with the broadcaster, so the fan-out time is also split: the
//! slowest peer's own answer time (what the peers cost) and the rest, the broadcaster's
//! overhead (encoding, scheduling, collecting). The peers' PoH clocks run at
//! `--peer-hashes-per-tick`, low by default, so that ten clocks do not take the cores the
//! broadcaster is measured on.

use std::time::Instant;

use anyhow::{Context as _, bail};
use poh_core::Tx;
use poh_node::{
    Peers,
    config::PeersConfig,
    network::{Broadcaster, client::ClientTls},
};
use serde::Serialize;

use super::node::NodeProcess;

/// How the broadcaster reaches each node.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BroadcastProtocol {
    /// `Broadcast`, one unary call per peer.
    Grpc,
    /// `POST /v1/tx`.
    Http,
    /// One datagram (no answer: done when sent).
    Udp,
    /// One stream over a kept QUIC connection.
    Quic,
}

impl BroadcastProtocol {
    fn name(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::Http => "http",
            Self::Udp => "udp",
            Self::Quic => "quic",
        }
    }
}

#[derive(clap::Args)]
pub struct BroadcastArgs {
    /// Nodes to start on loopback, each a `poh serve` process.
    #[arg(long, default_value_t = 10)]
    peers: usize,
    /// Transactions to broadcast, one after another.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// The protocols each node is sent to, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "grpc")]
    protocols: Vec<BroadcastProtocol>,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 200)]
    payload_bytes: usize,
    /// Run the nodes without fsync, to show what durability costs.
    #[arg(long)]
    no_fsync: bool,
    /// Each node's PoH hashes per tick (at its default 160 ticks per second). The default,
    /// 125, is 1 % of a production clock, so ten nodes' clocks leave the cores to the
    /// broadcaster; 12500 runs them at production rate.
    #[arg(long, default_value_t = 125)]
    peer_hashes_per_tick: u64,
    /// Print one JSON object (keys are stable: scripts read them).
    #[arg(long)]
    json: bool,
}

/// The keys are a stable interface.
#[derive(Serialize)]
struct BroadcastReport {
    peers: usize,
    count: usize,
    /// The whole fan-out: from the call until the last peer answered.
    p50_ms: f64,
    p99_ms: f64,
    /// Each peer's own answer time (first attempt to outcome) has a p99: the largest of them.
    slowest_peer_p99_ms: f64,
    /// Per broadcast, the fan-out time less the slowest peer's answer time.
    overhead_p99_ms: f64,
    /// This process's CPU per broadcast (all peers).
    broadcaster_cpu_us: f64,
    tx_per_s: f64,
    durable: bool,
    peer_hashes_per_tick: u64,
    protocols: Vec<&'static str>,
}

/// What the broadcasts measured (µs).
struct Measured {
    fan_out: Histogram,
    overhead: Histogram,
    /// One per peer, in the peers' order.
    per_peer: Vec<Histogram>,
    /// Seconds taken.
    elapsed: f64,
    cpu_seconds: f64,
}

type Histogram = hdrhistogram::Histogram<u64>;

fn histogram() -> anyhow::Result<Histogram> {
    // Microseconds, up to an hour, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).context("histogram bounds")
}

fn ms(h: &Histogram, quantile: f64) -> f64 {
    h.value_at_quantile(quantile) as f64 / 1e3
}

pub fn run(args: &BroadcastArgs) -> anyhow::Result<()> {
    if !(1..=100).contains(&args.peers)
        || args.count == 0
        || args.payload_bytes > 16_384
        || args.peer_hashes_per_tick == 0
    {
        bail!(
            "--peers must be from 1 to 100, --count at least 1, --payload-bytes at most 16384 \
             (one datagram must hold a transaction), --peer-hashes-per-tick at least 1"
        );
    }
    let mut protocols = args.protocols.clone();
    protocols.sort_by_key(|p| *p as u8);
    protocols.dedup();
    if !args.json {
        eprintln!("starting {} nodes…", args.peers);
    }
    let serve_args = [
        "--hashes-per-tick".to_string(),
        args.peer_hashes_per_tick.to_string(),
    ];
    let nodes = start_nodes(args.peers, !args.no_fsync, &serve_args)?;
    let peers = peers_of(&nodes, &protocols);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    if !args.json {
        eprintln!(
            "broadcasting {} transactions to {} nodes over {}…",
            args.count,
            args.peers,
            names(&protocols).join(",")
        );
    }
    let measured = runtime.block_on(broadcast_all(args, &peers))?;
    drop(nodes);

    let slowest_peer_p99_ms = measured
        .per_peer
        .iter()
        .map(|h| ms(h, 0.99))
        .fold(0.0, f64::max);
    let report = BroadcastReport {
        peers: args.peers,
        count: args.count,
        p50_ms: ms(&measured.fan_out, 0.50),
        p99_ms: ms(&measured.fan_out, 0.99),
        slowest_peer_p99_ms,
        overhead_p99_ms: ms(&measured.overhead, 0.99),
        broadcaster_cpu_us: super::cpu::us_per_tx(0.0, measured.cpu_seconds, args.count as f64),
        tx_per_s: args.count as f64 / measured.elapsed,
        durable: !args.no_fsync,
        peer_hashes_per_tick: args.peer_hashes_per_tick,
        protocols: names(&protocols),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "broadcast to {} nodes over {} ({}, {} hashes per tick): {} transactions in \
             {:.2} s = {:.0} tx/s; fan-out p50 {:.2} ms, p99 {:.2} ms; slowest peer p99 \
             {:.2} ms; broadcaster overhead p99 {:.3} ms, CPU {:.1} µs per broadcast",
            report.peers,
            report.protocols.join(","),
            if args.no_fsync {
                "no fsync"
            } else {
                "durable: fsync per commit"
            },
            report.peer_hashes_per_tick,
            report.count,
            measured.elapsed,
            report.tx_per_s,
            report.p50_ms,
            report.p99_ms,
            report.slowest_peer_p99_ms,
            report.overhead_p99_ms,
            report.broadcaster_cpu_us,
        );
    }
    Ok(())
}

fn names(protocols: &[BroadcastProtocol]) -> Vec<&'static str> {
    protocols.iter().map(|p| p.name()).collect()
}

/// Starts the nodes at once: each waits for its own start-up line, so starting them one after
/// another would add their start-up times.
fn start_nodes(n: usize, durable: bool, serve_args: &[String]) -> anyhow::Result<Vec<NodeProcess>> {
    let started: Vec<anyhow::Result<NodeProcess>> = std::thread::scope(|scope| {
        let starting: Vec<_> = (0..n)
            .map(|_| scope.spawn(move || NodeProcess::start(durable, serve_args)))
            .collect();
        starting
            .into_iter()
            .map(|s| {
                s.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("starting a node panicked")))
            })
            .collect()
    });
    // The first failure is the error; the nodes that did start are stopped when dropped.
    started.into_iter().collect()
}

fn peers_of(nodes: &[NodeProcess], protocols: &[BroadcastProtocol]) -> Peers {
    let mut peers = Peers::default();
    for protocol in protocols {
        let (list, addresses): (&mut Vec<String>, Vec<String>) = match protocol {
            BroadcastProtocol::Grpc => (
                &mut peers.grpc,
                nodes.iter().map(|n| n.grpc.clone()).collect(),
            ),
            BroadcastProtocol::Http => (
                &mut peers.http,
                nodes.iter().map(|n| format!("http://{}", n.http)).collect(),
            ),
            BroadcastProtocol::Udp => (
                &mut peers.udp,
                nodes.iter().map(|n| n.udp.clone()).collect(),
            ),
            BroadcastProtocol::Quic => (
                &mut peers.quic,
                nodes.iter().map(|n| n.quic.clone()).collect(),
            ),
        };
        *list = addresses;
    }
    // Each node's QUIC certificate is a development one: trusted by its pin.
    if protocols.contains(&BroadcastProtocol::Quic) {
        for n in nodes {
            peers.pins.insert(n.quic.clone(), n.quic_pin.clone());
        }
    }
    peers
}

/// Broadcasts each transaction once every peer answered the one before.
async fn broadcast_all(args: &BroadcastArgs, peers: &Peers) -> anyhow::Result<Measured> {
    // The nodes ask for no client certificate and no token; their QUIC certificates are
    // pinned in `peers`.
    let broadcaster = Broadcaster::new(PeersConfig::default(), ClientTls::default(), None)
        .await
        .context("cannot make the broadcaster")?;
    // A per-run prefix, as in `bench ingest`.
    let run = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
    );
    let tx = |name: &str, i: usize| Tx {
        tx_id: format!("bench-{run}-{name}"),
        holder_id: "bench".into(),
        timestamp: 1_700_000_000.0 + i as f64,
        payload: (0..args.payload_bytes).map(|b| (b ^ i) as u8).collect(),
        ..Tx::default()
    };
    // Connections are made once and kept, as a node's broadcaster keeps them: the first
    // broadcast, which makes them, is not measured.
    check(&broadcaster.broadcast(peers, &tx("warm-up", 0)).await)?;

    let (mut fan_out, mut overhead) = (histogram()?, histogram()?);
    let mut per_peer = Vec::new();
    let cpu_before = super::cpu::seconds("self")?;
    let started = Instant::now();
    for i in 0..args.count {
        let tx = tx(&i.to_string(), i);
        let sent = Instant::now();
        let report = broadcaster.broadcast(peers, &tx).await;
        let took = sent.elapsed();
        check(&report)?;
        let slowest = report
            .peers
            .iter()
            .map(|p| p.elapsed)
            .max()
            .unwrap_or_default();
        fan_out.saturating_record(took.as_micros() as u64);
        overhead.saturating_record(took.saturating_sub(slowest).as_micros() as u64);
        // The report lists the peers in the same order every time.
        while per_peer.len() < report.peers.len() {
            per_peer.push(histogram()?);
        }
        for (h, peer) in per_peer.iter_mut().zip(&report.peers) {
            h.saturating_record(peer.elapsed.as_micros() as u64);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_seconds = super::cpu::seconds("self")? - cpu_before;
    broadcaster.close();
    Ok(Measured {
        fan_out,
        overhead,
        per_peer,
        elapsed,
        cpu_seconds,
    })
}

/// Every peer must have taken the transaction: a failed peer makes the figures meaningless.
fn check(report: &poh_node::network::BroadcastReport) -> anyhow::Result<()> {
    if let Some(failed) = report.peers.iter().find(|p| p.outcome.is_err()) {
        let why = failed.outcome.as_ref().err().map_or("", String::as_str);
        bail!(
            "{} peer {} failed after {} attempts: {why}",
            failed.protocol.as_str(),
            failed.peer,
            failed.attempts
        );
    }
    Ok(())
}
