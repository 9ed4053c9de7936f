//! The gRPC senders: unary `Submit` calls, or client streams, over a few kept connections.
//! [`connect`], [`submit`] and [`send_stream`] are the single steps `bench soak` paces.

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

/// A channel to `target` (`host:port`, or a URL).
pub(in crate::bench) async fn connect(target: &str) -> anyhow::Result<tonic::transport::Channel> {
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

pub(in crate::bench) async fn unary(
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
                submit(&mut client, poh_node::tx_to_pb(tx)).await?;
                latencies.saturating_record(sent.elapsed().as_micros() as u64);
                progress.inc(1);
            }
            anyhow::Ok(latencies)
        });
    }
    merge(tasks).await
}

pub(in crate::bench) async fn stream(
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
            send_stream(&mut client, chunk, |sent| {
                latencies.saturating_record(sent.elapsed().as_micros() as u64);
                progress.inc(1);
            })
            .await?;
            anyhow::Ok(latencies)
        });
    }
    merge(tasks).await
}

/// One `Broadcast` call: an error unless the node stored `tx` (or had it).
pub(in crate::bench) async fn submit(
    client: &mut PohServiceClient<tonic::transport::Channel>,
    tx: pb::Tx,
) -> anyhow::Result<()> {
    let ack = client.broadcast(tx).await?.into_inner();
    check_ack(&ack)
}

/// Sends `txs` on one `BroadcastStream` and reads their acks; `on_ack` is given the send time
/// of each transaction the node stored, in order. An error at the first refusal, or when the
/// stream ends early.
pub(in crate::bench) async fn send_stream(
    client: &mut PohServiceClient<tonic::transport::Channel>,
    txs: Vec<pb::Tx>,
    mut on_ack: impl FnMut(Instant),
) -> anyhow::Result<()> {
    // Send times, in order; acks come back in the same order.
    let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel();
    let expected = txs.len();
    let outgoing = futures_util::stream::iter(txs).map(move |tx| {
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
        check_ack(&ack)?;
        answered += 1;
        on_ack(sent);
    }
    if answered != expected {
        bail!("the stream ended after {answered} of {expected} acks");
    }
    Ok(())
}
