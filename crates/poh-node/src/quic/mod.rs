//! QUIC (SPEC §4, ALPN `poh/1`): the listener and the client.
//!
//! - [`frame`]: the pure `u32 length || protobuf` codec.
//! - [`tls`]: certificates and trust.
//! - the listener: a connection limit acquired before each accept, a task per connection and
//!   per stream; each stream's transactions go to the pipeline in chunks of what has arrived,
//!   answered in order, so one stream carries a whole batch at full speed.
//! - [`QuicClient`]: one connection per peer, reused, a stream per batch.

pub mod frame;
pub mod tls;

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use poh_proto::v1 as pb;
use quinn::VarInt;
use tokio::{
    sync::{Mutex, Semaphore, mpsc},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use self::frame::{FrameDecoder, FrameError};
use crate::{
    NodeError, Services, Transport,
    config::QuicConfig,
    grpc::{ack, tx_from_pb},
    metrics::RejectReason,
    pipeline::Admission,
};

/// Most transactions handed to the pipeline as one submission.
const CHUNK: usize = 1024;
/// Submissions of one stream in flight before reading pauses.
const IN_FLIGHT: usize = 32;
/// Application error code: a frame was malformed; the stream is closed, the connection stays.
pub const MALFORMED_FRAME: u32 = 1;
/// Application error code: the client is over its limits (rate, requests in flight); retry later.
pub use crate::limits::OVERLOADED;
/// How long the drain waits for open connections at shutdown.
const DRAIN: Duration = Duration::from_secs(5);

/// Makes the QUIC endpoint bound to `addr`. The certificate's fingerprint is logged, so a
/// client can pin it.
/// The node's TLS identity (`node_identity`) is used when it has one, then `[quic]`'s own
/// certificate, then the development certificate.
pub(crate) fn bind(
    addr: SocketAddr,
    config: &QuicConfig,
    data_dir: &std::path::Path,
    node_identity: Option<crate::tls::Identity>,
    auth: &crate::tls::ClientAuth,
) -> Result<quinn::Endpoint, NodeError> {
    let (identity, development) = match (node_identity, &config.cert, &config.key) {
        (Some(identity), _, _) => (identity, false),
        (None, Some(cert), Some(key)) => (crate::tls::Identity::from_pem(cert, key)?, false),
        _ => (tls::development_identity(data_dir)?, true),
    };
    let fingerprint = identity
        .chain
        .first()
        .map(tls::fingerprint)
        .unwrap_or_default();
    let mut server =
        quinn::ServerConfig::with_crypto(Arc::new(tls::server_crypto(identity, auth)?));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(VarInt::from_u32(config.max_streams_per_connection))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .max_idle_timeout(
            Duration::from_secs(config.idle_timeout_secs)
                .try_into()
                .ok(),
        );
    server.transport_config(Arc::new(transport));
    let endpoint = quinn::Endpoint::server(server, addr).map_err(|source| NodeError::Bind {
        what: "QUIC",
        addr,
        source,
    })?;
    tracing::info!(%fingerprint, development, "QUIC certificate (SHA-256)");
    Ok(endpoint)
}

/// Serves connections until `shutdown`, then closes them after a short drain.
pub(crate) async fn serve(
    endpoint: quinn::Endpoint,
    services: Services,
    config: QuicConfig,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let mut connections = JoinSet::new();
    loop {
        // A slot first: beyond the limit, new connections wait in the kernel, not in memory.
        let permit = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let incoming = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            incoming = endpoint.accept() => match incoming {
                Some(i) => i,
                None => break,
            },
        };
        while connections.try_join_next().is_some() {}
        let Some(slot) = services.limiter.connect(incoming.remote_address().ip()) else {
            incoming.refuse();
            continue;
        };
        let (services, max_frame, shutdown) =
            (services.clone(), config.max_frame_bytes, shutdown.clone());
        connections.spawn(async move {
            let _permit = permit;
            let _slot = slot;
            match incoming.await {
                Ok(connection) => serve_connection(connection, services, max_frame, shutdown).await,
                Err(e) => tracing::debug!(error = %e, "QUIC handshake failed"),
            }
        });
    }
    endpoint.set_server_config(None);
    let drained = tokio::time::timeout(DRAIN, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
    endpoint.close(VarInt::from_u32(0), b"shutting down");
}

async fn serve_connection(
    connection: quinn::Connection,
    services: Services,
    max_frame: usize,
    shutdown: CancellationToken,
) {
    let mut streams = JoinSet::new();
    loop {
        let (send, recv) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            stream = connection.accept_bi() => match stream {
                Ok(s) => s,
                Err(_) => break,
            },
        };
        while streams.try_join_next().is_some() {}
        // A stream is one request: refused early when its client is over a limit.
        let slot = match services.limiter.admit(connection.remote_address().ip()) {
            Ok(slot) => slot,
            Err(_) => {
                services
                    .metrics
                    .ingest
                    .rejected(Transport::Quic, RejectReason::Overloaded);
                let (mut send, mut recv) = (send, recv);
                let _ = recv.stop(VarInt::from_u32(OVERLOADED));
                let _ = send.reset(VarInt::from_u32(OVERLOADED));
                continue;
            }
        };
        let services = services.clone();
        streams.spawn(async move {
            serve_stream(send, recv, services, max_frame).await;
            drop(slot);
        });
    }
    // Streams already open finish (their transactions are queued); then the connection ends.
    while streams.join_next().await.is_some() {}
}

/// What the reader hands the writer: a submission's answers, or the reason to stop.
enum Step {
    Queued(Box<crate::pipeline::Pending>),
    Malformed,
    Refused,
}

async fn serve_stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    services: Services,
    max_frame: usize,
) {
    let (steps, mut queue) = mpsc::channel::<Step>(IN_FLIGHT);
    let reader = {
        let services = services.clone();
        async move {
            let mut decoder = FrameDecoder::new(max_frame);
            let mut chunk = Vec::new();
            let mut ended = false;
            while !ended {
                match recv.read_chunk(usize::MAX, true).await {
                    Ok(Some(chunk)) => decoder.push(&chunk.bytes),
                    Ok(None) => ended = true,
                    Err(_) => return,
                }
                let mut malformed = false;
                loop {
                    match decoder.next_frame() {
                        Ok(Some(body)) => match frame::decode::<pb::Tx>(body) {
                            Ok(tx) => chunk.push(tx_from_pb(tx)),
                            Err(_) => {
                                malformed = true;
                                break;
                            }
                        },
                        Ok(None) => break,
                        Err(_) => {
                            malformed = true;
                            break;
                        }
                    }
                    if chunk.len() >= CHUNK {
                        let txs = std::mem::take(&mut chunk);
                        if !queue_chunk(&services, &steps, txs).await {
                            return;
                        }
                    }
                }
                if ended && decoder.finish().is_err() {
                    malformed = true;
                }
                if !chunk.is_empty() {
                    let txs = std::mem::take(&mut chunk);
                    if !queue_chunk(&services, &steps, txs).await {
                        return;
                    }
                }
                if malformed {
                    services
                        .metrics
                        .ingest
                        .rejected(Transport::Quic, RejectReason::Malformed);
                    let _ = recv.stop(VarInt::from_u32(MALFORMED_FRAME));
                    let _ = steps.send(Step::Malformed).await;
                    return;
                }
            }
        }
    };
    let writer = async move {
        let mut out = Vec::new();
        while let Some(step) = queue.recv().await {
            match step {
                Step::Queued(pending) => {
                    out.clear();
                    for result in pending.wait().await {
                        frame::encode(&ack(&result), &mut out);
                    }
                    if send.write_all(&out).await.is_err() {
                        return;
                    }
                }
                Step::Malformed => {
                    let _ = send.reset(VarInt::from_u32(MALFORMED_FRAME));
                    return;
                }
                Step::Refused => {
                    let _ = send.reset(VarInt::from_u32(0));
                    return;
                }
            }
        }
        let _ = send.finish();
        // Wait until the peer has the answers (or is gone), so nothing is cut off.
        let _ = send.stopped().await;
    };
    tokio::join!(reader, writer);
}

/// Queues one chunk; false when the stream must stop (the node is shutting down).
async fn queue_chunk(
    services: &Services,
    steps: &mpsc::Sender<Step>,
    txs: Vec<poh_core::Tx>,
) -> bool {
    match services
        .pipeline
        .enqueue(Transport::Quic, txs, Admission::Wait)
        .await
    {
        Ok(pending) => steps.send(Step::Queued(Box::new(pending))).await.is_ok(),
        Err(_) => {
            let _ = steps.send(Step::Refused).await;
            false
        }
    }
}

/// Why a QUIC exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum QuicError {
    /// The address does not resolve.
    #[error("cannot resolve {0}")]
    Resolve(String),
    /// No connection could be made.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The connection or stream broke.
    #[error("the exchange failed: {0}")]
    Stream(String),
    /// The answer is not a sequence of Acks, one per transaction.
    #[error("bad answer: {0}")]
    Answer(String),
}

/// A QUIC client keeping one connection per peer.
pub struct QuicClient {
    endpoint: quinn::Endpoint,
    /// Presented to every peer (mutual TLS), pinned or not.
    identity: Option<crate::tls::Identity>,
    /// Connections by (address, certificate pin).
    connections: Mutex<HashMap<(String, Option<String>), quinn::Connection>>,
}

impl QuicClient {
    /// A client endpoint trusting servers per `trust`.
    pub fn new(
        trust: &tls::ServerTrust,
        identity: Option<&crate::tls::Identity>,
    ) -> Result<Self, NodeError> {
        let bind: SocketAddr = (std::net::Ipv6Addr::UNSPECIFIED, 0).into();
        let mut endpoint = quinn::Endpoint::client(bind)
            .or_else(|_| quinn::Endpoint::client((std::net::Ipv4Addr::UNSPECIFIED, 0).into()))
            .map_err(|source| NodeError::Bind {
                what: "QUIC client",
                addr: bind,
                source,
            })?;
        endpoint.set_default_client_config(tls::client_config(trust, identity)?);
        Ok(Self {
            endpoint,
            identity: identity.cloned(),
            connections: Mutex::new(HashMap::new()),
        })
    }

    /// The connection to `peer`, made now if there is none or it was closed.
    pub async fn connect(&self, peer: &str) -> Result<quinn::Connection, QuicError> {
        self.connect_to(peer, None).await
    }

    /// The connection to `peer`, which must present the certificate `pin` when one is given.
    pub async fn connect_to(
        &self,
        peer: &str,
        pin: Option<&str>,
    ) -> Result<quinn::Connection, QuicError> {
        let key = (peer.to_string(), pin.map(str::to_string));
        let mut connections = self.connections.lock().await;
        if let Some(c) = connections.get(&key)
            && c.close_reason().is_none()
        {
            return Ok(c.clone());
        }
        let addr = tokio::net::lookup_host(peer)
            .await
            .map_err(|e| QuicError::Resolve(format!("{peer}: {e}")))?
            .next()
            .ok_or_else(|| QuicError::Resolve(peer.to_string()))?;
        let host = peer
            .rsplit_once(':')
            .map_or(peer, |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let connecting = match pin {
            Some(pin) => {
                let pinned = tls::client_config(
                    &crate::tls::ServerTrust::Pinned(pin.to_string()),
                    self.identity.as_ref(),
                )
                .map_err(|e| QuicError::Connect(e.to_string()))?;
                self.endpoint.connect_with(pinned, addr, host)
            }
            None => self.endpoint.connect(addr, host),
        };
        let connection = connecting
            .map_err(|e| QuicError::Connect(e.to_string()))?
            .await
            .map_err(|e| QuicError::Connect(e.to_string()))?;
        connections.insert(key, connection.clone());
        Ok(connection)
    }

    /// Sends `txs` on one stream and returns their Acks, in order.
    pub async fn send(&self, peer: &str, txs: &[pb::Tx]) -> Result<Vec<pb::Ack>, QuicError> {
        self.send_to(peer, None, txs).await
    }

    /// [`QuicClient::send`] to a peer that must present the certificate `pin`, when given.
    pub async fn send_to(
        &self,
        peer: &str,
        pin: Option<&str>,
        txs: &[pb::Tx],
    ) -> Result<Vec<pb::Ack>, QuicError> {
        let connection = self.connect_to(peer, pin).await?;
        let (mut send, mut recv) = connection
            .open_bi()
            .await
            .map_err(|e| QuicError::Stream(e.to_string()))?;
        let mut out = Vec::new();
        for tx in txs {
            frame::encode(tx, &mut out);
        }
        let writing = async {
            send.write_all(&out)
                .await
                .map_err(|e| QuicError::Stream(e.to_string()))?;
            send.finish().map_err(|e| QuicError::Stream(e.to_string()))
        };
        let reading = async {
            let mut decoder = FrameDecoder::new(1 << 20);
            let mut acks = Vec::with_capacity(txs.len());
            loop {
                match recv.read_chunk(usize::MAX, true).await {
                    Ok(Some(chunk)) => decoder.push(&chunk.bytes),
                    Ok(None) => break,
                    Err(e) => return Err(QuicError::Stream(e.to_string())),
                }
                while let Some(body) = decoder.next_frame().map_err(answer_error)? {
                    acks.push(frame::decode::<pb::Ack>(body).map_err(answer_error)?);
                }
            }
            decoder.finish().map_err(answer_error)?;
            Ok(acks)
        };
        let (written, acks) = tokio::join!(writing, reading);
        written?;
        let acks = acks?;
        if acks.len() != txs.len() {
            return Err(QuicError::Answer(format!(
                "{} acks for {} transactions",
                acks.len(),
                txs.len()
            )));
        }
        Ok(acks)
    }

    /// Closes every connection.
    pub fn close(&self) {
        self.endpoint.close(VarInt::from_u32(0), b"done");
    }
}

fn answer_error(e: FrameError) -> QuicError {
    QuicError::Answer(e.to_string())
}
