//! TLS for every transport (SPEC §8), with rustls and aws-lc-rs.
//!
//! - [`Identity`]: a certificate chain and its key, from PEM files or a PKCS#12 bundle (its
//!   password from a file or `POH_TLS_PKCS12_PASSWORD`, never a flag).
//! - [`server_config`]: what a listener presents; with a CA it requires client certificates
//!   issued by that CA (mutual TLS) and, when an allow-list is given, whose subject CN or a SAN
//!   is on it.
//! - [`certs`]: a development CA and node certificates (`poh certs`).
//! - [`client_config`]: how a node or the CLI connects: trusting a CA, a pinned certificate
//!   fingerprint, or (development only) anything; presenting its own certificate for mTLS.

pub mod certs;

use std::{path::Path, sync::Arc};

use rustls::{
    DigitallySignedStruct, DistinguishedName, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{
        CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime, pem::PemObject,
    },
    server::{
        WebPkiClientVerifier,
        danger::{ClientCertVerified, ClientCertVerifier},
    },
};
use sha2::{Digest, Sha256};

use crate::{NodeError, config::TlsConfig};

/// The environment variable a PKCS#12 password may come from.
pub const PKCS12_PASSWORD_ENV: &str = "POH_TLS_PKCS12_PASSWORD";

/// The crypto provider every TLS configuration uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn error(what: impl std::fmt::Display) -> NodeError {
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

fn roots(ca: &Path) -> Result<rustls::RootCertStore, NodeError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certs(ca)? {
        roots
            .add(cert)
            .map_err(|e| error(format!("{}: {e}", ca.display())))?;
    }
    Ok(roots)
}

/// Who may connect to a listener.
#[derive(Clone, Debug, Default)]
pub struct ClientAuth {
    /// Client certificates must chain to this CA (PEM); `None`: no client certificate asked.
    pub ca: Option<std::path::PathBuf>,
    /// Subject CNs or SAN names allowed; empty: any certificate the CA issued.
    pub allowed: Vec<String>,
}

/// A server configuration presenting `identity`, offering `alpn`.
pub fn server_config(
    identity: Identity,
    auth: &ClientAuth,
    alpn: &[&[u8]],
) -> Result<rustls::ServerConfig, NodeError> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .map_err(error)?;
    let builder = match &auth.ca {
        Some(ca) => {
            let inner =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider())
                    .build()
                    .map_err(error)?;
            builder.with_client_cert_verifier(Arc::new(AllowList {
                inner,
                allowed: auth.allowed.clone(),
            }))
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(identity.chain, identity.key)
        .map_err(error)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// How a client decides to trust a server.
#[derive(Clone, Debug, Default)]
pub enum ServerTrust {
    /// Certificates issued by this CA (PEM file), for the name dialled.
    Ca(std::path::PathBuf),
    /// Exactly the certificate with this SHA-256 fingerprint (lowercase hex).
    Pinned(String),
    /// Any certificate: development certificates on a trusted network only.
    #[default]
    AnyCertificate,
}

/// A client configuration trusting servers per `trust`, presenting `identity` when given.
pub fn client_config(
    trust: &ServerTrust,
    identity: Option<&Identity>,
    alpn: &[&[u8]],
) -> Result<rustls::ClientConfig, NodeError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .map_err(error)?;
    let builder = match trust {
        ServerTrust::Ca(ca) => builder.with_root_certificates(roots(ca)?),
        ServerTrust::Pinned(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                pin: Some(pin.to_ascii_lowercase()),
                provider: provider(),
            })),
        ServerTrust::AnyCertificate => {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Pinned {
                    pin: None,
                    provider: provider(),
                }))
        }
    };
    let mut config = match identity {
        Some(id) => builder
            .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
            .map_err(error)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The names a certificate stands for: its subject CNs and SAN DNS names and IPs.
pub fn identities(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return Vec::new();
    };
    let mut names: Vec<String> = parsed
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_string))
        .collect();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(d) => names.push(d.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(ip) => match ip.len() {
                    4 => names.push(
                        std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).unwrap_or_default())
                            .to_string(),
                    ),
                    16 => names.push(
                        std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*ip).unwrap_or_default())
                            .to_string(),
                    ),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    names
}

/// The CA's verdict, then the allow-list's.
#[derive(Debug)]
struct AllowList {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
}

impl ClientCertVerifier for AllowList {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if self.allowed.is_empty()
            || identities(end_entity)
                .iter()
                .any(|name| self.allowed.iter().any(|a| a == name))
        {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Why a pinned server was refused, in the words an operator needs.
#[derive(Debug, thiserror::Error)]
#[error(
    "the server's certificate does not match the pinned SHA-256 fingerprint (see poh fingerprint)"
)]
struct PinMismatch;

/// Trusts one pinned certificate (or, without a pin, any), still checking that the server
/// holds its key.
#[derive(Debug)]
struct Pinned {
    pin: Option<String>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.pin {
            // `Error::Other` displays its message; a `CertificateError` would show its Debug form.
            Some(pin) if *pin != fingerprint(end_entity) => Err(rustls::Error::Other(
                rustls::OtherError(Arc::new(PinMismatch)),
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
