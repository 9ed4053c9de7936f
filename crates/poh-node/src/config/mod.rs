//! Node configuration: plain data, read from TOML (`serde(default)`: every key optional),
//! overridden by the CLI. An `Option` sub-section that is `None` turns that part off.

use std::{
    net::{IpAddr, Ipv4Addr},
    path::PathBuf,
};

use poh_core::{Level, Limits, PohConfig};
use serde::{Deserialize, Serialize};

use crate::NodeError;

pub use replica::ReplicaConfig;
pub use retention::{
    FragmentsConfig, LocationSpec, RepairConfig, S3Config, Span, TtlConfig, check_coding,
};

mod checks;
mod replica;
mod retention;
mod section;
#[cfg(test)]
mod tests;

/// Everything a node needs to start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// The chain's id (genesis input), e.g. `municipality/tokyo`.
    pub chain_id: String,
    /// Where the embedded store lives.
    pub data_dir: PathBuf,
    /// The store's directory; default `<data_dir>/store`.
    pub db_file: Option<PathBuf>,
    /// The index database's page cache in MiB (PoH entries and headers; records are read
    /// from the log through the operating system's page cache).
    pub db_cache_mb: usize,
    /// Free space in MiB the store keeps on its file system (at most a tenth of it): below
    /// it, writes are refused as storage full, before the disk itself runs out.
    pub db_reserve_mb: u64,
    /// The address every listener binds to (safe default: loopback only).
    pub bind: IpAddr,
    /// The peers file (SPEC §5), served by `GET /v1/peers`.
    pub peers_file: Option<PathBuf>,
    /// The gRPC listener; `None` (`grpc = false` in TOML) turns it off.
    #[serde(with = "section")]
    pub grpc: Option<GrpcConfig>,
    /// The HTTP listener; `None` (`http = false`) turns it off.
    #[serde(with = "section")]
    pub http: Option<HttpConfig>,
    /// The UDP listener; `None` (`udp = false`) turns it off.
    #[serde(with = "section")]
    pub udp: Option<UdpConfig>,
    /// The QUIC listener; `None` (`quic = false`) turns it off.
    #[serde(with = "section")]
    pub quic: Option<QuicConfig>,
    /// TLS on every listener, the node's identity towards its peers, and how it trusts them;
    /// `None`: plaintext gRPC and HTTP (QUIC is always TLS, with a development certificate),
    /// peers verified against the system's roots or their pins.
    pub tls: Option<TlsConfig>,
    /// Client authentication on gRPC and HTTP; `None`: open.
    pub auth: Option<AuthConfig>,
    /// Per-client limits on every listener.
    pub limits: ClientLimits,
    /// Forward each newly stored transaction to the peers once (SPEC §5).
    pub relay: bool,
    /// How the node talks to its peers (relay, health checks).
    pub peers: PeersConfig,
    /// The PoH generator.
    pub poh: PohConfig,
    /// The ingest pipeline.
    pub ingest: IngestConfig,
    /// Sealing headers, and the federation levels above and below (SPEC §6).
    pub federation: FederationConfig,
    /// Catch-up and repair from the peers.
    pub repair: RepairConfig,
    /// Expiry of old sealed transactions.
    pub ttl: TtlConfig,
    /// Erasure-coded fragments of sealed batches.
    pub fragments: FragmentsConfig,
    /// Following a primary, as its replica (SPEC §10).
    pub replica: ReplicaConfig,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            chain_id: "local".into(),
            data_dir: PathBuf::from("poh-data"),
            db_file: None,
            db_cache_mb: poh_store::DEFAULT_CACHE_BYTES >> 20,
            db_reserve_mb: poh_store::DEFAULT_RESERVE_BYTES >> 20,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            peers_file: None,
            grpc: Some(GrpcConfig::default()),
            http: Some(HttpConfig::default()),
            udp: Some(UdpConfig::default()),
            quic: Some(QuicConfig::default()),
            tls: None,
            auth: None,
            limits: ClientLimits::default(),
            relay: false,
            peers: PeersConfig::default(),
            poh: PohConfig::default(),
            ingest: IngestConfig::default(),
            federation: FederationConfig::default(),
            repair: RepairConfig::default(),
            ttl: TtlConfig::default(),
            fragments: FragmentsConfig::default(),
            replica: ReplicaConfig::default(),
        }
    }
}

/// The gRPC listener (SPEC §4, default port 50051).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcConfig {
    /// TCP port; 0 picks a free one.
    pub port: u16,
    /// Connections served at once.
    pub max_connections: usize,
    /// Concurrent calls per connection.
    pub max_concurrent_streams: u32,
    /// Largest message accepted or sent, in bytes.
    pub max_message_bytes: usize,
    /// Seconds between keepalive pings to an idle client (0: none).
    pub keepalive_interval_secs: u64,
    /// Seconds to wait for a ping's answer before closing the connection.
    pub keepalive_timeout_secs: u64,
    /// Seconds a connection may have no call in flight before it is closed (GOAWAY).
    pub idle_timeout_secs: u64,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            port: 50051,
            max_connections: 1024,
            max_concurrent_streams: 256,
            // A 1 MiB payload plus an ML-DSA-87 key and signature and the other fields.
            max_message_bytes: 2 << 20,
            keepalive_interval_secs: 30,
            keepalive_timeout_secs: 20,
            idle_timeout_secs: 300,
        }
    }
}

/// The HTTP listener (SPEC §4, default port 8080).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// TCP port; 0 picks a free one.
    pub port: u16,
    /// Connections served at once.
    pub max_connections: usize,
    /// Largest body of `POST /v1/tx`, in bytes.
    pub max_body_bytes: usize,
    /// Largest body of `POST /v1/tx/batch`, in bytes.
    pub max_batch_body_bytes: usize,
    /// Seconds a request may take before it is answered 503.
    pub request_timeout_secs: u64,
    /// Seconds a connection may have no request in flight before it is closed.
    pub idle_timeout_secs: u64,
    /// Seconds between keep-alive comments on an idle `GET /v1/events` stream, so proxies
    /// do not cut it.
    pub events_keepalive_secs: u64,
    /// Serve the explorer page at `GET /explorer`, behind the same authentication as every
    /// read.
    pub explorer: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            port: 8080,
            max_connections: 1024,
            // base64 makes a 1 MiB payload 1.4 MiB; key and signature add 10 KiB.
            max_body_bytes: 2 << 20,
            max_batch_body_bytes: 32 << 20,
            request_timeout_secs: 30,
            idle_timeout_secs: 60,
            events_keepalive_secs: 15,
            explorer: true,
        }
    }
}

/// The UDP listener (SPEC §4, default port 9000).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UdpConfig {
    /// UDP port; 0 picks a free one.
    pub port: u16,
    /// The socket's receive buffer, in bytes: what absorbs a burst while the pipeline is busy.
    pub recv_buffer_bytes: usize,
    /// Most datagrams handed to the pipeline as one submission.
    pub max_batch: usize,
    /// Take datagrams, which carry no credentials, even when client authentication is on.
    pub allow_unauthenticated: bool,
}

impl Default for UdpConfig {
    fn default() -> Self {
        Self {
            port: 9000,
            // About 0.4 s of datagrams at 100k/s, or a burst of 100,000 small ones.
            recv_buffer_bytes: 32 << 20,
            max_batch: 1024,
            allow_unauthenticated: false,
        }
    }
}

/// The QUIC listener (SPEC §4, default port 4433, ALPN `poh/1`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuicConfig {
    /// UDP port; 0 picks a free one.
    pub port: u16,
    /// The server certificate chain (PEM). Without it, a development certificate is made on
    /// first start and kept in the data dir.
    pub cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    pub key: Option<PathBuf>,
    /// Connections served at once.
    pub max_connections: usize,
    /// Bidirectional streams open at once per connection.
    pub max_streams_per_connection: u32,
    /// Largest frame (one protobuf `Tx`), in bytes.
    pub max_frame_bytes: usize,
    /// Seconds a connection may stay silent before it is closed.
    pub idle_timeout_secs: u64,
}

impl Default for QuicConfig {
    fn default() -> Self {
        Self {
            port: 4433,
            cert: None,
            key: None,
            max_connections: 1024,
            max_streams_per_connection: 64,
            max_frame_bytes: 2 << 20,
            idle_timeout_secs: 30,
        }
    }
}

/// TLS (SPEC §8): the node's certificate, and mutual TLS when `ca` is set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain (PEM), with `key`.
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub key: Option<PathBuf>,
    /// A PKCS#12 bundle instead of `cert` and `key`.
    pub pkcs12: Option<PathBuf>,
    /// A file holding the bundle's password; without it, `POH_TLS_PKCS12_PASSWORD`.
    pub pkcs12_password_file: Option<PathBuf>,
    /// The CA (PEM) that issues node certificates: clients must present one (mutual TLS),
    /// and peers' certificates are checked against it.
    pub ca: Option<PathBuf>,
    /// Client identities allowed (certificate subject CN or SAN); empty: any the CA issued.
    pub allowed_clients: Vec<String>,
    /// Accept any certificate from peers (no CA, no pin, not the system's roots): for
    /// development only, and logged as a warning at start and on every connection.
    pub insecure: bool,
    /// From this many days before the node's certificate expires, a warning is logged at
    /// start and then daily (`poh_tls_cert_expiry_seconds` gives the date to alert on).
    pub expiry_warning_days: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert: None,
            key: None,
            pkcs12: None,
            pkcs12_password_file: None,
            ca: None,
            allowed_clients: Vec::new(),
            insecure: false,
            expiry_warning_days: 14,
        }
    }
}

/// Client authentication (SPEC §8): bearer tokens and JWTs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Bearer tokens, one per line (`#` comments and blank lines ignored).
    pub token_file: Option<PathBuf>,
    /// The shared secret (≥ 32 bytes) for HS256 JWTs.
    pub jwt_hs256_secret_file: Option<PathBuf>,
    /// The Ed25519 public key (PEM) for EdDSA JWTs.
    pub jwt_eddsa_public_key_file: Option<PathBuf>,
    /// When set, a JWT's `iss` must be exactly this.
    pub jwt_issuer: Option<String>,
    /// When set, a JWT's `aud` must name this.
    pub jwt_audience: Option<String>,
    /// Require credentials on /healthz, /readyz, /metrics and gRPC health too.
    pub protect_health: bool,
}

/// Limits per client, on every listener (SPEC §8). A client is an IPv4 address, or an IPv6
/// network of `ipv6_prefix_len` bits (one /64 by default).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientLimits {
    /// Connections one client may hold open at once (TCP and QUIC).
    pub max_connections_per_client: usize,
    /// Requests one client may have in flight at once: gRPC calls and HTTP requests
    /// until their answer is sent, QUIC streams until they finish.
    pub max_in_flight_per_client: usize,
    /// Requests (or datagrams) per second one client may send, sustained.
    pub requests_per_second: u32,
    /// How far above the rate a client may burst.
    pub burst: u32,
    /// Bytes of request bodies and QUIC frames the node holds while reading them, across all
    /// clients; beyond it a request is refused (`RESOURCE_EXHAUSTED` / 503, a QUIC stream
    /// reset `OVERLOADED`) before more is read.
    pub buffered_bytes: usize,
    /// The part of `buffered_bytes` one client may hold, so a few clients cannot
    /// take it all. A request body or message larger than this can never be read.
    pub buffered_bytes_per_client: usize,
    /// Subscriptions (`Subscribe`, `GET /v1/events`) open at once across all clients; beyond
    /// it a new one is refused (`RESOURCE_EXHAUSTED` / 503). Each holds at most one page of
    /// records (64 KiB) while it is sent.
    pub max_subscriptions: usize,
    /// Subscriptions one client may hold open at once. Each also counts as a request
    /// in flight for as long as it runs.
    pub max_subscriptions_per_client: usize,
    /// How many leading bits of an IPv6 address name its client (1–128): every address in
    /// one such network shares one client's limits. Whoever is given one IPv6 address is
    /// usually given its whole /64, so per address one host would have 2^64 budgets. An IPv4
    /// address (an IPv4-mapped IPv6 one too) is a client of its own.
    pub ipv6_prefix_len: u32,
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self {
            // A sixteenth of a listener's connections: sixteen clients at their limit leave
            // room for everyone else.
            max_connections_per_client: 64,
            // A relaying peer runs up to 256 broadcasts at once over each protocol; room for
            // four such peers behind one address.
            max_in_flight_per_client: 1024,
            // Well above one client's honest peak (a UDP sender at 100k datagrams/s), so the
            // limit bites on floods, not on load tests.
            requests_per_second: 200_000,
            burst: 200_000,
            buffered_bytes: 128 << 20,
            buffered_bytes_per_client: 32 << 20,
            max_subscriptions: 4096,
            max_subscriptions_per_client: 256,
            // The smallest network one subscriber, host or VM is usually given (RFC 6177).
            ipv6_prefix_len: 64,
        }
    }
}

/// Talking to peers: broadcast, relay and health checks (SPEC §5).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeersConfig {
    /// Milliseconds one peer may take, retries included.
    pub timeout_ms: u64,
    /// Attempts per peer for a transient failure (1: no retry).
    pub attempts: u32,
    /// The first retry's backoff in milliseconds; it doubles, with jitter.
    pub backoff_ms: u64,
    /// Seconds between peer health checks (`active_peers`); 0 turns them off.
    pub health_interval_secs: u64,
    /// Bytes of newly stored transactions waiting to be relayed (each held until its
    /// broadcast ends); beyond it a transaction is not relayed, and counted
    /// (`poh_relay_dropped_total`), so a slow peer never grows memory.
    pub relay_queue_bytes: usize,
    /// A file whose first line is the bearer token sent to peers (when they require one).
    pub token_file: Option<PathBuf>,
}

impl Default for PeersConfig {
    fn default() -> Self {
        Self {
            timeout_ms: 2_000,
            attempts: 4,
            backoff_ms: 20,
            health_interval_secs: 10,
            relay_queue_bytes: 64 << 20,
            token_file: None,
        }
    }
}

/// The ingest pipeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Largest payload in bytes (SPEC §2 `max_payload_bytes`).
    pub max_payload_bytes: usize,
    /// Refuse unsigned transactions.
    pub require_signatures: bool,
    /// Bytes of transactions admitted and not yet answered; beyond it the node answers
    /// `RESOURCE_EXHAUSTED` / 503.
    pub queue_bytes: usize,
    /// Most transactions in one commit.
    pub max_batch: usize,
    /// Wait for fsync before acknowledging. Off only for measurements: an `Ack` then no
    /// longer survives a crash.
    pub fsync: bool,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_payload_bytes: poh_core::validate::DEFAULT_MAX_PAYLOAD_BYTES,
            require_signatures: false,
            queue_bytes: 32 << 20,
            max_batch: 10_000,
            fsync: true,
        }
    }
}

impl IngestConfig {
    /// The transaction rules this node applies.
    pub fn limits(&self) -> Limits {
        Limits {
            max_payload_bytes: self.max_payload_bytes,
            require_signatures: self.require_signatures,
        }
    }
}

/// Sealing and federation (SPEC §6).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FederationConfig {
    /// This chain's level.
    pub level: Level,
    /// The ML-DSA-87 key headers are signed with (a `poh keygen` file). Without it the node
    /// uses `<data_dir>/node.key`, made on first start.
    pub node_key: Option<PathBuf>,
    /// Seconds: the shortest time between two headers, however busy the node.
    pub min_batch_interval: f64,
    /// Seconds: the longest time between two headers; an idle node seals an empty one.
    pub max_batch_interval: f64,
    /// Items a header aims to hold: a header is sealed once this many items wait (and
    /// `min_batch_interval` has passed), so the interval shortens as the load grows.
    pub target_items: u64,
    /// The parent's gRPC address (`host:port`, or `https://host:port`: always TLS, against
    /// the system roots unless a CA or pin is configured), where this node pushes its headers.
    pub parent: Option<String>,
    /// The chains whose headers this node accepts (the level below).
    pub children: Vec<ChildConfig>,
    /// Seconds a child's header timestamp may be ahead of this node's clock.
    pub max_child_clock_skew: f64,
    /// Bytes the federation link may hold across all children (their messages as they
    /// arrive and their decoded headers while checked), apart from client writes' budget.
    /// One child address may hold three link messages' worth (48 MiB) of it.
    pub link_buffered_bytes: usize,
}

impl Default for FederationConfig {
    fn default() -> Self {
        Self {
            level: Level::Municipality,
            node_key: None,
            min_batch_interval: 1.0,
            max_batch_interval: 10.0,
            target_items: 10_000,
            parent: None,
            children: Vec::new(),
            max_child_clock_skew: 30.0,
            link_buffered_bytes: 96 << 20,
        }
    }
}

/// What one child address may hold of `federation.link_buffered_bytes`: a message arriving
/// and a decoded header being checked, with room to spare.
pub const LINK_SHARE_BYTES: usize = 3 * poh_proto::bounded::MAX_LINK_MESSAGE_BYTES;

/// A chain of the level below whose headers this node accepts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChildConfig {
    /// The child's `chain_id`.
    pub chain_id: String,
    /// Its public key: the `.pub` file `poh keygen` writes (hex).
    pub public_key_file: PathBuf,
    /// Its `hashes_per_tick`, which its tick periods must keep; this node's own when unset.
    /// Taken from here, never from what the child says.
    #[serde(default)]
    pub hashes_per_tick: Option<u64>,
}

impl NodeConfig {
    /// Reads a TOML file; unknown keys are refused, so a typo is an error, not a default.
    pub fn from_toml(text: &str) -> Result<Self, NodeError> {
        toml::from_str(text).map_err(|e| {
            // One line, as the CLI prints errors: where, then what.
            let at = e.span().map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("line {line}, column {column}: ")
            });
            NodeError::Config(format!("{}{}", at.unwrap_or_default(), e.message().trim()))
        })
    }

    /// Opens (or makes) the store this configuration names, with its page cache and reserve.
    pub fn open_store(
        &self,
    ) -> Result<std::sync::Arc<dyn poh_store::Store>, poh_store::StoreError> {
        Ok(std::sync::Arc::new(poh_store::LogStore::open_with(
            self.db_path(),
            self.store_options(),
        )?))
    }

    /// The store's page cache and the free space it keeps.
    pub fn store_options(&self) -> poh_store::StoreOptions {
        poh_store::StoreOptions {
            cache_bytes: self.db_cache_mb.saturating_mul(1 << 20),
            reserve_bytes: self.db_reserve_mb.saturating_mul(1 << 20),
            ..poh_store::StoreOptions::default()
        }
    }

    /// The store's directory.
    pub fn db_path(&self) -> PathBuf {
        self.db_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("store"))
    }
}
