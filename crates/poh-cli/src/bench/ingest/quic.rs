//! The QUIC driver of `poh bench ingest`: `--concurrency` streams in flight over one
//! connection, each carrying `--batch` transactions (SPEC §4 framing) and waiting for their
//! Acks; a stream's latency is that of each of its transactions. [`send_batch`] is the single
//! step `bench soak` paces.

use std::{sync::Arc, time::Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use poh_core::Tx;
use poh_node::{network::client::QuicClient, tls::ServerTrust};
use poh_proto::v1 as pb;
use tokio::sync::Mutex;

use super::{check_ack, histogram, merge};

pub(super) async fn quic(
    target: &str,
    pin: Option<&str>,
    txs: Vec<Tx>,
    batch: usize,
    streams: usize,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<Histogram<u64>> {
    // Pinned when the node's certificate is a development one; it asks for no client
    // certificate.
    let client = Arc::new(QuicClient::new(&ServerTrust::System, None)?);
    // One connection, made before the streams start, so they all share it.
    client
        .connect(target, pin)
        .await
        .with_context(|| format!("cannot connect to {target}"))?;
    let batches: Vec<Vec<pb::Tx>> = {
        let mut txs = txs.into_iter().map(poh_node::tx_to_pb).peekable();
        let mut batches = Vec::new();
        while txs.peek().is_some() {
            batches.push(txs.by_ref().take(batch).collect());
        }
        batches
    };
    let batches = Arc::new(Mutex::new(batches.into_iter()));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..streams {
        let (client, batches, progress, target, pin) = (
            client.clone(),
            batches.clone(),
            progress.clone(),
            target.to_string(),
            pin.map(str::to_string),
        );
        tasks.spawn(async move {
            let mut latencies = histogram()?;
            loop {
                let Some(batch) = batches.lock().await.next() else {
                    break;
                };
                let sent = Instant::now();
                send_batch(&client, &target, pin.as_deref(), &batch).await?;
                let micros = sent.elapsed().as_micros() as u64;
                latencies.record_n(micros.max(1), batch.len() as u64).ok();
                progress.inc(batch.len() as u64);
            }
            anyhow::Ok(latencies)
        });
    }
    let latencies = merge(tasks).await;
    client.close();
    latencies
}

/// `batch` on one stream to `target`: an error unless the node stored (or had) every one.
pub(in crate::bench) async fn send_batch(
    client: &QuicClient,
    target: &str,
    pin: Option<&str>,
    batch: &[pb::Tx],
) -> anyhow::Result<()> {
    // The client has checked that there is one ack per transaction.
    let acks = client.send(target, pin, batch).await?;
    acks.iter().try_for_each(check_ack)
}
