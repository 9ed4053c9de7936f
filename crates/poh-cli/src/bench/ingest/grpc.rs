//! The gRPC senders: unary `Submit` calls, or client streams, over a few kept connections.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use anyhow::{Context as _, bail};
use futures_util::StreamExt as _;
use hdrhistogram::Histogram;
use poh_core::Tx;
use poh_proto::v1::{self as pb, poh_service_client::PohServiceClient};
use tokio::sync::Mutex;

use super::{check_ack, histogram, merge};

async fn connect(target: &str) -> anyhow::Result<tonic::transport::Channel> {
    let url = if target.contains("://") {
        target.to_string()
    } else {
        format!("http://{target}")
    };
    tonic::transport::Endpoint::from_shared(url)
        .context("--target is not a valid address")?
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("cannot connect to {target}"))
}

pub(super) async fn unary(
    target: &str,
    txs: Vec<Tx>,
    concurrency: usize,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<Histogram<u64>> {
    // A few HTTP/2 connections, so one connection's ordering does not serialise everything.
    let mut channels = Vec::new();
    for _ in 0..concurrency.min(8) {
        channels.push(connect(target).await?);
    }
    let txs: Arc<Vec<Mutex<Option<Tx>>>> =
        Arc::new(txs.into_iter().map(|t| Mutex::new(Some(t))).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let mut client = PohServiceClient::new(channels[worker % channels.len()].clone());
        let (txs, next, progress) = (txs.clone(), next.clone(), progress.clone());
        tasks.spawn(async move {
            let mut latencies = histogram()?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(slot) = txs.get(i) else { break };
                let Some(tx) = slot.lock().await.take() else {
                    continue;
                };
                let sent = Instant::now();
                let ack = client.broadcast(poh_node::tx_to_pb(tx)).await?.into_inner();
                latencies.saturating_record(sent.elapsed().as_micros() as u64);
                check_ack(&ack)?;
                progress.inc(1);
            }
            anyhow::Ok(latencies)
        });
    }
    merge(tasks).await
}

pub(super) async fn stream(
    target: &str,
    txs: Vec<Tx>,
    streams: usize,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<Histogram<u64>> {
    let channel = connect(target).await?;
    let per_stream = txs.len().div_ceil(streams);
    let mut tasks = tokio::task::JoinSet::new();
    let mut txs = txs.into_iter();
    for _ in 0..streams {
        let chunk: Vec<pb::Tx> = txs
            .by_ref()
            .take(per_stream)
            .map(poh_node::tx_to_pb)
            .collect();
        if chunk.is_empty() {
            break;
        }
        let mut client = PohServiceClient::new(channel.clone());
        let progress = progress.clone();
        tasks.spawn(async move {
            let mut latencies = histogram()?;
            // Send times, in order; acks come back in the same order.
            let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel();
            let expected = chunk.len();
            let outgoing = futures_util::stream::iter(chunk).map(move |tx| {
                let _ = sent_tx.send(Instant::now());
                tx
            });
            let mut acks = client.broadcast_stream(outgoing).await?.into_inner();
            let mut answered = 0;
            while let Some(ack) = acks.message().await? {
                let sent = sent_rx
                    .recv()
                    .await
                    .context("an ack for a transaction never sent")?;
                latencies.saturating_record(sent.elapsed().as_micros() as u64);
                check_ack(&ack)?;
                answered += 1;
                progress.inc(1);
            }
            if answered != expected {
                bail!("the stream ended after {answered} of {expected} acks");
            }
            anyhow::Ok(latencies)
        });
    }
    merge(tasks).await
}
