//! [`Broadcaster`]: one transaction to every peer of every protocol at once (SPEC §5).
//!
//! Each peer gets its own deadline (`peers.timeout_ms`, retries included), so a peer that never
//! answers costs its timeout and nothing more, and the others are not held up. Transient
//! failures (gRPC `UNAVAILABLE`, `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`; HTTP 503 and
//! connection errors; QUIC connection errors) are retried with exponential backoff and jitter;
//! anything else is final. Connections are kept per peer and reused: one lazily connected gRPC
//! channel per address, reqwest's pool for HTTP, one UDP socket, one QUIC connection per peer.
//!
//! A peer with a certificate pin in the peers file is reached over TLS trusting exactly that
//! certificate (its own gRPC channel, an HTTP client per pin, a QUIC connection made with the
//! pinned configuration), while the node's certificate is still presented for mutual TLS.

use std::{
    collections::HashMap,
    hash::{BuildHasher, Hasher},
    net::SocketAddr,
    sync::Arc,
    sync::Mutex,
    time::{Duration, Instant},
};

use poh_core::Tx;
use poh_proto::v1::{self as pb, poh_service_client::PohServiceClient};
use tonic::transport::Channel;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::{
    NodeError,
    config::PeersConfig,
    grpc::tx_to_pb,
    http::json::tx_to_json,
    metrics::BroadcastMetrics,
    peers::{PeerProtocol, Peers},
    quic::QuicClient,
    tls::ServerTrust,
};

mod connect;

pub use connect::{ClientTls, grpc_channel};

/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_507;

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
    pub protocol: PeerProtocol,
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
        let ok = |p: PeerProtocol| {
            self.peers
                .iter()
                .any(|r| r.protocol == p && r.outcome.is_ok())
        };
        (
            ok(PeerProtocol::Grpc),
            ok(PeerProtocol::Http),
            ok(PeerProtocol::Udp),
            ok(PeerProtocol::Quic),
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
    /// TLS for gRPC when the node (or the CLI) has TLS on; plaintext otherwise.
    grpc_tls: Option<Arc<rustls::ClientConfig>>,
    /// The bearer token for HTTP, and as gRPC metadata.
    token: Option<String>,
    bearer: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    /// Presented to every peer, pinned or not.
    identity: Option<crate::tls::Identity>,
    /// Channels by (address, pin).
    grpc: Mutex<HashMap<(String, Option<String>), Channel>>,
    http: reqwest::Client,
    /// HTTP clients trusting one pinned certificate, by pin.
    http_pinned: Mutex<HashMap<String, reqwest::Client>>,
    udp: tokio::net::UdpSocket,
    quic: QuicClient,
    metrics: Option<BroadcastMetrics>,
}

impl Broadcaster {
    /// A broadcaster with these timeouts and retries; `metrics` counts every send.
    pub async fn new(
        settings: PeersConfig,
        tls: ClientTls,
        metrics: Option<BroadcastMetrics>,
    ) -> Result<Self, NodeError> {
        let any: SocketAddr = (std::net::Ipv6Addr::UNSPECIFIED, 0).into();
        let udp = match tokio::net::UdpSocket::bind(any).await {
            Ok(s) => s,
            // No IPv6 on this host: IPv4 peers only.
            Err(_) => tokio::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0))
                .await
                .map_err(|source| NodeError::Bind {
                    what: "UDP client",
                    addr: any,
                    source,
                })?,
        };
        let http = http_client(&settings, &tls.trust, tls.identity.as_ref())?;
        let grpc_tls = tls.grpc_config()?;
        let bearer = match &tls.token {
            Some(t) => Some(format!("Bearer {t}").parse().map_err(|_| {
                NodeError::Config("the bearer token has characters a header cannot carry".into())
            })?),
            None => None,
        };
        Ok(Self {
            quic: QuicClient::new(&tls.trust, tls.identity.as_ref())?,
            grpc_tls,
            token: tls.token.clone(),
            bearer,
            settings,
            identity: tls.identity.clone(),
            grpc: Mutex::new(HashMap::new()),
            http,
            http_pinned: Mutex::new(HashMap::new()),
            udp,
            metrics,
        })
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
        protocol: PeerProtocol,
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
        protocol: PeerProtocol,
        peer: &str,
        pin: Option<&str>,
        wire: &pb::Tx,
        json: &[u8],
    ) -> Result<Delivery, Failure> {
        match protocol {
            PeerProtocol::Grpc => {
                let mut client = PohServiceClient::new(self.channel(peer, pin)?);
                let mut request = tonic::Request::new(wire.clone());
                if let Some(value) = &self.bearer {
                    request
                        .metadata_mut()
                        .insert("authorization", value.clone());
                }
                match client.broadcast(request).await {
                    Ok(ack) => from_ack(&ack.into_inner()),
                    Err(status) => Err(grpc_failure(&status)),
                }
            }
            PeerProtocol::Http => self.http_send(peer, pin, json).await,
            PeerProtocol::Udp => {
                if json.len() > MAX_DATAGRAM {
                    return Err(Failure::Final(format!(
                        "{} bytes do not fit in one datagram",
                        json.len()
                    )));
                }
                let addr = self.resolve(peer).await?;
                self.udp
                    .send_to(json, addr)
                    .await
                    .map(|_| Delivery::Sent)
                    .map_err(|e| Failure::Transient(format!("cannot send: {e}")))
            }
            PeerProtocol::Quic => match self
                .quic
                .send_to(peer, pin, std::slice::from_ref(wire))
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
        let url = format!("{}/v1/tx", peer.trim_end_matches('/'));
        let mut request = self
            .http_client(pin)?
            .post(url)
            .header("content-type", "application/json");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request
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

    /// The peer's gRPC channel, made once and reconnected by tonic as needed.
    fn channel(&self, peer: &str, pin: Option<&str>) -> Result<Channel, Failure> {
        let key = (peer.to_string(), pin.map(str::to_string));
        let mut channels = self.grpc.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = channels.get(&key) {
            return Ok(c.clone());
        }
        let pinned = match pin {
            Some(pin) => Some(Arc::new(
                crate::tls::client_config(
                    &ServerTrust::Pinned(pin.to_string()),
                    self.identity.as_ref(),
                    &[b"h2"],
                )
                .map_err(|e| Failure::Final(e.to_string()))?,
            )),
            None => None,
        };
        let channel = grpc_channel(
            peer,
            pinned.as_ref().or(self.grpc_tls.as_ref()),
            Duration::from_millis(self.settings.timeout_ms),
        )
        .map_err(Failure::Final)?;
        channels.insert(key, channel.clone());
        Ok(channel)
    }

    /// The HTTP client for a peer: the shared one, or one trusting only its pinned certificate.
    fn http_client(&self, pin: Option<&str>) -> Result<reqwest::Client, Failure> {
        let Some(pin) = pin else {
            return Ok(self.http.clone());
        };
        let mut clients = self.http_pinned.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(pin) {
            return Ok(c.clone());
        }
        let client = http_client(
            &self.settings,
            &ServerTrust::Pinned(pin.to_string()),
            self.identity.as_ref(),
        )
        .map_err(|e| Failure::Final(e.to_string()))?;
        clients.insert(pin.to_string(), client.clone());
        Ok(client)
    }

    async fn resolve(&self, peer: &str) -> Result<SocketAddr, Failure> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(peer)
            .await
            .map_err(|e| Failure::Transient(format!("cannot resolve {peer}: {e}")))?
            .collect();
        let local_v6 = self.udp.local_addr().is_ok_and(|a| a.is_ipv6());
        addrs
            .iter()
            .map(|a| match (a, local_v6) {
                // An IPv6 socket reaches IPv4 peers through mapped addresses.
                (SocketAddr::V4(v4), true) => {
                    SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port())
                }
                _ => *a,
            })
            .find(|a| local_v6 || a.is_ipv4())
            .ok_or_else(|| Failure::Final(format!("{peer} has no address this host can reach")))
    }

    /// Whether `peer` answers on `protocol`, and how fast: gRPC health `SERVING`, HTTP
    /// `/healthz` 200, a QUIC handshake. UDP has no answer to wait for: its address is only
    /// resolved.
    /// A pinned peer must present its pinned certificate.
    pub async fn check(
        &self,
        protocol: PeerProtocol,
        peer: &str,
        pin: Option<&str>,
    ) -> Result<Duration, String> {
        let started = Instant::now();
        let timeout = Duration::from_millis(self.settings.timeout_ms);
        let check = async {
            match protocol {
                PeerProtocol::Grpc => {
                    let channel = self.channel(peer, pin).map_err(failure_text)?;
                    let answer = HealthClient::new(channel)
                        .check(HealthCheckRequest {
                            service: String::new(),
                        })
                        .await
                        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
                    match answer.into_inner().status {
                        1 => Ok(()),
                        other => Err(format!("health status {other}, not SERVING")),
                    }
                }
                PeerProtocol::Http => {
                    let url = format!("{}/healthz", peer.trim_end_matches('/'));
                    let response = self
                        .http_client(pin)
                        .map_err(failure_text)?
                        .get(url)
                        .send()
                        .await
                        .map_err(|e| e.without_url().to_string())?;
                    match response.status().as_u16() {
                        200 => Ok(()),
                        other => Err(format!("HTTP {other}")),
                    }
                }
                PeerProtocol::Udp => self.resolve(peer).await.map(|_| ()).map_err(failure_text),
                PeerProtocol::Quic => self
                    .quic
                    .connect_to(peer, pin)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            }
        };
        match tokio::time::timeout(timeout, check).await {
            Ok(Ok(())) => Ok(started.elapsed()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!("no answer within {} ms", self.settings.timeout_ms)),
        }
    }

    /// Closes the QUIC connections.
    pub fn close(&self) {
        self.quic.close();
    }
}

/// An HTTP client with the peers' timeout, trusting servers per `trust`.
fn http_client(
    settings: &PeersConfig,
    trust: &ServerTrust,
    identity: Option<&crate::tls::Identity>,
) -> Result<reqwest::Client, NodeError> {
    reqwest::Client::builder()
        .timeout(Duration::from_millis(settings.timeout_ms))
        .tcp_nodelay(true)
        .tls_backend_preconfigured(crate::tls::client_config(
            trust,
            identity,
            &[b"h2", b"http/1.1"],
        )?)
        .build()
        .map_err(|e| NodeError::Config(format!("cannot make the HTTP client: {e}")))
}

fn failure_text(f: Failure) -> String {
    match f {
        Failure::Transient(e) | Failure::Final(e) => e,
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
