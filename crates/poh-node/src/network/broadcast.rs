//! [`Broadcaster`]: one transaction to every peer of every protocol at once (SPEC §5).
//!
//! Each peer gets its own deadline (`peers.timeout_ms`, retries included), so a peer that never
//! answers costs its timeout and nothing more, and the others are not held up. Transient
//! failures (gRPC `UNAVAILABLE`, `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`; HTTP 503 and
//! connection errors; QUIC connection errors) are retried with exponential backoff and jitter;
//! anything else is final. The connections are [`PeerClients`]', kept per peer and reused.

use std::{
    hash::{BuildHasher, Hasher},
    sync::Arc,
    time::{Duration, Instant},
};

use poh_core::Tx;
use poh_proto::v1::{self as pb, poh_service_client::PohServiceClient};

use super::{
    client::{ClientTls, PeerClients},
    peers::Peers,
};
use crate::{
    NodeError,
    config::PeersConfig,
    metrics::BroadcastMetrics,
    shared::Transport,
    wire::{json::tx_to_json, protobuf::tx_to_pb},
};

/// What a peer did with the transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Stored by the peer now, at this place in its stream.
    Stored {
        /// The peer's `poh_seq`.
        poh_seq: u64,
    },
    /// The peer already had it.
    Duplicate {
        /// The peer's `poh_seq` of the original.
        poh_seq: u64,
    },
    /// Handed to the network (UDP: there is no answer).
    Sent,
}

/// One peer's outcome.
#[derive(Clone, Debug)]
pub struct PeerResult {
    /// The protocol used.
    pub protocol: Transport,
    /// The address, as in the peers file.
    pub peer: String,
    /// What happened, or why it failed.
    pub outcome: Result<Delivery, String>,
    /// Attempts made (more than one when a transient failure was retried).
    pub attempts: u32,
    /// Time from the first attempt to the outcome.
    pub elapsed: Duration,
}

/// A broadcast's results, one per peer, in the peers file's order.
#[derive(Clone, Debug, Default)]
pub struct BroadcastReport {
    /// Per peer.
    pub peers: Vec<PeerResult>,
}

impl BroadcastReport {
    /// `(grpc_ok, http_ok, udp_ok, quic_ok)`: a protocol is ok when at least one of its peers
    /// acknowledged (UDP: the datagram was sent).
    pub fn summary(&self) -> (bool, bool, bool, bool) {
        let ok = |p: Transport| {
            self.peers
                .iter()
                .any(|r| r.protocol == p && r.outcome.is_ok())
        };
        (
            ok(Transport::Grpc),
            ok(Transport::Http),
            ok(Transport::Udp),
            ok(Transport::Quic),
        )
    }

    /// Whether any peer acknowledged (or, for UDP, was sent to).
    pub fn any_ok(&self) -> bool {
        self.peers.iter().any(|r| r.outcome.is_ok())
    }
}

/// Why one attempt failed.
enum Failure {
    /// Worth retrying.
    Transient(String),
    /// Retrying would give the same answer.
    Final(String),
}

/// Sends transactions to peers; cheap to share, connections are kept inside.
pub struct Broadcaster {
    settings: PeersConfig,
    clients: Arc<PeerClients>,
    metrics: Option<BroadcastMetrics>,
}

impl Broadcaster {
    /// A broadcaster with these timeouts and retries, trusting peers per `tls`; `metrics`
    /// counts every send.
    pub async fn new(
        settings: PeersConfig,
        tls: ClientTls,
        metrics: Option<BroadcastMetrics>,
    ) -> Result<Self, NodeError> {
        let clients = PeerClients::new(tls, Duration::from_millis(settings.timeout_ms)).await?;
        Ok(Self {
            settings,
            clients: Arc::new(clients),
            metrics,
        })
    }

    /// The connections it sends on (the health checks share them).
    pub fn clients(&self) -> &Arc<PeerClients> {
        &self.clients
    }

    /// Sends `tx` to every peer of every protocol concurrently.
    pub async fn broadcast(&self, peers: &Peers, tx: &Tx) -> BroadcastReport {
        let wire = tx_to_pb(tx.clone());
        let json = tx_to_json(tx);
        let (wire, json) = (&wire, &json);
        let sends = peers.iter().map(|(protocol, peer)| {
            let pin = peers.pin(peer);
            async move { self.deliver(protocol, peer, pin, wire, json).await }
        });
        BroadcastReport {
            peers: futures_util::future::join_all(sends).await,
        }
    }

    async fn deliver(
        &self,
        protocol: Transport,
        peer: &str,
        pin: Option<&str>,
        wire: &pb::Tx,
        json: &[u8],
    ) -> PeerResult {
        let started = Instant::now();
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let retrying = async {
            let mut backoff = Duration::from_millis(self.settings.backoff_ms);
            loop {
                attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                match self.send_once(protocol, peer, pin, wire, json).await {
                    Ok(delivery) => return Ok(delivery),
                    Err(Failure::Transient(e))
                        if attempts.load(std::sync::atomic::Ordering::Relaxed)
                            < self.settings.attempts =>
                    {
                        tracing::debug!(%peer, protocol = protocol.as_str(), error = %e, "retrying");
                        tokio::time::sleep(jitter(backoff)).await;
                        backoff = backoff.saturating_mul(2);
                    }
                    Err(Failure::Transient(e) | Failure::Final(e)) => return Err(e),
                }
            }
        };
        let timeout = Duration::from_millis(self.settings.timeout_ms);
        let outcome = tokio::time::timeout(timeout, retrying)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} ms", self.settings.timeout_ms)));
        if let Some(m) = &self.metrics {
            m.record(protocol, outcome.is_ok());
        }
        PeerResult {
            protocol,
            peer: peer.to_string(),
            outcome,
            attempts: attempts.into_inner(),
            elapsed: started.elapsed(),
        }
    }

    async fn send_once(
        &self,
        protocol: Transport,
        peer: &str,
        pin: Option<&str>,
        wire: &pb::Tx,
        json: &[u8],
    ) -> Result<Delivery, Failure> {
        let clients = &*self.clients;
        match protocol {
            Transport::Grpc => {
                let channel = clients.grpc(peer, pin).map_err(Failure::Final)?;
                match PohServiceClient::new(channel)
                    .broadcast(clients.request(wire.clone()))
                    .await
                {
                    Ok(ack) => from_ack(&ack.into_inner()),
                    Err(status) => Err(grpc_failure(&status)),
                }
            }
            Transport::Http => self.http_send(peer, pin, json).await,
            Transport::Udp => match clients.udp().send(peer, json).await {
                Ok(()) => Ok(Delivery::Sent),
                Err(e) if e.is_transient() => Err(Failure::Transient(e.to_string())),
                Err(e) => Err(Failure::Final(e.to_string())),
            },
            Transport::Quic => match clients
                .quic()
                .send(peer, pin, std::slice::from_ref(wire))
                .await
            {
                Ok(acks) => match acks.first() {
                    Some(ack) => from_ack(ack),
                    None => Err(Failure::Final("no ack".into())),
                },
                Err(e) => Err(Failure::Transient(e.to_string())),
            },
        }
    }

    async fn http_send(
        &self,
        peer: &str,
        pin: Option<&str>,
        json: &[u8],
    ) -> Result<Delivery, Failure> {
        let request = self
            .clients
            .http_request(reqwest::Method::POST, peer, "/v1/tx", pin)
            .map_err(Failure::Final)?;
        let _turn = self.clients.http_turn(peer).await;
        let response = request
            .header("content-type", "application/json")
            .body(json.to_vec())
            .send()
            .await
            .map_err(|e| Failure::Transient(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let poh_seq = body["poh_seq"].as_u64().unwrap_or_default();
        match status {
            201 => Ok(Delivery::Stored { poh_seq }),
            200 => Ok(Delivery::Duplicate { poh_seq }),
            502..=504 => Err(Failure::Transient(format!("HTTP {status}"))),
            _ => Err(Failure::Final(format!(
                "HTTP {status} {}: {}",
                body["error"].as_str().unwrap_or(""),
                body["message"].as_str().unwrap_or("")
            ))),
        }
    }

    /// Closes the QUIC connections.
    pub fn close(&self) {
        self.clients.close();
    }
}

fn from_ack(ack: &pb::Ack) -> Result<Delivery, Failure> {
    match pb::AckCode::try_from(ack.code) {
        Ok(pb::AckCode::Stored) => Ok(Delivery::Stored {
            poh_seq: ack.poh_seq,
        }),
        Ok(pb::AckCode::Duplicate) => Ok(Delivery::Duplicate {
            poh_seq: ack.poh_seq,
        }),
        // The peer failed internally: another attempt may succeed.
        Ok(pb::AckCode::Internal) => Err(Failure::Transient(format!("INTERNAL: {}", ack.message))),
        Ok(code) => Err(Failure::Final(format!(
            "{}: {}",
            code.as_str_name(),
            ack.message
        ))),
        Err(_) => Err(Failure::Final(format!("unknown ack code {}", ack.code))),
    }
}

fn grpc_failure(status: &tonic::Status) -> Failure {
    use tonic::Code;
    let text = format!("{:?}: {}", status.code(), status.message());
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted => {
            Failure::Transient(text)
        }
        _ => Failure::Final(text),
    }
}

/// Between half and all of `backoff`, so retries from many senders spread out.
fn jitter(backoff: Duration) -> Duration {
    // A fresh RandomState is randomly keyed: enough randomness for spreading retries.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let half = backoff / 2;
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX).max(1);
    half + Duration::from_nanos(random % nanos)
}
