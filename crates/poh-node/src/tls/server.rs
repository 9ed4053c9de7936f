//! What a listener presents, and whom it admits: the node's certificate, and with a CA,
//! client certificates from that CA whose name is on the allow-list (mutual TLS), both
//! replaceable while the node runs.

use std::sync::Arc;

use rustls::{
    DigitallySignedStruct, DistinguishedName, SignatureScheme,
    client::danger::HandshakeSignatureValid,
    pki_types::{CertificateDer, UnixTime},
    server::{
        WebPkiClientVerifier,
        danger::{ClientCertVerified, ClientCertVerifier},
    },
};

use super::{NodeCert, NodeTls, error, provider};
use crate::{NodeError, shared::Live};

/// Who may connect to a listener.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientAuth {
    /// Client certificates must chain to this CA (PEM); `None`: no client certificate asked.
    pub ca: Option<std::path::PathBuf>,
    /// Subject CNs or SAN names allowed; empty: any certificate the CA issued.
    pub allowed: Vec<String>,
}

/// A server configuration presenting `cert` and admitting clients per `clients` (whatever
/// each holds at the handshake; without `clients`, no client certificate is asked), offering
/// `alpn`.
pub fn server_config(
    cert: Arc<NodeCert>,
    clients: Option<Arc<ClientVerifier>>,
    alpn: &[&[u8]],
) -> Result<rustls::ServerConfig, NodeError> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .map_err(error)?;
    let builder = match clients {
        Some(clients) => builder.with_client_cert_verifier(clients),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(cert);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Whom the listeners admit (mutual TLS), replaceable while the node runs: client
/// certificates that chain to the CA and, with an allow-list, name one of its identities.
/// Each handshake is checked against what was loaded last, so a client taken off the list
/// cannot make a new connection once the list is reloaded.
#[derive(Debug)]
pub struct ClientVerifier {
    current: Live<Admission>,
}

/// One loaded CA and allow-list.
#[derive(Debug)]
pub(crate) struct Admission {
    inner: Arc<dyn ClientCertVerifier>,
    /// The settings it was read from.
    pub(crate) auth: ClientAuth,
    /// The CA certificates' fingerprints.
    pub(crate) ca: Vec<String>,
}

impl ClientVerifier {
    /// Admitting per `admission` (from [`load_ca`](super::load_ca)).
    pub(crate) fn new(admission: Arc<Admission>) -> Arc<Self> {
        Arc::new(Self {
            current: Live::new(admission),
        })
    }

    /// Clients of the CA in `roots` (whose certificates have `fingerprints`), per `auth`.
    pub(crate) fn admit(
        auth: &ClientAuth,
        roots: rustls::RootCertStore,
        fingerprints: Vec<String>,
    ) -> Result<Arc<Admission>, NodeError> {
        let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(error)?;
        Ok(Arc::new(Admission {
            inner,
            auth: auth.clone(),
            ca: fingerprints,
        }))
    }

    /// What is admitted now.
    pub(crate) fn current(&self) -> Arc<Admission> {
        self.current.get()
    }

    /// Admits per `next` (from [`load_ca`](super::load_ca)) from the next handshake on.
    pub(crate) fn install(&self, next: Arc<Admission>) {
        self.current.set(next);
    }
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

impl ClientCertVerifier for ClientVerifier {
    /// None: the hints would have to outlive a reload, and with none a client sends the
    /// certificate it has (RFC 8446 §4.3.2), which is what each of ours has.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let admission = self.current();
        let verified = admission
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let allowed = &admission.auth.allowed;
        if allowed.is_empty()
            || identities(end_entity)
                .iter()
                .any(|name| allowed.iter().any(|a| a == name))
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
        self.current()
            .inner
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current()
            .inner
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current().inner.supported_verify_schemes()
    }
}

/// The TLS acceptor for a TCP listener offering `alpn`, when the node has TLS on.
pub fn acceptor(
    tls: &NodeTls,
    alpn: &[&[u8]],
) -> Result<Option<tokio_rustls::TlsAcceptor>, NodeError> {
    let Some(cert) = &tls.cert else {
        return Ok(None);
    };
    let config = server_config(cert.clone(), tls.clients.clone(), alpn)?;
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
}
