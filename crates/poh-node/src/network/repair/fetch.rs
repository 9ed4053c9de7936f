//! Repair: the parents that `PENDING` transactions wait for, asked of each peer in turn.
//!
//! A peer answers a `Repair` call with the records it has, in the order asked, bounded by
//! bytes; the ids after the last one answered are asked again, until an answer is empty. What
//! one peer lacks is asked of the next. A record is taken only when its id was asked for and
//! is still wanted, and then only if the pipeline accepts it like any input: a peer cannot
//! slip in a transaction nobody waits for, nor one that fails validation or its signature.

use std::collections::BTreeSet;

use poh_proto::v1 as pb;

use super::{PeerError, Repairer};
use crate::{
    metrics::{RecordResult, RepairSource},
    wire::protobuf::tx_from_pb,
};

impl Repairer {
    /// One repair round: the missing parents, at most `repair_batch` of them.
    pub(super) async fn repair_round(&self) {
        let batch = self.config.repair_batch;
        // Round by round through every missing parent, so ids no peer has never keep the
        // rest from being asked for.
        let after = self.cursor().clone();
        let listed = self.read(move |s| s.missing_parents(&after, batch)).await;
        if let Ok(ids) = &listed {
            *self.cursor() = match ids.len() < batch {
                true => String::new(),
                false => ids.last().cloned().unwrap_or_default(),
            };
        }
        let wanted = match listed {
            Ok(ids) if ids.is_empty() => return,
            Ok(ids) => ids.into_iter().collect::<BTreeSet<_>>(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the missing parents");
                return;
            }
        };
        let asked = wanted.len();
        let mut wanted = wanted;
        for (peer, pin) in self.grpc_peers().await {
            if wanted.is_empty() {
                break;
            }
            match self.repair_from(&peer, pin.as_deref(), &mut wanted).await {
                Ok(()) => self.failures.ok(&peer),
                Err(e) => self.failures.failed("repair", &peer, &e),
            }
        }
        let found = asked - wanted.len();
        if found > 0 {
            tracing::info!(found, missing = wanted.len(), "repaired missing parents");
        }
    }

    fn cursor(&self) -> std::sync::MutexGuard<'_, String> {
        self.repair_cursor.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks `peer` for every id in `wanted`, removing those it supplied.
    async fn repair_from(
        &self,
        peer: &str,
        pin: Option<&str>,
        wanted: &mut BTreeSet<String>,
    ) -> Result<(), PeerError> {
        let mut client = self.client(peer, pin)?;
        let mut ask: Vec<String> = wanted.iter().cloned().collect();
        while !ask.is_empty() {
            let request = pb::RepairRequest {
                tx_ids: ask.clone(),
            };
            let call = client.repair(self.clients.request(request));
            let records = match tokio::time::timeout(self.timeout, call).await {
                Ok(Ok(answer)) => answer.into_inner().records,
                Ok(Err(status)) => return Err(self.failed(RepairSource::Repair, status.into())),
                Err(_) => {
                    return Err(self.failed(RepairSource::Repair, PeerError::Timeout(self.timeout)));
                }
            };
            self.metrics.request(RepairSource::Repair, true);
            if records.is_empty() {
                return Ok(());
            }
            // Where the answer stopped: the ids after the last one answered are asked again.
            let mut last = None;
            let mut txs = Vec::with_capacity(records.len());
            for record in records {
                let Some(tx) = record.tx else {
                    self.metrics
                        .records(RepairSource::Repair, RecordResult::Refused, 1);
                    continue;
                };
                let Some(at) = ask.iter().position(|id| *id == tx.tx_id) else {
                    self.metrics
                        .records(RepairSource::Repair, RecordResult::Refused, 1);
                    tracing::warn!(peer, tx_id = %tx.tx_id, "a peer answered repair with an id not asked for");
                    continue;
                };
                last = Some(last.map_or(at, |l: usize| l.max(at)));
                if wanted.contains(&tx.tx_id) {
                    txs.push(tx_from_pb(tx));
                }
            }
            if !txs.is_empty() {
                for id in self.store(RepairSource::Repair, txs).await? {
                    wanted.remove(&id);
                }
            }
            match last {
                Some(at) => {
                    ask.drain(..=at);
                }
                // Nothing it sent was asked for: ask no more of this peer.
                None => {
                    return Err(PeerError::Protocol("a Repair answer with no id asked for"));
                }
            }
        }
        Ok(())
    }
}
