//! The primary's side of the copy: `poh.replica.v1.Replica/Follow`, served by the gRPC
//! router on every node (a replica can be the primary of another).
//!
//! A replica says where its copy ends; the primary checks that this is a point of its own
//! chain (same chain, same entry hash), then streams from its store what is durable after it,
//! in pages, and each new durable entry and header as it comes. It reads the store, never the
//! pipeline's memory, and holds at most [`QUEUE`] messages per replica: a slow replica slows
//! its own stream and nothing else.

use std::{pin::Pin, sync::Arc, time::Duration};

use poh_core::{Hash, genesis};
use poh_proto::{
    bounded::{MAX_BATCH_HEADERS, MAX_BATCH_NAMES, MAX_HELLO_BYTES, MAX_LINK_MESSAGE_BYTES},
    replica::{
        Batch, Hello, ReplicaMessage, replica_message,
        replica_server::{Replica, ReplicaServer},
    },
};
use poh_store::{Store, StoreError};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use super::{Held, Replicas};
use crate::{
    IngestPipeline,
    pipeline::tx_bytes,
    shared::read_store,
    wire::{
        protobuf::entries_to_pb,
        replica::{child_to_pb, record_to_pb, signed_to_pb},
    },
};

/// Messages queued for one replica.
const QUEUE: usize = 2;
/// Entries read at a time, and their bytes.
const PAGE_ENTRIES: usize = 4096;
const PAGE_BYTES: usize = 4 << 20;
/// Bytes of transactions and child headers per message; more go ahead in messages of their
/// own, so the largest entry still fits.
const CHUNK_BYTES: usize = 4 << 20;
/// Bytes of transactions one page of entries carries (and a replica holds until they come):
/// past it, the page ends with the entry at hand. One entry holds at most a commit, which the
/// primary's admission budget bounds.
const PAGE_RECORD_BYTES: usize = 64 << 20;
/// Transactions read from the store at a time.
const RECORDS_PAGE: usize = 4096;
/// How often a caught-up replica hears where the primary stands.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long a replica may take to say Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Replicas streaming at once.
const MAX_REPLICAS: usize = 16;
/// The metadata key of a refusal because the replica's chain is not this one's: the
/// replica's entry count it was refused at.
pub(crate) const DIVERGED: &str = "poh-diverged";

/// What the service uses of the node, handed down when the node is wired.
pub(crate) struct CopyParts {
    pub store: Arc<dyn Store>,
    pub pipeline: IngestPipeline,
    pub chain_id: String,
    pub hashes_per_tick: u64,
    /// Headers sealed so far.
    pub sealed: watch::Receiver<u64>,
    pub replicas: Arc<Replicas>,
    pub shutdown: CancellationToken,
}

/// The `Replica` service.
pub(crate) struct Primary {
    parts: Arc<CopyParts>,
    streams: Arc<Semaphore>,
}

type BatchStream = Pin<Box<dyn Stream<Item = Result<Batch, Status>> + Send>>;

impl Primary {
    pub(crate) fn new(parts: CopyParts) -> Self {
        Self {
            parts: Arc::new(parts),
            streams: Arc::new(Semaphore::new(MAX_REPLICAS)),
        }
    }

    /// The tonic service; a replica's own messages are small, the batches up to the link's
    /// message size.
    pub(crate) fn into_server(self) -> ReplicaServer<Self> {
        ReplicaServer::new(self)
            .max_decoding_message_size(MAX_HELLO_BYTES)
            .max_encoding_message_size(MAX_LINK_MESSAGE_BYTES)
    }

    /// Where the replica's copy ends, if it is a point of this chain: the entry and seq to
    /// send from.
    async fn check(&self, hello: &Hello) -> Result<(), Status> {
        let parts = &self.parts;
        if hello.chain_id != parts.chain_id || hello.hashes_per_tick != parts.hashes_per_tick {
            return Err(Status::failed_precondition(format!(
                "this node holds chain {:?} at {} hashes per tick, not {:?} at {}; follow a \
                 primary of the replica's own chain",
                parts.chain_id, parts.hashes_per_tick, hello.chain_id, hello.hashes_per_tick
            )));
        }
        let durable = parts.pipeline.poh().state;
        if hello.entries > durable.entries {
            return Err(diverged(
                format!(
                    "the replica holds {} entries, this node {}: its chain is not this node's",
                    hello.entries, durable.entries
                ),
                hello.entries,
            ));
        }
        let ours = match hello.entries {
            0 => genesis(&parts.chain_id),
            n => {
                let page = read_store(&parts.store, move |s| s.entries(n - 1, 1, 1 << 20))
                    .await
                    .map_err(|e| Status::internal(e.to_string()))?;
                page.and_then(|p| p.entries.into_iter().next())
                    .map(|e| e.hash)
                    .ok_or_else(|| Status::internal("a durable entry is missing"))?
            }
        };
        if Hash::from_slice(&hello.last_hash) != Some(ours) {
            return Err(diverged(
                format!(
                    "the replica's chain differs from this node's at or before entry {}",
                    hello.entries.saturating_sub(1)
                ),
                hello.entries,
            ));
        }
        Ok(())
    }
}

/// A refusal because the replica's chain is not a prefix of this one: marked, so the replica
/// looks for the first entry that differs.
fn diverged(message: String, entries: u64) -> Status {
    let mut status = Status::failed_precondition(message);
    status
        .metadata_mut()
        .insert(DIVERGED, tonic::metadata::MetadataValue::from(entries));
    status
}

#[tonic::async_trait]
impl Replica for Primary {
    type FollowStream = BatchStream;

    async fn follow(
        &self,
        request: Request<Streaming<ReplicaMessage>>,
    ) -> Result<Response<BatchStream>, Status> {
        let permit = self.streams.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!("this node serves {MAX_REPLICAS} replicas already"))
        })?;
        let mut inbound = request.into_inner();
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, inbound.message()).await {
            Ok(Ok(Some(ReplicaMessage {
                kind: Some(replica_message::Kind::Hello(hello)),
            }))) => hello,
            Ok(Err(status)) => return Err(status),
            _ => {
                return Err(Status::invalid_argument(
                    "a replica opens its stream with Hello",
                ));
            }
        };
        self.check(&hello).await?;
        let (out, batches) = mpsc::channel(QUEUE);
        let done = self.parts.shutdown.child_token();
        let id = self.parts.replicas.join(hello.entries, hello.headers);
        let (replicas, acked) = (self.parts.replicas.clone(), done.clone());
        tokio::spawn(async move {
            // The replica's acknowledgements; its stream ending ends the copy.
            loop {
                match inbound.message().await {
                    Ok(Some(ReplicaMessage {
                        kind: Some(replica_message::Kind::Stored(stored)),
                    })) => replicas.stored(
                        id,
                        Held {
                            entries: stored.entries,
                            headers: stored.headers,
                        },
                    ),
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            replicas.leave(id);
            acked.cancel();
        });
        let cursor = Cursor {
            entry: hello.entries,
            seq: hello.seq,
            height: hello.headers,
        };
        let parts = self.parts.clone();
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                () = done.cancelled() => {}
                () = stream(parts, cursor, out.clone()) => {}
            }
            done.cancel();
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(batches))))
    }
}

/// What the replica holds after everything sent so far.
#[derive(Clone, Copy, Debug)]
struct Cursor {
    entry: u64,
    seq: u64,
    height: u64,
}

/// Sends what is durable after `cursor`, then each new entry and header as it comes, until
/// the replica is gone.
async fn stream(
    parts: Arc<CopyParts>,
    mut cursor: Cursor,
    out: mpsc::Sender<Result<Batch, Status>>,
) {
    let mut entries = parts.pipeline.durable_entries();
    let mut sealed = parts.sealed.clone();
    loop {
        entries.borrow_and_update();
        sealed.borrow_and_update();
        let durable = parts.pipeline.poh().state;
        let read = {
            let store = parts.store.clone();
            tokio::task::spawn_blocking(move || read_batches(store.as_ref(), cursor, durable)).await
        };
        let (messages, next) = match read {
            Ok(Ok(read)) => read,
            Ok(Err(e)) => {
                let _ = out.send(Err(Status::internal(e.to_string()))).await;
                return;
            }
            Err(_) => return,
        };
        let moved = next.entry != cursor.entry || next.height != cursor.height;
        cursor = next;
        for message in messages {
            if out.send(Ok(message)).await.is_err() {
                return;
            }
        }
        if moved {
            continue;
        }
        tokio::select! {
            changed = entries.changed() => if changed.is_err() { return },
            changed = sealed.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(HEARTBEAT) => {}
        }
    }
}

/// The messages that take a replica from `cursor` to `durable` (a page at a time): the
/// transactions and child headers the entries recorded, in chunks, then the entries with
/// the last chunk and the headers they complete. Without anything new, one message that
/// says where the primary stands.
fn read_batches(
    store: &dyn Store,
    cursor: Cursor,
    durable: poh_core::PohState,
) -> Result<(Vec<Batch>, Cursor), StoreError> {
    let stands = |first_entry| Batch {
        first_entry,
        primary_entries: durable.entries,
        primary_seq: durable.mixins,
        ..Batch::default()
    };
    let mut next = cursor;
    let mut messages = Vec::new();
    let mut last = stands(cursor.entry);
    if cursor.entry < durable.entries {
        let limit = PAGE_ENTRIES.min((durable.entries - cursor.entry) as usize);
        let mut entries = store
            .entries(cursor.entry, limit, PAGE_BYTES)?
            .map(|page| page.entries)
            .unwrap_or_default();
        // Where each entry's items end.
        let ends: Vec<u64> = (entries.iter())
            .scan(cursor.seq, |seq, e| {
                *seq += e.mixins.len() as u64;
                Some(*seq)
            })
            .collect();
        let mut end = ends.last().copied().unwrap_or(cursor.seq);
        let mut chunk = stands(cursor.entry);
        let (mut bytes, mut names, mut page_bytes) = (0, 0, 0);
        let mut from = cursor.seq;
        'records: while from < end {
            let page = store.copy_from_seq(from, RECORDS_PAGE, CHUNK_BYTES)?;
            if page.is_empty() {
                break;
            }
            for (record, expired) in page {
                let seq = record.poh_seq;
                if seq >= end {
                    break 'records;
                }
                from = seq + 1;
                let size = tx_bytes(&record.tx) + 64;
                (bytes, page_bytes) = (bytes + size, page_bytes + size);
                names += record.tx.parent_ids.len() + record.dag_parents.len();
                chunk.records.push(record_to_pb(record, expired));
                if bytes >= CHUNK_BYTES
                    || names >= MAX_BATCH_NAMES / 2
                    || chunk.records.len() >= RECORDS_PAGE * 4
                {
                    messages.push(std::mem::replace(&mut chunk, stands(cursor.entry)));
                    (bytes, names) = (0, 0);
                }
                // What the replica holds until the entries come stays bounded: the page
                // ends with the entry that holds this record.
                if page_bytes >= PAGE_RECORD_BYTES && end == ends[ends.len() - 1] {
                    let last = ends.partition_point(|&e| e <= seq);
                    entries.truncate(last + 1);
                    end = ends[last];
                }
            }
        }
        for child in store.children_recorded(cursor.seq..end)? {
            bytes += child.header.bytes().len() + child.header.signature.len() + 32;
            chunk.children.push(child_to_pb(&child));
            if bytes >= CHUNK_BYTES {
                messages.push(std::mem::replace(&mut chunk, stands(cursor.entry)));
                bytes = 0;
            }
        }
        next.entry += entries.len() as u64;
        next.seq = end;
        chunk.entries = entries_to_pb(&entries);
        last = chunk;
    }
    // The primary's own headers, once the replica holds every entry they cover.
    for header in store.headers(cursor.height, MAX_BATCH_HEADERS)? {
        if header.poh_end > next.entry {
            break;
        }
        last.headers.push(signed_to_pb(&header));
        next.height = header.height + 1;
    }
    messages.push(last);
    Ok((messages, next))
}
