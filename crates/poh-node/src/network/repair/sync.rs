//! Catch-up: what each peer stored since this node last synced from it.
//!
//! The sync point of a peer is the `poh_seq` (the peer's) after the last record taken from it,
//! stored under `sync/<address>` once the records before it are durably stored here; so a
//! restart resumes where it stopped, and a record is never skipped. Records arrive in the
//! peer's `poh_seq` order and are queued in the pipeline a chunk at a time, a few chunks in
//! flight: memory holds those few chunks, whatever the gap.
//!
//! A peer whose TTL expired records this node has not taken ends its `Sync` with
//! `OUT_OF_RANGE` naming them ([`Expired`]). Catch-up then stores what came before them, logs
//! the range and the headers that sealed it at warn, counts the transactions in
//! `poh_sync_expired_total`, and moves the sync point past them: the peer will not send them
//! again (until an operator restores them there), and waiting for them would stop every
//! later record too. A range that is not ahead of what was asked is a broken protocol, and
//! moves nothing.

use poh_proto::v1 as pb;
use tokio_stream::StreamExt as _;

use super::{PeerError, Repairer};
use crate::{
    metrics::RepairSource,
    pipeline::{Pending, tx_bytes},
    wire::{expired::Expired, protobuf::tx_from_pb},
};

/// Most transactions stored at once…
const CHUNK: usize = 512;
/// …and most bytes of them.
const CHUNK_BYTES: usize = 4 << 20;
/// Chunks queued in the pipeline at once, so one commit's fsync overlaps the next chunk's
/// preparation; memory holds at most this many chunks.
const IN_FLIGHT: usize = 4;

/// Chunks queued in the pipeline, oldest first, each with the sync point after it.
type Flight = std::collections::VecDeque<(Vec<String>, Pending, u64)>;

impl Repairer {
    /// One catch-up round over every gRPC peer.
    pub(super) async fn sync_round(&self) {
        for (peer, pin) in self.grpc_peers().await {
            match self.sync_from(&peer, pin.as_deref()).await {
                Ok(0) => self.failures.ok(&peer),
                Ok(taken) => {
                    self.failures.ok(&peer);
                    tracing::info!(peer, records = taken, "caught up from a peer");
                }
                Err(e) => self.failures.failed("catch-up", &peer, &e),
            }
        }
    }

    /// Takes everything `peer` stored since its sync point; returns how many records.
    async fn sync_from(&self, peer: &str, pin: Option<&str>) -> Result<u64, PeerError> {
        let key = format!("sync/{peer}");
        let from = {
            let key = key.clone();
            self.read(move |s| s.progress(&key)).await?.unwrap_or(0)
        };
        let mut client = self.client(peer, pin)?;
        let mut next = from;
        let mut taken = 0;
        let mut flight = Flight::new();
        loop {
            let request = pb::SyncRequest {
                from_seq: next,
                limit: self.config.sync_page,
            };
            let call = client.sync(self.clients.request(request));
            let answer = tokio::time::timeout(self.timeout, call).await;
            let mut stream = match answer {
                Ok(Ok(stream)) => stream.into_inner(),
                // A stream that ends before its first record may come as the call's answer.
                Ok(Err(status)) => match Expired::from_status(&status) {
                    Some(run) if run.from_seq >= next => {
                        self.metrics.request(RepairSource::Sync, true);
                        self.land(&key, &mut flight, 0).await?;
                        next = self.pass_expired(&key, peer, &run).await?;
                        continue;
                    }
                    _ => return Err(self.failed(RepairSource::Sync, status.into())),
                },
                Err(_) => {
                    return Err(self.failed(RepairSource::Sync, PeerError::Timeout(self.timeout)));
                }
            };
            let mut in_page = 0u64;
            let mut chunk = Vec::new();
            let mut chunk_bytes = 0;
            let mut expired = None;
            loop {
                let item = tokio::time::timeout(self.timeout, stream.next()).await;
                let record = match item {
                    Ok(Some(Ok(record))) => record,
                    Ok(None) => break,
                    Ok(Some(Err(status))) => match Expired::from_status(&status) {
                        Some(run) if run.from_seq >= next => {
                            expired = Some(run);
                            break;
                        }
                        Some(_) => {
                            return Err(self.failed(
                                RepairSource::Sync,
                                PeerError::Protocol("Sync named expired seqs before from_seq"),
                            ));
                        }
                        None => return Err(self.failed(RepairSource::Sync, status.into())),
                    },
                    Err(_) => {
                        return Err(
                            self.failed(RepairSource::Sync, PeerError::Timeout(self.timeout))
                        );
                    }
                };
                // Sync is ordered by the peer's poh_seq from `from_seq`: anything else would
                // make the sync point skip records.
                if record.poh_seq < next {
                    return Err(self.failed(
                        RepairSource::Sync,
                        PeerError::Protocol("Sync records out of poh_seq order"),
                    ));
                }
                let Some(tx) = record.tx else {
                    return Err(self.failed(
                        RepairSource::Sync,
                        PeerError::Protocol("a Sync record without its transaction"),
                    ));
                };
                let tx = tx_from_pb(tx);
                chunk_bytes += tx_bytes(&tx);
                chunk.push(tx);
                in_page += 1;
                next = record.poh_seq.saturating_add(1);
                if chunk.len() >= CHUNK || chunk_bytes >= CHUNK_BYTES {
                    taken += self
                        .take(&key, &mut flight, std::mem::take(&mut chunk), next)
                        .await?;
                    chunk_bytes = 0;
                }
            }
            self.metrics.request(RepairSource::Sync, true);
            taken += self.take(&key, &mut flight, chunk, next).await?;
            if let Some(run) = expired {
                self.land(&key, &mut flight, 0).await?;
                next = self.pass_expired(&key, peer, &run).await?;
                continue;
            }
            // A short page is the end of what the peer has.
            if in_page < u64::from(self.config.sync_page.max(1)) {
                self.land(&key, &mut flight, 0).await?;
                return Ok(taken);
            }
        }
    }

    /// Moves the sync point past transactions `peer` expired, once everything before them is
    /// stored, saying so; returns the seq to go on from.
    async fn pass_expired(&self, key: &str, peer: &str, run: &Expired) -> Result<u64, PeerError> {
        tracing::warn!(
            peer,
            from_seq = run.from_seq,
            to_seq = run.to_seq,
            transactions = run.count,
            header_ids = %run.header_ids.join(","),
            "the peer no longer has these transactions (expired by its TTL); catch-up goes on \
             after them without them"
        );
        let next = run.next_seq();
        let key = key.to_string();
        self.read(move |s| s.set_progress(&key, next)).await?;
        // Counted once the point moved, so a failed write does not count them twice.
        self.metrics.sync_expired(run.count);
        Ok(next)
    }

    /// Queues a chunk, then lands the oldest ones beyond [`IN_FLIGHT`].
    async fn take(
        &self,
        key: &str,
        flight: &mut Flight,
        chunk: Vec<poh_core::Tx>,
        next: u64,
    ) -> Result<u64, PeerError> {
        let n = chunk.len() as u64;
        if n == 0 {
            return Ok(0);
        }
        let (ids, pending) = self.submit(chunk).await?;
        flight.push_back((ids, pending, next));
        self.land(key, flight, IN_FLIGHT).await?;
        Ok(n)
    }

    /// Waits for queued chunks, oldest first, until at most `keep` remain, moving the sync
    /// point past each once it is durably stored.
    async fn land(&self, key: &str, flight: &mut Flight, keep: usize) -> Result<(), PeerError> {
        let mut landed = None;
        while flight.len() > keep {
            let Some((ids, pending, next)) = flight.pop_front() else {
                break;
            };
            self.settle(RepairSource::Sync, ids, pending).await?;
            landed = Some(next);
        }
        if let Some(next) = landed {
            let key = key.to_string();
            self.read(move |s| s.set_progress(&key, next)).await?;
        }
        Ok(())
    }
}
