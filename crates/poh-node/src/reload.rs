//! Live reload: what `SIGHUP` ([`Node::reload`](crate::Node::reload)) and a change to one of
//! its files reload while the node runs: the node's TLS certificate and key ([`NodeCert`]) and
//! the client credentials (the token file and JWT keys, [`Authenticator`]). Each part is read
//! and checked whole before it replaces the one in use; a part that fails changes nothing, and
//! the node keeps serving with what it had. `poh_reload_total{result}` counts the reloads.

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, SystemTime},
};

use tokio_util::sync::CancellationToken;

use crate::{
    NodeError,
    config::TlsConfig,
    ingress::auth::Authenticator,
    tls::{Identity, NodeCert},
};

/// How often the watched files are looked at.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// The node's certificate, with the settings it is read from.
pub(crate) struct CertFiles {
    pub settings: TlsConfig,
    pub cert: Arc<NodeCert>,
    /// `poh_tls_cert_expiry_seconds`, moved to the new certificate's date.
    pub expiry: metrics::Gauge,
}

/// What a reload reads again.
pub(crate) struct Reloader {
    tls: Option<CertFiles>,
    auth: Option<Authenticator>,
    /// `poh_reload_total{result="success"}`, `{result="failure"}`.
    results: [metrics::Counter; 2],
}

impl Reloader {
    /// `None` when the node has nothing to reload.
    pub(crate) fn new(
        tls: Option<CertFiles>,
        auth: Option<Authenticator>,
        results: [metrics::Counter; 2],
    ) -> Option<Arc<Self>> {
        (tls.is_some() || auth.is_some()).then(|| Arc::new(Self { tls, auth, results }))
    }

    /// Reads every part again; the first failure is the error (each is logged, with its files).
    pub(crate) fn reload(&self) -> Result<(), NodeError> {
        let tls = self.tls.as_ref().map(|t| self.reload_cert(t));
        let auth = self.auth.as_ref().map(|a| self.reload_auth(a));
        let outcome = tls.unwrap_or(Ok(())).and(auth.unwrap_or(Ok(())));
        self.results[usize::from(outcome.is_err())].increment(1);
        outcome
    }

    fn reload_cert(&self, t: &CertFiles) -> Result<(), NodeError> {
        let outcome = Identity::from_config(&t.settings)
            .and_then(|identity| {
                identity.ok_or_else(|| NodeError::Config("[tls] names no certificate".into()))
            })
            .and_then(|identity| t.cert.replace(identity));
        match outcome {
            Ok((old, new)) => {
                if let Some(end) = t.cert.not_after() {
                    t.expiry.set(end as f64);
                }
                tracing::info!(old_fingerprint = %old, new_fingerprint = %new, "TLS certificate reloaded");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(
                    files = %names(&cert_files(&t.settings)),
                    error = %e,
                    serving = %t.cert.fingerprint(),
                    "TLS reload failed; still serving the certificate loaded before"
                );
                Err(e)
            }
        }
    }

    fn reload_auth(&self, auth: &Authenticator) -> Result<(), NodeError> {
        match auth.reload() {
            Ok(()) => {
                tracing::info!(files = %names(&auth.files()), "client credentials reloaded");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(
                    files = %names(&auth.files()),
                    error = %e,
                    "client credentials reload failed; the ones loaded before still hold"
                );
                Err(e)
            }
        }
    }

    fn watched(&self) -> Vec<&Path> {
        let mut files = self
            .tls
            .as_ref()
            .map(|t| cert_files(&t.settings))
            .unwrap_or_default();
        files.extend(self.auth.iter().flat_map(Authenticator::files));
        files
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

fn cert_files(s: &TlsConfig) -> Vec<&Path> {
    [&s.cert, &s.key, &s.pkcs12, &s.pkcs12_password_file]
        .into_iter()
        .filter_map(|p| p.as_deref())
        .collect()
}

/// Files, for a message.
fn names(files: &[&Path]) -> String {
    files
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
