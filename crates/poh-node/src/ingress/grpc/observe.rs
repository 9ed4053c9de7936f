//! A tower layer around every gRPC call: `grpc_requests_total{method,code}`, a log line with
//! the peer, method, code and latency, the client's `grpc-timeout` enforced as
//! `DEADLINE_EXCEEDED`, and error masking.
//!
//! The status of a gRPC call is in the response headers only when the call fails before any
//! message ("trailers-only"); otherwise it comes in the trailers, after the last message, so
//! the body is wrapped to see them. Masking rewrites `INTERNAL`/`UNKNOWN` messages to a fixed
//! text, so no internal detail reaches a client whatever produced the error, and turns the
//! codec's "cannot decode" (which tonic reports as `INTERNAL`) into `INVALID_ARGUMENT`: that
//! request was not a message at all.

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::{Duration, Instant},
};

use axum::{body::Body, extract::ConnectInfo};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::Frame;
use tonic::Code;
use tower::{Layer, Service};

use crate::metrics::Metrics;

/// Adds [`Observe`] to a router. The handles are shared, not copied: tower clones the
/// service for every call, and a copy of every handle cost more than the call's own work.
#[derive(Clone)]
pub(crate) struct ObserveLayer {
    metrics: Arc<Metrics>,
}

impl ObserveLayer {
    pub(crate) fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// See the module documentation.
#[derive(Clone)]
pub(crate) struct Observe<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

/// What is known of a call until its status arrives.
struct Call {
    method: &'static str,
    peer: Option<SocketAddr>,
    started: Instant,
    metrics: Arc<Metrics>,
}

impl Call {
    fn finish(&self, code: Code) {
        let name = crate::wire::protobuf::code_name(code);
        self.metrics.grpc_request(self.method, name);
        let latency_ms = self.started.elapsed().as_secs_f64() * 1e3;
        let peer = self.peer.map(|p| p.to_string()).unwrap_or_default();
        if matches!(code, Code::Internal | Code::Unknown) {
            tracing::warn!(target: "poh::grpc", %peer, method = self.method, code = name, latency_ms, "call failed");
        } else {
            tracing::debug!(target: "poh::grpc", %peer, method = self.method, code = name, latency_ms, "call");
        }
    }
}

impl<S, B> Service<Request<B>> for Observe<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let call = Call {
            method: super::method_label(req.uri().path()),
            peer: req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
            started: Instant::now(),
            metrics: self.metrics.clone(),
        };
        let deadline = req.headers().get("grpc-timeout").and_then(parse_timeout);
        // The clone is the one that was made ready; the original stays for the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let response = match deadline {
                Some(d) => match tokio::time::timeout(d, inner.call(req)).await {
                    Ok(r) => r?,
                    Err(_) => status_response(Code::DeadlineExceeded, "deadline exceeded"),
                },
                None => inner.call(req).await?,
            };
            Ok(observe(response, call))
        })
    }
}

fn observe(mut response: Response<Body>, call: Call) -> Response<Body> {
    if let Some(code) = status_of(response.headers()) {
        mask(response.headers_mut());
        let code = status_of(response.headers()).unwrap_or(code);
        call.finish(code);
        return response;
    }
    let (parts, body) = response.into_parts();
    Response::from_parts(
        parts,
        Body::new(ObservedBody {
            inner: body,
            call: Some(call),
        }),
    )
}

fn status_of(headers: &HeaderMap) -> Option<Code> {
    let value = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse::<i32>()
        .ok()?;
    Some(Code::from_i32(value))
}

/// Rewrites internal errors so nothing internal leaves the node, and codec failures to
/// `INVALID_ARGUMENT`.
fn mask(headers: &mut HeaderMap) {
    let Some(code) = status_of(headers) else {
        return;
    };
    if !matches!(code, Code::Internal | Code::Unknown) {
        return;
    }
    let message = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .unwrap_or_default();
    // grpc-message is percent-encoded on the wire, so the replacements are too.
    let (code, text) = if message.starts_with("failed%20to%20decode") {
        (
            Code::InvalidArgument,
            "the%20request%20is%20not%20a%20valid%20protobuf%20message",
        )
    } else {
        (Code::Internal, "internal%20error")
    };
    headers.insert("grpc-status", HeaderValue::from(code as i32));
    headers.insert("grpc-message", HeaderValue::from_static(text));
    headers.remove("grpc-status-details-bin");
}

fn status_response(code: Code, message: &str) -> Response<Body> {
    let (parts, ()) = tonic::Status::new(code, message)
        .into_http::<()>()
        .into_parts();
    Response::from_parts(parts, Body::empty())
}

/// `grpc-timeout`: up to 8 digits and a unit (H, M, S, m, u, n).
fn parse_timeout(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?;
    if text.len() < 2 || text.len() > 9 {
        return None;
    }
    let (digits, unit) = text.split_at(text.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// A response body that reports the call's status when its trailers pass, or `CANCELLED`
/// when the body is dropped before (the client went away).
struct ObservedBody {
    inner: Body,
    call: Option<Call>,
}

impl http_body::Body for ObservedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match frame {
            Some(Ok(frame)) if frame.is_trailers() => {
                let mut frame = frame;
                if let Some(trailers) = frame.trailers_mut() {
                    mask(trailers);
                    let code = status_of(trailers).unwrap_or(Code::Unknown);
                    if let Some(call) = self.call.take() {
                        call.finish(code);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => {
                if let Some(call) = self.call.take() {
                    call.finish(Code::Internal);
                }
                Poll::Ready(Some(Err(e)))
            }
            None => {
                if let Some(call) = self.call.take() {
                    call.finish(Code::Unknown);
                }
                Poll::Ready(None)
            }
            other => Poll::Ready(other),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            call.finish(Code::Cancelled);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_and_refuse_nonsense() {
        let t = |s: &'static str| parse_timeout(&HeaderValue::from_static(s));
        assert_eq!(t("100m"), Some(Duration::from_millis(100)));
        assert_eq!(t("2S"), Some(Duration::from_secs(2)));
        assert_eq!(t("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(t("5n"), Some(Duration::from_nanos(5)));
        assert_eq!(t("m"), None);
        assert_eq!(t("123456789S"), None);
        assert_eq!(t("12x"), None);
        assert_eq!(t("-1S"), None);
    }

    #[test]
    fn internal_detail_is_masked_and_decode_errors_become_invalid_argument() {
        let mut h = HeaderMap::new();
        h.insert("grpc-status", HeaderValue::from(13));
        h.insert(
            "grpc-message",
            HeaderValue::from_static("db%20at%20/var/x%20failed"),
        );
        h.insert("grpc-status-details-bin", HeaderValue::from_static("AAAA"));
        mask(&mut h);
        assert_eq!(h["grpc-message"], "internal%20error");
        assert!(h.get("grpc-status-details-bin").is_none());

        let mut h = HeaderMap::new();
        h.insert("grpc-status", HeaderValue::from(13));
        h.insert(
            "grpc-message",
            HeaderValue::from_static("failed%20to%20decode%20Protobuf"),
        );
        mask(&mut h);
        assert_eq!(status_of(&h), Some(Code::InvalidArgument));

        let mut h = HeaderMap::new();
        h.insert("grpc-status", HeaderValue::from(5));
        h.insert("grpc-message", HeaderValue::from_static("no%20such%20tx"));
        mask(&mut h);
        assert_eq!(h["grpc-message"], "no%20such%20tx");
    }
}
