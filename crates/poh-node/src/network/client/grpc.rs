//! gRPC channels over rustls ([`grpc_channel`]), dialled by a connector that uses the
//! address's host as the TLS server name.

use std::{sync::Arc, time::Duration};

use tonic::transport::{Channel, Endpoint};

use super::{ClientTls, PlaintextCredential};
use crate::NodeError;

/// Why a gRPC channel was not made.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// Neither `host:port` nor an `http://` or `https://` URL.
    #[error("not a gRPC address: {0}")]
    Address(String),
    /// The client's TLS settings cannot be used.
    #[error(transparent)]
    Tls(#[from] NodeError),
    /// The channel would carry the bearer token in plain text off this machine.
    #[error(transparent)]
    Plaintext(#[from] PlaintextCredential),
}

/// A lazily connected gRPC channel to `peer`, trusting it and authenticating per `tls`.
///
/// `https://` is always TLS, verified per `tls.trust` (the system's roots unless a CA, a pin
/// or `insecure` says otherwise). `host:port` and `http://`, which promise nothing, are TLS when
/// `tls` turns it on, else plain text; and plain text only to a loopback address when the
/// channel's requests would carry a token (see [`ClientTls::check_plaintext`]).
pub fn grpc_channel(peer: &str, tls: &ClientTls, timeout: Duration) -> Result<Channel, DialError> {
    let (endpoint, secure) = endpoint(peer, tls.is_on())?;
    let endpoint = endpoint.connect_timeout(timeout).tcp_nodelay(true);
    if secure {
        let config = crate::tls::client_config(&tls.trust, tls.identity.as_ref(), &[b"h2"])?;
        return Ok(endpoint.connect_with_connector_lazy(TlsConnector(Arc::new(config))));
    }
    tls.check_plaintext(endpoint.uri().host().unwrap_or_default())?;
    Ok(endpoint.connect_lazy())
}

/// The host `peer` is dialled in plain text, or `None` when it is dialled over TLS (which
/// `tls_on`, [`ClientTls::is_on`], decides unless the address says `https://`).
pub(crate) fn plaintext_host(peer: &str, tls_on: bool) -> Result<Option<String>, DialError> {
    let (endpoint, secure) = endpoint(peer, tls_on)?;
    Ok((!secure).then(|| endpoint.uri().host().unwrap_or_default().to_string()))
}

/// `peer` as tonic dials it, and whether TLS goes on top.
fn endpoint(peer: &str, tls_on: bool) -> Result<(Endpoint, bool), DialError> {
    let (rest, secure) = match peer.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (rest, true),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (rest, tls_on),
        Some((scheme, _)) => {
            return Err(DialError::Address(format!(
                "the scheme {scheme:?} is not supported: write host:port, http:// or https://"
            )));
        }
        None => (peer, tls_on),
    };
    // tonic is given `http://` whichever it is: TLS, when wanted, is the connector's.
    let endpoint = Endpoint::from_shared(format!("http://{rest}"))
        .map_err(|e| DialError::Address(e.to_string()))?;
    Ok((endpoint, secure))
}

/// Dials TCP and wraps it in TLS for tonic, using the address's host as the server name.
#[derive(Clone)]
struct TlsConnector(Arc<rustls::ClientConfig>);

impl tower::Service<http::Uri> for TlsConnector {
    type Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;
    type Error = std::io::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let config = self.0.clone();
        Box::pin(async move {
            let invalid = |what: &str| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_string())
            };
            let host = uri.host().ok_or_else(|| invalid("no host"))?.to_string();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = tokio::net::TcpStream::connect((
                host.trim_start_matches('[').trim_end_matches(']'),
                port,
            ))
            .await?;
            let _ = tcp.set_nodelay(true);
            let name = rustls::pki_types::ServerName::try_from(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
            )
            .map_err(|_| invalid("not a valid server name"))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok(hyper_util::rt::TokioIo::new(tls))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{network::client::Bearer, tls::ServerTrust};

    const SECOND: Duration = Duration::from_secs(1);

    fn with_token() -> ClientTls {
        ClientTls {
            token: Some(Bearer::new("secret".into()).unwrap()),
            ..ClientTls::default()
        }
    }

    #[test]
    fn https_is_always_tls_and_the_rest_only_when_tls_is_on() {
        let host = |peer, tls_on| plaintext_host(peer, tls_on).unwrap();
        assert_eq!(host("https://node.example:50051", false), None);
        assert_eq!(host("HTTPS://node.example:50051", false), None);
        assert_eq!(host("node.example:50051", true), None);
        assert_eq!(host("http://node.example:50051", true), None);
        assert_eq!(
            host("node.example:50051", false).as_deref(),
            Some("node.example")
        );
        assert_eq!(host("http://[::1]:50051", false).as_deref(), Some("[::1]"));
        assert!(matches!(
            plaintext_host("grpc://node.example:50051", false),
            Err(DialError::Address(_))
        ));
    }

    // Channels are lazy: making one sends nothing, so these name addresses off this machine.
    #[tokio::test]
    async fn a_channel_carrying_a_token_in_plain_text_is_refused_off_loopback() {
        let tls = with_token();
        for refused in [
            "10.1.2.3:50051",
            "http://node.example:50051",
            "[2001:db8::1]:1",
        ] {
            assert!(
                matches!(
                    grpc_channel(refused, &tls, SECOND),
                    Err(DialError::Plaintext(_))
                ),
                "{refused}"
            );
        }
        for allowed in [
            "127.0.0.1:50051",
            "http://localhost:50051",
            "[::1]:50051",
            "https://10.1.2.3:50051",
        ] {
            assert!(grpc_channel(allowed, &tls, SECOND).is_ok(), "{allowed}");
        }
        let insecure = ClientTls {
            trust: ServerTrust::Insecure,
            ..with_token()
        };
        assert!(grpc_channel("10.1.2.3:50051", &insecure, SECOND).is_ok());
        assert!(grpc_channel("10.1.2.3:50051", &ClientTls::default(), SECOND).is_ok());
    }
}
