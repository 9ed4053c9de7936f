//! gRPC channels over rustls ([`grpc_channel`]), dialled by a connector that uses the
//! address's host as the TLS server name.

use std::{sync::Arc, time::Duration};

use tonic::transport::{Channel, Endpoint};

/// A lazily connected gRPC channel to `peer` (`host:port` or a URL), over TLS per `tls`.
pub fn grpc_channel(
    peer: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
    timeout: Duration,
) -> Result<Channel, String> {
    let url = if peer.contains("://") {
        peer.replacen("https://", "http://", 1)
    } else {
        format!("http://{peer}")
    };
    let endpoint = Endpoint::from_shared(url)
        .map_err(|e| format!("not a gRPC address: {e}"))?
        .connect_timeout(timeout)
        .tcp_nodelay(true);
    Ok(match tls {
        Some(config) => endpoint.connect_with_connector_lazy(TlsConnector(config.clone())),
        None => endpoint.connect_lazy(),
    })
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
