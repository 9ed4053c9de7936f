//! What a listener presents, and whom it admits: the node's certificate, and with a CA,
//! client certificates from that CA whose name is on the allow-list (mutual TLS).

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

use super::{NodeCert, NodeTls, error, provider, roots};
use crate::NodeError;

/// Who may connect to a listener.
#[derive(Clone, Debug, Default)]
pub struct ClientAuth {
    /// Client certificates must chain to this CA (PEM); `None`: no client certificate asked.
    pub ca: Option<std::path::PathBuf>,
    /// Subject CNs or SAN names allowed; empty: any certificate the CA issued.
    pub allowed: Vec<String>,
}

/// A server configuration presenting `cert` (whatever it holds at each handshake), offering
/// `alpn`.
pub fn server_config(
    cert: Arc<NodeCert>,
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
    let mut config = builder.with_cert_resolver(cert);
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

/// The TLS acceptor for a TCP listener offering `alpn`, when the node has TLS on.
pub fn acceptor(
    tls: &NodeTls,
    alpn: &[&[u8]],
) -> Result<Option<tokio_rustls::TlsAcceptor>, NodeError> {
    let Some(cert) = &tls.cert else {
        return Ok(None);
    };
    let config = server_config(cert.clone(), &tls.auth, alpn)?;
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
}
