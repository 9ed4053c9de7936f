//! TTL: transactions received longer ago than `ttl.after` leave the hot store, once sealed.
//!
//! A periodic sweep removes, in storage order, the records of transactions that are old enough
//! *and* covered by a durably stored header (and, when fragments are configured, whose
//! batch's fragments are all written, so `poh restore` can bring them back). Unsealed data is
//! never removed; PoH entries, headers and ids stay, so the chain still verifies, a
//! resubmission is still a duplicate, and a read of an expired transaction names the header
//! that sealed it (`410` / `NOT_FOUND`). Each sweep that removed something counts
//! `gc_events_total{type="minor"}`; it removes `sweep_batch` records per store transaction,
//! so a commit waits at most one such transaction. The pages it frees are reused by later
//! commits, so the file stops growing; only a compaction gives them back to the file system,
//! and a compaction holds the whole database (every commit, read and subscriber) for as long
//! as it runs (12 s for a 2.3 GB file, `poh bench gc`). So it never runs while the node
//! serves: the bytes removed are counted durably, and once `compact_after_bytes` were removed
//! the node compacts at its next start, before it serves (`type="major"`). Every finished
//! sweep counts `poh_ttl_sweeps_total`.
//!
//! Records put back by `poh restore` keep their `received_at`, which is older than the TTL;
//! the store remembers when they came back, and the sweep gives them one TTL from then
//! (the first sweep runs as the node starts, and would otherwise undo the restore at once).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use metrics::Counter;
use poh_store::{Expiry, Store, StoreError};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::fragments;
use crate::{config::TtlConfig, metrics::Metrics, shared::unix_now};

/// The sweep.
pub(crate) struct Sweeper {
    store: Arc<dyn Store>,
    ttl: Duration,
    config: TtlConfig,
    /// Only batches whose fragments are written may expire.
    fragments: bool,
    /// `gc_events_total{type="minor"}`.
    minor: Counter,
    /// `poh_ttl_sweeps_total`.
    sweeps: Counter,
}

/// Removes what [`Store::expire`] removes (received before `received_before`, below
/// `below_seq`), `batch` records per store transaction, until none is left; what it removed.
///
/// The store has one writer at a time and does not queue them fairly: a loop of expiry
/// transactions back to back kept the pipeline's commits out for its whole run (3 s for
/// 450,000 records, `poh bench gc`), so after each transaction it pauses as long as that took
/// (at least a millisecond), and a commit waits for one transaction at most.
pub fn expire_paced(
    store: &dyn Store,
    received_before: f64,
    below_seq: u64,
    batch: usize,
) -> Result<Expiry, StoreError> {
    let batch = batch.max(1);
    let mut done = Expiry::default();
    loop {
        let started = Instant::now();
        let pass = store.expire(received_before, below_seq, batch)?;
        done.removed += pass.removed;
        done.bytes += pass.bytes;
        if (pass.removed as usize) < batch {
            return Ok(done);
        }
        std::thread::sleep(started.elapsed().max(Duration::from_millis(1)));
    }
}

/// The progress marker counting the bytes removed since the last compaction.
const REMOVED_KEY: &str = "gc.removed_bytes";

/// Compacts `store` when `compact_after_bytes` were removed since the last compaction, for a
/// node's start, before it serves; whether it did. A failure (a full disk, say) is logged and
/// leaves it for the next start.
pub(crate) fn compact_if_due(store: &dyn Store, config: &TtlConfig) -> bool {
    let compact = || -> Result<bool, StoreError> {
        let removed = store.progress(REMOVED_KEY)?.unwrap_or(0);
        if removed == 0 || removed < config.compact_after_bytes {
            return Ok(false);
        }
        let started = Instant::now();
        store.compact()?;
        store.set_progress(REMOVED_KEY, 0)?;
        tracing::info!(took = ?started.elapsed(), removed, "compacted the store");
        Ok(true)
    };
    compact().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot compact the store now; trying at the next start");
        false
    })
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
            minor: metrics.gc_events[0].clone(),
            sweeps: metrics.ttl_sweeps.clone(),
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
    /// transaction of at most `sweep_batch` records at a time, and counts the bytes removed
    /// towards the next compaction.
    pub(crate) fn sweep(&self, now: f64) -> Result<Expiry, StoreError> {
        let before = now - self.ttl.as_secs_f64();
        let below = self.expirable_below()?;
        if below == 0 {
            return Ok(Expiry::default());
        }
        let done = expire_paced(self.store.as_ref(), before, below, self.config.sweep_batch)?;
        if done.removed > 0 {
            self.minor.increment(1);
            let removed = self.store.progress(REMOVED_KEY)?.unwrap_or(0);
            self.store
                .set_progress(REMOVED_KEY, removed.saturating_add(done.bytes))?;
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
