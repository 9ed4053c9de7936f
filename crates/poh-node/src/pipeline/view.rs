//! [`PohView`]: the chain as readers see it, shared by the pipeline's threads and its handle.

use std::sync::{
    Mutex,
    atomic::{AtomicBool, Ordering},
};

use poh_core::{PohState, RateProbe};
use tokio::sync::watch;

use super::PohStatus;

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
    fsync: bool,
    /// The running generator's probe: a full disk stops the generator, and its return starts
    /// another.
    rate: Mutex<RateProbe>,
    running: AtomicBool,
    /// Whether writes are refused because the store's disk is full.
    full: AtomicBool,
}

impl PohView {
    pub(crate) fn status(&self) -> PohStatus {
        PohStatus {
            chain_id: self.chain_id.clone(),
            state: *self.durable.lock().unwrap_or_else(|p| p.into_inner()),
            hashes_per_second: self.rate().hashes_per_second(),
        }
    }

    pub(super) fn new(chain_id: &str, state: PohState, fsync: bool, rate: RateProbe) -> Self {
        Self {
            chain_id: chain_id.to_string(),
            durable: Mutex::new(state),
            stored: watch::Sender::new(state.mixins),
            fsync,
            rate: Mutex::new(rate),
            running: AtomicBool::new(true),
            full: AtomicBool::new(false),
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

    /// The chain now stands stored at `state`, durably or not.
    pub(super) fn set_stored(&self, state: PohState, durable: bool) {
        if durable || !self.fsync {
            *self.durable.lock().unwrap_or_else(|p| p.into_inner()) = state;
            self.stored.send_if_modified(|seq| {
                let moved = *seq != state.mixins;
                *seq = state.mixins;
                moved
            });
        }
    }
}
