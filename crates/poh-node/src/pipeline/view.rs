//! [`PohView`]: the chain as readers see it, shared by the pipeline's threads and its handle.

use std::{
    collections::VecDeque,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use poh_core::{Entry, PohState, RateProbe};
use tokio::sync::watch;

use super::PohStatus;

/// Most mixins of the entries kept for the sealer (8 MiB of digests): a sealer that falls
/// further behind reads the older ones back from the store.
const RECENT_MIXINS: usize = 1 << 18;
/// Most entries kept for the sealer (ticks have no mixins).
const RECENT_ENTRIES: usize = 1 << 14;

/// Entries stored since the sealer last took them, oldest first.
#[derive(Default)]
struct Recent {
    entries: VecDeque<(u64, Entry)>,
    mixins: usize,
}

/// The PoH chain as the readers see it: what is durably stored, and the generator's rate.
///
/// Idle ticks are committed without fsync between durable commits; after a crash the chain
/// resumes from the last durable entry and may then differ from ticks stored after it. So
/// readers are shown only the durable chain (with fsync off, where nothing is durable, what
/// is stored).
pub(crate) struct PohView {
    chain_id: String,
    durable: Mutex<PohState>,
    /// `durable.mixins`, for subscribers: every transaction below it can be read.
    stored: watch::Sender<u64>,
    /// `durable.entries`, for replicas copying the chain: idle ticks move it too.
    entries: watch::Sender<u64>,
    fsync: bool,
    /// The running generator's probe: a full disk stops the generator, and its return starts
    /// another.
    rate: Mutex<RateProbe>,
    running: AtomicBool,
    /// Whether writes are refused because the store's disk is full.
    full: AtomicBool,
    /// Whether this is a replica, which takes no writes.
    following: AtomicBool,
    /// The primary a replica was started to follow.
    primary: Option<std::sync::Arc<str>>,
    /// The entries the writer stored, for the sealer, so it does not read them back.
    recent: Mutex<Recent>,
}

impl PohView {
    pub(crate) fn status(&self) -> PohStatus {
        PohStatus {
            chain_id: self.chain_id.clone(),
            state: *self.durable.lock().unwrap_or_else(|p| p.into_inner()),
            hashes_per_second: self.rate().hashes_per_second(),
        }
    }

    pub(super) fn new(
        chain_id: &str,
        state: PohState,
        fsync: bool,
        rate: RateProbe,
        primary: Option<std::sync::Arc<str>>,
    ) -> Self {
        Self {
            chain_id: chain_id.to_string(),
            durable: Mutex::new(state),
            stored: watch::Sender::new(state.mixins),
            entries: watch::Sender::new(state.entries),
            fsync,
            rate: Mutex::new(rate),
            running: AtomicBool::new(true),
            full: AtomicBool::new(false),
            following: AtomicBool::new(primary.is_some()),
            primary,
            recent: Mutex::new(Recent::default()),
        }
    }

    pub(crate) fn rate(&self) -> RateProbe {
        self.rate.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(super) fn set_rate(&self, rate: RateProbe) {
        *self.rate.lock().unwrap_or_else(|p| p.into_inner()) = rate;
    }

    pub(crate) fn is_full(&self) -> bool {
        self.full.load(Ordering::Acquire)
    }

    pub(super) fn set_full(&self, full: bool) {
        self.full.store(full, Ordering::Release);
    }

    pub(crate) fn is_following(&self) -> bool {
        self.following.load(Ordering::Acquire)
    }

    /// While this is a replica, why it refuses writes.
    pub(crate) fn read_only(&self) -> Option<crate::shared::SubmitError> {
        match (self.is_following(), &self.primary) {
            (true, Some(primary)) => Some(crate::shared::SubmitError::ReadOnly {
                primary: primary.clone(),
            }),
            _ => None,
        }
    }

    pub(super) fn set_following(&self, following: bool) {
        self.following.store(following, Ordering::Release);
    }

    pub(super) fn set_stopped(&self) {
        self.running.store(false, Ordering::Release);
    }

    pub(crate) fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// The first `poh_seq` not yet readable from the store, changing as commits land.
    pub(crate) fn stored(&self) -> watch::Receiver<u64> {
        self.stored.subscribe()
    }

    /// The entries readable from the store, changing as commits land.
    pub(crate) fn entries(&self) -> watch::Receiver<u64> {
        self.entries.subscribe()
    }

    /// The chain now stands stored at `state`, durably or not, after `entries`.
    pub(super) fn set_stored(&self, state: PohState, durable: bool, entries: Vec<(u64, Entry)>) {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(entries);
        if durable || !self.fsync {
            *self.durable.lock().unwrap_or_else(|p| p.into_inner()) = state;
            self.stored.send_if_modified(|seq| {
                let moved = *seq != state.mixins;
                *seq = state.mixins;
                moved
            });
            self.entries.send_if_modified(|entries| {
                let moved = *entries != state.entries;
                *entries = state.entries;
                moved
            });
        }
    }
}

impl PohView {
    /// The stored entries from index `from` on, below `below`, at most `max`, taken out of
    /// what the writer left: `None` when it no longer holds entry `from` (the caller reads
    /// the store).
    pub(super) fn take_entries(&self, from: u64, below: u64, max: usize) -> Option<Vec<Entry>> {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(from, below, max)
    }
}

impl Recent {
    /// Keeps `entries`, dropping the oldest beyond the bounds.
    fn push(&mut self, entries: Vec<(u64, Entry)>) {
        for (index, entry) in entries {
            self.mixins += entry.mixins.len();
            self.entries.push_back((index, entry));
        }
        while self.entries.len() > RECENT_ENTRIES || self.mixins > RECENT_MIXINS {
            let Some((_, old)) = self.entries.pop_front() else {
                break;
            };
            self.mixins -= old.mixins.len();
        }
    }

    /// See [`PohView::take_entries`]. What is before `from` is dropped: it was taken before.
    fn take(&mut self, from: u64, below: u64, max: usize) -> Option<Vec<Entry>> {
        while self.entries.front().is_some_and(|(index, _)| *index < from) {
            if let Some((_, old)) = self.entries.pop_front() {
                self.mixins -= old.mixins.len();
            }
        }
        if self.entries.front().is_none_or(|(index, _)| *index != from) {
            return None;
        }
        let mut taken = Vec::new();
        while taken.len() < max
            && let Some((index, _)) = self.entries.front()
            && *index < below
        {
            if let Some((_, entry)) = self.entries.pop_front() {
                self.mixins -= entry.mixins.len();
                taken.push(entry);
            }
        }
        Some(taken)
    }
}

#[cfg(test)]
mod tests {
    use poh_core::{Entry, sha256};

    use super::{RECENT_MIXINS, Recent};

    fn entries(range: std::ops::Range<u64>, mixins: usize) -> Vec<(u64, Entry)> {
        range
            .map(|i| {
                let entry = Entry {
                    num_hashes: 1,
                    hash: sha256(&i.to_le_bytes()),
                    mixins: vec![sha256(b"m"); mixins],
                };
                (i, entry)
            })
            .collect()
    }

    /// The sealer takes each stored entry once, only below the durable count, and is told to
    /// read the store when the writer's entries no longer reach back to where it is.
    #[test]
    fn stored_entries_are_taken_once_in_order_and_only_while_held() {
        let mut view = Recent::default();
        view.push(entries(0..10, 1));
        let taken = view.take(0, 6, 4).unwrap();
        assert_eq!(
            taken,
            entries(0..4, 1)
                .into_iter()
                .map(|e| e.1)
                .collect::<Vec<_>>()
        );
        assert_eq!(view.take(4, 6, 100).unwrap().len(), 2, "only below 6");
        assert_eq!(view.take(6, 10, 100).unwrap().len(), 4);
        assert_eq!(view.take(10, 20, 100), None, "not stored yet");
        view.push(entries(10..12, 1));
        // Too many mixins to keep: the oldest go, and a sealer that wants them reads the store.
        view.push(entries(12..13, RECENT_MIXINS));
        assert_eq!(view.take(10, 13, 100), None);
        assert_eq!(view.take(12, 13, 100).unwrap().len(), 1);
    }
}
