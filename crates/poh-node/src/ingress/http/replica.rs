//! `GET /v1/replica` (SPEC §10): where this node stands against its primary; and
//! `POST /v1/replica/promote`, which makes a replica its chain's primary (`poh promote`).

use axum::{Json, extract::State, http::StatusCode};

use super::{HttpState, error::ApiError};
use crate::{NodeError, wire::replica::ReplicaOut};

#[utoipa::path(get, path = "/v1/replica", responses((status = 200, description = "this node's copy against its primary (primary null on a primary)", body = ReplicaOut)))]
pub(super) async fn replica(State(state): State<HttpState>) -> Json<ReplicaOut> {
    Json(status(&state))
}

#[utoipa::path(post, path = "/v1/replica/promote", responses(
    (status = 200, description = "promoted: this node is its chain's primary now", body = ReplicaOut),
    (status = 409, description = "not a replica, or its key is not the chain's", body = crate::wire::json::ErrorBody),
))]
pub(super) async fn promote(State(state): State<HttpState>) -> Result<Json<ReplicaOut>, ApiError> {
    let Some(promotion) = &state.services.promotion else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_a_replica",
            "this node is a primary: only a replica (--follow) can be promoted",
        ));
    };
    match promotion.promote().await {
        Ok(()) => Ok(Json(status(&state))),
        Err(NodeError::Promote(why)) => {
            Err(ApiError::new(StatusCode::CONFLICT, "not_promoted", why))
        }
        Err(e) => Err(super::error::internal(e)),
    }
}

/// Where this node stands: against its primary while it follows one.
fn status(state: &HttpState) -> ReplicaOut {
    let held = state.services.pipeline.poh().state;
    match &state.services.follow {
        Some(follow) if state.services.pipeline.is_following() => {
            let (primary_entries, primary_seq) = follow.primary();
            ReplicaOut {
                primary: Some(follow.primary.clone()),
                seq: held.mixins,
                entries: held.entries,
                primary_seq: primary_seq.max(held.mixins),
                primary_entries: primary_entries.max(held.entries),
                lag_seconds: follow.lag_seconds(),
                stopped: follow.stopped(),
            }
        }
        _ => ReplicaOut {
            primary: None,
            seq: held.mixins,
            entries: held.entries,
            primary_seq: held.mixins,
            primary_entries: held.entries,
            lag_seconds: 0.0,
            stopped: None,
        },
    }
}
