//! HTTP error answers: always a status and the JSON body `{"error", "message"}` (SPEC §4),
//! with `Retry-After` where the client should come back, and the gate's refusals.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::{
    federation::prove::ProveError,
    ingress::{auth::AuthError, gate::Refusals, limits::Overload},
    shared::SubmitError,
    wire::json::ErrorBody,
};

/// An error answer: a status and `{"error", "message"}`.
pub(super) struct ApiError {
    status: StatusCode,
    pub(super) body: ErrorBody,
    retry_after: bool,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                error,
                message: message.into(),
                header_id: None,
                primary: None,
            },
            retry_after: false,
        }
    }
    pub(super) fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }
    pub(super) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// `410`: the transaction's record expired (TTL); `header_id` sealed it.
    pub(super) fn expired(header_id: String) -> Self {
        let mut e = Self::new(
            StatusCode::GONE,
            "expired",
            format!(
                "the transaction expired from this node's store; header {header_id} sealed it \
                 (poh restore {header_id} brings it back from its fragments)"
            ),
        );
        e.body.header_id = Some(header_id);
        e
    }
    pub(super) fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
    pub(super) fn unavailable(error: &'static str, message: impl Into<String>) -> Self {
        Self {
            retry_after: true,
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, error, message)
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Overloaded | SubmitError::ShuttingDown => {
                Self::unavailable(e.code(), e.to_string())
            }
            SubmitError::StorageFull => {
                Self::new(StatusCode::INSUFFICIENT_STORAGE, e.code(), e.to_string())
            }
            SubmitError::ReadOnly { ref primary } => {
                let mut refused =
                    Self::new(StatusCode::MISDIRECTED_REQUEST, e.code(), e.to_string());
                refused.body.primary = Some(primary.to_string());
                refused
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// A proof that could not be made: overload is a 503 to retry, anything else a bare 500.
pub(super) fn proving(e: ProveError) -> ApiError {
    match e {
        ProveError::Busy => ApiError::unavailable("overloaded", e.to_string()),
        e => internal(e),
    }
}

/// Logs what failed inside and answers a bare 500: no internal detail leaves the node.
pub(super) fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "HTTP request failed");
    ApiError::internal()
}

/// How HTTP says no: 503 with `Retry-After`, 401 with `WWW-Authenticate`, 403; `/healthz`,
/// `/readyz` and `/metrics` are the health paths.
#[derive(Clone)]
pub(super) struct HttpRefusals;

impl Refusals for HttpRefusals {
    fn overloaded(&self, why: Overload) -> Response {
        ApiError::unavailable("overloaded", why.message()).into_response()
    }

    fn unauthenticated(&self, why: AuthError, path: &str) -> Response {
        match why {
            AuthError::Missing => {
                let mut response =
                    ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", why.to_string())
                        .into_response();
                // A browser opening the explorer asks its user for the token only when
                // offered `Basic`; API clients are told of `Bearer` alone.
                let challenge = if path == "/explorer" || path.starts_with("/explorer/") {
                    "Bearer, Basic realm=\"poh\", charset=\"UTF-8\""
                } else {
                    "Bearer"
                };
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
                response
            }
            AuthError::Denied => {
                ApiError::new(StatusCode::FORBIDDEN, "permission_denied", why.to_string())
                    .into_response()
            }
        }
    }

    fn is_health(&self, path: &str) -> bool {
        ["/healthz", "/readyz", "/metrics"].contains(&path)
    }
}
