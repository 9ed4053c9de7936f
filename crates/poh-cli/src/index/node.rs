//! The node side of `poh index`: its chain id, its transactions from gRPC `Subscribe`, and
//! its sealed headers from `GET /v1/headers`, each followed by a task of its own that retries
//! with backoff for as long as the session lasts.
//!
//! Headers are polled by height rather than taken from the SSE stream's `event: header`:
//! that stream carries only headers sealed while it is open, so a restarted indexer (or a
//! dropped connection) would miss the ones sealed in between, whereas `?from=H` resumes at
//! exactly the next height `poh_headers` lacks. One small request per interval is the price.

use std::{sync::Arc, time::Duration};

use poh_node::{
    network::client::{CallError, Endpoints},
    wire::{expired::Expired, headers::HeaderJson},
};
use poh_proto::v1::{self as pb, poh_service_client::PohServiceClient};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use super::{Backoff, IndexError, db::HeaderRow};
use crate::client::NodeHttp;

/// Headers asked for per request: each carries a key and a signature (about 10 KiB of JSON).
const HEADER_PAGE: usize = 200;

/// The node an indexer follows: its gRPC endpoints and its HTTP API.
pub(super) struct Node {
    pub endpoints: Endpoints,
    pub http: NodeHttp,
    /// Between two polls of the headers when the last one found no more.
    pub headers_every: Duration,
}

/// What the subscription hands on.
#[derive(Debug)]
// Nearly every item is a record: boxing it would cost an allocation each for nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum Feed {
    /// The next stored transaction.
    Record(pb::TxRecord),
    /// The node no longer holds the seqs before this one (its TTL expired them).
    Passed(u64),
}

/// A header as served, checked against its `header_id`.
#[derive(Debug)]
pub(super) struct HeaderIn {
    pub header_id: String,
    pub row: HeaderRow,
}

/// What the indexer reads of `GET /v1/poh`.
#[derive(Deserialize)]
struct PohOut {
    chain_id: String,
}

#[derive(Deserialize)]
struct Page<'a> {
    #[serde(borrow)]
    headers: Vec<&'a RawValue>,
}

impl Node {
    /// The node's chain id, from `GET /v1/poh`.
    pub(super) async fn chain_id(&self) -> Result<String, IndexError> {
        let base = self.http.base();
        let poh: PohOut = self
            .http
            .get("/v1/poh")
            .await
            .map_err(|e| IndexError::Node(format!("{e:#}")))?
            .json()
            .await
            .map_err(|e| IndexError::Node(format!("{base}/v1/poh: {e}")))?;
        Ok(poh.chain_id)
    }

    /// The headers of `chain_id` from `height` on (one page), each checked.
    async fn headers(&self, chain_id: &str, height: u64) -> Result<Vec<HeaderIn>, IndexError> {
        let base = self.http.base();
        let path = format!("/v1/headers?from={height}&limit={HEADER_PAGE}");
        let text = self
            .http
            .get(&path)
            .await
            .map_err(|e| IndexError::Node(format!("{e:#}")))?
            .text()
            .await
            .map_err(|e| IndexError::Node(format!("{base}{path}: {e}")))?;
        let page: Page<'_> = serde_json::from_str(&text)
            .map_err(|e| IndexError::Node(format!("{base}{path}: not headers: {e}")))?;
        let mut out = Vec::with_capacity(page.headers.len());
        for (expected, raw) in (height..).zip(page.headers) {
            let bad = |why: String| IndexError::BadHeader {
                height: expected,
                why,
            };
            let h: HeaderJson = serde_json::from_str(raw.get()).map_err(|e| bad(e.to_string()))?;
            if h.height != expected || h.chain_id != chain_id {
                return Err(bad(format!(
                    "asked for {chain_id} at height {expected}, served {} at {}",
                    h.chain_id, h.height
                )));
            }
            h.to_header().map_err(bad)?;
            let big = |n: u64, what: &str| {
                i64::try_from(n).map_err(|_| bad(format!("{what} {n} does not fit a bigint")))
            };
            out.push(HeaderIn {
                row: HeaderRow {
                    height: big(h.height, "height")?,
                    level: h.level.name().to_string(),
                    poh_start: big(h.poh_start, "poh_start")?,
                    poh_end: big(h.poh_end, "poh_end")?,
                    item_count: big(h.item_count, "item_count")?,
                    timestamp: h.timestamp,
                    json: raw.get().to_string(),
                },
                header_id: h.header_id,
            });
        }
        Ok(out)
    }
}

/// Follows the node's `Subscribe` from `next`, handing each record on in order; resumes
/// after the last one on any failure, and goes on after records the node no longer holds.
pub(super) async fn follow(node: Arc<Node>, mut next: u64, out: mpsc::Sender<Feed>) {
    let mut backoff = Backoff::default();
    loop {
        let request = pb::SubscribeRequest { from_seq: next };
        let opened = node
            .endpoints
            .call(|channel| {
                let request = node.endpoints.request(request);
                async move {
                    PohServiceClient::new(channel)
                        .max_decoding_message_size(8 << 20)
                        .subscribe(request)
                        .await
                        .map(tonic::Response::into_inner)
                }
            })
            .await;
        let status = match opened {
            Ok((mut stream, _)) => loop {
                match stream.message().await {
                    Ok(Some(record)) => {
                        backoff.reset();
                        next = record.poh_seq.saturating_add(1);
                        if out.send(Feed::Record(record)).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => break None,
                    Err(status) => break Some(status),
                }
            },
            Err(CallError::Refused { status, .. }) => Some(status),
            Err(e @ CallError::Unreachable(_)) => {
                tracing::warn!(next_seq = next, error = %e, "cannot reach the node; retrying");
                backoff.wait().await;
                continue;
            }
        };
        match status.as_ref().map(|s| (s, Expired::from_status(s))) {
            Some((_, Some(run))) => {
                tracing::warn!(
                    from_seq = run.from_seq,
                    to_seq = run.to_seq,
                    transactions = run.count,
                    headers = %run.header_ids.join(","),
                    "the node no longer holds these transactions (expired by its TTL); \
                     going on after them"
                );
                next = next.max(run.next_seq());
                if out.send(Feed::Passed(next)).await.is_err() {
                    return;
                }
                continue;
            }
            Some((status, None)) => tracing::warn!(
                next_seq = next,
                code = ?status.code(),
                message = status.message(),
                "the subscription failed; resuming"
            ),
            None => tracing::info!(next_seq = next, "the node ended the subscription; resuming"),
        }
        backoff.wait().await;
    }
}

/// Polls the node's headers of `chain_id` from `height` on, handing each page on in order.
pub(super) async fn poll_headers(
    node: Arc<Node>,
    chain_id: String,
    mut height: u64,
    out: mpsc::Sender<Vec<HeaderIn>>,
) {
    let mut backoff = Backoff::default();
    loop {
        match node.headers(&chain_id, height).await {
            Ok(page) => {
                backoff.reset();
                let full = page.len() == HEADER_PAGE;
                height += page.len() as u64;
                if !page.is_empty() && out.send(page).await.is_err() {
                    return;
                }
                if !full {
                    tokio::time::sleep(node.headers_every).await;
                }
            }
            Err(e) => {
                tracing::warn!(height, error = %e, "cannot read the node's headers; retrying");
                backoff.wait().await;
            }
        }
    }
}
