//! `poh broadcast`: one transaction to every peer of the peers file, over every protocol at
//! once; a line per peer (or one JSON object) and exit 0 when at least one acknowledged.

use anyhow::bail;
use poh_node::{
    Peers, Transport,
    network::{BroadcastReport, Broadcaster, Delivery},
};
use serde_json::json;

use super::{PeersArgs, TxArgs, runtime};

/// `poh broadcast`.
#[derive(clap::Args, Debug)]
pub struct BroadcastArgs {
    #[command(flatten)]
    tx: TxArgs,
    #[command(flatten)]
    peers: PeersArgs,
    /// One JSON object instead of lines.
    #[arg(long)]
    json: bool,
}

pub fn broadcast(args: &BroadcastArgs) -> anyhow::Result<()> {
    let tx = args.tx.build()?;
    let (peers, settings, tls) = args.peers.load()?;
    let report = runtime()?.block_on(async {
        let broadcaster = Broadcaster::new(settings, tls, None).await?;
        let report = broadcaster.broadcast(&peers, &tx).await;
        broadcaster.close();
        anyhow::Ok(report)
    })?;
    print_report(&tx.tx_id, &report, &peers, args.json)?;
    if !report.any_ok() {
        bail!("no peer acknowledged {}", tx.tx_id);
    }
    Ok(())
}

fn print_report(
    tx_id: &str,
    report: &BroadcastReport,
    peers: &Peers,
    as_json: bool,
) -> anyhow::Result<()> {
    let (grpc_ok, http_ok, udp_ok, quic_ok) = report.summary();
    if as_json {
        let results: Vec<_> = report
            .peers
            .iter()
            .map(|r| {
                let mut v = json!({
                    "protocol": r.protocol.as_str(),
                    "peer": r.peer,
                    "ok": r.outcome.is_ok(),
                    "attempts": r.attempts,
                    "ms": r.elapsed.as_secs_f64() * 1e3,
                });
                match &r.outcome {
                    Ok(Delivery::Stored { poh_seq }) => {
                        v["result"] = "stored".into();
                        v["poh_seq"] = (*poh_seq).into();
                    }
                    Ok(Delivery::Duplicate { poh_seq }) => {
                        v["result"] = "duplicate".into();
                        v["poh_seq"] = (*poh_seq).into();
                    }
                    Ok(Delivery::Sent) => v["result"] = "sent".into(),
                    Err(e) => v["error"] = e.clone().into(),
                }
                v
            })
            .collect();
        let skipped: Vec<&str> = Transport::ALL
            .iter()
            .filter(|p| peers.get(**p).is_empty())
            .map(|p| p.as_str())
            .collect();
        let out = json!({
            "tx_id": tx_id,
            "peers": results,
            "skipped": skipped,
            "summary": {"grpc_ok": grpc_ok, "http_ok": http_ok, "udp_ok": udp_ok, "quic_ok": quic_ok},
        });
        println!("{}", serde_json::to_string(&out)?);
        return Ok(());
    }
    for protocol in Transport::ALL {
        if peers.get(protocol).is_empty() {
            println!("{:<5} skipped (no peers)", protocol.as_str());
        }
    }
    for r in &report.peers {
        let ms = r.elapsed.as_secs_f64() * 1e3;
        let retries = match r.attempts {
            0 | 1 => String::new(),
            n => format!(", {n} attempts"),
        };
        match &r.outcome {
            Ok(Delivery::Stored { poh_seq }) => println!(
                "{:<5} {} ok: stored, poh_seq {poh_seq} ({ms:.1} ms{retries})",
                r.protocol.as_str(),
                r.peer
            ),
            Ok(Delivery::Duplicate { poh_seq }) => println!(
                "{:<5} {} ok: duplicate, poh_seq {poh_seq} ({ms:.1} ms{retries})",
                r.protocol.as_str(),
                r.peer
            ),
            Ok(Delivery::Sent) => println!(
                "{:<5} {} ok: sent (UDP has no reply) ({ms:.1} ms)",
                r.protocol.as_str(),
                r.peer
            ),
            Err(e) => println!(
                "{:<5} {} FAILED: {e} ({ms:.1} ms{retries})",
                r.protocol.as_str(),
                r.peer
            ),
        }
    }
    println!("grpc_ok={grpc_ok} http_ok={http_ok} udp_ok={udp_ok} quic_ok={quic_ok}");
    Ok(())
}
