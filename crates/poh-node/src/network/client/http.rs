//! The HTTP client: reqwest over rustls, trusting servers per [`ServerTrust`] and presenting
//! the client's certificate for mutual TLS. The URL's scheme decides: `https://` is always
//! TLS, `http://` never, so a token goes to an `http://` URL only as
//! [`ClientTls::check_url`](super::ClientTls::check_url) allows.

use std::time::Duration;

use crate::{
    NodeError,
    tls::{NodeCert, ServerTrust},
};

/// An HTTP client whose requests take at most `timeout`, trusting servers per `trust`.
pub fn http_client(
    timeout: Duration,
    trust: &ServerTrust,
    identity: Option<&std::sync::Arc<NodeCert>>,
) -> Result<reqwest::Client, NodeError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .tcp_nodelay(true)
        .tls_backend_preconfigured(crate::tls::client_config(
            trust,
            identity,
            &[b"h2", b"http/1.1"],
        )?)
        .build()
        .map_err(|e| NodeError::Config(format!("cannot make the HTTP client: {e}")))
}
