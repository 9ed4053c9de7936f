//! The one gate every gRPC call and HTTP request passes before any work is done for it:
//! per-client admission ([`ClientLimiter::admit`]: rate and requests in flight), then, when
//! authentication is on, the credentials ([`Authenticator::check`]). The two servers differ
//! only in how they say no and which paths are health paths ([`Refusals`]).
//!
//! An admitted request holds its in-flight slot until its whole answer is sent: the slot
//! travels in the response body, so a streaming answer counts for as long as it runs.

use std::sync::Arc;

use axum::{
    Router,
    extract::{Request, State},
    middleware::Next,
    response::Response,
};

use super::{
    Holding, Services,
    auth::{AuthError, Authenticator},
    limits::{ClientLimiter, Overload},
};
use crate::shared::ClientKey;

/// How one server says no.
pub(crate) trait Refusals: Clone + Send + Sync + 'static {
    /// The client is over its rate or its requests in flight.
    fn overloaded(&self, why: Overload) -> Response;
    /// The request for `path` carries no credentials, or ones that are not accepted.
    fn unauthenticated(&self, why: AuthError, path: &str) -> Response;
    /// Whether `path` is a health or metrics path, open unless `auth.protect_health`.
    fn is_health(&self, path: &str) -> bool;
}

#[derive(Clone)]
struct Gate<R> {
    limiter: Arc<ClientLimiter>,
    auth: Option<Authenticator>,
    refusals: R,
}

/// Puts the gate in front of every route of `router`.
pub(crate) fn guard<S, R>(router: Router<S>, services: &Services, refusals: R) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    R: Refusals,
{
    let gate = Gate {
        limiter: services.limiter.clone(),
        auth: services.auth.clone(),
        refusals,
    };
    router.layer(axum::middleware::from_fn_with_state(gate, pass::<R>))
}

async fn pass<R: Refusals>(State(gate): State<Gate<R>>, req: Request, next: Next) -> Response {
    let client = req.extensions().get::<ClientKey>().copied();
    let slot = match client.map(|client| gate.limiter.admit(client)) {
        Some(Ok(slot)) => Some(slot),
        Some(Err(overload)) => return gate.refusals.overloaded(overload),
        // Not from a listener (an in-process call): nothing to count it against.
        None => None,
    };
    if let Some(auth) = &gate.auth
        && (auth.protects_health() || !gate.refusals.is_health(req.uri().path()))
    {
        let header = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(http::HeaderValue::as_bytes);
        if let Err(why) = auth.check(header) {
            return gate.refusals.unauthenticated(why, req.uri().path());
        }
    }
    let response = next.run(req).await;
    match slot {
        Some(slot) => response.map(|body| Holding::body(body, slot)),
        None => response,
    }
}
