//! Per-client limits (SPEC §8), by client IP address, on every listener: connections held
//! open, requests in flight, and requests per second. A client over a limit is refused early
//! (the connection is closed at accept; a request gets `RESOURCE_EXHAUSTED` / 503 with
//! `Retry-After`; a QUIC stream is reset with [`OVERLOADED`]; a datagram is dropped and
//! counted), so one flooding client cannot take the node from the others.
//!
//! [`OVERLOADED`]: crate::wire::frame::OVERLOADED

use std::{
    collections::HashMap,
    net::IpAddr,
    num::NonZeroU32,
    sync::{Arc, Mutex},
};

use governor::{DefaultKeyedRateLimiter, Quota};

use crate::config::ClientLimits;

/// The node's per-client accounting; shared by every listener.
pub struct ClientLimiter {
    connections: Arc<SlotTable>,
    in_flight: Arc<SlotTable>,
    rate: Option<DefaultKeyedRateLimiter<IpAddr>>,
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
        let rate = NonZeroU32::new(limits.requests_per_second).map(|per_second| {
            let burst = NonZeroU32::new(limits.burst)
                .unwrap_or(per_second)
                .max(per_second);
            DefaultKeyedRateLimiter::dashmap(Quota::per_second(per_second).allow_burst(burst))
        });
        Arc::new(Self {
            connections: SlotTable::new(limits.max_connections_per_client),
            in_flight: SlotTable::new(limits.max_in_flight_per_client),
            rate,
        })
    }

    /// Whether `client` may make one more request now (the rate alone: a datagram is not held).
    pub fn allow(&self, client: IpAddr) -> bool {
        match &self.rate {
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

/// How many of something each client holds, against one maximum.
struct SlotTable {
    max: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
}

impl SlotTable {
    fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            held: Mutex::new(HashMap::new()),
        })
    }

    fn take(table: &Arc<Self>, client: IpAddr) -> Option<ClientSlot> {
        let mut held = table.held.lock().unwrap_or_else(|p| p.into_inner());
        let count = held.entry(client).or_insert(0);
        if *count >= table.max {
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
pub struct ClientSlot {
    table: Arc<SlotTable>,
    client: IpAddr,
}

impl Drop for ClientSlot {
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

    #[test]
    fn connections_and_requests_are_limited_per_client() {
        let limiter = ClientLimiter::new(&ClientLimits {
            max_connections_per_client: 2,
            max_in_flight_per_client: 3,
            requests_per_second: 5,
            burst: 5,
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
}
