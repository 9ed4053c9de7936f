//! TLS for QUIC: ALPN `poh/1`, the development certificate made on first start when none is
//! configured, and the quinn configurations built from [`crate::tls`].

use std::{path::Path, sync::Arc};

pub use crate::tls::{ServerTrust, fingerprint};
use crate::{
    NodeError,
    tls::{ClientAuth, Identity},
};

/// The ALPN protocol of SPEC §4.
pub const ALPN: &[u8] = b"poh/1";

const DEV_CERT: &str = "quic-dev-cert.pem";
const DEV_KEY: &str = "quic-dev-key.pem";

fn error(what: impl std::fmt::Display) -> NodeError {
    NodeError::Config(format!("QUIC TLS: {what}"))
}

/// The development certificate in `data_dir`, made on first use (self-signed, for `localhost`,
/// 127.0.0.1 and ::1; clients must be told to trust it, or pin its fingerprint).
pub(crate) fn development_identity(data_dir: &Path) -> Result<Identity, NodeError> {
    let (cert, key) = (data_dir.join(DEV_CERT), data_dir.join(DEV_KEY));
    if !cert.exists() || !key.exists() {
        let made = rcgen::generate_simple_self_signed(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ])
        .map_err(|e| error(format!("cannot make a development certificate: {e}")))?;
        crate::tls::write_private(&key, made.signing_key.serialize_pem().as_bytes())?;
        std::fs::write(&cert, made.cert.pem())
            .map_err(|e| error(format!("cannot write {}: {e}", cert.display())))?;
    }
    Identity::from_pem(&cert, &key)
}

/// The QUIC server crypto presenting `identity`, checking clients per `auth`.
pub(crate) fn server_crypto(
    identity: Identity,
    auth: &ClientAuth,
) -> Result<quinn::crypto::rustls::QuicServerConfig, NodeError> {
    let mut tls = crate::tls::server_config(identity, auth, &[ALPN])?;
    // QUIC is TLS 1.3 only.
    tls.max_early_data_size = 0;
    quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(error)
}

/// The QUIC client configuration for `trust`, presenting `identity` when given.
pub fn client_config(
    trust: &ServerTrust,
    identity: Option<&Identity>,
) -> Result<quinn::ClientConfig, NodeError> {
    let tls = crate::tls::client_config(trust, identity, &[ALPN])?;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(error)?;
    Ok(quinn::ClientConfig::new(Arc::new(crypto)))
}
