//! The replica's side of the copy (`--follow`): one stream from the primary, every batch
//! verified before any of it is stored, the primary's headers checked against the chain's key
//! and stored after the entries they cover, and what is durable acknowledged back.
//!
//! A lost connection is retried with backoff from what is durably stored, so a restart or a
//! reconnection never stores anything twice. What does not verify, or a primary of another
//! chain, stops the copy for good with one log line naming the entry or header and
//! `poh_replica_refused_total`: the replica goes on serving what it holds.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use poh_core::{ChainHead, HeaderVerifier, Level};
use poh_proto::{
    bounded::{MAX_HELLO_BYTES, MAX_LINK_MESSAGE_BYTES},
    replica::{
        Batch, Hello, ReplicaMessage, Stored, replica_client::ReplicaClient, replica_message,
    },
};
use poh_store::Store;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use super::{
    FollowStatus,
    serve::DIVERGED,
    verify::{verify_batch, verify_header},
};
use crate::{
    IngestPipeline,
    federation::link::covered_entries,
    metrics::ReplicaMetrics,
    network::client::{ClientTls, grpc_channel},
    pipeline::JobAnswer,
    shared::SubmitError,
    wire::{
        protobuf::entries_from_pb,
        replica::{CopiedChild, CopiedRecord, child_from_pb, record_from_pb, signed_from_pb},
    },
};

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The most a replica holds of one page's transactions while their entries are still to
/// come (a page's entries record at most a few commits' worth).
const MAX_HELD_BYTES: usize = 256 << 20;

/// What the copy needs of the node.
pub(crate) struct Follower {
    pub primary: String,
    pub tls: ClientTls,
    pub timeout: Duration,
    pub store: Arc<dyn Store>,
    pub pipeline: IngestPipeline,
    pub chain_id: String,
    pub level: Level,
    pub hashes_per_tick: u64,
    /// The chain's public key, when configured; otherwise the stored headers', or the first
    /// copied header's.
    pub chain_key: Option<Vec<u8>>,
    pub status: Arc<FollowStatus>,
    pub metrics: ReplicaMetrics,
    /// Headers stored so far, for readers waiting on new headers (the sealer's on a
    /// primary).
    pub sealed: Arc<watch::Sender<u64>>,
}

/// Copied batches handed to the pipeline at once; one more is verified meanwhile.
const STORING: usize = 2;

/// A copied batch the pipeline is storing.
struct Storing {
    answer: oneshot::Receiver<JobAnswer>,
    /// The entries the replica holds once it is stored.
    entries: u64,
    /// Its entries and transactions, counted once stored.
    copied: (usize, usize),
}

/// What the copy waits for: the oldest batch being stored, or the primary's next message.
enum Next {
    Settled(Result<JobAnswer, oneshot::error::RecvError>),
    Message(Result<Option<Batch>, tonic::Status>),
}

/// The answer of the oldest batch being stored; never, while none is.
async fn next_settled(
    storing: &mut VecDeque<Storing>,
) -> Result<JobAnswer, oneshot::error::RecvError> {
    match storing.front_mut() {
        Some(front) => (&mut front.answer).await,
        None => std::future::pending().await,
    }
}

/// Why a session ended.
enum Stop {
    /// Try again from what is stored.
    Retry(String),
    /// The primary sent what does not verify, or holds another chain: stop copying.
    Refuse(String),
    /// The replica was promoted, or is stopping.
    Done,
}

impl Follower {
    /// Copies until `copying` is cancelled (a promotion, or the node stopping) or a refusal,
    /// then waits for `shutdown`: a replica that stopped copying goes on serving what it
    /// holds.
    pub(crate) async fn run(mut self, copying: CancellationToken, shutdown: CancellationToken) {
        tokio::select! {
            () = copying.cancelled() => {}
            () = self.copy_until_stopped() => {}
        }
        shutdown.cancelled().await;
    }

    async fn copy_until_stopped(&mut self) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.session().await {
                Stop::Done => return,
                Stop::Refuse(why) => {
                    self.metrics.refused.increment(1);
                    self.status.stop(&why);
                    tracing::error!(
                        primary = %self.primary,
                        "stopped copying: {why}; this replica keeps serving what it holds"
                    );
                    return;
                }
                Stop::Retry(why) => {
                    tracing::warn!(primary = %self.primary, error = %why, retry_in = ?backoff, "replica copy interrupted");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One stream: Hello from what is durable, then batches until it ends.
    async fn session(&mut self) -> Stop {
        match self.copy().await {
            Ok(()) => Stop::Done,
            Err(stop) => stop,
        }
    }

    async fn copy(&mut self) -> Result<(), Stop> {
        let mut storing = VecDeque::new();
        let copied = self.copy_with(&mut storing).await;
        // What was handed over lands before the next Hello reads where the stored chain ends.
        for batch in storing {
            let _ = batch.answer.await;
        }
        copied
    }

    async fn copy_with(&mut self, storing: &mut VecDeque<Storing>) -> Result<(), Stop> {
        let retry = |e: &dyn std::fmt::Display| Stop::Retry(e.to_string());
        let channel =
            grpc_channel(&self.primary, &self.tls, self.timeout).map_err(|e| retry(&e))?;
        let mut client = ReplicaClient::new(channel)
            .max_decoding_message_size(MAX_LINK_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_HELLO_BYTES);
        let mut state = self.pipeline.poh().state;
        let mut head = self.head().await?;
        let (out, outbound) = mpsc::channel::<ReplicaMessage>(16);
        let hello = Hello {
            chain_id: self.chain_id.clone(),
            hashes_per_tick: self.hashes_per_tick,
            entries: state.entries,
            last_hash: state.hash.0.to_vec(),
            headers: head.height,
            seq: state.mixins,
        };
        send(&out, replica_message::Kind::Hello(hello)).await?;
        let mut request = tonic::Request::new(ReceiverStream::new(outbound));
        if let Some(bearer) = &self.tls.token {
            bearer.authorize(&mut request);
        }
        let mut inbound = match client.follow(request).await {
            Ok(response) => response.into_inner(),
            Err(s) if s.metadata().get(DIVERGED).is_some() && state.entries > 0 => {
                let at = self.divergence(&mut client, state.entries).await?;
                return Err(Stop::Refuse(format!(
                    "this replica's chain and the primary's diverge at entry {at}: entries \
                     before it are the same, entry {at} differs (is this the primary it was \
                     copied from?)"
                )));
            }
            Err(s) if s.code() == tonic::Code::FailedPrecondition => {
                return Err(Stop::Refuse(s.message().to_string()));
            }
            Err(s) => return Err(Stop::Retry(format!("{:?}: {}", s.code(), s.message()))),
        };
        tracing::info!(primary = %self.primary, entries = state.entries, "copying from the primary");
        let mut records: Vec<CopiedRecord> = Vec::new();
        let mut children: Vec<CopiedChild> = Vec::new();
        let mut held = 0usize;
        // `storing`: batches handed to the pipeline and not yet durable, oldest first; the
        // next one is verified while they are stored.
        let mut durable = state.entries;
        loop {
            let next = tokio::select! {
                settled = next_settled(storing) => Next::Settled(settled),
                message = inbound.message() => Next::Message(message),
            };
            let batch: Batch = match next {
                Next::Settled(answer) => {
                    durable = self.settled(storing, answer)?;
                    self.acknowledge(&out, durable, head.height).await?;
                    continue;
                }
                Next::Message(message) => message
                    .map_err(|s| match s.code() {
                        // What the primary sent does not decode within the copy's bounds.
                        tonic::Code::InvalidArgument => Stop::Refuse(format!(
                            "the primary sent a batch that does not decode: {}",
                            s.message()
                        )),
                        code => Stop::Retry(format!("{code:?}: {}", s.message())),
                    })?
                    .ok_or_else(|| Stop::Retry("the primary ended the stream".into()))?,
            };
            if !self.pipeline.is_following() {
                return Ok(());
            }
            self.status
                .saw(batch.primary_entries, batch.primary_seq, durable);
            self.metrics
                .lag_entries
                .set(batch.primary_entries.saturating_sub(durable) as f64);
            for record in batch.records {
                held += record.tx.as_ref().map_or(0, |tx| tx.payload.len() + 256);
                records.push(record_from_pb(record).map_err(Stop::Refuse)?);
            }
            for child in batch.children {
                held += 8 << 10;
                children.push(child_from_pb(child).map_err(Stop::Refuse)?);
            }
            if held > MAX_HELD_BYTES {
                return Err(Stop::Refuse(format!(
                    "the primary sent more than {MAX_HELD_BYTES} bytes of transactions ahead \
                     of their entries"
                )));
            }
            let entries = entries_from_pb(batch.entries).map_err(Stop::Refuse)?;
            if !entries.is_empty() {
                let (first, hpt, at) = (batch.first_entry, self.hashes_per_tick, state);
                let (r, c) = (std::mem::take(&mut records), std::mem::take(&mut children));
                let verified = tokio::task::spawn_blocking(move || {
                    verify_batch(&at, hpt, first, entries, r, c)
                })
                .await
                .map_err(|e| retry(&e))?
                .map_err(Stop::Refuse)?;
                let copied = (verified.entries.len(), verified.records.len());
                state = verified.state;
                let answer = self
                    .pipeline
                    .copy(
                        verified.entries,
                        verified.records,
                        verified.expired,
                        verified.children,
                        held,
                    )
                    .await
                    .map_err(|e| self.refused(e))?;
                held = 0;
                storing.push_back(Storing {
                    answer,
                    entries: state.entries,
                    copied,
                });
                while storing.len() > STORING {
                    let answer = next_settled(storing).await;
                    durable = self.settled(storing, answer)?;
                }
            }
            if !batch.headers.is_empty() {
                // A header is checked against its stored entries.
                while !storing.is_empty() {
                    let answer = next_settled(storing).await;
                    durable = self.settled(storing, answer)?;
                }
                for signed in &batch.headers {
                    let header = signed_from_pb(signed.clone()).map_err(Stop::Refuse)?;
                    head = self.store_header(header, head).await?;
                }
                self.acknowledge(&out, durable, head.height).await?;
            }
        }
    }

    /// The oldest batch being stored was answered: the entries durable now.
    fn settled(
        &self,
        storing: &mut VecDeque<Storing>,
        answer: Result<JobAnswer, oneshot::error::RecvError>,
    ) -> Result<u64, Stop> {
        let Some(done) = storing.pop_front() else {
            return Err(Stop::Retry("no batch was being stored".into()));
        };
        match answer {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(self.refused(e)),
            Err(_) => return Err(self.refused(SubmitError::ShuttingDown)),
        }
        self.metrics.copied_entries.increment(done.copied.0 as u64);
        self.metrics.copied_records.increment(done.copied.1 as u64);
        self.status.held(done.entries);
        let (primary_entries, _) = self.status.primary();
        self.metrics
            .lag_entries
            .set(primary_entries.saturating_sub(done.entries) as f64);
        Ok(done.entries)
    }

    /// Tells the primary what is durable here: `entries`, and the headers below `headers`.
    async fn acknowledge(
        &self,
        out: &mpsc::Sender<ReplicaMessage>,
        entries: u64,
        headers: u64,
    ) -> Result<(), Stop> {
        let stored = Stored { entries, headers };
        send(out, replica_message::Kind::Stored(stored)).await
    }

    /// Why the pipeline did not store a batch, as the copy sees it: a promotion or a stop
    /// ends it, anything else (a full disk) is tried again from what is stored.
    fn refused(&self, e: SubmitError) -> Stop {
        match e {
            SubmitError::ShuttingDown if !self.pipeline.is_following() => Stop::Done,
            e => Stop::Retry(e.to_string()),
        }
    }

    /// The first entry where this replica's chain and the primary's differ, knowing they
    /// differ before `held`: a binary search, asking the primary whether it holds each
    /// probed entry's hash at the same index.
    async fn divergence(
        &self,
        client: &mut ReplicaClient<tonic::transport::Channel>,
        held: u64,
    ) -> Result<u64, Stop> {
        // Entries below `same` agree; the chain up to `differs` does not.
        let (mut same, mut differs) = (0, held);
        while differs - same > 1 {
            let mid = same + (differs - same) / 2;
            let store = self.store.clone();
            let hash = tokio::task::spawn_blocking(move || store.entries(mid - 1, 1, 1 << 20))
                .await
                .map_err(|e| Stop::Retry(e.to_string()))?
                .map_err(|e| Stop::Retry(e.to_string()))?
                .and_then(|page| page.entries.into_iter().next())
                .ok_or_else(|| Stop::Retry(format!("stored entry {} is missing", mid - 1)))?
                .hash;
            let hello = Hello {
                chain_id: self.chain_id.clone(),
                hashes_per_tick: self.hashes_per_tick,
                entries: mid,
                last_hash: hash.0.to_vec(),
                headers: 0,
                seq: 0,
            };
            let probe = ReplicaMessage {
                kind: Some(replica_message::Kind::Hello(hello)),
            };
            let mut request = tonic::Request::new(tokio_stream::iter([probe]));
            if let Some(bearer) = &self.tls.token {
                bearer.authorize(&mut request);
            }
            match client.follow(request).await {
                Ok(_) => same = mid,
                Err(s) if s.metadata().get(DIVERGED).is_some() => differs = mid,
                Err(s) => return Err(Stop::Retry(format!("{:?}: {}", s.code(), s.message()))),
            }
        }
        Ok(same)
    }

    /// What the next copied header must continue: the stored headers' head.
    async fn head(&self) -> Result<ChainHead, Stop> {
        let store = self.store.clone();
        let chain_id = self.chain_id.clone();
        let head = tokio::task::spawn_blocking(move || store.header_head())
            .await
            .map_err(|e| Stop::Retry(e.to_string()))?
            .map_err(|e| Stop::Retry(e.to_string()))?;
        Ok(head.unwrap_or_else(|| ChainHead::genesis(&chain_id)))
    }

    /// Verifies one of the primary's headers against the stored entries it covers, and
    /// stores it.
    async fn store_header(
        &mut self,
        header: poh_core::Header,
        head: ChainHead,
    ) -> Result<ChainHead, Stop> {
        let key = match &self.chain_key {
            Some(key) => key.clone(),
            None => {
                let key = self.stored_key().await?.unwrap_or_else(|| {
                    tracing::info!(
                        height = header.height,
                        "taking the chain's key from the first copied header"
                    );
                    header.public_key.clone()
                });
                self.chain_key = Some(key.clone());
                key
            }
        };
        let verifier = HeaderVerifier {
            chain_id: self.chain_id.clone(),
            level: self.level,
            public_key: key,
            hashes_per_tick: self.hashes_per_tick,
        };
        let store = self.store.clone();
        let height = header.height;
        let stored = tokio::task::spawn_blocking(move || {
            let entries =
                covered_entries(store.as_ref(), &header).map_err(|e| Stop::Retry(e.to_string()))?;
            let next = verify_header(&verifier, &head, &header, &entries).map_err(Stop::Refuse)?;
            store
                .put_header(&header, &next)
                .map_err(|e| Stop::Retry(e.to_string()))?;
            Ok::<_, Stop>(next)
        })
        .await
        .map_err(|e| Stop::Retry(e.to_string()))??;
        self.sealed.send_replace(height + 1);
        Ok(stored)
    }

    /// The key of the last stored header, if any.
    async fn stored_key(&self) -> Result<Option<Vec<u8>>, Stop> {
        let store = self.store.clone();
        let head = self.head().await?;
        if head.height == 0 {
            return Ok(None);
        }
        tokio::task::spawn_blocking(move || store.headers(head.height - 1, 1))
            .await
            .map_err(|e| Stop::Retry(e.to_string()))?
            .map_err(|e| Stop::Retry(e.to_string()))
            .map(|headers| headers.into_iter().next().map(|h| h.public_key))
    }
}

async fn send(out: &mpsc::Sender<ReplicaMessage>, kind: replica_message::Kind) -> Result<(), Stop> {
    out.send(ReplicaMessage { kind: Some(kind) })
        .await
        .map_err(|_| Stop::Retry("the stream to the primary closed".into()))
}
