//! `poh bench broadcast`: starts `--peers` nodes on loopback (each a `poh serve` process on a
//! temporary data dir), then broadcasts `--count` transactions one after another, each to every
//! node over every chosen protocol at once (SPEC §5), and reports the latency of a whole
//! broadcast (until the last peer answered) and the broadcasts per second.

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
    /// Print one JSON object (keys are stable: scripts read them).
    #[arg(long)]
    json: bool,
}

/// The keys are a stable interface.
#[derive(Serialize)]
struct BroadcastReport {
    peers: usize,
    count: usize,
    p50_ms: f64,
    p99_ms: f64,
    tx_per_s: f64,
    protocols: Vec<&'static str>,
}

pub fn run(args: &BroadcastArgs) -> anyhow::Result<()> {
    if !(1..=100).contains(&args.peers) || args.count == 0 || args.payload_bytes > 16_384 {
        bail!(
            "--peers must be from 1 to 100, --count at least 1, --payload-bytes at most 16384 \
             (one datagram must hold a transaction)"
        );
    }
    let mut protocols = args.protocols.clone();
    protocols.sort_by_key(|p| *p as u8);
    protocols.dedup();
    if !args.json {
        eprintln!("starting {} nodes…", args.peers);
    }
    let nodes = start_nodes(args.peers, !args.no_fsync)?;
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
    let (latencies, elapsed) = runtime.block_on(broadcast_all(args, &peers))?;
    drop(nodes);

    let report = BroadcastReport {
        peers: args.peers,
        count: args.count,
        p50_ms: latencies.value_at_quantile(0.50) as f64 / 1e3,
        p99_ms: latencies.value_at_quantile(0.99) as f64 / 1e3,
        tx_per_s: args.count as f64 / elapsed,
        protocols: names(&protocols),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "broadcast to {} nodes over {}: {} transactions in {elapsed:.2} s = {:.0} tx/s, \
             latency p50 {:.2} ms, p99 {:.2} ms ({})",
            report.peers,
            report.protocols.join(","),
            report.count,
            report.tx_per_s,
            report.p50_ms,
            report.p99_ms,
            if args.no_fsync {
                "no fsync"
            } else {
                "durable: fsync per commit"
            },
        );
    }
    Ok(())
}

fn names(protocols: &[BroadcastProtocol]) -> Vec<&'static str> {
    protocols.iter().map(|p| p.name()).collect()
}

/// Starts the nodes at once: each waits for its own start-up line, so starting them one after
/// another would add their start-up times.
fn start_nodes(n: usize, durable: bool) -> anyhow::Result<Vec<NodeProcess>> {
    let started: Vec<anyhow::Result<NodeProcess>> = std::thread::scope(|scope| {
        let starting: Vec<_> = (0..n)
            .map(|_| scope.spawn(move || NodeProcess::start(durable)))
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

/// Broadcasts each transaction once every peer answered the one before: the latencies (µs)
/// and the seconds taken.
async fn broadcast_all(
    args: &BroadcastArgs,
    peers: &Peers,
) -> anyhow::Result<(hdrhistogram::Histogram<u64>, f64)> {
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

    let mut latencies = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)
        .context("histogram bounds")?;
    let started = Instant::now();
    for i in 0..args.count {
        let tx = tx(&i.to_string(), i);
        let sent = Instant::now();
        let report = broadcaster.broadcast(peers, &tx).await;
        latencies.saturating_record(sent.elapsed().as_micros() as u64);
        check(&report)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    broadcaster.close();
    Ok((latencies, elapsed))
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
