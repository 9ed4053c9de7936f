//! How a client (the node's broadcaster, relay and health checks, and the CLI) trusts the
//! servers it talks to (SPEC §8): a CA, one pinned certificate, or the system's trust roots;
//! anything at all only when the operator asked for exactly that (`--insecure`), and then
//! every connection says so in the log.

use std::sync::Arc;

use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::CryptoProvider,
    pki_types::{CertificateDer, ServerName, UnixTime},
};

use super::{NodeCert, error, fingerprint, provider, roots};
use crate::{NodeError, shared::Live};

/// How a client decides to trust a server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ServerTrust {
    /// Certificates issued by this CA (PEM file), for the name dialled.
    Ca(std::path::PathBuf),
    /// Certificates issued by the CA a node loaded, for the name dialled; a reload of the
    /// node's CA is trusted from the next connection on.
    Loaded(Arc<CaTrust>),
    /// Exactly the certificate with this SHA-256 fingerprint (lowercase hex).
    Pinned(String),
    /// Certificates the operating system trusts, for the name dialled.
    #[default]
    System,
    /// Any certificate, unverified (`--insecure`): a warning is logged on every connection.
    Insecure,
}

impl ServerTrust {
    /// The trust a client configured with `ca`, `pin` and `insecure` has: the CA, else the
    /// pin, else anything when asked for, else the system's roots. Asking for anything is
    /// logged as a warning once here (and again on every connection).
    pub fn from_settings(ca: Option<&std::path::Path>, pin: Option<&str>, insecure: bool) -> Self {
        match (ca, pin, insecure) {
            (Some(ca), _, _) => Self::Ca(ca.to_path_buf()),
            (None, Some(pin), _) => Self::Pinned(pin.to_string()),
            (None, None, true) => {
                tracing::warn!(
                    "TLS servers are not verified (insecure): any certificate is accepted, and \
                     tokens go to whoever answers; use a CA or a pin instead"
                );
                Self::Insecure
            }
            (None, None, false) => Self::System,
        }
    }

    /// Whether a client chose TLS trust on purpose (a CA, a pin or insecure), rather than the
    /// default system roots: a gRPC peer, whose address has no scheme, is then dialled over TLS.
    pub fn is_explicit(&self) -> bool {
        !matches!(self, Self::System)
    }
}

/// A client configuration trusting servers per `trust`, presenting `identity` when given (what
/// it holds at each handshake: a reloaded node certificate is presented from the next
/// connection on).
pub fn client_config(
    trust: &ServerTrust,
    identity: Option<&Arc<NodeCert>>,
    alpn: &[&[u8]],
) -> Result<rustls::ClientConfig, NodeError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .map_err(error)?;
    let builder = match trust {
        ServerTrust::Ca(ca) => builder.with_root_certificates(roots(ca)?.0),
        ServerTrust::Loaded(ca) => builder
            .dangerous()
            .with_custom_certificate_verifier(ca.clone()),
        ServerTrust::Pinned(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                pin: Some(pin.to_ascii_lowercase()),
                provider: provider(),
            })),
        ServerTrust::System => {
            let verifier = rustls_platform_verifier::Verifier::new(provider())
                .map_err(|e| error(format!("cannot load the system's trust roots: {e}")))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
        }
        ServerTrust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                pin: None,
                provider: provider(),
            })),
    };
    let mut config = match identity {
        Some(id) => builder.with_client_cert_resolver(id.clone()),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The CA a node trusts the servers it connects to with, replaceable while it runs.
#[derive(Debug)]
pub struct CaTrust {
    current: Live<WebPkiServerVerifier>,
}

/// One node has one; two are the same only when they are one.
impl PartialEq for CaTrust {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for CaTrust {}

impl CaTrust {
    /// Trusting what `verifier` (from [`verifier`](Self::verifier)) trusts.
    pub(crate) fn new(verifier: Arc<WebPkiServerVerifier>) -> Arc<Self> {
        Arc::new(Self {
            current: Live::new(verifier),
        })
    }

    /// A verifier trusting `roots`, for [`install`](Self::install).
    pub(crate) fn verifier(
        roots: rustls::RootCertStore,
    ) -> Result<Arc<WebPkiServerVerifier>, NodeError> {
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(error)
    }

    /// Trusts `next` from the next connection on.
    pub(crate) fn install(&self, next: Arc<WebPkiServerVerifier>) {
        self.current.set(next);
    }
}

impl ServerCertVerifier for CaTrust {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.current
            .get()
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current
            .get()
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current
            .get()
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current.get().supported_verify_schemes()
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
        server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.pin {
            // `Error::Other` displays its message; a `CertificateError` would show its Debug form.
            Some(pin) if *pin != fingerprint(end_entity) => Err(rustls::Error::Other(
                rustls::OtherError(Arc::new(PinMismatch)),
            )),
            Some(_) => Ok(ServerCertVerified::assertion()),
            None => {
                tracing::warn!(
                    server = ?server_name,
                    fingerprint = %fingerprint(end_entity),
                    "TLS: accepting a certificate without verifying it (insecure)"
                );
                Ok(ServerCertVerified::assertion())
            }
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
