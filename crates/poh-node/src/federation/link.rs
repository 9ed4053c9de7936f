//! The child's side of the federation link: pushes every sealed header, with the PoH entries
//! it covers, to the parent (`--parent`), in height order, from the height the parent says it
//! expects next. So a child that was cut off, or killed between sealing and pushing, resumes
//! exactly where the parent stands, and the parent gets every height once.
//!
//! The link is a client like every other: it verifies the parent per the node's trust
//! settings and sends the peers' bearer token. A lost link is retried with backoff, for as
//! long as the node runs.

use std::{sync::Arc, time::Duration};

use poh_core::{Entry, Header};
use poh_proto::{
    bounded::MAX_LINK_MESSAGE_BYTES,
    federation::{
        self as fed, ChildMessage, ParentMessage, child_message,
        federation_client::FederationClient, parent_message,
    },
};
use poh_store::Store;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::{
    network::client::{ClientTls, grpc_channel},
    wire::protobuf::sealed_to_pb,
};

/// Headers sent and not yet answered.
const WINDOW: u64 = 4;
/// Entries read from the store at a time.
const PAGE: usize = 4096;
const PAGE_BYTES: usize = 4 << 20;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the link needs of the node.
pub(crate) struct ChildLink {
    pub store: Arc<dyn Store>,
    pub parent: String,
    pub chain_id: String,
    pub hashes_per_tick: u64,
    pub tls: ClientTls,
    pub timeout: Duration,
    /// Headers sealed so far; changes when the sealer stores one.
    pub sealed: watch::Receiver<u64>,
    /// With `--min-replica-acks`: the headers enough replicas hold. A header goes to the
    /// parent only once they hold it, so a promoted replica continues what the parent has.
    pub replicated: Option<watch::Receiver<u64>>,
}

impl ChildLink {
    /// Keeps the link up until `shutdown`.
    pub(crate) async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let result = tokio::select! {
                () = shutdown.cancelled() => return,
                result = self.session() => result,
            };
            if shutdown.is_cancelled() {
                return;
            }
            if let Err(why) = result {
                tracing::warn!(parent = %self.parent, error = %why, retry_in = ?backoff, "federation link down");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One connection: hello, then headers from where the parent stands, as they are sealed.
    async fn session(&mut self) -> Result<(), String> {
        let channel =
            grpc_channel(&self.parent, &self.tls, self.timeout).map_err(|e| e.to_string())?;
        let mut client = FederationClient::new(channel)
            .max_decoding_message_size(MAX_LINK_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_LINK_MESSAGE_BYTES);
        let (out, outbound) = mpsc::channel::<ChildMessage>(WINDOW as usize);
        let hello = fed::Hello {
            chain_id: self.chain_id.clone(),
            hashes_per_tick: self.hashes_per_tick,
        };
        send(&out, child_message::Kind::Hello(hello)).await?;
        let mut request = tonic::Request::new(ReceiverStream::new(outbound));
        if let Some(bearer) = &self.tls.token {
            bearer.authorize(&mut request);
        }
        let mut inbound = client
            .link(request)
            .await
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
            .into_inner();
        let mut next = match next_message(&mut inbound).await? {
            parent_message::Kind::Welcome(w) => w.next_height,
            _ => return Err("the parent did not answer Hello with Welcome".into()),
        };
        tracing::info!(parent = %self.parent, next_height = next, "federation link up");
        let mut unanswered = 0u64;
        loop {
            while unanswered < WINDOW && self.replicated_past(next) {
                let Some(sealed) = self.read(next).await? else {
                    break;
                };
                send(&out, child_message::Kind::Header(sealed)).await?;
                next += 1;
                unanswered += 1;
            }
            tokio::select! {
                answer = next_message(&mut inbound) => {
                    unanswered = unanswered.saturating_sub(1);
                    match answer? {
                        parent_message::Kind::Ack(ack) => self.acked(&ack)?,
                        parent_message::Kind::Fetch(fetch) => {
                            tracing::info!(from_height = fetch.from_height, "the parent fetches headers again");
                            next = next.min(fetch.from_height);
                        }
                        parent_message::Kind::Welcome(_) => return Err("a second Welcome".into()),
                    }
                }
                changed = self.sealed.changed(), if unanswered < WINDOW => {
                    changed.map_err(|_| "the sealer stopped".to_string())?;
                }
                () = replicas_moved(&mut self.replicated), if unanswered < WINDOW => {}
            }
        }
    }

    /// Whether header `height` may go to the parent: enough replicas hold it, when any must.
    fn replicated_past(&self, height: u64) -> bool {
        self.replicated
            .as_ref()
            .is_none_or(|r| *r.borrow() > height)
    }

    fn acked(&self, ack: &fed::HeaderAck) -> Result<(), String> {
        match fed::HeaderResult::try_from(ack.result) {
            Ok(fed::HeaderResult::Accepted | fed::HeaderResult::Duplicate) => {
                tracing::debug!(
                    height = ack.height,
                    recorded_at_seq = ack.recorded_at_seq,
                    "header recorded by the parent"
                );
                Ok(())
            }
            _ => Err(format!(
                "the parent refused header {}: {}",
                ack.height, ack.message
            )),
        }
    }

    /// Header `height` and its entries, from the store, when sealed.
    async fn read(&self, height: u64) -> Result<Option<fed::SealedHeader>, String> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || read_sealed(store.as_ref(), height))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }
}

fn read_sealed(
    store: &dyn Store,
    height: u64,
) -> Result<Option<fed::SealedHeader>, poh_store::StoreError> {
    let Some(header) = store.headers(height, 1)?.into_iter().next() else {
        return Ok(None);
    };
    let entries = covered_entries(store, &header)?;
    Ok(Some(sealed_to_pb(&header, &entries)))
}

/// The entries `header` covers.
pub(crate) fn covered_entries(
    store: &dyn Store,
    header: &Header,
) -> Result<Vec<Entry>, poh_store::StoreError> {
    let mut entries = Vec::new();
    let mut at = header.poh_start;
    while at < header.poh_end {
        let want = (header.poh_end - at).min(PAGE as u64) as usize;
        let page = store.entries(at, want, PAGE_BYTES)?;
        let Some(page) = page.filter(|p| !p.entries.is_empty()) else {
            return Err(poh_store::StoreError::Corrupt(
                "a sealed header's entries are missing",
            ));
        };
        at += page.entries.len() as u64;
        entries.extend(page.entries);
    }
    Ok(entries)
}

/// Resolves when what the replicas hold changes; never without `--min-replica-acks`.
async fn replicas_moved(replicated: &mut Option<watch::Receiver<u64>>) {
    match replicated {
        Some(r) => {
            if r.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

async fn send(out: &mpsc::Sender<ChildMessage>, kind: child_message::Kind) -> Result<(), String> {
    out.send(ChildMessage { kind: Some(kind) })
        .await
        .map_err(|_| "the link closed".to_string())
}

async fn next_message(
    inbound: &mut tonic::Streaming<ParentMessage>,
) -> Result<parent_message::Kind, String> {
    match inbound.message().await {
        Ok(Some(ParentMessage { kind: Some(kind) })) => Ok(kind),
        Ok(Some(_)) => Err("an empty message from the parent".into()),
        Ok(None) => Err("the parent closed the link".into()),
        Err(s) => Err(format!("{:?}: {}", s.code(), s.message())),
    }
}
