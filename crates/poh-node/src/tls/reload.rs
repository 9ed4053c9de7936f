//! [`NodeCert`]: the certificate every listener presents (gRPC, HTTPS, QUIC), replaceable
//! while the node runs. Listeners' TLS configurations resolve it at each handshake, so a new
//! connection gets the certificate loaded last and an established one keeps its session.
//! A replacement is checked whole (it reads, its key matches, it has not lapsed) before it
//! takes the place of the old one; a bad one changes nothing.

use std::sync::{Arc, RwLock};

use rustls::{
    InconsistentKeys,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};

use super::{Identity, error, expiry, fingerprint, provider};
use crate::NodeError;

/// The node's certificate and key, as listeners present them.
#[derive(Debug)]
pub struct NodeCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl NodeCert {
    /// `identity`, checked.
    pub fn new(identity: Identity) -> Result<Arc<Self>, NodeError> {
        Ok(Arc::new(Self {
            current: RwLock::new(Arc::new(certified(identity)?)),
        }))
    }

    /// The leaf certificate a new connection is shown now.
    fn leaf(&self) -> Option<rustls::pki_types::CertificateDer<'static>> {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        current.cert.first().cloned()
    }

    /// The SHA-256 fingerprint of the leaf shown now.
    pub fn fingerprint(&self) -> String {
        self.leaf().as_ref().map(fingerprint).unwrap_or_default()
    }

    /// When the leaf shown now lapses (Unix seconds).
    pub fn not_after(&self) -> Option<i64> {
        self.leaf().as_ref().and_then(expiry::not_after)
    }

    /// Shows `identity` to every new connection from now on, once it is checked; returns the
    /// fingerprints of the old and the new leaf. On error nothing changes.
    pub fn replace(&self, identity: Identity) -> Result<(String, String), NodeError> {
        let next = Arc::new(certified(identity)?);
        let new = next.cert.first().map(fingerprint).unwrap_or_default();
        let old = self.fingerprint();
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok((old, new))
    }
}

impl ResolvesServerCert for NodeCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

/// `identity` as rustls signs with it: its key must be the leaf's, and the leaf must not have
/// lapsed.
fn certified(identity: Identity) -> Result<CertifiedKey, NodeError> {
    let leaf = identity
        .chain
        .first()
        .ok_or_else(|| error("the certificate file holds no certificate"))?;
    if let Some(end) = expiry::not_after(leaf)
        && (end as f64) < crate::pipeline::unix_now()
    {
        return Err(error(format!(
            "the certificate {} has expired",
            fingerprint(leaf)
        )));
    }
    CertifiedKey::from_der(identity.chain, identity.key, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => {
            error("the private key does not match the certificate")
        }
        e => error(format!("the certificate and key cannot be used: {e}")),
    })
}
