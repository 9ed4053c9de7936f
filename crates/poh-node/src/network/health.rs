//! Peer health (SPEC §5): [`check`] asks one peer whether it answers, and [`health`] checks
//! every peer periodically and sets `active_peers` to how many answered.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::future::join_all;
use tokio_util::sync::CancellationToken;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use super::{client::PeerClients, peers::PeersCache};
use crate::{metrics::Metrics, shared::Transport};

/// Whether `peer` answers on `protocol` within `timeout`, and how fast: gRPC health
/// `SERVING`, HTTP `/healthz` 200, a QUIC handshake. UDP has no answer to wait for: its
/// address is only resolved. A pinned peer must present its pinned certificate. The bearer
/// token goes with the gRPC and HTTP checks, for peers that protect their health endpoints.
pub async fn check(
    clients: &PeerClients,
    protocol: Transport,
    peer: &str,
    pin: Option<&str>,
    timeout: Duration,
) -> Result<Duration, String> {
    let started = Instant::now();
    let check = async {
        match protocol {
            Transport::Grpc => {
                let answer = HealthClient::new(clients.grpc(peer, pin)?)
                    .check(clients.request(HealthCheckRequest {
                        service: String::new(),
                    }))
                    .await
                    .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
                match answer.into_inner().status {
                    1 => Ok(()),
                    other => Err(format!("health status {other}, not SERVING")),
                }
            }
            Transport::Http => {
                // The token goes too: a peer may protect its health endpoints
                // (auth.protect_health).
                let response = clients
                    .http_request(reqwest::Method::GET, peer, "/healthz", pin)?
                    .send()
                    .await
                    .map_err(|e| e.without_url().to_string())?;
                match response.status().as_u16() {
                    200 => Ok(()),
                    other => Err(format!("HTTP {other}")),
                }
            }
            Transport::Udp => clients
                .udp()
                .resolve(peer)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Transport::Quic => clients
                .quic()
                .connect(peer, pin)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
        }
    };
    match tokio::time::timeout(timeout, check).await {
        Ok(Ok(())) => Ok(started.elapsed()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

/// Checks every peer each `every` (each within `timeout`) and sets `active_peers` to how many
/// answered and `poh_peers` to how many were asked, until `shutdown`. UDP peers, which cannot
/// answer, are not counted.
pub(crate) async fn health(
    clients: Arc<PeerClients>,
    peers: Arc<PeersCache>,
    metrics: Metrics,
    every: Duration,
    timeout: Duration,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let current = peers.current().await;
        let clients = &*clients;
        let checks: Vec<_> = current
            .iter()
            .filter(|(protocol, _)| *protocol != Transport::Udp)
            .map(|(protocol, peer)| check(clients, protocol, peer, current.pin(peer), timeout))
            .collect();
        metrics.peers.set(checks.len() as f64);
        let answered = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            results = join_all(checks) => results.iter().filter(|r| r.is_ok()).count(),
        };
        metrics.active_peers.set(answered as f64);
    }
}
