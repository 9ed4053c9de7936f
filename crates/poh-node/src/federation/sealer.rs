//! The sealer: a task that gathers the durably stored PoH entries as they land and seals a
//! header over them at an interval that adapts to the load.
//!
//! **The interval.** A header is due when
//! `elapsed ≥ max_batch_interval`, or when `elapsed ≥ min_batch_interval` and at least
//! `target_items` items wait. So under a steady load of `r` items per second the interval is
//! `clamp(target_items / r, min_batch_interval, max_batch_interval)`: shorter as the load
//! grows, never outside the bounds, and an idle node seals a header (of ticks only,
//! `item_count` 0) every `max_batch_interval`. The sealer looks every quarter of the minimum
//! interval (between 10 ms and 250 ms), which is how late a due header can be.
//!
//! Only durable entries are sealed: a header is signed over entries that survive a crash,
//! and it is stored durably before anyone sees it, so a `SEALED` answer is never taken back.

use std::{mem, sync::Arc, time::Duration};

use poh_core::{Batch, ChainHead, Level, SigningKey};
use poh_proto::bounded;
use poh_store::{Store, StoreError};
use tokio::{sync::watch, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::{
    NodeError, config::FederationConfig, metrics::FederationMetrics, pipeline::IngestPipeline,
    shared::unix_now,
};

/// Most entries one header covers, so that sealing (and a verifier) holds a bounded batch.
/// Far above what any interval gathers (160 ticks a second plus one entry per commit).
const MAX_HEADER_ENTRIES: u64 = bounded::MAX_HEADER_ENTRIES as u64;
/// Most items one header covers: with its entries, the header fits one link message, so
/// the parent can always take it.
const MAX_HEADER_ITEMS: usize = bounded::MAX_HEADER_ITEMS;
/// Entries read from the store at a time.
const PAGE: usize = 1024;
const PAGE_BYTES: usize = 4 << 20;

/// When a header is due (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Schedule {
    pub min: Duration,
    pub max: Duration,
    pub target_items: u64,
}

impl Schedule {
    pub(crate) fn new(config: &FederationConfig) -> Self {
        Self {
            min: Duration::from_secs_f64(config.min_batch_interval),
            max: Duration::from_secs_f64(config.max_batch_interval),
            target_items: config.target_items,
        }
    }

    /// Whether a header is due `elapsed` after the last one, with `items` waiting; `full`
    /// when the batch is as large as a header may be.
    pub(crate) fn due(&self, elapsed: Duration, items: u64, full: bool) -> bool {
        elapsed >= self.max || (elapsed >= self.min && (items >= self.target_items || full))
    }

    /// How often the sealer looks at the chain.
    pub(crate) fn poll(&self) -> Duration {
        (self.min / 4).clamp(Duration::from_millis(10), Duration::from_millis(250))
    }
}

/// What the sealer needs of the node.
pub(crate) struct Sealer {
    pub store: Arc<dyn Store>,
    pub pipeline: IngestPipeline,
    pub chain_id: String,
    pub level: Level,
    pub key: Arc<SigningKey>,
    pub hashes_per_tick: u64,
    pub schedule: Schedule,
    pub metrics: FederationMetrics,
    /// Headers sealed so far, for whoever waits for the next one (the parent link).
    pub sealed: Arc<watch::Sender<u64>>,
}

impl Sealer {
    /// Seals headers until `shutdown`; a storage failure ends it with the error.
    pub(crate) async fn run(self, shutdown: CancellationToken) -> Result<(), NodeError> {
        let store = self.store.clone();
        let head = blocking(move || Ok(store.header_head()?)).await?;
        let chain_id = self.chain_id.clone();
        let head = head.unwrap_or_else(|| ChainHead::genesis(&chain_id));
        let mut batch = Some(Batch::new(head, self.hashes_per_tick));
        let mut last = Instant::now();
        let mut stalled = false;
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(self.schedule.poll()) => {}
            }
            let (gathered, full) = self.gather(take(&mut batch)?).await?;
            let items = gathered.items().len() as u64;
            if gathered.entries() > 0 && self.schedule.due(last.elapsed(), items, full) {
                // A full disk gives the batch back for the next turn: the header is sealed,
                // with a later timestamp, once it can be stored.
                let head = match self.seal(gathered).await? {
                    Ok(head) => {
                        if mem::take(&mut stalled) {
                            tracing::info!("the next header is stored again");
                        }
                        head
                    }
                    Err((e, gathered)) => {
                        if !mem::replace(&mut stalled, true) {
                            tracing::warn!(error = %e, "cannot store the next header; retrying");
                        }
                        batch = Some(gathered);
                        continue;
                    }
                };
                batch = Some(Batch::new(head, self.hashes_per_tick));
                last = Instant::now();
            } else {
                batch = Some(gathered);
            }
        }
    }

    /// Adds the entries stored durably since the batch's last one, as many as a header may
    /// cover; whether it is full (the next entry would not fit).
    async fn gather(&self, mut batch: Batch) -> Result<(Batch, bool), NodeError> {
        let durable = self.pipeline.poh().state.entries;
        if batch.next_entry() >= durable || batch.entries() >= MAX_HEADER_ENTRIES {
            let full = batch.entries() >= MAX_HEADER_ENTRIES;
            return Ok((batch, full));
        }
        let store = self.store.clone();
        let pipeline = self.pipeline.clone();
        blocking(move || {
            while batch.next_entry() < durable {
                let room = MAX_HEADER_ENTRIES - batch.entries();
                let want = (durable - batch.next_entry()).min(room).min(PAGE as u64) as usize;
                // As the writer stored them, or, when the sealer fell too far behind for it
                // to keep them, read back.
                let entries = match pipeline.take_stored_entries(batch.next_entry(), durable, want)
                {
                    Some(entries) => entries,
                    None => {
                        store
                            .entries(batch.next_entry(), want, PAGE_BYTES)?
                            .ok_or(NodeError::TaskFailed("sealer (a stored entry is missing)"))?
                            .entries
                    }
                };
                if entries.is_empty() {
                    break;
                }
                for entry in &entries {
                    if !fits(&batch, entry.mixins.len()) {
                        return Ok((batch, true));
                    }
                    batch.push(entry).map_err(|failure| {
                        tracing::error!(%failure, entry = batch.next_entry(), "stored PoH entry breaks its tick period");
                        NodeError::TaskFailed("sealer (a stored entry breaks the chain's rules)")
                    })?;
                }
            }
            let full = batch.entries() >= MAX_HEADER_ENTRIES;
            Ok((batch, full))
        })
        .await
    }

    /// Signs and durably stores the header over `batch`; the head after it, or, when the
    /// store cannot write now (a full disk), why and the batch back.
    async fn seal(
        &self,
        batch: Batch,
    ) -> Result<Result<ChainHead, (StoreError, Batch)>, NodeError> {
        let (store, key) = (self.store.clone(), self.key.clone());
        let (chain_id, level) = (self.chain_id.clone(), self.level);
        let stored = blocking(move || {
            let sealed = batch.seal(&chain_id, level, unix_now(), &key)?;
            let (header, head) = sealed.ok_or(NodeError::TaskFailed("sealer (empty batch)"))?;
            match store.put_header(&header, &head) {
                Ok(()) => Ok(Ok((header, head))),
                Err(e) if e.is_unavailable() => Ok(Err((e, batch))),
                Err(e) => Err(e.into()),
            }
        })
        .await?;
        let (header, head) = match stored {
            Ok(sealed) => sealed,
            Err(unstored) => return Ok(Err(unstored)),
        };
        self.metrics.block_count.increment(1);
        self.sealed.send_replace(header.height + 1);
        tracing::debug!(
            height = header.height,
            header_id = %header.id(),
            entries = header.poh_end - header.poh_start,
            items = header.item_count,
            "sealed a header"
        );
        Ok(Ok(head))
    }
}

/// Whether one more entry with `mixins` items fits the batch's header. An empty batch takes
/// any entry: one entry holds one commit's items, which `ingest.max_batch` keeps below the cap.
fn fits(batch: &Batch, mixins: usize) -> bool {
    fits_counts(batch.entries(), batch.items().len(), mixins)
}

fn fits_counts(entries: u64, items: usize, mixins: usize) -> bool {
    entries == 0 || (entries < MAX_HEADER_ENTRIES && items + mixins <= MAX_HEADER_ITEMS)
}

/// The batch is always put back before the next turn; its absence would be a bug.
fn take(batch: &mut Option<Batch>) -> Result<Batch, NodeError> {
    batch.take().ok_or(NodeError::TaskFailed("sealer"))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, NodeError> + Send + 'static,
) -> Result<T, NodeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| NodeError::TaskFailed("sealer"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Schedule {
        Schedule {
            min: Duration::from_millis(200),
            max: Duration::from_secs(2),
            target_items: 1_000,
        }
    }

    /// Runs the sealer's pacing for `run` of simulated time with items arriving at `rate`
    /// per second, and returns the intervals between headers.
    async fn intervals(rate: f64, run: Duration) -> Vec<Duration> {
        let s = schedule();
        let start = Instant::now();
        let mut last = start;
        let mut sealed_items = 0.0;
        let mut out = Vec::new();
        while start.elapsed() < run {
            tokio::time::sleep(s.poll()).await;
            let arrived = rate * start.elapsed().as_secs_f64() - sealed_items;
            if s.due(last.elapsed(), arrived as u64, false) {
                out.push(last.elapsed());
                sealed_items += arrived;
                last = Instant::now();
            }
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_node_seals_at_the_max_interval() {
        let got = intervals(0.0, Duration::from_secs(20)).await;
        assert_eq!(got.len(), 10, "{got:?}");
        let s = schedule();
        for i in got {
            assert!(i >= s.max && i < s.max + s.poll(), "{i:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_interval_shortens_with_the_load_and_stays_within_the_bounds() {
        let s = schedule();
        let mut previous = Duration::MAX;
        // 100 items/s: 10 s to reach the target, so the max interval; 2,000: 0.5 s;
        // 100,000: the target is reached at once, so the min interval.
        for (rate, expected) in [
            (100.0, s.max),
            (2_000.0, Duration::from_millis(500)),
            (100_000.0, s.min),
        ] {
            let got = intervals(rate, Duration::from_secs(20)).await;
            let mean = got.iter().sum::<Duration>() / got.len() as u32;
            for i in &got {
                assert!(*i >= s.min && *i < s.max + s.poll(), "{rate}: {i:?}");
            }
            assert!(
                mean >= expected && mean < expected + s.poll(),
                "{rate}/s: mean interval {mean:?}, expected about {expected:?}"
            );
            assert!(mean < previous || mean == s.min);
            previous = mean;
        }
    }

    #[test]
    fn a_full_batch_waits_for_the_min_interval_only() {
        let s = schedule();
        assert!(!s.due(Duration::from_millis(100), 0, true));
        assert!(s.due(Duration::from_millis(200), 0, true));
        assert!(!s.due(Duration::from_millis(1_999), 999, false));
        assert!(s.due(Duration::from_millis(2_000), 0, false));
        assert_eq!(s.poll(), Duration::from_millis(50));
    }

    /// A header stops at the caps the link can carry: the entry that would pass either is
    /// left for the next header.
    #[test]
    fn a_header_stops_where_its_message_would_no_longer_fit() {
        assert!(fits_counts(
            MAX_HEADER_ENTRIES - 1,
            MAX_HEADER_ITEMS - 10,
            10
        ));
        assert!(!fits_counts(
            MAX_HEADER_ENTRIES - 1,
            MAX_HEADER_ITEMS - 10,
            11
        ));
        assert!(!fits_counts(MAX_HEADER_ENTRIES, 0, 0));
        assert!(
            fits_counts(0, 0, MAX_HEADER_ITEMS + 1),
            "an empty header takes any entry"
        );
        assert_eq!(MAX_HEADER_ITEMS, 1 << 18);
    }
}
