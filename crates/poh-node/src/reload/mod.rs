//! Live reload: what `SIGHUP` ([`Node::reload`](crate::Node::reload), with the configuration
//! read again) and a change to one of the watched files reload while the node runs:
//!
//! - the node's certificate and key ([`NodeCert`]), which its listeners present and its
//!   clients (broadcast, relay, health checks, catch-up, the federation link) present for
//!   mutual TLS, or QUIC's own certificate on a node without one;
//! - the CA and the allow-list: whom the listeners admit ([`ClientVerifier`]), and whom the
//!   node's clients trust ([`CaTrust`]);
//! - the token file and JWT keys ([`Authenticator`]), and the token the node sends its peers
//!   ([`Bearer`]);
//! - the `[limits]` values.
//!
//! A reload reads and checks every part first and replaces them only when all are good: one
//! that fails changes nothing, and the node keeps serving with what it had. Settings that
//! cannot change live ([`settings`]) are named, one line each, and keep their running value.
//! `poh_reload_total{result}` counts the reloads.

mod settings;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

use crate::{
    NodeConfig, NodeError,
    config::ClientLimits,
    ingress::{
        Services,
        auth::{Authenticator, Credentials},
        limits::ClientLimiter,
        subscribe::Subscriptions,
    },
    network::client::{Bearer, BearerToken, ClientTls, read_token_file},
    shared::ByteBudget,
    tls::{CaTrust, ClientVerifier, Identity, LoadedCa, NodeCert, NodeTls, ServerTrust},
};

/// How often the watched files are looked at.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// The parts of a running node a reload replaces.
pub(crate) struct Parts {
    /// The node's certificate, and `poh_tls_cert_expiry_seconds`, moved with it.
    pub cert: Option<(Arc<NodeCert>, metrics::Gauge)>,
    /// QUIC's own certificate (`[quic]` cert and key), on a node without `[tls]` one.
    pub quic_cert: Option<Arc<NodeCert>>,
    /// The CA, as the listeners check clients with it and as the node's clients check servers.
    pub ca: Option<(Arc<ClientVerifier>, Arc<CaTrust>)>,
    pub auth: Option<Authenticator>,
    /// The token sent to peers and the parent (`peers.token_file`).
    pub peers_token: Option<Bearer>,
    pub limiter: Arc<ClientLimiter>,
    pub buffered: Arc<ByteBudget>,
    pub subscriptions: Arc<Subscriptions>,
}

impl Parts {
    /// What a node made of `tls`, `peers` (its clients' settings) and `services` can reload;
    /// `expiry` is `poh_tls_cert_expiry_seconds` when it has a certificate.
    pub(crate) fn of(
        tls: &NodeTls,
        peers: &ClientTls,
        services: &Services,
        expiry: Option<metrics::Gauge>,
    ) -> Self {
        Self {
            cert: tls.cert.clone().zip(expiry),
            quic_cert: tls.quic_cert.clone(),
            ca: match (&tls.clients, &tls.trust) {
                (Some(clients), ServerTrust::Loaded(servers)) => {
                    Some((clients.clone(), servers.clone()))
                }
                _ => None,
            },
            auth: services.auth.clone(),
            peers_token: peers.token.clone(),
            limiter: services.limiter.clone(),
            buffered: services.buffered.clone(),
            subscriptions: services.subscriptions.clone(),
        }
    }
}

/// Reloads a node's [`Parts`] from its configuration.
pub(crate) struct Reloader {
    parts: Parts,
    /// The settings the node runs with now; a reload is one at a time.
    applied: Mutex<NodeConfig>,
    /// The watched files as the last reload (or the start) found them.
    loaded: Mutex<Stamps>,
    /// `poh_reload_total{result="success"}`, `{result="failure"}`.
    results: [metrics::Counter; 2],
}

/// Each watched file's length and modification time (`None` while it cannot be read).
type Stamps = Vec<(PathBuf, Option<(u64, SystemTime)>)>;

/// Every part, read and checked, waiting to be installed.
struct Checked {
    cert: Option<Arc<CertifiedKey>>,
    quic_cert: Option<Arc<CertifiedKey>>,
    ca: Option<LoadedCa>,
    auth: Option<Arc<Credentials>>,
    peers_token: Option<Arc<BearerToken>>,
    limits: ClientLimits,
}

impl Reloader {
    /// For a node started with `config`.
    pub(crate) fn new(config: &NodeConfig, parts: Parts, results: [metrics::Counter; 2]) -> Self {
        let loaded = stamps(&watched(config, &parts));
        Self {
            parts,
            applied: Mutex::new(config.clone()),
            loaded: Mutex::new(loaded),
            results,
        }
    }

    /// The settings the node runs with now.
    pub(crate) fn applied(&self) -> NodeConfig {
        self.applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Applies what can change live of `next`, reading every file it names again; says which
    /// of its other settings differ (they wait for a restart). On error nothing changes.
    pub(crate) fn reload(&self, next: &NodeConfig) -> Result<(), NodeError> {
        let mut applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        let merged = settings::merge(&applied, next);
        for fixed in settings::fixed(&merged, next) {
            tracing::warn!(
                setting = %fixed.key,
                running = %fixed.running,
                configured = %fixed.configured,
                "this setting cannot change while the node runs; it keeps its value until a restart"
            );
        }
        let found = stamps(&watched(&merged, &self.parts));
        let outcome = merged
            .validate()
            .and_then(|()| self.check(&merged))
            .map(|checked| self.install(checked, &applied.limits));
        *self.loaded.lock().unwrap_or_else(|p| p.into_inner()) = found;
        match outcome {
            Ok(changes) => {
                self.results[0].increment(1);
                let changes = match changes.is_empty() {
                    true => "nothing".to_string(),
                    false => changes.join("; "),
                };
                tracing::info!(%changes, "reloaded");
                *applied = merged;
                Ok(())
            }
            Err(e) => {
                self.results[1].increment(1);
                self.log_failure(&e);
                Err(e)
            }
        }
    }

    /// A reload that could not start: `error` says why.
    pub(crate) fn failed(&self, error: &str) {
        self.results[1].increment(1);
        self.log_failure(&error);
    }

    fn log_failure(&self, error: &dyn std::fmt::Display) {
        const FAILED: &str = "reload failed; nothing changed, the node keeps what it had";
        match &self.parts.cert {
            Some((cert, _)) => tracing::warn!(%error, serving = %cert.fingerprint(), "{FAILED}"),
            None => tracing::warn!(%error, "{FAILED}"),
        }
    }

    /// Reads and checks every part `config` names; the error names the files.
    fn check(&self, config: &NodeConfig) -> Result<Checked, NodeError> {
        let parts = &self.parts;
        let tls = config.tls.clone().unwrap_or_default();
        let cert = match &parts.cert {
            Some(_) => Some(
                Identity::from_config(&tls)
                    .and_then(|id| {
                        id.ok_or_else(|| NodeError::Config("names no certificate".into()))
                    })
                    .and_then(crate::tls::own_key)
                    .map_err(|e| failed("the TLS certificate", &cert_files(config), e))?,
            ),
            None => None,
        };
        let quic_cert = match (&parts.quic_cert, &config.quic) {
            (Some(_), Some(quic)) => Some(
                Identity::from_quic(quic)
                    .and_then(|id| {
                        id.ok_or_else(|| NodeError::Config("names no certificate".into()))
                    })
                    .and_then(crate::tls::own_key)
                    .map_err(|e| failed("the QUIC certificate", &quic_files(config), e))?,
            ),
            _ => None,
        };
        let ca = match &parts.ca {
            Some(_) => Some(
                crate::tls::load_ca(&tls)
                    .and_then(|ca| ca.ok_or_else(|| NodeError::Config("names no CA".into())))
                    .map_err(|e| failed("the CA", &ca_file(config), e))?,
            ),
            None => None,
        };
        let auth = match (&parts.auth, &config.auth) {
            (Some(_), Some(settings)) => Some(
                Credentials::load(settings)
                    .map_err(|e| failed("the client credentials", &auth_files(config), e))?,
            ),
            _ => None,
        };
        let peers_token = match (&parts.peers_token, &config.peers.token_file) {
            (Some(_), Some(file)) => Some(
                read_token_file(file)
                    .and_then(Bearer::check)
                    .map_err(|e| failed("the peers token", &[file.as_path()], e))?,
            ),
            _ => None,
        };
        Ok(Checked {
            peers_token,
            cert,
            quic_cert,
            ca,
            auth,
            limits: config.limits.clone(),
        })
    }

    /// Puts every checked part in place; returns what changed, for the log (fingerprints and
    /// names, never secrets).
    fn install(&self, checked: Checked, limits_before: &ClientLimits) -> Vec<String> {
        let parts = &self.parts;
        let mut changes = Vec::new();
        if let (Some((node_cert, expiry)), Some(next)) = (&parts.cert, checked.cert) {
            let (old, new) = node_cert.install(next);
            if let Some(end) = node_cert.not_after() {
                expiry.set(end as f64);
            }
            if old != new {
                changes.push(format!("certificate {old} → {new}"));
            }
        }
        if let (Some(quic_cert), Some(next)) = (&parts.quic_cert, checked.quic_cert) {
            let (old, new) = quic_cert.install(next);
            if old != new {
                changes.push(format!("QUIC certificate {old} → {new}"));
            }
        }
        if let (Some((clients, servers)), Some((admission, trust))) = (&parts.ca, checked.ca) {
            let old = clients.current();
            if old.ca != admission.ca {
                changes.push(format!(
                    "CA [{}] → [{}]",
                    old.ca.join(", "),
                    admission.ca.join(", ")
                ));
            }
            changes.extend(settings::list_change(
                "allowed clients",
                &old.auth.allowed,
                &admission.auth.allowed,
            ));
            clients.install(admission);
            servers.install(trust);
        }
        if let (Some(auth), Some(next)) = (&parts.auth, checked.auth) {
            let old = auth.current();
            if old.digest != next.digest {
                changes.push(format!(
                    "client credentials {} → {}",
                    old.describe(),
                    next.describe()
                ));
            }
            auth.install(next);
        }
        if let (Some(token), Some(next)) = (&parts.peers_token, checked.peers_token)
            && token.install(next)
        {
            changes.push("the token sent to peers".into());
        }
        let limits = &checked.limits;
        parts.limiter.set(limits);
        parts
            .buffered
            .set(limits.buffered_bytes, limits.buffered_bytes_per_client);
        parts.subscriptions.set(limits);
        changes.extend(settings::limit_changes(limits_before, limits));
        changes
    }

    /// Reloads with the settings applied last when the watched files have changed and then
    /// stayed the same for one more look, until `shutdown`: a certificate and its key are
    /// written one after the other, and reading between the two would only fail.
    pub(crate) async fn watch_files(self: Arc<Self>, shutdown: CancellationToken) {
        let mut settling = None;
        let mut every = tokio::time::interval(WATCH_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            let applied = self.applied();
            let now = stamps(&watched(&applied, &self.parts));
            if now == *self.loaded.lock().unwrap_or_else(|p| p.into_inner()) {
                settling = None;
            } else if settling.as_ref() == Some(&now) {
                let _ = self.reload(&applied);
                settling = None;
            } else {
                settling = Some(now);
            }
        }
    }
}

/// `error`, said of `what` and the files it was read from.
fn failed(what: &str, files: &[&Path], error: NodeError) -> NodeError {
    let files = files
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    NodeError::Config(format!("reloading {what} ({files}): {error}"))
}

/// The files a reload of `config` reads, for the parts the node has.
fn watched<'a>(config: &'a NodeConfig, parts: &Parts) -> Vec<&'a Path> {
    let mut files = Vec::new();
    if parts.cert.is_some() {
        files.extend(cert_files(config));
    }
    if parts.quic_cert.is_some() {
        files.extend(quic_files(config));
    }
    if parts.ca.is_some() {
        files.extend(ca_file(config));
    }
    if parts.auth.is_some() {
        files.extend(auth_files(config));
    }
    if parts.peers_token.is_some() {
        files.extend(config.peers.token_file.as_deref());
    }
    files
}

fn cert_files(config: &NodeConfig) -> Vec<&Path> {
    let Some(s) = &config.tls else {
        return Vec::new();
    };
    [&s.cert, &s.key, &s.pkcs12, &s.pkcs12_password_file]
        .into_iter()
        .filter_map(|p| p.as_deref())
        .collect()
}

fn quic_files(config: &NodeConfig) -> Vec<&Path> {
    let Some(q) = &config.quic else {
        return Vec::new();
    };
    [&q.cert, &q.key]
        .into_iter()
        .filter_map(|p| p.as_deref())
        .collect()
}

fn ca_file(config: &NodeConfig) -> Vec<&Path> {
    config
        .tls
        .as_ref()
        .and_then(|t| t.ca.as_deref())
        .into_iter()
        .collect()
}

fn auth_files(config: &NodeConfig) -> Vec<&Path> {
    let Some(c) = &config.auth else {
        return Vec::new();
    };
    [
        &c.token_file,
        &c.jwt_hs256_secret_file,
        &c.jwt_eddsa_public_key_file,
    ]
    .into_iter()
    .filter_map(|p| p.as_deref())
    .collect()
}

fn stamps(files: &[&Path]) -> Stamps {
    files
        .iter()
        .map(|p| {
            let stamp = std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.len(), m.modified().ok()?)));
            (p.to_path_buf(), stamp)
        })
        .collect()
}
