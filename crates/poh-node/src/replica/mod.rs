//! Replicas (SPEC §10): exact, verified copies of a chain that serve its reads and can take
//! over from its primary.
//!
//! - [`serve`]: the primary's side, `poh.replica.v1.Replica/Follow`: where a replica's copy
//!   ends is checked against this chain, then everything durable after it is streamed from
//!   the store, and each new entry and header as it comes;
//! - [`follow`]: the replica's side (`--follow`): it copies, verifies ([`verify`]) and hands
//!   each batch to the pipeline, which stores it as the primary stored it, then stores the
//!   primary's headers, and acknowledges what it holds durably;
//! - [`Replicas`]: on a primary, the replicas streaming now and what each holds durably;
//!   [`FollowStatus`]: on a replica, where it stands against its primary (`GET /v1/replica`,
//!   `poh_replica_lag_entries`).
//! - [`promote`]: a replica becomes its chain's primary.
//!
//! A replica never makes PoH of its own and never seals: its pipeline takes no writes until
//! it is promoted.

pub(crate) mod follow;
pub(crate) mod promote;
pub(crate) mod serve;
mod verify;

use std::{
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

/// On a primary: the replicas streaming now, and the entries each holds durably.
#[derive(Default)]
pub(crate) struct Replicas {
    next: AtomicU64,
    held: Mutex<Vec<(u64, u64)>>,
}

impl Replicas {
    /// A replica started streaming, holding `entries`; its id.
    pub(crate) fn join(&self, entries: u64) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().push((id, entries));
        id
    }

    /// Replica `id` holds `entries` durably.
    pub(crate) fn stored(&self, id: u64, entries: u64) {
        if let Some(held) = self.lock().iter_mut().find(|(i, _)| *i == id) {
            held.1 = held.1.max(entries);
        }
    }

    /// Replica `id` is gone.
    pub(crate) fn leave(&self, id: u64) {
        self.lock().retain(|(i, _)| *i != id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, u64)>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// On a replica: where it stands against its primary.
pub struct FollowStatus {
    /// The primary's address, as followed.
    pub primary: String,
    primary_entries: AtomicU64,
    primary_seq: AtomicU64,
    /// Since when the replica has held less than the primary said it had (`None`: caught
    /// up).
    behind_since: Mutex<Option<Instant>>,
}

impl FollowStatus {
    pub(crate) fn new(primary: String) -> Self {
        Self {
            primary,
            primary_entries: AtomicU64::new(0),
            primary_seq: AtomicU64::new(0),
            behind_since: Mutex::new(None),
        }
    }

    /// The primary's durable entries and items, as it last said.
    pub fn primary(&self) -> (u64, u64) {
        (
            self.primary_entries.load(Ordering::Relaxed),
            self.primary_seq.load(Ordering::Relaxed),
        )
    }

    /// How long the replica has been behind what the primary last said it holds (0 when it
    /// holds all of it).
    pub fn lag_seconds(&self) -> f64 {
        self.behind()
            .map_or(0.0, |since| since.elapsed().as_secs_f64())
    }

    /// The primary said where it stands; the replica holds `entries`.
    pub(crate) fn saw(&self, primary_entries: u64, primary_seq: u64, entries: u64) {
        self.primary_entries
            .fetch_max(primary_entries, Ordering::Relaxed);
        self.primary_seq.fetch_max(primary_seq, Ordering::Relaxed);
        self.held(entries);
    }

    /// The replica holds `entries` now.
    pub(crate) fn held(&self, entries: u64) {
        let behind = entries < self.primary_entries.load(Ordering::Relaxed);
        let mut since = self.behind_since.lock().unwrap_or_else(|p| p.into_inner());
        match (behind, *since) {
            (true, None) => *since = Some(Instant::now()),
            (false, Some(_)) => *since = None,
            _ => {}
        }
    }

    fn behind(&self) -> Option<Instant> {
        *self.behind_since.lock().unwrap_or_else(|p| p.into_inner())
    }
}
