//! Per-client limits (SPEC §8) on every listener: connections held open, requests in flight,
//! requests per second, request bytes held and subscriptions. A client over a limit is
//! refused early (the connection is closed at accept; a request gets `RESOURCE_EXHAUSTED` /
//! 503 with `Retry-After`; a QUIC stream is reset with [`OVERLOADED`]; a datagram is dropped
//! and counted), so one flooding client cannot take the node from the others.
//!
//! The request bytes held are a [`ByteBudget`](crate::shared::ByteBudget), in `shared` because
//! the federation link holds one too.
//!
//! A client is a [`ClientKey`], not an address: an IPv4 address, or an IPv6 network
//! (`limits.ipv6_prefix_len`, a /64 by default). Whoever holds one IPv6 address usually holds
//! its whole /64, and would otherwise have 2^64 budgets. Every budget here is keyed by it, and
//! the only way from an address to a key is [`ClientLimiter::key`], which each transport calls
//! once where a client arrives (a TCP or QUIC connection at accept, a datagram as it is read).
//!
//! [`OVERLOADED`]: crate::wire::frame::OVERLOADED

use std::{
    collections::HashMap,
    hash::Hash,
    net::IpAddr,
    num::NonZeroU32,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, AtomicUsize, Ordering},
    },
};

use governor::{DefaultKeyedRateLimiter, Quota};

use crate::{
    config::ClientLimits,
    shared::{ClientKey, Live},
};

/// The node's per-client accounting; shared by every listener. A reload moves its limits:
/// what clients hold stays held, and a lowered limit refuses new ones until they are under it.
pub struct ClientLimiter {
    /// `limits.ipv6_prefix_len`: how [`ClientLimiter::key`] groups IPv6 addresses.
    v6_prefix: AtomicU32,
    connections: Arc<SlotTable>,
    in_flight: Arc<SlotTable>,
    rate: Live<Rate>,
}

/// The rate limit and the settings it was made for; no limiter when rate limiting is off.
struct Rate {
    quota: (u32, u32),
    v6_prefix: u32,
    limiter: Option<DefaultKeyedRateLimiter<ClientKey>>,
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
        Self {
            quota,
            v6_prefix: limits.ipv6_prefix_len,
            limiter,
        }
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
            v6_prefix: AtomicU32::new(limits.ipv6_prefix_len),
            connections: SlotTable::new(limits.max_connections_per_client),
            in_flight: SlotTable::new(limits.max_in_flight_per_client),
            rate: Live::new(Arc::new(Rate::new(limits))),
        })
    }

    /// Moves to `limits`. A changed rate starts every client with a full burst again.
    ///
    /// A changed prefix length keys clients arriving from now on; what was taken under the
    /// old keys is given back under them, and connections already open keep theirs.
    pub fn set(&self, limits: &ClientLimits) {
        self.v6_prefix
            .store(limits.ipv6_prefix_len, Ordering::Relaxed);
        self.connections.set_max(limits.max_connections_per_client);
        self.in_flight.set_max(limits.max_in_flight_per_client);
        let rate = self.rate.get();
        // A new prefix also starts a new rate table, so the old keys' entries do not linger.
        if rate.quota != (limits.requests_per_second, limits.burst)
            || rate.v6_prefix != limits.ipv6_prefix_len
        {
            self.rate.set(Arc::new(Rate::new(limits)));
        }
    }

    /// The client `ip` is: the one place an address becomes a key, so every transport and
    /// every budget group IPv6 addresses the same way.
    pub fn key(&self, ip: IpAddr) -> ClientKey {
        ClientKey::new(ip, self.v6_prefix.load(Ordering::Relaxed))
    }

    /// Whether `client` may make one more request now (the rate alone: a datagram is not held).
    pub fn allow(&self, client: ClientKey) -> bool {
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
    pub fn admit(&self, client: ClientKey) -> Result<ClientSlot, Overload> {
        // The cheaper in-flight check first, so a refused request does not spend rate.
        let slot = SlotTable::take(&self.in_flight, client).ok_or(Overload::InFlight)?;
        if self.allow(client) {
            Ok(slot)
        } else {
            Err(Overload::Rate)
        }
    }

    /// A slot for one more connection from `client`, or `None` when it holds its limit.
    pub fn connect(&self, client: ClientKey) -> Option<ClientSlot> {
        SlotTable::take(&self.connections, client)
    }
}

/// How many of something each key (a client; `()` for a node-wide count) holds, against one
/// maximum, which a reload may move.
pub(crate) struct SlotTable<K = ClientKey> {
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
pub struct ClientSlot<K: Hash + Eq + Copy = ClientKey> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::{ByteBudget, Exhausted};

    fn key(ip: &str) -> ClientKey {
        ClientKey::new(ip.parse().unwrap(), 64)
    }

    /// Whether `a` and `b` are one client to every budget, with IPv6 grouped by `v6_prefix`:
    /// each budget filled from `a` is checked from `b`. The budgets must agree, so one keyed
    /// apart from the others fails here too.
    fn one_client(v6_prefix: u32, a: &str, b: &str) -> bool {
        let limiter = ClientLimiter::new(&ClientLimits {
            max_connections_per_client: 1,
            max_in_flight_per_client: 1,
            requests_per_second: 1,
            burst: 1,
            ipv6_prefix_len: v6_prefix,
            ..ClientLimits::default()
        });
        let budget = ByteBudget::new(100, 10, metrics::Gauge::noop());
        let (a, b) = (
            limiter.key(a.parse().unwrap()),
            limiter.key(b.parse().unwrap()),
        );
        let _connection = limiter.connect(a).unwrap();
        // Takes a's one request in flight and spends its burst of one.
        let _request = limiter.admit(a).unwrap();
        let mut bytes = budget.reserve(Some(a));
        bytes.resize(10).unwrap();
        // The rate first: were b a client of its own, admitting it would spend its burst.
        let shared = [
            !limiter.allow(b),
            limiter.connect(b).is_none(),
            limiter.admit(b).err() == Some(Overload::InFlight),
            budget.reserve(Some(b)).resize(1) == Err(Exhausted::Client),
        ];
        assert!(
            shared.iter().all(|s| *s == shared[0]),
            "rate, connections, in flight, bytes: {shared:?}"
        );
        shared[0]
    }

    #[test]
    fn ipv6_addresses_in_one_64_share_one_budget() {
        assert!(one_client(64, "2001:db8:1:2::1", "2001:db8:1:2::2"));
        assert!(one_client(
            64,
            "2001:db8:1:2::1",
            "2001:db8:1:2:ffff:ffff:ffff:fffe"
        ));
        assert_eq!(key("2001:db8:1:2:abcd::7"), key("2001:db8:1:2::"));
    }

    #[test]
    fn ipv6_addresses_in_different_64s_have_budgets_of_their_own() {
        assert!(!one_client(64, "2001:db8:1:2::1", "2001:db8:1:3::1"));
        // Neighbours across a /64 boundary.
        assert!(!one_client(
            64,
            "2001:db8:1:1:ffff:ffff:ffff:ffff",
            "2001:db8:1:2::"
        ));
        assert!(!one_client(64, "2001:db8:1:2::1", "2001:db9:1:2::1"));
    }

    #[test]
    fn a_shorter_configured_prefix_groups_wider() {
        // One /56, two /64s.
        let (a, b) = ("2001:db8:1:200::1", "2001:db8:1:2ff::1");
        assert!(!one_client(64, a, b));
        assert!(one_client(56, a, b));
        assert!(!one_client(56, a, "2001:db8:1:300::1"), "the next /56");
        // The longest prefix keys each address alone, the shortest halves the address space.
        assert!(!one_client(128, "2001:db8::1", "2001:db8::2"));
        assert!(one_client(1, "2001:db8::1", "7fff::1"));
        assert!(!one_client(1, "2001:db8::1", "8000::1"));
    }

    #[test]
    fn ipv4_addresses_stay_one_client_each_whatever_the_ipv6_prefix() {
        for v6_prefix in [1, 56, 64, 128] {
            assert!(!one_client(v6_prefix, "192.0.2.1", "192.0.2.2"));
            assert!(!one_client(v6_prefix, "192.0.2.1", "192.0.3.1"));
            assert!(one_client(v6_prefix, "192.0.2.1", "192.0.2.1"));
        }
    }

    #[test]
    fn an_ipv4_mapped_ipv6_address_is_its_ipv4_address() {
        assert!(one_client(64, "::ffff:192.0.2.1", "192.0.2.1"));
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        // As IPv6 they would share ::ffff:0:0/96 and so a /64: mapped, they are per address.
        assert!(!one_client(64, "::ffff:192.0.2.1", "::ffff:192.0.2.2"));
        assert!(!one_client(64, "::ffff:192.0.2.1", "192.0.2.2"));
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
        let (a, b) = (key("10.0.0.1"), key("10.0.0.2"));
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
        let a = key("10.0.0.1");
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

    #[test]
    fn a_reloaded_prefix_keys_clients_from_then_on_and_gives_back_under_the_old_keys() {
        let limits = |v6_prefix| ClientLimits {
            max_connections_per_client: 1,
            ipv6_prefix_len: v6_prefix,
            ..ClientLimits::default()
        };
        let limiter = ClientLimiter::new(&limits(64));
        // Two /64s of one /56, neither of them the /56's first (whose key it shares).
        let (a, b): (IpAddr, IpAddr) = (
            "2001:db8:1:2aa::1".parse().unwrap(),
            "2001:db8:1:2ff::1".parse().unwrap(),
        );
        let narrow = limiter.connect(limiter.key(a)).unwrap();
        assert!(limiter.connect(limiter.key(b)).is_some(), "two /64s");
        limiter.set(&limits(56));
        let wide = limiter.connect(limiter.key(b)).unwrap();
        assert!(limiter.connect(limiter.key(a)).is_none(), "one /56");
        drop(narrow);
        assert!(limiter.connect(limiter.key(a)).is_none(), "the /56 is held");
        drop(wide);
        assert!(limiter.connect(limiter.key(a)).is_some());
        assert!(limiter.connections.held.lock().unwrap().is_empty());
    }
}
