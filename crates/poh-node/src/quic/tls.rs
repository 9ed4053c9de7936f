//! TLS for QUIC: the server's certificate (from PEM files, or a development certificate made
//! on first start and kept in the data dir), and the client's trust.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject},
};
use sha2::{Digest, Sha256};

use crate::NodeError;

/// The ALPN protocol of SPEC §4.
pub const ALPN: &[u8] = b"poh/1";

const DEV_CERT: &str = "quic-dev-cert.pem";
const DEV_KEY: &str = "quic-dev-key.pem";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn tls_error(what: impl std::fmt::Display) -> NodeError {
    NodeError::Config(format!("QUIC TLS: {what}"))
}

/// The SHA-256 fingerprint of a DER certificate, lowercase hex.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    hex::encode(Sha256::digest(cert.as_ref()))
}

/// The certificate chain and key the server presents.
pub(crate) struct ServerIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl ServerIdentity {
    /// From PEM files.
    pub(crate) fn from_pem(cert: &Path, key: &Path) -> Result<Self, NodeError> {
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                tls_error(format!(
                    "cannot read certificates from {}: {e}",
                    cert.display()
                ))
            })?;
        if chain.is_empty() {
            return Err(tls_error(format!("no certificate in {}", cert.display())));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
            tls_error(format!(
                "cannot read a private key from {}: {e}",
                key.display()
            ))
        })?;
        Ok(Self { chain, key })
    }

    /// The development certificate in `data_dir`, made on first use (self-signed, for
    /// `localhost` and 127.0.0.1; clients must be told to trust it).
    pub(crate) fn development(data_dir: &Path) -> Result<Self, NodeError> {
        let (cert, key) = (data_dir.join(DEV_CERT), data_dir.join(DEV_KEY));
        if !cert.exists() || !key.exists() {
            let made = rcgen::generate_simple_self_signed(vec![
                "localhost".to_string(),
                "127.0.0.1".to_string(),
                "::1".to_string(),
            ])
            .map_err(|e| tls_error(format!("cannot make a development certificate: {e}")))?;
            write_private(&key, made.signing_key.serialize_pem().as_bytes())?;
            std::fs::write(&cert, made.cert.pem())
                .map_err(|e| tls_error(format!("cannot write {}: {e}", cert.display())))?;
        }
        Self::from_pem(&cert, &key)
    }

    /// The QUIC server configuration presenting this identity.
    pub(crate) fn server_crypto(
        self,
    ) -> Result<quinn::crypto::rustls::QuicServerConfig, NodeError> {
        let mut tls = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_error)?
            .with_no_client_auth()
            .with_single_cert(self.chain, self.key)
            .map_err(tls_error)?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(tls_error)
    }
}

fn write_private(path: &PathBuf, bytes: &[u8]) -> Result<(), NodeError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| tls_error(format!("cannot write {}: {e}", path.display())))
}

/// How a QUIC client decides to trust a server.
#[derive(Clone, Debug, Default)]
pub enum ServerTrust {
    /// Certificates issued by this CA (PEM file).
    Ca(PathBuf),
    /// Any certificate: for development certificates on a trusted network only (mutual TLS
    /// and pinning come with the security settings).
    #[default]
    AnyCertificate,
}

/// The QUIC client configuration for `trust`.
pub fn client_config(trust: &ServerTrust) -> Result<quinn::ClientConfig, NodeError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_error)?;
    let mut tls = match trust {
        ServerTrust::Ca(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path)
                .map_err(|e| tls_error(format!("cannot read {}: {e}", path.display())))?
            {
                let cert = cert.map_err(|e| tls_error(format!("{}: {e}", path.display())))?;
                roots.add(cert).map_err(tls_error)?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        ServerTrust::AnyCertificate => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
            .with_no_client_auth(),
    };
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(tls_error)?;
    Ok(quinn::ClientConfig::new(Arc::new(crypto)))
}

/// Accepts any server certificate, still checking the handshake signatures with it.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
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
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
