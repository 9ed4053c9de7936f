//! `GET /v1/headers`, `GET /v1/headers/{header_id}` and `GET /v1/federation` (SPEC §6), and
//! `GET /v1/tx/{tx_id}/proof`, a transaction's inclusion proof.

use axum::{
    Json,
    extract::{Path, RawQuery, State},
};
use poh_core::{Hash, validate::check_tx_id};

use super::{
    HttpState,
    error::{self, ApiError},
    paging,
};
use crate::wire::{
    headers::{FederationOut, HeaderJson, HeadersOut, ProofJson},
    json::ErrorBody,
};

/// Most headers one `GET /v1/headers` returns.
pub const MAX_HEADERS: usize = 1_000;
const DEFAULT_HEADERS: usize = 100;

#[utoipa::path(get, path = "/v1/headers", params(
    ("from" = Option<u64>, Query, description = "height of the first header (default 0)"),
    ("limit" = Option<usize>, Query, description = "headers to return, 1–1,000 (default 100)"),
), responses(
    (status = 200, description = "this node's headers by height", body = HeadersOut),
    (status = 400, description = "a bad parameter", body = ErrorBody),
))]
pub(super) async fn list(
    State(state): State<HttpState>,
    RawQuery(query): RawQuery,
) -> Result<Json<HeadersOut>, ApiError> {
    let (from, limit) = paging(query.as_deref(), DEFAULT_HEADERS, MAX_HEADERS)?;
    let headers = state
        .services
        .read(move |store| store.headers(from, limit))
        .await
        .map_err(error::internal)?;
    Ok(Json(HeadersOut {
        headers: headers.iter().map(|h| HeaderJson::new(h, None)).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/headers/{header_id}", params(
    ("header_id" = String, Path, description = "hex of the header's hash"),
), responses(
    (status = 200, description = "one of this node's headers, or a child header it accepted (with recorded_at_seq)", body = HeaderJson),
    (status = 404, description = "not_found", body = ErrorBody),
))]
pub(super) async fn one(
    State(state): State<HttpState>,
    Path(header_id): Path<String>,
) -> Result<Json<HeaderJson>, ApiError> {
    // Text that is not a hash names no header: the same 404 as an unknown one.
    let not_found = || ApiError::not_found("no header with this header_id");
    let hash: Hash = header_id.parse().map_err(|_| not_found())?;
    let found = state
        .services
        .read(move |store| {
            if let Some(own) = store.header_by_hash(&hash)? {
                return Ok(Some(HeaderJson::new(&own, None)));
            }
            let child = store.child_header_by_hash(&hash)?;
            Ok(child.map(|c| HeaderJson::new(&c.header, Some(c.recorded_at_seq))))
        })
        .await
        .map_err(error::internal)?;
    found.map(Json).ok_or_else(not_found)
}

#[utoipa::path(get, path = "/v1/federation", responses(
    (status = 200, description = "this node's place in the federation", body = FederationOut),
))]
pub(super) async fn federation(
    State(state): State<HttpState>,
) -> Result<Json<FederationOut>, ApiError> {
    let ids: Vec<String> = state
        .services
        .federation
        .children
        .iter()
        .map(|c| c.chain_id.clone())
        .collect();
    let (head, children) = state
        .services
        .read(move |store| {
            let head = store.header_head()?;
            let children = ids
                .iter()
                .map(|id| Ok(store.child_head(id)?.and_then(|h| h.height.checked_sub(1))))
                .collect::<Result<Vec<_>, poh_store::StoreError>>()?;
            Ok((head, children))
        })
        .await
        .map_err(error::internal)?;
    let height = head.and_then(|h| h.height.checked_sub(1));
    Ok(Json(state.services.federation.out(height, &children)))
}

#[utoipa::path(get, path = "/v1/tx/{tx_id}/proof", params(
    ("tx_id" = String, Path, description = "the transaction's id"),
), responses(
    (status = 200, description = "the transaction, its digest, and the signed links from its header up the federation", body = ProofJson),
    (status = 400, description = "not a valid tx_id", body = ErrorBody),
    (status = 404, description = "unknown, or not sealed yet", body = ErrorBody),
))]
pub(super) async fn proof(
    State(state): State<HttpState>,
    Path(tx_id): Path<String>,
) -> Result<Json<ProofJson>, ApiError> {
    check_tx_id(&tx_id).map_err(|rule| ApiError::invalid(format!("tx_id {rule}")))?;
    let found = state
        .services
        .read(move |store| store.tx(&tx_id))
        .await
        .map_err(error::internal)?;
    let Some(record) = found else {
        return Err(ApiError::not_found("no transaction with this tx_id"));
    };
    let links = state
        .services
        .prover
        .prove(record.entry_index, record.poh_seq)
        .await
        .map_err(error::proving)?;
    let Some(links) = links else {
        return Err(ApiError::not_found(
            "the transaction is not sealed yet; ask again after the next header",
        ));
    };
    let tx = record.tx;
    ProofJson::new(&tx, &links)
        .map(Json)
        .map_err(error::internal)
}
