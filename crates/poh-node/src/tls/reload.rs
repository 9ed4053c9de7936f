//! [`NodeCert`]: the certificate every listener presents (gRPC, HTTPS, QUIC), replaceable
//! while the node runs. Listeners' TLS configurations resolve it at each handshake, so a new
//! connection gets the certificate loaded last and an established one keeps its session.
//! A replacement is checked whole (it reads, its key matches, it has not lapsed) before it
//! takes the place of the old one; a bad one changes nothing.

use std::{
    path::Path,
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

use rustls::{
    InconsistentKeys,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};

use tokio_util::sync::CancellationToken;

use super::{Identity, error, expiry, fingerprint, provider};
use crate::{NodeError, config::TlsConfig};

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

    /// What a new connection is shown now: the chain, leaf first.
    pub fn chain(&self) -> Vec<rustls::pki_types::CertificateDer<'static>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .cert
            .clone()
    }

    /// The SHA-256 fingerprint of the leaf shown now.
    pub fn fingerprint(&self) -> String {
        self.chain().first().map(fingerprint).unwrap_or_default()
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
    if let Some(end) = expiry::not_after(leaf) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if end < now {
            return Err(error(format!(
                "the certificate {} has expired",
                fingerprint(leaf)
            )));
        }
    }
    CertifiedKey::from_der(identity.chain, identity.key, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => {
            error("the private key does not match the certificate")
        }
        e => error(format!("the certificate and key cannot be used: {e}")),
    })
}

/// Reloads the node's certificate from its `[tls]` files: on `SIGHUP` ([`crate::Node::reload`])
/// and when one of the files changes. Counts `poh_reload_total{result}`.
pub(crate) struct Reloader {
    settings: TlsConfig,
    cert: Arc<NodeCert>,
    /// `poh_reload_total{result="success"}`, `{result="failure"}`.
    results: [metrics::Counter; 2],
    /// `poh_tls_cert_expiry_seconds`, moved to the new certificate's date.
    expiry: metrics::Gauge,
}

/// How often the certificate files are looked at.
const WATCH_EVERY: Duration = Duration::from_secs(2);

impl Reloader {
    pub(crate) fn new(
        settings: TlsConfig,
        cert: Arc<NodeCert>,
        results: [metrics::Counter; 2],
        expiry: metrics::Gauge,
    ) -> Arc<Self> {
        Arc::new(Self {
            settings,
            cert,
            results,
            expiry,
        })
    }

    /// Reads the certificate files again and, when they hold a usable certificate and key,
    /// presents them to every new connection. A failure changes nothing and says which files
    /// and why.
    pub(crate) fn reload(&self) -> Result<(), NodeError> {
        let files = self.files();
        let outcome = Identity::from_config(&self.settings)
            .and_then(|identity| identity.ok_or_else(|| error("[tls] names no certificate")))
            .and_then(|identity| self.cert.replace(identity));
        match outcome {
            Ok((old, new)) => {
                self.results[0].increment(1);
                if let Some(end) = self.cert.chain().first().and_then(expiry::not_after) {
                    self.expiry.set(end as f64);
                }
                tracing::info!(old_fingerprint = %old, new_fingerprint = %new, "TLS certificate reloaded");
                Ok(())
            }
            Err(e) => {
                self.results[1].increment(1);
                tracing::warn!(
                    files = %files,
                    error = %e,
                    serving = %self.cert.fingerprint(),
                    "TLS reload failed; still serving the certificate loaded before"
                );
                Err(e)
            }
        }
    }

    /// The files a reload reads, for messages.
    fn files(&self) -> String {
        self.watched()
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn watched(&self) -> Vec<&Path> {
        let s = &self.settings;
        [&s.cert, &s.key, &s.pkcs12, &s.pkcs12_password_file]
            .into_iter()
            .filter_map(|p| p.as_deref())
            .collect()
    }

    /// Each watched file's length and modification time (`None` while it cannot be read).
    fn stamps(&self) -> Vec<Option<(u64, SystemTime)>> {
        self.watched()
            .into_iter()
            .map(|p| {
                let meta = std::fs::metadata(p).ok()?;
                Some((meta.len(), meta.modified().ok()?))
            })
            .collect()
    }

    /// Reloads when the watched files have changed and then stayed the same for one more
    /// look, until `shutdown`: a certificate and its key are written one after the other, and
    /// reading between the two would only fail.
    pub(crate) async fn watch_files(self: Arc<Self>, shutdown: CancellationToken) {
        let mut loaded = self.stamps();
        let mut settling = None;
        let mut every = tokio::time::interval(WATCH_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            let now = self.stamps();
            if now == loaded {
                settling = None;
            } else if settling.as_ref() == Some(&now) {
                let _ = self.reload();
                loaded = now;
                settling = None;
            } else {
                settling = Some(now);
            }
        }
    }
}
