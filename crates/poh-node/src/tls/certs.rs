//! Development certificates (`poh certs`): a CA, and per node a certificate for both server
//! and client use (so one file serves a node's listeners and its mutual-TLS calls to peers);
//! and the QUIC development certificate a node makes for itself when it has none.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use super::Identity;
use crate::NodeError;

/// The CA's subject CN.
pub const CA_NAME: &str = "poh development CA";

fn error(what: impl std::fmt::Display) -> NodeError {
    NodeError::Config(format!("certificates: {what}"))
}

fn ca_params() -> Result<CertificateParams, NodeError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(error)?;
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(3650);
    Ok(params)
}

/// A certificate authority able to issue node certificates.
pub struct DevCa {
    params: CertificateParams,
    key: KeyPair,
    /// The CA certificate, PEM.
    pub cert_pem: String,
}

impl DevCa {
    /// A new CA with a new key.
    pub fn generate() -> Result<Self, NodeError> {
        let key = KeyPair::generate().map_err(error)?;
        Self::with_key(key)
    }

    /// The CA for an existing key (PEM), e.g. to issue more node certificates later; its
    /// certificate is made again with the same subject, so earlier certificates still verify.
    pub fn from_key_pem(key_pem: &str) -> Result<Self, NodeError> {
        Self::with_key(KeyPair::from_pem(key_pem).map_err(error)?)
    }

    fn with_key(key: KeyPair) -> Result<Self, NodeError> {
        let params = ca_params()?;
        let cert_pem = params.self_signed(&key).map_err(error)?.pem();
        Ok(Self {
            params,
            key,
            cert_pem,
        })
    }

    /// The CA's private key, PEM (keep it secret).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A certificate for `name` (subject CN and SAN, with `localhost`, 127.0.0.1 and ::1),
    /// valid from one day ago for `days` days: `(cert_pem, key_pem)`.
    pub fn issue(&self, name: &str, days: i64) -> Result<(String, String), NodeError> {
        let now = OffsetDateTime::now_utc();
        self.issue_valid(name, now - Duration::days(1), now + Duration::days(days))
    }

    /// As [`DevCa::issue`] with an explicit validity (tests make expired certificates).
    pub fn issue_valid(
        &self,
        name: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<(String, String), NodeError> {
        let mut names = vec![name.to_string()];
        for local in ["localhost", "127.0.0.1", "::1"] {
            if local != name {
                names.push(local.to_string());
            }
        }
        let mut params = CertificateParams::new(names).map_err(error)?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.not_before = not_before;
        params.not_after = not_after;
        let key = KeyPair::generate().map_err(error)?;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).map_err(error)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// A PKCS#12 bundle of a certificate and its key, encrypted with `password`.
pub fn pkcs12(cert_pem: &str, key_pem: &str, password: &str) -> Result<Vec<u8>, NodeError> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(error)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(error)?;
    let certificate = p12_keystore::Certificate::from_der(cert.as_ref()).map_err(error)?;
    let chain = p12_keystore::PrivateKeyChain::new(
        vec![1u8; 20],
        p12_keystore::PrivateKey::from_der(key.secret_der()).map_err(error)?,
        [certificate],
    );
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry("poh", p12_keystore::KeyStoreEntry::PrivateKeyChain(chain));
    store.writer(password).write().map_err(error)
}

const DEV_CERT: &str = "quic-dev-cert.pem";
const DEV_KEY: &str = "quic-dev-key.pem";

/// The QUIC development certificate in `data_dir`, made on first use (self-signed, for
/// `localhost`, 127.0.0.1 and ::1; clients must be told to trust it, or pin its fingerprint).
pub(crate) fn development_identity(data_dir: &Path) -> Result<Identity, NodeError> {
    let (cert, key) = (data_dir.join(DEV_CERT), data_dir.join(DEV_KEY));
    if !cert.exists() || !key.exists() {
        let made = rcgen::generate_simple_self_signed(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ])
        .map_err(|e| error(format!("cannot make a development certificate: {e}")))?;
        super::write_private(&key, made.signing_key.serialize_pem().as_bytes())?;
        std::fs::write(&cert, made.cert.pem())
            .map_err(|e| error(format!("cannot write {}: {e}", cert.display())))?;
    }
    Identity::from_pem(&cert, &key)
}
