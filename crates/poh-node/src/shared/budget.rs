//! The bytes held while untrusted input is read ([`ByteBudget`]), and who a client is
//! ([`ClientKey`]). They are down here, not with the rest of the per-client limits in ingress,
//! because the federation link's parent side, below ingress, holds a budget too: the decoded
//! header it is checking.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

/// The client a budget belongs to: an IPv4 address, or the IPv6 network of the configured
/// prefix length an address is in. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a
/// dual-stack socket reports for an IPv4 client) is that IPv4 address, so one client is one
/// key whichever socket it reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    /// The key of `ip` with IPv6 addresses grouped by their first `v6_prefix` bits (clamped to
    /// 1–128: validation refuses anything else, and a zero would make every IPv6 client one).
    pub(crate) fn new(ip: IpAddr, v6_prefix: u32) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let mask = u128::MAX << (128 - v6_prefix.clamp(1, 128));
                    Self(IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask)))
                }
            },
        }
    }
}

/// The bytes the node holds while reading requests (bodies, QUIC frames): at most
/// `limits.buffered_bytes` across all clients, and `limits.buffered_bytes_per_client` for any
/// one client, so a few clients holding slow or huge requests cannot take the whole
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
    by_client: HashMap<ClientKey, usize>,
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
    /// A budget of `total` bytes, at most `per_client` of them for one client; what
    /// is held is reported in `held`.
    pub fn new(total: usize, per_client: usize, held: metrics::Gauge) -> Arc<Self> {
        Arc::new(Self {
            total: AtomicUsize::new(total),
            per_client: AtomicUsize::new(per_client),
            usage: Mutex::new(Usage::default()),
            held,
        })
    }

    /// From now on at most `total` bytes, `per_client` of them for one client; what
    /// is held above them stays held until it is released.
    pub fn set(&self, total: usize, per_client: usize) {
        // Under the lock, so a reservation sees both new values or neither.
        let _usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        self.total.store(total, Ordering::Relaxed);
        self.per_client.store(per_client, Ordering::Relaxed);
    }

    /// An empty reservation for a request from `client` (`None`: not from a listener),
    /// grown as bytes arrive.
    pub fn reserve(self: &Arc<Self>, client: Option<ClientKey>) -> Reservation {
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
    client: Option<ClientKey>,
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

    fn key(ip: &str) -> ClientKey {
        ClientKey::new(ip.parse().unwrap(), 64)
    }

    #[test]
    fn reservations_grow_and_shrink_within_the_node_and_client_budgets() {
        let budget = ByteBudget::new(8000, 5000, metrics::Gauge::noop());
        let (a, b) = (key("10.0.0.1"), key("10.0.0.2"));
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
}
