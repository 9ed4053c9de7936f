//! The QUIC listener (SPEC §4, ALPN `poh/1`): where a stream's frames become `Tx`s and their
//! `Ack`s go back.
//!
//! Connections run in the common [`accept_and_drain`] loop (a connection slot before each
//! accept, the per-client connection limit at accept); each connection runs a task per stream.
//! A stream is one request: it is admitted against the client's limits, its transactions go to
//! the pipeline in chunks of what has arrived and are answered in order, so one stream carries
//! a whole batch at full speed.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use poh_proto::v1 as pb;
use quinn::VarInt;
use tokio::{sync::mpsc, task::JoinSet};
use tokio_util::sync::CancellationToken;

use super::{
    Services,
    limits::{ClientLimiter, ClientSlot},
};
use crate::{
    NodeError,
    config::QuicConfig,
    pipeline::Admission,
    shared::{ClientKey, RejectReason, Source, SubmitError, Transport, accept_and_drain},
    tls::{ClientVerifier, NodeCert},
    wire::{
        frame::{self, ALPN, FrameDecoder, MALFORMED_FRAME, OVERLOADED},
        protobuf::{ack, refused_ack, tx_from_pb},
    },
};

/// Most transactions handed to the pipeline as one submission.
const CHUNK: usize = 1024;
/// Most bytes of transactions decoded before they are handed to the pipeline.
const CHUNK_BYTES: usize = 1 << 20;
/// Submissions of one stream in flight before reading pauses.
const IN_FLIGHT: usize = 32;

/// Makes the QUIC endpoint bound to `addr`. The certificate's fingerprint is logged, so a
/// client can pin it.
/// `cert` is the node's certificate or `[quic]`'s own (see [`NodeTls`]); without either, the
/// development certificate.
///
/// [`NodeTls`]: crate::tls::NodeTls
pub(crate) fn bind(
    addr: SocketAddr,
    config: &QuicConfig,
    data_dir: &std::path::Path,
    cert: Option<Arc<NodeCert>>,
    clients: Option<Arc<ClientVerifier>>,
) -> Result<quinn::Endpoint, NodeError> {
    let (cert, development) = match cert {
        Some(cert) => (cert, false),
        None => (
            NodeCert::new(crate::tls::certs::development_identity(data_dir)?)?,
            true,
        ),
    };
    let fingerprint = cert.fingerprint();
    let mut tls = crate::tls::server_config(cert, clients, &[ALPN])?;
    // QUIC is TLS 1.3 only.
    tls.max_early_data_size = 0;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| NodeError::Config(format!("QUIC TLS: {e}")))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
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

/// The endpoint as a [`Source`]: each incoming connection comes with its client's key and
/// connection slot; a client at its connection limit is refused at once.
struct QuicSource {
    endpoint: quinn::Endpoint,
    clients: Arc<ClientLimiter>,
}

impl Source for QuicSource {
    type Item = (quinn::Incoming, ClientKey, ClientSlot);

    async fn next(&mut self) -> Option<Self::Item> {
        loop {
            let incoming = self.endpoint.accept().await?;
            let client = self.clients.key(incoming.remote_address().ip());
            match self.clients.connect(client) {
                Some(slot) => return Some((incoming, client, slot)),
                None => incoming.refuse(),
            }
        }
    }

    /// New connections are refused during the drain.
    fn stop(&mut self) {
        self.endpoint.set_server_config(None);
    }
}

/// Serves connections until `shutdown`, then drains them and closes the endpoint.
pub(crate) async fn serve(
    endpoint: quinn::Endpoint,
    services: Services,
    config: QuicConfig,
    shutdown: CancellationToken,
) {
    let source = QuicSource {
        endpoint: endpoint.clone(),
        clients: services.limiter.clone(),
    };
    let stop = shutdown.clone();
    accept_and_drain(
        "quic",
        source,
        config.max_connections,
        shutdown,
        move |(incoming, client, slot)| {
            let (services, max_frame, stop) =
                (services.clone(), config.max_frame_bytes, stop.clone());
            async move {
                let _slot = slot;
                match incoming.await {
                    Ok(connection) => {
                        serve_connection(connection, client, services, max_frame, stop).await
                    }
                    Err(e) => tracing::debug!(error = %e, "QUIC handshake failed"),
                }
            }
        },
    )
    .await;
    endpoint.close(VarInt::from_u32(0), b"shutting down");
}

/// Every stream of `connection` counts against `client`, the key taken at accept: a client
/// that migrates to another address stays the client it was.
async fn serve_connection(
    connection: quinn::Connection,
    client: ClientKey,
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
        let slot = match services.limiter.admit(client) {
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
            serve_stream(send, recv, services, max_frame, client).await;
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
    /// Over the node's read budget: retry later.
    Overloaded,
    Refused,
    /// A chunk of this many transactions refused because the disk is full or the node is a
    /// replica: each gets a refused `Ack` saying why, and the stream goes on.
    RefuseAll(SubmitError, usize),
}

fn refuse_all(e: SubmitError, n: usize, out: &mut Vec<u8>) {
    let refused = refused_ack(e);
    for _ in 0..n {
        frame::encode(&refused, out);
    }
}

async fn serve_stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    services: Services,
    max_frame: usize,
    client: ClientKey,
) {
    let (steps, mut queue) = mpsc::channel::<Step>(IN_FLIGHT);
    let reader = {
        let services = services.clone();
        async move {
            let mut decoder = FrameDecoder::new(max_frame);
            // What this stream holds before the pipeline admits it: bytes not yet framed, and
            // transactions decoded and not yet queued. Counted before it is kept.
            let mut held = services.buffered.reserve(Some(client));
            let mut chunk = Vec::new();
            let mut chunk_bytes = 0;
            let mut ended = false;
            while !ended {
                match recv.read_chunk(usize::MAX, true).await {
                    Ok(Some(data)) => {
                        let more = decoder.buffered() + chunk_bytes + data.bytes.len();
                        if held.resize(more).is_err() {
                            services
                                .metrics
                                .ingest
                                .rejected(Transport::Quic, RejectReason::Overloaded);
                            let _ = recv.stop(VarInt::from_u32(OVERLOADED));
                            let _ = steps.send(Step::Overloaded).await;
                            return;
                        }
                        decoder.push(&data.bytes);
                    }
                    Ok(None) => ended = true,
                    Err(_) => return,
                }
                let mut malformed = false;
                loop {
                    match decoder.next_frame() {
                        Ok(Some(body)) => {
                            chunk_bytes += body.len();
                            match frame::decode::<pb::Tx>(body) {
                                Ok(tx) => chunk.push(tx_from_pb(tx)),
                                Err(_) => {
                                    malformed = true;
                                    break;
                                }
                            }
                        }
                        Ok(None) => break,
                        Err(_) => {
                            malformed = true;
                            break;
                        }
                    }
                    if chunk.len() >= CHUNK || chunk_bytes >= CHUNK_BYTES {
                        let txs = std::mem::take(&mut chunk);
                        chunk_bytes = 0;
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
                    chunk_bytes = 0;
                    if !queue_chunk(&services, &steps, txs).await {
                        return;
                    }
                }
                // Shrinking never fails.
                let _ = held.resize(decoder.buffered());
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
                    let n = pending.len();
                    match pending.wait().await {
                        Ok(results) => {
                            for result in results {
                                frame::encode(&ack(&result), &mut out);
                            }
                        }
                        Err(e) => refuse_all(e, n, &mut out),
                    }
                    if send.write_all(&out).await.is_err() {
                        return;
                    }
                }
                Step::RefuseAll(e, n) => {
                    out.clear();
                    refuse_all(e, n, &mut out);
                    if send.write_all(&out).await.is_err() {
                        return;
                    }
                }
                Step::Malformed => {
                    let _ = send.reset(VarInt::from_u32(MALFORMED_FRAME));
                    return;
                }
                Step::Overloaded => {
                    let _ = send.reset(VarInt::from_u32(OVERLOADED));
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
    let n = txs.len();
    match services
        .pipeline
        .enqueue(Transport::Quic, txs, Admission::Wait)
        .await
    {
        Ok(pending) => steps.send(Step::Queued(Box::new(pending))).await.is_ok(),
        Err(e @ (SubmitError::StorageFull | SubmitError::ReadOnly { .. })) => {
            steps.send(Step::RefuseAll(e, n)).await.is_ok()
        }
        Err(_) => {
            let _ = steps.send(Step::Refused).await;
            false
        }
    }
}
