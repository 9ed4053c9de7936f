//! The HTTP sender: `POST /v1/tx/batch` requests of `--batch` transactions each.
//! [`batch_body`] and [`post_batch`] are the single steps `bench soak` paces.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::bail;
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use hdrhistogram::Histogram;
use poh_core::Tx;
use tokio::sync::Mutex;

use super::{histogram, http_client, merge};

pub(super) async fn batch(
    target: &str,
    txs: Vec<Tx>,
    batch: usize,
    concurrency: usize,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<Histogram<u64>> {
    // Bodies are encoded before the clock starts: the node's work is what is measured.
    let bodies: Vec<(usize, Vec<u8>)> = txs
        .chunks(batch)
        .map(|chunk| Ok((chunk.len(), batch_body(chunk)?)))
        .collect::<anyhow::Result<_>>()?;
    let url = format!("{}/v1/tx/batch", target.trim_end_matches('/'));
    let client = http_client(Duration::from_secs(120))?;
    let bodies = Arc::new(Mutex::new(bodies.into_iter()));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, url, bodies, progress) = (
            client.clone(),
            url.clone(),
            bodies.clone(),
            progress.clone(),
        );
        tasks.spawn(async move {
            let mut latencies = histogram()?;
            loop {
                let Some((n, body)) = bodies.lock().await.next() else {
                    break;
                };
                let sent = Instant::now();
                post_batch(&client, &url, body, n).await?;
                let micros = sent.elapsed().as_micros() as u64;
                latencies.record_n(micros.max(1), n as u64).ok();
                progress.inc(n as u64);
            }
            anyhow::Ok(latencies)
        });
    }
    merge(tasks).await
}

/// The JSON array `POST /v1/tx/batch` takes.
pub(in crate::bench) fn batch_body(txs: &[Tx]) -> anyhow::Result<Vec<u8>> {
    let items: Vec<serde_json::Value> = txs
        .iter()
        .map(|t| {
            serde_json::json!({
                "tx_id": t.tx_id,
                "holder_id": t.holder_id,
                "timestamp": t.timestamp,
                "payload_b64": B64.encode(&t.payload),
                "public_key_b64": B64.encode(&t.public_key),
                "signature_b64": B64.encode(&t.signature),
            })
        })
        .collect();
    Ok(serde_json::to_vec(&items)?)
}

/// `POST url` of `body`, a batch of `n` transactions: an error unless the node stored (or
/// had) every one.
pub(in crate::bench) async fn post_batch(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    n: usize,
) -> anyhow::Result<()> {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("the node answered {}", response.status());
    }
    let results: Vec<BatchItem> = response.json().await?;
    if results.len() != n {
        bail!("{} results for {n} transactions", results.len());
    }
    if let Some(bad) = results.iter().find_map(|r| r.error.as_ref()) {
        bail!("the node refused a transaction: {bad}");
    }
    Ok(())
}

/// One element of a batch answer: only whether it is an error is looked at.
#[derive(serde::Deserialize)]
struct BatchItem {
    #[serde(default)]
    error: Option<String>,
}
