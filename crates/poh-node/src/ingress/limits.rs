//! Per-client limits (SPEC §8), by client IP address, on every listener: connections held
//! open, requests in flight, and requests per second. A client over a limit is refused early
//! (the connection is closed at accept; a request gets `RESOURCE_EXHAUSTED` / 503 with
//! `Retry-After`; a QUIC stream is reset with [`OVERLOADED`]; a datagram is dropped and
//! counted), so one flooding client cannot take the node from the others.
//!
//! [`OVERLOADED`]: crate::wire::frame::OVERLOADED

use std::{
    collections::HashMap,
    hash::Hash,
    net::IpAddr,
    num::NonZeroU32,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use governor::{DefaultKeyedRateLimiter, Quota};

use crate::{config::ClientLimits, reload::Live};

/// The node's per-client accounting; shared by every listener. A reload moves its limits:
/// what clients hold stays held, and a lowered limit refuses new ones until they are under it.
pub struct ClientLimiter {
    connections: Arc<SlotTable>,
    in_flight: Arc<SlotTable>,
    rate: Live<Rate>,
}

/// The rate limit and the quota it was made for; `None` when rate limiting is off.
struct Rate {
    quota: (u32, u32),
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

impl Rate {
    /// A zero rate turns rate limiting off; a burst below the rate is the rate.
    fn new(limits: &ClientLimits) -> Self {
        let quota = (limits.requests_per_second, limits.burst);
        let limiter = NonZeroU32::new(quota.0).map(|per_second| {
            let burst = NonZeroU32::new(quota.1)
                .unwrap_or(per_second)
                .max(per_second);
            DefaultKeyedRateLimiter::dashmap(Quota::per_second(per_second).allow_burst(burst))
        });
        Self { quota, limiter }
    }
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overload {
    /// Over its requests per second.
    Rate,
    /// Holding its limit of requests in flight.
    InFlight,
}

impl Overload {
    /// What the client is told.
    pub fn message(self) -> &'static str {
        match self {
            Self::Rate => "too many requests from this client; retry later",
            Self::InFlight => "too many requests in flight from this client; retry later",
        }
    }
}

impl ClientLimiter {
    /// From the configured limits (a zero rate turns rate limiting off).
    pub fn new(limits: &ClientLimits) -> Arc<Self> {
        Arc::new(Self {
            connections: SlotTable::new(limits.max_connections_per_client),
            in_flight: SlotTable::new(limits.max_in_flight_per_client),
            rate: Live::new(Arc::new(Rate::new(limits))),
        })
    }

    /// Moves to `limits`. A changed rate starts every client with a full burst again.
    pub fn set(&self, limits: &ClientLimits) {
        self.connections.set_max(limits.max_connections_per_client);
        self.in_flight.set_max(limits.max_in_flight_per_client);
        if self.rate.get().quota != (limits.requests_per_second, limits.burst) {
            self.rate.set(Arc::new(Rate::new(limits)));
        }
    }

    /// Whether `client` may make one more request now (the rate alone: a datagram is not held).
    pub fn allow(&self, client: IpAddr) -> bool {
        match &self.rate.get().limiter {
            Some(rate) => {
                let allowed = rate.check_key(&client).is_ok();
                // Forget idle clients now and then, so the table stays as small as the set of
                // recently active ones.
                if rate.len() > 4096 {
                    rate.retain_recent();
                }
                allowed
            }
            None => true,
        }
    }

    /// Admits one request from `client`: within its rate, and a slot among its requests in
    /// flight, held until the returned slot is dropped (when the answer is complete).
    pub fn admit(&self, client: IpAddr) -> Result<ClientSlot, Overload> {
        // The cheaper in-flight check first, so a refused request does not spend rate.
        let slot = SlotTable::take(&self.in_flight, client).ok_or(Overload::InFlight)?;
        if self.allow(client) {
            Ok(slot)
        } else {
            Err(Overload::Rate)
        }
    }

    /// A slot for one more connection from `client`, or `None` when it holds its limit.
    pub fn connect(&self, client: IpAddr) -> Option<ClientSlot> {
        SlotTable::take(&self.connections, client)
    }
}

/// How many of something each key (a client address; `()` for a node-wide count) holds,
/// against one maximum, which a reload may move.
pub(crate) struct SlotTable<K = IpAddr> {
    max: AtomicUsize,
    held: Mutex<HashMap<K, usize>>,
}

impl<K: Hash + Eq + Copy> SlotTable<K> {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: AtomicUsize::new(max.max(1)),
            held: Mutex::new(HashMap::new()),
        })
    }

    /// From now on at most `max` per key; what is held above it stays held.
    pub(crate) fn set_max(&self, max: usize) {
        self.max.store(max.max(1), Ordering::Relaxed);
    }

    pub(crate) fn take(table: &Arc<Self>, client: K) -> Option<ClientSlot<K>> {
        let mut held = table.held.lock().unwrap_or_else(|p| p.into_inner());
        let count = held.entry(client).or_insert(0);
        if *count >= table.max.load(Ordering::Relaxed) {
            if *count == 0 {
                held.remove(&client);
            }
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            table: table.clone(),
            client,
        })
    }
}

/// One connection or request of a client, counted against its limit until dropped.
pub struct ClientSlot<K: Hash + Eq + Copy = IpAddr> {
    table: Arc<SlotTable<K>>,
    client: K,
}

impl<K: Hash + Eq + Copy> Drop for ClientSlot<K> {
    fn drop(&mut self) {
        let mut held = self.table.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = held.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.client);
            }
        }
    }
}

/// The bytes the node holds while reading requests (bodies, QUIC frames): at most
/// `limits.buffered_bytes` across all clients, and `limits.buffered_bytes_per_client` for any
/// one client address, so a few clients holding slow or huge requests cannot take the whole
/// budget from the others. Taken as the bytes arrive, before they are kept.
pub struct ByteBudget {
    total: AtomicUsize,
    per_client: AtomicUsize,
    usage: Mutex<Usage>,
    /// `poh_buffered_bytes`: what is held now.
    held: metrics::Gauge,
}

#[derive(Default)]
struct Usage {
    held: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// The budget ran out: the request is refused, and should be retried later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Exhausted {
    /// The node holds as much as it may.
    #[error("the node is holding as many request bytes as it may; retry later")]
    Node,
    /// This client holds its share.
    #[error("this client is holding its share of the node's request bytes; retry later")]
    Client,
}

impl ByteBudget {
    /// A budget of `total` bytes, at most `per_client` of them for one client address; what
    /// is held is reported in `held`.
    pub fn new(total: usize, per_client: usize, held: metrics::Gauge) -> Arc<Self> {
        Arc::new(Self {
            total: AtomicUsize::new(total),
            per_client: AtomicUsize::new(per_client),
            usage: Mutex::new(Usage::default()),
            held,
        })
    }

    /// From now on at most `total` bytes, `per_client` of them for one client address; what
    /// is held above them stays held until it is released.
    pub fn set(&self, total: usize, per_client: usize) {
        // Under the lock, so a reservation sees both new values or neither.
        let _usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        self.total.store(total, Ordering::Relaxed);
        self.per_client.store(per_client, Ordering::Relaxed);
    }

    /// An empty reservation for a request from `client` (`None`: not from a listener),
    /// grown as bytes arrive.
    pub fn reserve(self: &Arc<Self>, client: Option<IpAddr>) -> Reservation {
        Reservation {
            budget: self.clone(),
            client,
            held: 0,
        }
    }

    /// Bytes not taken now.
    pub fn available(&self) -> usize {
        let usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        self.total
            .load(Ordering::Relaxed)
            .saturating_sub(usage.held)
    }
}

/// One request's share of a [`ByteBudget`], released when dropped.
pub struct Reservation {
    budget: Arc<ByteBudget>,
    client: Option<IpAddr>,
    held: usize,
}

impl Reservation {
    /// Covers `bytes` now held: takes more, or gives back what is no longer needed. Refused,
    /// holding what it held, when the node's or the client's budget cannot cover the growth.
    pub fn resize(&mut self, bytes: usize) -> Result<(), Exhausted> {
        if bytes == self.held {
            return Ok(());
        }
        let budget = &*self.budget;
        let mut usage = budget.usage.lock().unwrap_or_else(|p| p.into_inner());
        if bytes > self.held {
            let more = bytes - self.held;
            if usage.held + more > budget.total.load(Ordering::Relaxed) {
                return Err(Exhausted::Node);
            }
            if let Some(client) = self.client {
                let used = usage.by_client.entry(client).or_insert(0);
                if *used + more > budget.per_client.load(Ordering::Relaxed) {
                    if *used == 0 {
                        usage.by_client.remove(&client);
                    }
                    return Err(Exhausted::Client);
                }
                *used += more;
            }
            usage.held += more;
        } else {
            let less = self.held - bytes;
            usage.held -= less;
            if let Some(client) = self.client
                && let Some(used) = usage.by_client.get_mut(&client)
            {
                *used -= less;
                if *used == 0 {
                    usage.by_client.remove(&client);
                }
            }
        }
        self.held = bytes;
        budget.held.set(usage.held as f64);
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // Shrinking never fails.
        let _ = self.resize(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_grow_and_shrink_within_the_node_and_client_budgets() {
        let budget = ByteBudget::new(8000, 5000, metrics::Gauge::noop());
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let mut first = budget.reserve(Some(a));
        first.resize(4000).unwrap();
        let mut second = budget.reserve(Some(a));
        assert_eq!(
            second.resize(2000),
            Err(Exhausted::Client),
            "a's share is 5000"
        );
        second.resize(1000).unwrap();
        let mut other = budget.reserve(Some(b));
        assert_eq!(other.resize(4000), Err(Exhausted::Node), "3000 left in all");
        other.resize(3000).unwrap();
        first.resize(1).unwrap();
        assert_eq!(budget.available(), 8000 - 4001);
        drop((first, second, other));
        assert_eq!(budget.available(), 8000);
        assert!(budget.usage.lock().unwrap().by_client.is_empty());
    }

    #[test]
    fn connections_and_requests_are_limited_per_client() {
        let limiter = ClientLimiter::new(&ClientLimits {
            max_connections_per_client: 2,
            max_in_flight_per_client: 3,
            requests_per_second: 5,
            burst: 5,
            ..ClientLimits::default()
        });
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = limiter.connect(a).unwrap();
        let _second = limiter.connect(a).unwrap();
        assert!(limiter.connect(a).is_none(), "a third from the same client");
        assert!(limiter.connect(b).is_some(), "another client is unaffected");
        drop(first);
        assert!(
            limiter.connect(a).is_some(),
            "a slot comes back when one closes"
        );

        let held: Vec<_> = (0..3).map(|_| limiter.admit(a).unwrap()).collect();
        assert_eq!(
            limiter.admit(a).err(),
            Some(Overload::InFlight),
            "a fourth request in flight"
        );
        assert!(limiter.admit(b).is_ok(), "another client is unaffected");
        drop(held);
        // Three admitted, one refused without spending rate: two of the burst of five left.
        assert!(limiter.admit(a).is_ok());
        assert!(limiter.admit(a).is_ok());
        assert_eq!(limiter.admit(a).err(), Some(Overload::Rate));
        assert!(!limiter.allow(a), "the burst is spent");
        assert!(limiter.allow(b));
    }

    #[test]
    fn a_reload_moves_the_limits_and_what_is_held_stays_held() {
        let limits = |connections, rate| ClientLimits {
            max_connections_per_client: connections,
            requests_per_second: rate,
            burst: rate,
            ..ClientLimits::default()
        };
        let limiter = ClientLimiter::new(&limits(2, 0));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let mut held: Vec<_> = (0..2).map(|_| limiter.connect(a).unwrap()).collect();
        limiter.set(&limits(1, 1));
        assert!(limiter.connect(a).is_none(), "two held, one allowed");
        held.pop();
        assert!(limiter.connect(a).is_none(), "one held, one allowed");
        held.clear();
        let _one = limiter.connect(a).unwrap();
        assert!(limiter.allow(a) && !limiter.allow(a), "one a second");
        limiter.set(&limits(1, 0));
        assert!((0..100).all(|_| limiter.allow(a)), "rate limiting off");

        let budget = ByteBudget::new(8000, 5000, metrics::Gauge::noop());
        let mut big = budget.reserve(Some(a));
        big.resize(4000).unwrap();
        budget.set(3000, 3000);
        assert_eq!(big.resize(4001), Err(Exhausted::Node));
        big.resize(2000).unwrap();
        assert_eq!(big.resize(3001), Err(Exhausted::Node));
        budget.set(8000, 2500);
        assert_eq!(big.resize(3000), Err(Exhausted::Client));
    }
}
