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
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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

/// The bytes the node holds while reading requests (bodies, QUIC frames), across all
/// clients (`limits.buffered_bytes`). Taken as the bytes arrive, before more are read.
pub struct ByteBudget {
    kib: Arc<Semaphore>,
}

/// The budget ran out: the request is refused, and should be retried later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the node is holding as many request bytes as it may; retry later")]
pub struct Exhausted;

impl ByteBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Arc<Self> {
        let kib = (bytes / 1024).clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(Self {
            kib: Arc::new(Semaphore::new(kib)),
        })
    }

    /// An empty reservation, grown as bytes arrive.
    pub fn reserve(&self) -> Reservation {
        Reservation {
            kib: self.kib.clone(),
            held: None,
        }
    }

    /// Bytes not taken now.
    pub fn available(&self) -> usize {
        self.kib.available_permits() * 1024
    }
}

/// One request's share of a [`ByteBudget`], released when dropped.
pub struct Reservation {
    kib: Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
}

impl Reservation {
    /// Covers `bytes` now held (in KiB, rounded up): takes more, or gives back what is no
    /// longer needed. Refused, holding what it held, when the budget cannot cover the growth.
    pub fn resize(&mut self, bytes: usize) -> Result<(), Exhausted> {
        let want = u32::try_from(bytes.div_ceil(1024)).map_err(|_| Exhausted)?;
        let have = self.held.as_ref().map_or(0, |p| p.num_permits() as u32);
        if want > have {
            let more = self
                .kib
                .clone()
                .try_acquire_many_owned(want - have)
                .map_err(|_| Exhausted)?;
            match &mut self.held {
                Some(held) => held.merge(more),
                None => self.held = Some(more),
            }
        } else if want < have
            && let Some(held) = &mut self.held
        {
            drop(held.split((have - want) as usize));
        }
        Ok(())
    }
}

/// A request body whose bytes are counted against a [`ByteBudget`] as they arrive, for a
/// reader that keeps at most `retain` of them (a gRPC call decodes one message at a time): the
/// reservation grows with what arrives up to `retain`, and is released with the body. When
/// the budget is spent the body fails with `refuse`, and the reader stops.
pub(crate) struct Budgeted {
    body: axum::body::Body,
    reservation: Reservation,
    held: usize,
    retain: usize,
    refuse: fn(Exhausted) -> axum::Error,
}

impl Budgeted {
    pub(crate) fn new(
        body: axum::body::Body,
        budget: &ByteBudget,
        retain: usize,
        refuse: fn(Exhausted) -> axum::Error,
    ) -> Self {
        Self {
            body,
            reservation: budget.reserve(),
            held: 0,
            retain,
            refuse,
        }
    }
}

impl http_body::Body for Budgeted {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let frame = std::task::ready!(std::pin::Pin::new(&mut self.body).poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
        {
            let held = (self.held + data.len()).min(self.retain);
            if let Err(e) = self.reservation.resize(held) {
                return std::task::Poll::Ready(Some(Err((self.refuse)(e))));
            }
            self.held = held;
        }
        std::task::Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_grow_and_shrink_within_the_budget() {
        let budget = ByteBudget::new(8 << 10);
        let mut a = budget.reserve();
        a.resize(5000).unwrap();
        assert_eq!(budget.available(), 3 << 10);
        let mut b = budget.reserve();
        assert_eq!(b.resize(4 << 10), Err(Exhausted));
        a.resize(1).unwrap();
        b.resize(4 << 10).unwrap();
        drop(a);
        drop(b);
        assert_eq!(budget.available(), 8 << 10);
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
}
