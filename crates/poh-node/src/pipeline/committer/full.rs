//! A full disk: refuse writes, keep the chain where the store has it, and take writes again
//! by itself once space returns.
//!
//! The writer refuses the batch the store could not take and every batch behind it, and says
//! [`Msg::Full`](super::Msg::Full). Those batches were recorded in PoH already, so the
//! generator has moved past the store: the committer stops it, drops everything prepared, and
//! answers every waiter `StorageFull`. Nothing was acknowledged, nothing was stored, and the
//! store still ends at its last commit. While full, every job is refused at once (the
//! pipeline's front door refuses before queueing, too), and the generator stays stopped: it
//! could only produce entries that cannot be stored. Every [`Probe`] interval the committer
//! reads the stored chain and tries a small durable commit of it; when that succeeds, it starts
//! a generator from the stored chain and takes writes again.

use std::{
    mem,
    time::{Duration, Instant},
};

use poh_store::{Commit, StoreError};

use super::{Committer, start_generator};
use crate::{
    NodeError,
    pipeline::tips::{Tips, Unstored},
    shared::SubmitError,
};

/// The first probe after the disk filled.
const FIRST_PROBE: Duration = Duration::from_millis(250);
/// The longest wait between probes.
const MAX_PROBE: Duration = Duration::from_secs(2);

/// When to try writing again.
pub(super) struct Probe {
    at: Instant,
    backoff: Duration,
}

impl Probe {
    fn new() -> Self {
        Self {
            at: Instant::now() + FIRST_PROBE,
            backoff: FIRST_PROBE,
        }
    }

    pub(super) fn is_due(&self) -> bool {
        Instant::now() >= self.at
    }

    fn again(&mut self) {
        self.backoff = (self.backoff * 2).min(MAX_PROBE);
        self.at = Instant::now() + self.backoff;
    }
}

impl Committer {
    /// The writer met a full disk: go back to what is stored and refuse writes.
    pub(super) fn enter_full(&mut self) -> Result<(), NodeError> {
        if self.full.is_some() {
            return Ok(());
        }
        tracing::warn!(
            "the store's disk is full: refusing writes until space returns (reads, \
             subscriptions and proofs go on); free space or grow the volume"
        );
        // Its entries continue batches the store never took.
        if let Some(mut recorder) = self.recorder.take() {
            let _ = recorder.shutdown();
        }
        while self.entries.try_recv().is_ok() {}
        self.leftover.clear();
        for answer in mem::take(&mut self.pending).answers {
            answer.send(Err(SubmitError::StorageFull));
        }
        self.writer.resync()?;
        self.writer_busy = false;
        self.in_flight.lock().clear();
        self.unstored = Unstored::default();
        self.view.set_full(true);
        self.metrics.storage_full.set(1.0);
        self.full = Some(Probe::new());
        Ok(())
    }

    /// Tries one durable commit of the stored chain; when it lands, resumes from it.
    pub(super) fn probe(&mut self) -> Result<(), NodeError> {
        match self.try_resume() {
            Ok(()) => {
                self.full = None;
                self.view.set_full(false);
                self.metrics.storage_full.set(0.0);
                tracing::info!("the store's disk has room again: taking writes");
                Ok(())
            }
            Err(NodeError::Store(e)) if e.is_unavailable() => {
                tracing::debug!(error = %e, "the store's disk is still full");
                if let Some(probe) = &mut self.full {
                    probe.again();
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn try_resume(&mut self) -> Result<(), NodeError> {
        let chain = self
            .store
            .chain()?
            .ok_or(StoreError::Corrupt("chain state (gone after a full disk)"))?;
        self.store.commit(
            &Commit {
                chain: Some(&chain),
                ..Commit::default()
            },
            true,
        )?;
        let tips = Tips::load(self.store.as_ref())?;
        // A replica makes no PoH of its own: it goes on copying.
        if !self.following {
            let (recorder, entries) = start_generator(self.poh, chain.state)?;
            self.view.set_rate(recorder.probe());
            self.recorder = Some(recorder);
            self.entries = entries;
        }
        self.view.set_stored(chain.state, true, Vec::new());
        self.tips = tips;
        self.chain = chain;
        self.last_durable = Instant::now();
        Ok(())
    }
}
