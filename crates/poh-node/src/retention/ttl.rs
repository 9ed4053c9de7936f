//! TTL: transactions received longer ago than `ttl.after` leave the hot store, once sealed.
//!
//! A periodic sweep removes, in storage order, the records of transactions that are old enough
//! *and* covered by a durably stored header (and, when fragments are configured, whose
//! batch's fragments are all written, so `poh restore` can bring them back). Unsealed data is
//! never removed; PoH entries, headers and ids stay, so the chain still verifies, a
//! resubmission is still a duplicate, and a read of an expired transaction names the header
//! that sealed it (`410` / `NOT_FOUND`). Each sweep that removed something counts
//! `gc_events_total{type="minor"}`; once `compact_after_bytes` were removed the store is
//! compacted (`type="major"`). Every finished sweep counts `poh_ttl_sweeps_total`.
//!
//! Records put back by `poh restore` keep their `received_at`, which is older than the TTL;
//! the store remembers when they came back, and the sweep gives them one TTL from then
//! (the first sweep runs as the node starts, and would otherwise undo the restore at once).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use metrics::Counter;
use poh_store::{Expiry, Store, StoreError};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::fragments;
use crate::{config::TtlConfig, metrics::Metrics, pipeline::unix_now};

/// The sweep.
pub(crate) struct Sweeper {
    store: Arc<dyn Store>,
    ttl: Duration,
    config: TtlConfig,
    /// Only batches whose fragments are written may expire.
    fragments: bool,
    /// `gc_events_total{type="minor"}` and `{type="major"}`.
    gc_events: [Counter; 2],
    /// `poh_ttl_sweeps_total`.
    sweeps: Counter,
    /// Bytes removed since the last compaction.
    since_compaction: AtomicU64,
}

impl Sweeper {
    /// A sweep for `config`, or `None` when no TTL is set.
    pub(crate) fn new(
        store: Arc<dyn Store>,
        config: &TtlConfig,
        fragments: bool,
        metrics: &Metrics,
    ) -> Option<Self> {
        Some(Self {
            store,
            ttl: config.after?.0,
            config: config.clone(),
            fragments,
            gc_events: metrics.gc_events.clone(),
            sweeps: metrics.ttl_sweeps.clone(),
            since_compaction: AtomicU64::new(0),
        })
    }

    /// Sweeps every `sweep_interval` until `shutdown`.
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let mut ticks = tokio::time::interval(this.config.sweep_interval.0);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let now = unix_now();
            let sweeper = this.clone();
            let Ok(result) = tokio::task::spawn_blocking(move || sweeper.sweep(now)).await else {
                // Ending the task stops the node: a sweep that died is a bug to see.
                tracing::error!("the TTL sweep stopped unexpectedly");
                return;
            };
            if result.is_ok() {
                this.sweeps.increment(1);
            }
            match result {
                Ok(done) if done.removed > 0 => tracing::info!(
                    removed = done.removed,
                    bytes = done.bytes,
                    "expired sealed transactions older than the TTL"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "the TTL sweep failed; retrying next time"),
            }
        }
    }

    /// One sweep as of `now` (Unix seconds): removes what is old enough and sealed, a store
    /// transaction of at most `sweep_batch` records at a time, then compacts when due.
    pub(crate) fn sweep(&self, now: f64) -> Result<Expiry, StoreError> {
        let before = now - self.ttl.as_secs_f64();
        let below = self.expirable_below()?;
        let mut done = Expiry::default();
        if below == 0 {
            return Ok(done);
        }
        let batch = self.config.sweep_batch.max(1);
        loop {
            let pass = self.store.expire(before, below, batch)?;
            done.removed += pass.removed;
            done.bytes += pass.bytes;
            if (pass.removed as usize) < batch {
                break;
            }
        }
        let mut removed_bytes = self.since_compaction.load(Ordering::Relaxed);
        if done.removed > 0 {
            self.gc_events[0].increment(1);
            removed_bytes += done.bytes;
            self.since_compaction
                .store(removed_bytes, Ordering::Relaxed);
        }
        if removed_bytes >= self.config.compact_after_bytes && self.store.compact()? {
            self.gc_events[1].increment(1);
            self.since_compaction.store(0, Ordering::Relaxed);
        }
        Ok(done)
    }

    /// The `poh_seq` below which every item is sealed (and its fragments written, when
    /// configured).
    fn expirable_below(&self) -> Result<u64, StoreError> {
        let sealed = self.store.header_head()?.map_or(0, |head| head.seq);
        if !self.fragments {
            return Ok(sealed);
        }
        let written = match self.store.progress(fragments::PROGRESS_KEY)? {
            None | Some(0) => 0,
            Some(next) => self.store.head_after(next - 1)?.map_or(0, |head| head.seq),
        };
        Ok(sealed.min(written))
    }
}
