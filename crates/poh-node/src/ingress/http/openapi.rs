//! `GET /openapi.json`: the OpenAPI 3 description, generated from the handlers' annotations
//! and the JSON types, so it cannot drift from the code.

use axum::{Json, response::IntoResponse};
use utoipa::OpenApi;

use crate::wire::{expired, headers, json, replica};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "poh node",
        description = "HTTP/JSON API of a poh ledger node (SPEC §4)."
    ),
    paths(
        super::post_tx,
        super::post_batch,
        super::get_tx,
        super::queries::list,
        super::queries::children,
        super::get_poh,
        super::get_entries,
        super::headers::list,
        super::headers::one,
        super::headers::federation,
        super::export::export,
        super::events::events,
        super::headers::proof,
        super::get_peers,
        super::replica::replica,
        super::replica::promote,
        super::healthz,
        super::readyz,
        super::metrics,
    ),
    components(schemas(
        json::TxIn,
        json::TxOk,
        json::ErrorBody,
        json::BatchItem,
        json::TxOut,
        json::ListOut,
        json::ChildrenOut,
        json::PohOut,
        json::EntryOut,
        json::EntriesOut,
        json::PeersOut,
        headers::HeaderJson,
        headers::HeadersOut,
        headers::FederationOut,
        headers::ChildOut,
        headers::LinkJson,
        headers::ProofJson,
        expired::ExpiredJson,
        replica::ReplicaOut,
    ))
)]
pub(crate) struct ApiDoc;

pub(super) async fn serve() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}
