//! [`NodeCert`]: the certificate the node presents, replaceable while it runs: to clients on
//! every listener (gRPC, HTTPS, QUIC) and to the servers it connects to for mutual TLS
//! (broadcast, relay, health checks, catch-up, the federation link). TLS configurations
//! resolve it at each handshake, so a new connection gets the certificate loaded last and an
//! established one keeps its session. A replacement is checked whole (it reads, its key
//! matches, it has not lapsed) before it takes the place of the old one; a bad one changes
//! nothing.

use std::sync::Arc;

use rustls::{
    InconsistentKeys, SignatureScheme,
    client::ResolvesClientCert,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};

use super::{Identity, error, expiry, fingerprint, provider};
use crate::{NodeError, shared::Live};

/// A certificate and key as TLS presents them, in either direction.
#[derive(Debug)]
pub struct NodeCert {
    current: Live<CertifiedKey>,
}

impl NodeCert {
    /// `identity`, checked (a client's: a lapsed one is left to the server to refuse).
    pub fn new(identity: Identity) -> Result<Arc<Self>, NodeError> {
        Ok(Self::of(certified_key(identity)?))
    }

    /// The node's own certificate, which must also not have lapsed.
    pub(crate) fn own(identity: Identity) -> Result<Arc<Self>, NodeError> {
        Ok(Self::of(own_key(identity)?))
    }

    fn of(key: Arc<CertifiedKey>) -> Arc<Self> {
        Arc::new(Self {
            current: Live::new(key),
        })
    }

    /// The leaf certificate a new connection is shown now.
    fn leaf(&self) -> Option<rustls::pki_types::CertificateDer<'static>> {
        self.current.get().cert.first().cloned()
    }

    /// The SHA-256 fingerprint of the leaf shown now.
    pub fn fingerprint(&self) -> String {
        self.leaf().as_ref().map(fingerprint).unwrap_or_default()
    }

    /// When the leaf shown now lapses (Unix seconds).
    pub fn not_after(&self) -> Option<i64> {
        self.leaf().as_ref().and_then(expiry::not_after)
    }

    /// Shows `next` (from [`own_key`]) to every new connection from now on; returns the
    /// fingerprints of the old and the new leaf.
    pub(crate) fn install(&self, next: Arc<CertifiedKey>) -> (String, String) {
        let new = next.cert.first().map(fingerprint).unwrap_or_default();
        let old = self.current.set(next);
        let old = old.cert.first().map(fingerprint).unwrap_or_default();
        (old, new)
    }
}

impl ResolvesServerCert for NodeCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.get())
    }
}

impl ResolvesClientCert for NodeCert {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.current.get())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// `identity` as the node's own certificate, at start or replacing the one in use: checked,
/// and refused once its leaf has lapsed.
pub(crate) fn own_key(identity: Identity) -> Result<Arc<CertifiedKey>, NodeError> {
    certified_key(unexpired(identity)?)
}

fn unexpired(identity: Identity) -> Result<Identity, NodeError> {
    let leaf = identity
        .chain
        .first()
        .ok_or_else(|| error("the certificate file holds no certificate"))?;
    if let Some(end) = expiry::not_after(leaf)
        && (end as f64) < crate::shared::unix_now()
    {
        return Err(error(format!(
            "the certificate {} has expired",
            fingerprint(leaf)
        )));
    }
    Ok(identity)
}

/// `identity` as rustls signs with it: its key must be the leaf's.
fn certified_key(identity: Identity) -> Result<Arc<CertifiedKey>, NodeError> {
    if identity.chain.is_empty() {
        return Err(error("the certificate file holds no certificate"));
    }
    CertifiedKey::from_der(identity.chain, identity.key, &provider())
        .map(Arc::new)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => {
                error("the private key does not match the certificate")
            }
            e => error(format!("the certificate and key cannot be used: {e}")),
        })
}
