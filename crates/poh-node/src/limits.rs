//! Per-client limits (SPEC §8): connections held open and requests per second, by client IP
//! address, on every listener. A client over its limit is refused early (the connection is
//! closed at accept; a request gets `RESOURCE_EXHAUSTED` / 503 with `Retry-After`; a datagram
//! is dropped and counted), so one flooding client cannot take the node from the others.

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
    max_connections: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
    rate: Option<DefaultKeyedRateLimiter<IpAddr>>,
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
            max_connections: limits.max_connections_per_client.max(1),
            open: Mutex::new(HashMap::new()),
            rate,
        })
    }

    /// Whether `client` may make one more request now.
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

    /// A slot for one more connection from `client`, or `None` when it holds its limit.
    pub fn connect(self: &Arc<Self>, client: IpAddr) -> Option<ConnectionSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(client).or_insert(0);
        if *count >= self.max_connections {
            return None;
        }
        *count += 1;
        Some(ConnectionSlot {
            limiter: self.clone(),
            client,
        })
    }
}

/// One open connection of a client; released when dropped.
pub struct ConnectionSlot {
    limiter: Arc<ClientLimiter>,
    client: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.limiter.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.client);
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

        let allowed = (0..20).filter(|_| limiter.allow(a)).count();
        assert_eq!(allowed, 5, "the burst, then refused");
        assert!(limiter.allow(b));
    }
}
