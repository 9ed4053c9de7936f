//! The QUIC client (SPEC §4, ALPN `poh/1`): one connection per peer (and certificate pin),
//! reused; a stream per batch of transactions, answered with one `Ack` each.

use std::{collections::HashMap, net::SocketAddr, sync::Arc};

use poh_proto::v1 as pb;
use quinn::VarInt;
/// One peer's connection; its lock is held while connecting, so there is one connect in
/// flight per peer and the others are not held up.
type Slot = Arc<tokio::sync::Mutex<Option<quinn::Connection>>>;

use crate::{
    NodeError,
    tls::{NodeCert, ServerTrust},
    wire::frame::{self, ALPN, FrameDecoder, FrameError},
};

/// The QUIC client configuration for `trust`, presenting `identity` when given.
pub fn client_config(
    trust: &ServerTrust,
    identity: Option<&Arc<NodeCert>>,
) -> Result<quinn::ClientConfig, NodeError> {
    let tls = crate::tls::client_config(trust, identity, &[ALPN])?;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| NodeError::Config(format!("QUIC TLS: {e}")))?;
    Ok(quinn::ClientConfig::new(Arc::new(crypto)))
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
    identity: Option<Arc<NodeCert>>,
    /// Connections by (address, certificate pin).
    connections: std::sync::Mutex<HashMap<(String, Option<String>), Slot>>,
}

impl QuicClient {
    /// A client endpoint trusting servers per `trust`.
    pub fn new(trust: &ServerTrust, identity: Option<&Arc<NodeCert>>) -> Result<Self, NodeError> {
        let bind: SocketAddr = (std::net::Ipv6Addr::UNSPECIFIED, 0).into();
        let mut endpoint = quinn::Endpoint::client(bind)
            .or_else(|_| quinn::Endpoint::client((std::net::Ipv4Addr::UNSPECIFIED, 0).into()))
            .map_err(|source| NodeError::Bind {
                what: "QUIC client",
                addr: bind,
                source,
            })?;
        endpoint.set_default_client_config(client_config(trust, identity)?);
        Ok(Self {
            endpoint,
            identity: identity.cloned(),
            connections: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The connection to `peer`, which must present the certificate `pin` when one is given.
    pub async fn connect(
        &self,
        peer: &str,
        pin: Option<&str>,
    ) -> Result<quinn::Connection, QuicError> {
        let key = (peer.to_string(), pin.map(str::to_string));
        let slot = self
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if let Some(c) = slot.as_ref()
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
                let pinned = client_config(
                    &ServerTrust::Pinned(pin.to_string()),
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
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// Sends `txs` on one stream to `peer` (which must present the certificate `pin`, when
    /// given) and returns their Acks, in order.
    pub async fn send(
        &self,
        peer: &str,
        pin: Option<&str>,
        txs: &[pb::Tx],
    ) -> Result<Vec<pb::Ack>, QuicError> {
        let connection = self.connect(peer, pin).await?;
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
