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

use tokio::sync::watch;

/// On a primary: the replicas streaming now, and the entries each holds durably.
pub(crate) struct Replicas {
    next: AtomicU64,
    /// Each replica's id, and the entries and headers it holds durably.
    held: Mutex<Vec<(u64, Held)>>,
    /// `--min-replica-acks`: how many replicas must hold a write before it is answered.
    min_acks: usize,
    /// The entries at least `min_acks` replicas hold durably.
    acked: watch::Sender<u64>,
    /// The headers at least `min_acks` replicas hold durably: the link to the parent pushes
    /// no header before, so a promoted replica never finds the parent ahead of it.
    acked_headers: watch::Sender<u64>,
}

/// What one replica holds durably.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Held {
    pub entries: u64,
    pub headers: u64,
}

impl Replicas {
    pub(crate) fn new(min_acks: usize) -> Self {
        Self {
            next: AtomicU64::new(0),
            held: Mutex::new(Vec::new()),
            min_acks,
            acked: watch::Sender::new(0),
            acked_headers: watch::Sender::new(0),
        }
    }

    /// The headers at least `--min-replica-acks` replicas hold durably, as they change.
    pub(crate) fn acked_headers(&self) -> watch::Receiver<u64> {
        self.acked_headers.subscribe()
    }

    /// The entries at least `--min-replica-acks` replicas hold durably, as they change.
    pub(crate) fn acked(&self) -> watch::Receiver<u64> {
        self.acked.subscribe()
    }

    /// Recomputes what enough replicas hold, from `held`.
    fn count_acks(&self, held: &[(u64, Held)]) {
        let enough = |of: fn(&Held) -> u64| {
            let mut counts: Vec<u64> = held.iter().map(|(_, h)| of(h)).collect();
            counts.sort_unstable_by(|a, b| b.cmp(a));
            match self.min_acks {
                0 => u64::MAX,
                n => counts.get(n - 1).copied().unwrap_or(0),
            }
        };
        for (sender, acked) in [
            (&self.acked, enough(|h| h.entries)),
            (&self.acked_headers, enough(|h| h.headers)),
        ] {
            sender.send_if_modified(|now| {
                let moved = *now != acked;
                *now = acked;
                moved
            });
        }
    }

    /// A replica started streaming, holding `entries` and `headers`; its id.
    pub(crate) fn join(&self, entries: u64, headers: u64) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut held = self.lock();
        held.push((id, Held { entries, headers }));
        self.count_acks(&held);
        id
    }

    /// Replica `id` holds `now` durably.
    pub(crate) fn stored(&self, id: u64, now: Held) {
        let mut held = self.lock();
        if let Some((_, one)) = held.iter_mut().find(|(i, _)| *i == id) {
            one.entries = one.entries.max(now.entries);
            one.headers = one.headers.max(now.headers);
        }
        self.count_acks(&held);
    }

    /// Replica `id` is gone.
    pub(crate) fn leave(&self, id: u64) {
        let mut held = self.lock();
        held.retain(|(i, _)| *i != id);
        self.count_acks(&held);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Held)>> {
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
    /// Why the copy stopped, once it has.
    stopped: Mutex<Option<String>>,
}

impl FollowStatus {
    pub(crate) fn new(primary: String) -> Self {
        Self {
            primary,
            primary_entries: AtomicU64::new(0),
            primary_seq: AtomicU64::new(0),
            behind_since: Mutex::new(None),
            stopped: Mutex::new(None),
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

    /// Why the copy stopped (`None` while it goes on).
    pub fn stopped(&self) -> Option<String> {
        self.stopped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The copy stopped for good.
    pub(crate) fn stop(&self, why: &str) {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.to_string());
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
