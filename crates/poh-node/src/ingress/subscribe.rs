//! Subscriptions (SPEC §4): what gRPC `Subscribe` and HTTP `GET /v1/events` share.
//!
//! A subscriber is a cursor over the store, not a queue of copies: it reads the next page of
//! stored transactions by `poh_seq` when it is ready for more, and once it has caught up it
//! waits for the pipeline's watermark ([`IngestPipeline::stored_seq`]) to move past it. The
//! hand-over from what was stored to what is stored live is therefore the same read, with no
//! gap and no duplicate; a slow subscriber holds one page however far behind it falls, and
//! the node never holds anything on its behalf. Headers follow the sealer's count the same
//! way ([`HeaderCursor`]).
//!
//! A reader that reaches transactions the TTL expired is told so ([`Page::Expired`]: the run
//! of expired seqs and the headers that sealed them) and then goes on after them; `Sync`
//! reads through the same [`read_span`], so neither ever passes a gap in silence. Seqs of
//! child headers' items are no transactions, and are passed as before.
//!
//! [`Subscriptions`] bounds how many run, per client and in total, and reports
//! `poh_subscribers`. Every cursor ends when the node stops, so a stream closes cleanly
//! instead of holding the listener's drain.
//!
//! [`IngestPipeline::stored_seq`]: crate::IngestPipeline::stored_seq

use std::sync::Arc;

use poh_core::Header;
use poh_store::{ExpiredRun, Store, StoreError, TxRecord};
use tokio::sync::{Semaphore, watch};

use super::{
    Services,
    limits::{ClientSlot, SlotTable},
};
use crate::{NodeError, config::ClientLimits, shared::ClientKey};

/// Most transactions read from the store for one subscriber at a time…
const PAGE_RECORDS: usize = 256;
/// …and at most this many bytes of them (always at least one record): what one subscriber
/// holds, so a thousand subscribers hold at most a few tens of MiB.
const PAGE_BYTES: usize = 64 << 10;
/// Most headers read at a time.
const PAGE_HEADERS: usize = 16;
/// Most headers one expired run names: with 64 hex digits each, a run fits a gRPC status
/// message and its trailers well under any client's header limit.
pub(crate) const RUN_HEADERS: usize = 32;
/// Subscribers' store reads running at once. One commit wakes every subscriber that has
/// caught up; they take turns for the blocking pool instead of each taking a thread (a
/// thousand subscribers would otherwise hold 512 threads and their memory).
const READS_AT_ONCE: usize = 4;

/// The subscriptions open now, against `limits.max_subscriptions` and
/// `limits.max_subscriptions_per_client`.
pub(crate) struct Subscriptions {
    total: Arc<SlotTable<()>>,
    reads: Semaphore,
    per_client: Arc<SlotTable>,
    /// `poh_subscribers`.
    open: metrics::Gauge,
}

/// Why a subscription was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Full {
    /// The node serves as many as it may.
    #[error("the node serves as many subscriptions as it may; retry later")]
    Node,
    /// This client holds its share.
    #[error("this client holds as many subscriptions as it may; close one or retry later")]
    Client,
}

/// One open subscription, counted until dropped (when its stream ends or its client goes).
pub(crate) struct Subscription {
    _counted: ClientSlot<()>,
    _slot: Option<ClientSlot>,
    /// `poh_subscribers`, lowered again on drop.
    open: metrics::Gauge,
}

impl Subscriptions {
    pub(crate) fn new(limits: &ClientLimits, open: metrics::Gauge) -> Arc<Self> {
        open.set(0.0);
        Arc::new(Self {
            total: SlotTable::new(limits.max_subscriptions),
            reads: Semaphore::new(READS_AT_ONCE),
            per_client: SlotTable::new(limits.max_subscriptions_per_client),
            open,
        })
    }

    /// Moves to `limits`; subscriptions open above a lowered limit run on.
    pub(crate) fn set(&self, limits: &ClientLimits) {
        self.total.set_max(limits.max_subscriptions);
        self.per_client.set_max(limits.max_subscriptions_per_client);
    }

    /// Opens one for `client` (`None`: an in-process caller, counted only in the total).
    pub(crate) fn open(&self, client: Option<ClientKey>) -> Result<Subscription, Full> {
        let slot = match client {
            Some(client) => Some(SlotTable::take(&self.per_client, client).ok_or(Full::Client)?),
            None => None,
        };
        let counted = SlotTable::take(&self.total, ()).ok_or(Full::Node)?;
        self.open.increment(1.0);
        Ok(Subscription {
            _counted: counted,
            _slot: slot,
            open: self.open.clone(),
        })
    }

    /// Runs a subscriber's store read in its turn, on a task of its own: a stream's answer is
    /// polled only while its client has flow-control window, and a turn taken by a stream
    /// that is then not polled would be held until its client reads again, stalling every
    /// other subscriber.
    async fn read<T: Send + 'static>(
        services: &Services,
        f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, NodeError> {
        let services = services.clone();
        tokio::spawn(async move {
            let _turn = services
                .subscriptions
                .reads
                .acquire()
                .await
                .map_err(|_| NodeError::TaskFailed("subscription reads"))?;
            services.read(f).await
        })
        .await
        .map_err(|_| NodeError::TaskFailed("subscription read"))?
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.open.decrement(1.0);
    }
}

/// Where a transaction cursor starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Start {
    /// At this `poh_seq` (inclusive).
    At(u64),
    /// At the next transaction stored after the cursor is made.
    Next,
}

/// What a reader meets next from a seq on.
#[derive(Debug)]
pub(crate) enum Page {
    /// Stored transactions, in `poh_seq` order (never empty).
    Txs(Vec<TxRecord>),
    /// Transactions the TTL expired, before any stored one.
    Expired(ExpiredRun),
}

/// Reads what comes next from `from` below `below`: the stored transactions up to the first
/// expired one (at most `limit` and about `max_bytes`, as [`Store::txs_from_seq`]), or that
/// expired run when it comes first; `None` when `[from, below)` holds neither (only child
/// headers' items, or nothing yet).
///
/// The run is looked for before and after the page, and the read repeated when the two
/// disagree: an expiry or a restore landing between two reads could otherwise hide a
/// transaction from both.
pub(crate) fn read_span(
    store: &dyn Store,
    from: u64,
    below: u64,
    limit: usize,
    max_bytes: usize,
) -> Result<Option<Page>, StoreError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        // Only where the first run starts matters here: one header's worth is read.
        let before = store.expired_run(from..below, 1)?;
        let mut page = store.txs_from_seq(from, limit, max_bytes)?;
        page.retain(|r| r.poh_seq < below);
        let end = page.last().map_or(below, |r| r.poh_seq);
        let run = store.expired_run(from..end, RUN_HEADERS)?;
        let first =
            |run: &Option<ExpiredRun>| run.as_ref().map(|r| r.from_seq).filter(|&seq| seq < end);
        // A few tries: expiry and restore move in batches, not continuously.
        if first(&before) != first(&run) && attempts < 4 {
            continue;
        }
        if let Some(run) = &run {
            page.retain(|r| r.poh_seq < run.from_seq);
        }
        return Ok(match (page.is_empty(), run) {
            (false, _) => Some(Page::Txs(page)),
            (true, Some(run)) => Some(Page::Expired(run)),
            (true, None) => None,
        });
    }
}

/// Stored transactions in `poh_seq` order, from the store and then live, with the runs of
/// expired ones among them.
pub(crate) struct TxCursor {
    services: Services,
    next: u64,
    stored: watch::Receiver<u64>,
}

impl TxCursor {
    pub(crate) fn new(services: &Services, start: Start) -> Self {
        let stored = services.pipeline.stored_seq();
        let next = match start {
            Start::At(seq) => seq,
            Start::Next => *stored.borrow(),
        };
        Self {
            services: services.clone(),
            next,
            stored,
        }
    }

    /// The next page, waiting for commits once caught up; `None` once the node stops. After
    /// an expired run the cursor goes on from the seq after it.
    pub(crate) async fn next_page(&mut self) -> Result<Option<Page>, NodeError> {
        loop {
            // Marked seen before the read, so a commit landing during it wakes the wait.
            let stored = *self.stored.borrow_and_update();
            if self.next < stored {
                let from = self.next;
                // Every transaction below the watermark is readable; past it, a commit may
                // still be landing, and its earlier seqs with it.
                let page = Subscriptions::read(&self.services, move |store| {
                    read_span(store, from, stored, PAGE_RECORDS, PAGE_BYTES)
                })
                .await?;
                match page {
                    Some(Page::Txs(records)) => {
                        if let Some(last) = records.last() {
                            self.next = last.poh_seq + 1;
                        }
                        return Ok(Some(Page::Txs(records)));
                    }
                    Some(Page::Expired(run)) => {
                        self.next = run.to_seq.saturating_add(1);
                        return Ok(Some(Page::Expired(run)));
                    }
                    // Nothing stored in [next, stored): those seqs were child headers.
                    None => self.next = stored,
                }
                continue;
            }
            tokio::select! {
                biased;
                () = self.services.shutdown.cancelled() => return Ok(None),
                changed = self.stored.changed() => if changed.is_err() {
                    return Ok(None);
                },
            }
        }
    }
}

/// This node's headers as they are sealed, from the first one sealed after the cursor is made.
pub(crate) struct HeaderCursor {
    services: Services,
    /// The height of the next header.
    next: u64,
    sealed: watch::Receiver<u64>,
}

impl HeaderCursor {
    pub(crate) async fn new(services: &Services) -> Result<Self, NodeError> {
        let sealed = services.sealed.clone();
        let next = services
            .read(|store| Ok(store.header_head()?.map_or(0, |head| head.height)))
            .await?;
        Ok(Self {
            services: services.clone(),
            next,
            sealed,
        })
    }

    /// The next headers (never empty), waiting for the sealer once caught up; `None` once the
    /// node stops.
    pub(crate) async fn next_page(&mut self) -> Result<Option<Vec<Header>>, NodeError> {
        loop {
            self.sealed.borrow_and_update();
            let from = self.next;
            let page = Subscriptions::read(&self.services, move |store| {
                store.headers(from, PAGE_HEADERS)
            })
            .await?;
            if let Some(last) = page.last() {
                self.next = last.height + 1;
                return Ok(Some(page));
            }
            tokio::select! {
                biased;
                () = self.services.shutdown.cancelled() => return Ok(None),
                changed = self.sealed.changed() => if changed.is_err() {
                    return Ok(None);
                },
            }
        }
    }
}
