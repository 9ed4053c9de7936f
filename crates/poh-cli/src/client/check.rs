//! `poh check-peers`: each peer's reachability and latency, per protocol (gRPC through the
//! health service, HTTP `/healthz`, a QUIC handshake; UDP peers are only resolved).

use std::time::Duration;

use anyhow::bail;
use poh_node::{
    Transport,
    network::{client::PeerClients, health},
};
use serde_json::json;

use super::{PeersArgs, runtime};

/// `poh check-peers`.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    peers: PeersArgs,
    /// One JSON object instead of lines.
    #[arg(long)]
    json: bool,
}

pub fn check_peers(args: &CheckArgs) -> anyhow::Result<()> {
    let (peers, settings, tls) = args.peers.load()?;
    let timeout = Duration::from_millis(settings.timeout_ms);
    let results = runtime()?.block_on(async {
        let clients = PeerClients::new(tls, timeout).await?;
        let checks = peers.iter().map(|(protocol, peer)| {
            let (clients, pin) = (&clients, peers.pin(peer));
            async move {
                let result = health::check(clients, protocol, peer, pin, timeout).await;
                (protocol, peer, result)
            }
        });
        let results = futures_util::future::join_all(checks).await;
        clients.close();
        anyhow::Ok(results)
    })?;
    let unreachable = results.iter().filter(|(_, _, r)| r.is_err()).count();
    if args.json {
        let rows: Vec<_> = results
            .iter()
            .map(|(protocol, peer, r)| match r {
                Ok(d) => json!({"protocol": protocol.as_str(), "peer": peer, "reachable": true,
                                "ms": d.as_secs_f64() * 1e3}),
                Err(e) => json!({"protocol": protocol.as_str(), "peer": peer, "reachable": false,
                                 "error": e}),
            })
            .collect();
        println!("{}", json!({"peers": rows, "unreachable": unreachable}));
    } else {
        for (protocol, peer, r) in &results {
            match (protocol, r) {
                (Transport::Udp, Ok(_)) => {
                    println!("udp   {peer} resolves (UDP has no reply to measure)")
                }
                (_, Ok(d)) => println!(
                    "{:<5} {peer} reachable ({:.1} ms)",
                    protocol.as_str(),
                    d.as_secs_f64() * 1e3
                ),
                (_, Err(e)) => println!("{:<5} {peer} UNREACHABLE: {e}", protocol.as_str()),
            }
        }
    }
    if unreachable > 0 {
        bail!("{unreachable} of {} peers unreachable", results.len());
    }
    Ok(())
}
