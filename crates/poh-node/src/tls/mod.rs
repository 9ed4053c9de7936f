//! TLS for every transport (SPEC §8), both directions, with rustls and aws-lc-rs.
//!
//! - [`Identity`]: a certificate chain and its key, from PEM files or a PKCS#12 bundle (its
//!   password from a file or `POH_TLS_PKCS12_PASSWORD`, never a flag); [`NodeTls`]: what a
//!   node loads from its `[tls]` settings, once, for its listeners and its clients.
//! - [`server_config`] (`server`): what a listener presents; with a CA it requires client
//!   certificates issued by that CA (mutual TLS) and, when an allow-list is given, whose
//!   subject CN or a SAN is on it.
//! - [`client_config`] (`client`): how a node or the CLI connects: trusting a CA, a pinned
//!   certificate fingerprint, or (development only) anything; presenting its own certificate
//!   for mTLS.
//! - [`certs`]: a development CA and node certificates (`poh certs`), and the QUIC
//!   development certificate;
//! - [`expiry`]: the node certificate's expiry date as a metric, and a daily warning before it;
//! - [`NodeCert`] (`reload`): the certificate the node presents, to its clients and to the
//!   servers it connects to, and [`ClientVerifier`] (`server`): whom its listeners admit; both
//!   replaceable while the node runs.

pub mod certs;
mod client;
pub mod expiry;
mod reload;
mod server;

use std::{path::Path, sync::Arc};

pub use client::{CaTrust, ServerTrust, client_config};
pub use reload::NodeCert;
pub(crate) use reload::own_key;
use rustls::{
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, pem::PemObject},
};
pub(crate) use server::Admission;
pub use server::{ClientAuth, ClientVerifier, acceptor, identities, server_config};
use sha2::{Digest, Sha256};

use rustls::client::WebPkiServerVerifier;

use crate::{
    NodeConfig, NodeError,
    config::{QuicConfig, TlsConfig},
};

/// The environment variable a PKCS#12 password may come from.
pub const PKCS12_PASSWORD_ENV: &str = "POH_TLS_PKCS12_PASSWORD";

/// The crypto provider every TLS configuration uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

pub(crate) fn error(what: impl std::fmt::Display) -> NodeError {
    NodeError::Config(format!("TLS: {what}"))
}

/// Reads a certificate pin: a SHA-256 fingerprint as 64 hex digits, in either case, with or
/// without the colons `openssl x509 -fingerprint -sha256` prints. Returns it as
/// [`fingerprint`] writes it (lowercase, no colons); the error says what is expected.
pub fn parse_pin(pin: &str) -> Result<String, String> {
    let hex: String = pin.chars().filter(|&c| c != ':').collect();
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex.to_ascii_lowercase())
    } else {
        Err(
            "expected a SHA-256 fingerprint: 64 hex digits (colons allowed), as `poh certs` prints"
                .into(),
        )
    }
}

/// The SHA-256 fingerprint of a DER certificate, lowercase hex (what pinning compares).
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    hex::encode(Sha256::digest(cert.as_ref()))
}

/// A certificate chain (leaf first) and its private key.
pub struct Identity {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's key.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Identity")
            .field("fingerprint", &self.chain.first().map(fingerprint))
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// From a PEM certificate chain and a PEM private key.
    pub fn from_pem(cert: &Path, key: &Path) -> Result<Self, NodeError> {
        let chain = read_certs(cert)?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
            error(format!(
                "cannot read a private key from {}: {e}",
                key.display()
            ))
        })?;
        Ok(Self { chain, key })
    }

    /// From a PKCS#12 bundle.
    pub fn from_pkcs12(path: &Path, password: &str) -> Result<Self, NodeError> {
        let bytes = std::fs::read(path)
            .map_err(|e| error(format!("cannot read {}: {e}", path.display())))?;
        let store = p12_keystore::KeyStore::from_pkcs12(
            &bytes,
            password,
            p12_keystore::Pkcs12ImportPolicy::Strict,
        )
        .map_err(|e| {
            error(format!(
                "cannot open the PKCS#12 bundle {} (wrong password?): {e}",
                path.display()
            ))
        })?;
        let (_, chain) = store.private_key_chain().ok_or_else(|| {
            error(format!(
                "{} holds no private key with its certificate",
                path.display()
            ))
        })?;
        Ok(Self {
            chain: chain
                .certs()
                .iter()
                .map(|c| CertificateDer::from(c.as_der().to_vec()))
                .collect(),
            key: PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec()).into(),
        })
    }

    /// QUIC's own certificate, when `[quic]` names one.
    pub fn from_quic(config: &QuicConfig) -> Result<Option<Self>, NodeError> {
        match (&config.cert, &config.key) {
            (Some(cert), Some(key)) => Self::from_pem(cert, key).map(Some),
            _ => Ok(None),
        }
    }

    /// What `config` names: PEM files, or a PKCS#12 bundle. `None` when it names neither.
    pub fn from_config(config: &TlsConfig) -> Result<Option<Self>, NodeError> {
        match (&config.cert, &config.key, &config.pkcs12) {
            (Some(cert), Some(key), None) => Self::from_pem(cert, key).map(Some),
            (None, None, Some(bundle)) => {
                let password = pkcs12_password(config)?;
                Self::from_pkcs12(bundle, &password).map(Some)
            }
            (None, None, None) => Ok(None),
            _ => Err(error(
                "give either cert and key (PEM) or pkcs12, not both and not one of a pair",
            )),
        }
    }
}

fn pkcs12_password(config: &TlsConfig) -> Result<String, NodeError> {
    if let Some(path) = &config.pkcs12_password_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| error(format!("cannot read {}: {e}", path.display())))?;
        return Ok(text.trim_end_matches(['\r', '\n']).to_string());
    }
    std::env::var(PKCS12_PASSWORD_ENV).map_err(|_| {
        error(format!(
            "the PKCS#12 password: set pkcs12_password_file or {PKCS12_PASSWORD_ENV}"
        ))
    })
}

/// Writes a secret file readable by its owner only (mode 0600 on Unix), even briefly.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), NodeError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| error(format!("cannot write {}: {e}", path.display())))
}

/// Every certificate in a PEM file.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, NodeError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            error(format!(
                "cannot read certificates from {}: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(error(format!("no certificate in {}", path.display())));
    }
    Ok(certs)
}

/// The CA certificates in `ca` as a trust store, and their fingerprints (for the log).
pub(crate) fn roots(ca: &Path) -> Result<(rustls::RootCertStore, Vec<String>), NodeError> {
    let mut roots = rustls::RootCertStore::empty();
    let mut fingerprints = Vec::new();
    for cert in read_certs(ca)? {
        fingerprints.push(fingerprint(&cert));
        roots
            .add(cert)
            .map_err(|e| error(format!("{}: {e}", ca.display())))?;
    }
    Ok((roots, fingerprints))
}

/// The node's TLS material, loaded at start from `[tls]`: what its listeners present and
/// whom they admit (both replaced by a reload), and how its clients trust peers.
#[derive(Clone, Debug, Default)]
pub struct NodeTls {
    /// The node's certificate, presented by its listeners and, for mutual TLS, by its clients;
    /// `None`: plaintext gRPC and HTTP.
    pub cert: Option<Arc<NodeCert>>,
    /// QUIC's own certificate (`[quic]` cert and key), when the node has none of its own.
    pub quic_cert: Option<Arc<NodeCert>>,
    /// Who may connect, when a CA is set (mutual TLS).
    pub clients: Option<Arc<ClientVerifier>>,
    /// How the node's clients trust the servers they reach: the CA (replaced by a reload),
    /// else the system's roots, or anything when `insecure` (peers may also be pinned in the
    /// peers file).
    pub trust: ServerTrust,
}

impl NodeTls {
    /// From the node's `[tls]` settings (without them, no TLS on gRPC and HTTP), and
    /// `[quic]`'s own certificate when `[tls]` names none.
    pub fn load(config: &NodeConfig) -> Result<Self, NodeError> {
        let mut tls = match &config.tls {
            Some(settings) => Self::from_settings(settings)?,
            None => Self::default(),
        };
        if tls.cert.is_none()
            && let Some(quic) = &config.quic
        {
            tls.quic_cert = Identity::from_quic(quic)?.map(NodeCert::own).transpose()?;
        }
        Ok(tls)
    }

    fn from_settings(config: &TlsConfig) -> Result<Self, NodeError> {
        let identity = Identity::from_config(config)?;
        if identity.is_none() && (config.ca.is_some() || !config.allowed_clients.is_empty()) {
            return Err(NodeError::Config(
                "[tls] ca and allowed_clients need the node's certificate: cert and key, or \
                 pkcs12"
                    .into(),
            ));
        }
        let (clients, trust) = match load_ca(config)? {
            Some((admission, servers)) => (
                Some(ClientVerifier::new(admission)),
                ServerTrust::Loaded(CaTrust::new(servers)),
            ),
            None => (
                None,
                ServerTrust::from_settings(None, None, config.insecure),
            ),
        };
        Ok(Self {
            cert: identity.map(NodeCert::own).transpose()?,
            quic_cert: None,
            clients,
            trust,
        })
    }
}

/// A CA as the listeners admit clients with it, and as the node's clients check servers.
pub(crate) type LoadedCa = (Arc<Admission>, Arc<WebPkiServerVerifier>);

/// The CA `[tls]` names, read once for both directions: whom the listeners admit (with the
/// allow-list), and the verifier the node's clients check servers with. `None` without one.
pub(crate) fn load_ca(config: &TlsConfig) -> Result<Option<LoadedCa>, NodeError> {
    let Some(ca) = &config.ca else {
        return Ok(None);
    };
    let (roots, fingerprints) = roots(ca)?;
    let servers = CaTrust::verifier(roots.clone())?;
    let admission = ClientVerifier::admit(&ClientAuth::from_config(config), roots, fingerprints)?;
    Ok(Some((admission, servers)))
}

impl ClientAuth {
    /// What `[tls]` says of clients.
    pub fn from_config(config: &TlsConfig) -> Self {
        Self {
            ca: config.ca.clone(),
            allowed: config.allowed_clients.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_trusts_its_ca_else_the_system_and_anything_only_when_told() {
        let load = |tls| {
            NodeTls::load(&NodeConfig {
                tls,
                ..NodeConfig::default()
            })
        };
        assert_eq!(load(None).unwrap().trust, ServerTrust::System);
        let insecure = TlsConfig {
            insecure: true,
            ..TlsConfig::default()
        };
        assert_eq!(load(Some(insecure)).unwrap().trust, ServerTrust::Insecure);
        let ca_without_cert = TlsConfig {
            ca: Some("ca.crt".into()),
            ..TlsConfig::default()
        };
        assert!(load(Some(ca_without_cert)).is_err());
    }
}
