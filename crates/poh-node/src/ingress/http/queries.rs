//! `GET /v1/tx?holder_id=H&from_seq=N&limit=M` and `GET /v1/tx/{tx_id}/children` (SPEC §4),
//! answered from the store's query indexes ([`crate::ingress::queries`]).

use axum::{
    Json,
    extract::{Path, Query, State, rejection::QueryRejection},
};
use serde::Deserialize;

use super::{HttpState, error, error::ApiError};
use crate::{
    ingress::queries::{check_holder, check_limit},
    wire::json::{ChildrenOut, ListOut, TxOut},
};

/// The query string of `GET /v1/tx`, percent-decoded.
#[derive(Deserialize)]
pub(super) struct ListQuery {
    holder_id: Option<String>,
    from_seq: Option<u64>,
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/v1/tx", params(
    ("holder_id" = String, Query, description = "the holder whose transactions to list"),
    ("from_seq" = Option<u64>, Query, description = "the first poh_seq to consider (default 0)"),
    ("limit" = Option<usize>, Query, description = "transactions to return, at most 1,000 (default, and 0: 100)"),
), responses(
    (status = 200, description = "the holder's transactions in poh_seq order, and the from_seq of the next page", body = ListOut),
    (status = 400, description = "no holder_id, or a bad parameter", body = crate::wire::json::ErrorBody),
))]
pub(super) async fn list(
    State(state): State<HttpState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ListOut>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let holder_id = query.holder_id.unwrap_or_default();
    check_holder(&holder_id).map_err(ApiError::invalid)?;
    // 0 is the default, as in gRPC `List`: only above the most is refused.
    let limit = check_limit(query.limit.unwrap_or(0)).map_err(ApiError::invalid)?;
    let page = (state.services)
        .list(holder_id, query.from_seq.unwrap_or(0), limit)
        .await
        .map_err(error::internal)?;
    Ok(Json(ListOut {
        transactions: page.records.into_iter().map(TxOut::from).collect(),
        next_seq: page.next_seq,
    }))
}

#[utoipa::path(get, path = "/v1/tx/{tx_id}/children", params(("tx_id" = String, Path, description = "the transaction's id")), responses(
    (status = 200, description = "the stored transactions naming it in parent_ids, in poh_seq order (at most 10,000)", body = ChildrenOut),
    (status = 400, description = "an invalid id", body = crate::wire::json::ErrorBody),
    (status = 404, description = "no transaction with this id was ever stored", body = crate::wire::json::ErrorBody),
))]
pub(super) async fn children(
    State(state): State<HttpState>,
    Path(tx_id): Path<String>,
) -> Result<Json<ChildrenOut>, ApiError> {
    poh_core::validate::check_tx_id(&tx_id)
        .map_err(|rule| ApiError::invalid(format!("tx_id {rule}")))?;
    let children = (state.services.children(tx_id.clone()).await)
        .map_err(error::internal)?
        .ok_or_else(|| ApiError::not_found("no transaction with this tx_id"))?;
    Ok(Json(ChildrenOut { tx_id, children }))
}
