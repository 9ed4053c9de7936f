//! Every client the node (and the CLI) uses to reach other nodes, over each transport:
//! [`grpc`], [`http`], [`udp`] and [`quic`], and [`PeerClients`], the connections to peers
//! kept and reused by the broadcaster, the relay and the health checks.
//!
//! [`ClientTls`] is how a client trusts servers and proves itself: the trust (a CA, a pin, or
//! anything), the certificate it presents for mutual TLS, and the bearer token it sends, which
//! never goes in plain text off this machine unless the operator allowed it ([`plaintext`]).
//! [`Endpoints`] is how a client application (the CLI, the Python package) calls nodes.

mod endpoints;
pub mod grpc;
pub mod http;
pub mod plaintext;
pub mod quic;
pub mod udp;

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{
    metadata::{Ascii, MetadataValue},
    transport::Channel,
};

pub use self::{
    endpoints::{CallError, Endpoints},
    grpc::{DialError, grpc_channel},
    http::http_client,
    plaintext::PlaintextCredential,
    quic::QuicClient,
    udp::UdpClient,
};
use crate::{
    NodeError,
    shared::Live,
    tls::{Identity, NodeCert, NodeTls, ServerTrust},
};

/// Requests in flight to one HTTP peer. Over HTTP/1.1 each holds a connection of its own,
/// and a peer allows one client address `limits.max_connections_per_client` of them (64 by
/// default): a relay with hundreds of sends in flight would be refused there, so the sends
/// beyond this wait their turn here.
pub const HTTP_REQUESTS_PER_PEER: usize = 16;

/// How a client talks to peers: TLS, and the bearer token peers with authentication on want.
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    /// How servers are trusted.
    pub trust: ServerTrust,
    /// The certificate presented for mutual TLS (a node's own, replaced by a reload).
    pub identity: Option<Arc<NodeCert>>,
    /// Sent as `authorization: Bearer <token>` on gRPC and HTTP.
    pub token: Option<Bearer>,
}

impl ClientTls {
    /// The client side as an operator gives it: a CA file or a pinned fingerprint (64 hex
    /// digits, colons allowed) or `insecure` (else the system's roots), a certificate and key
    /// for mutual TLS, and a token file.
    pub fn from_files(
        ca: Option<&Path>,
        pin: Option<&str>,
        insecure: bool,
        identity: Option<(&Path, &Path)>,
        token_file: Option<&Path>,
    ) -> Result<Self, NodeError> {
        let pin = pin
            .map(crate::tls::parse_pin)
            .transpose()
            .map_err(|e| NodeError::Config(format!("the TLS pin: {e}")))?;
        Ok(Self {
            trust: ServerTrust::from_settings(ca, pin.as_deref(), insecure),
            identity: identity
                .map(|(cert, key)| NodeCert::new(Identity::from_pem(cert, key)?))
                .transpose()?,
            token: token_file
                .map(|f| Bearer::new(read_token_file(f)?))
                .transpose()?,
        })
    }

    /// How a node talks to other nodes (peers, its parent): its trust and certificate, and the
    /// peers' token. A node makes one for all its clients, so a reload reaches each of them.
    pub fn of_node(config: &crate::NodeConfig, tls: &NodeTls) -> Result<Self, NodeError> {
        Ok(Self {
            trust: tls.trust.clone(),
            identity: tls.cert.clone(),
            token: config
                .peers
                .token_file
                .as_deref()
                .map(|file| Bearer::new(read_token_file(file)?))
                .transpose()?,
        })
    }

    /// Whether gRPC goes over TLS to an address that does not say (`host:port`, `http://`): a
    /// CA, a pin, insecure or a certificate is configured. `https://` always does.
    pub fn is_on(&self) -> bool {
        self.trust.is_explicit() || self.identity.is_some()
    }

    /// The same client, trusting exactly the certificate pinned as `pin`.
    fn pinned(&self, pin: &str) -> Self {
        Self {
            trust: ServerTrust::Pinned(pin.to_string()),
            ..self.clone()
        }
    }
}

/// The bearer token a client sends, checked once to fit a header; a node's peers token is
/// replaced by a reload. Cheap to clone, and clones share it.
#[derive(Clone)]
pub struct Bearer(Arc<Live<BearerToken>>);

/// One token, and its gRPC `authorization` value.
pub(crate) struct BearerToken {
    token: String,
    metadata: MetadataValue<Ascii>,
}

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.write_str("Bearer(****)")
    }
}

impl Bearer {
    /// `token`, which must fit an HTTP header.
    pub fn new(token: String) -> Result<Self, NodeError> {
        Ok(Self(Arc::new(Live::new(Self::check(token)?))))
    }

    /// `token` ready to send, for [`install`](Self::install).
    pub(crate) fn check(token: String) -> Result<Arc<BearerToken>, NodeError> {
        let metadata = format!("Bearer {token}").parse().map_err(|_| {
            NodeError::Config("the bearer token has characters a header cannot carry".into())
        })?;
        Ok(Arc::new(BearerToken { token, metadata }))
    }

    /// Sends `next` from the next request on; whether it is another token.
    pub(crate) fn install(&self, next: Arc<BearerToken>) -> bool {
        self.0.set(next.clone()).token != next.token
    }

    /// The token, for an HTTP `Authorization: Bearer` header.
    pub fn token(&self) -> String {
        self.0.get().token.clone()
    }

    /// Puts the token in a gRPC request's `authorization` metadata.
    pub fn authorize<T>(&self, request: &mut tonic::Request<T>) {
        request
            .metadata_mut()
            .insert("authorization", self.0.get().metadata.clone());
    }
}

/// The bearer token a client presents: the first non-blank line of `path`.
pub fn read_token_file(path: &Path) -> Result<String, NodeError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        NodeError::Config(format!(
            "cannot read the token file {}: {e}",
            path.display()
        ))
    })?;
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
        .ok_or_else(|| NodeError::Config(format!("{} holds no token", path.display())))
}

/// Connections to peers, made on first use and reused: one lazily connected gRPC channel per
/// (address, pin), reqwest's pool for HTTP (one client per pin), one UDP socket, one QUIC
/// connection per (address, pin). A pinned peer is reached over TLS trusting exactly that
/// certificate, while the client's own certificate is still presented for mutual TLS.
pub struct PeerClients {
    timeout: Duration,
    /// Turns to send to each HTTP peer, by address.
    http_turns: Mutex<HashMap<String, Arc<Semaphore>>>,
    tls: ClientTls,
    grpc: Mutex<HashMap<(String, Option<String>), Channel>>,
    /// Peers nothing is sent to because the token would go in plain text: each is logged
    /// once, not on every send.
    refused: Mutex<HashSet<String>>,
    http: reqwest::Client,
    http_pinned: Mutex<HashMap<String, reqwest::Client>>,
    udp: UdpClient,
    quic: QuicClient,
}

impl PeerClients {
    /// Clients trusting servers per `tls`; `timeout` bounds connecting and each HTTP request.
    pub async fn new(tls: ClientTls, timeout: Duration) -> Result<Self, NodeError> {
        Ok(Self {
            http: http::http_client(timeout, &tls.trust, tls.identity.as_ref())?,
            udp: UdpClient::bind().await?,
            quic: QuicClient::new(&tls.trust, tls.identity.as_ref())?,
            tls,
            timeout,
            grpc: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashSet::new()),
            http_pinned: Mutex::new(HashMap::new()),
            http_turns: Mutex::new(HashMap::new()),
        })
    }

    /// A turn to send to the HTTP peer at `peer`: at most [`HTTP_REQUESTS_PER_PEER`] requests
    /// at once, the others wait here.
    pub async fn http_turn(&self, peer: &str) -> Option<OwnedSemaphorePermit> {
        let turns = self
            .http_turns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(peer.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(HTTP_REQUESTS_PER_PEER)))
            .clone();
        turns.acquire_owned().await.ok()
    }

    /// The gRPC channel to `peer`, made once and reconnected by tonic as needed. Refused when
    /// it would carry the bearer token in plain text off this machine.
    pub fn grpc(&self, peer: &str, pin: Option<&str>) -> Result<Channel, String> {
        let key = (peer.to_string(), pin.map(str::to_string));
        let mut channels = self.grpc.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = channels.get(&key) {
            return Ok(c.clone());
        }
        let pinned = pin.map(|pin| self.tls.pinned(pin));
        let channel = match grpc_channel(peer, pinned.as_ref().unwrap_or(&self.tls), self.timeout) {
            Ok(channel) => channel,
            Err(DialError::Plaintext(refused)) => return Err(self.refuse(peer, &refused)),
            Err(e) => return Err(e.to_string()),
        };
        channels.insert(key, channel.clone());
        Ok(channel)
    }

    /// `message` as a gRPC request carrying the bearer token, when there is one; only a
    /// channel from [`grpc`](Self::grpc), which refuses plain text off this machine, may
    /// carry it.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(token) = &self.tls.token {
            token.authorize(&mut request);
        }
        request
    }

    /// A `method` request to `path` of the HTTP peer at `peer` (its base URL), trusting only
    /// its pinned certificate when it has one, with the bearer token when there is one.
    /// Refused when the token would go in plain text off this machine.
    pub fn http_request(
        &self,
        method: reqwest::Method,
        peer: &str,
        path: &str,
        pin: Option<&str>,
    ) -> Result<reqwest::RequestBuilder, String> {
        if let Err(refused) = self.tls.check_url(peer) {
            return Err(self.refuse(peer, &refused));
        }
        let url = format!("{}{path}", peer.trim_end_matches('/'));
        let request = self.http(pin)?.request(method, url);
        Ok(match &self.tls.token {
            Some(token) => request.bearer_auth(token.token()),
            None => request,
        })
    }

    /// `refused` as the reason a send to `peer` failed, logged the first time.
    fn refuse(&self, peer: &str, refused: &PlaintextCredential) -> String {
        let first = self
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(peer.to_string());
        if first {
            tracing::warn!(%peer, "{refused}; nothing is sent to this peer");
        }
        refused.to_string()
    }

    /// The HTTP client for a peer: the shared one, or one trusting only its pinned certificate.
    fn http(&self, pin: Option<&str>) -> Result<reqwest::Client, String> {
        let Some(pin) = pin else {
            return Ok(self.http.clone());
        };
        let mut clients = self.http_pinned.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(pin) {
            return Ok(c.clone());
        }
        let client = http::http_client(
            self.timeout,
            &ServerTrust::Pinned(pin.to_string()),
            self.tls.identity.as_ref(),
        )
        .map_err(|e| e.to_string())?;
        clients.insert(pin.to_string(), client.clone());
        Ok(client)
    }

    /// The UDP sender.
    pub fn udp(&self) -> &UdpClient {
        &self.udp
    }

    /// The QUIC client.
    pub fn quic(&self) -> &QuicClient {
        &self.quic
    }

    /// Closes the QUIC connections.
    pub fn close(&self) {
        self.quic.close();
    }
}
