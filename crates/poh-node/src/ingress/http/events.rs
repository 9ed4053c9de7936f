//! `GET /v1/events`: stored transactions, then sealed headers as they come, as Server-Sent
//! Events (SPEC §4). The stream reads the store through a [`TxCursor`], so it can start
//! anywhere in the chain and resume after a dropped connection (`Last-Event-ID`) with no gap
//! and no duplicate. Where transactions expired (TTL), one `event: expired` names their seqs
//! and headers, with the run's last seq as its id, and the stream goes on after them.

use axum::{
    Extension,
    extract::{RawQuery, State},
    http::HeaderMap,
    response::{
        IntoResponse as _, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures_util::{StreamExt as _, TryStreamExt as _, stream};

use super::{
    HttpState,
    error::{self, ApiError},
    query_pairs,
};
use crate::{
    NodeError,
    ingress::subscribe::{HeaderCursor, Page, Start, TxCursor},
    shared::ClientKey,
    wire::{expired::ExpiredJson, headers::HeaderJson, json::TxOut},
};

#[utoipa::path(get, path = "/v1/events", params(
    ("from_seq" = Option<u64>, Query, description = "the poh_seq to start at (default: the next transaction stored)"),
    ("Last-Event-ID" = Option<u64>, Header, description = "resume after this poh_seq (the last event id seen); wins over from_seq"),
), responses(
    (status = 200, description = "`event: tx` (id: its poh_seq, data: its JSON as in GET /v1/tx/{tx_id}) for every stored transaction in poh_seq order; `event: expired` (id: its to_seq, data: ExpiredJson `{\"from_seq\",\"to_seq\",\"header_ids\"}`, to_seq inclusive) where transactions expired by the TTL would be, after which the stream goes on from the next seq; and `event: header` (data: its JSON, no id) for each header sealed from now on; keep-alive comments while idle", content_type = "text/event-stream"),
    (status = 400, description = "from_seq or Last-Event-ID is not a whole number", body = crate::wire::json::ErrorBody),
    (status = 503, description = "the node or this client holds as many subscriptions as it may", body = crate::wire::json::ErrorBody),
))]
pub(super) async fn events(
    State(state): State<HttpState>,
    Extension(client): Extension<ClientKey>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let start = start(&headers, query.as_deref())?;
    let services = &state.services;
    let held = services
        .subscriptions
        .open(Some(client))
        .map_err(|full| ApiError::unavailable("overloaded", full.to_string()))?;
    let headers = HeaderCursor::new(services).await.map_err(error::internal)?;
    let txs = stream::try_unfold(TxCursor::new(services, start), |mut cursor| async {
        let page = cursor.next_page().await?;
        Ok::<_, NodeError>(page.map(|page| (page, cursor)))
    })
    .map_ok(|page| {
        let events: Vec<_> = match page {
            Page::Txs(records) => records
                .into_iter()
                .map(|record| {
                    Event::default()
                        .id(record.poh_seq.to_string())
                        .event("tx")
                        .json_data(TxOut::from(record))
                })
                .collect(),
            Page::Expired(run) => vec![
                Event::default()
                    .id(run.to_seq.to_string())
                    .event("expired")
                    .json_data(ExpiredJson::from(&run)),
            ],
        };
        stream::iter(events)
    })
    .map_err(failed)
    .try_flatten();
    let sealed = stream::try_unfold(headers, |mut cursor| async {
        let page = cursor.next_page().await?;
        Ok::<_, NodeError>(page.map(|page| (page, cursor)))
    })
    .map_ok(|page| {
        stream::iter(page.into_iter().map(|header| {
            Event::default()
                .event("header")
                .json_data(HeaderJson::new(&header, None))
        }))
    })
    .map_err(failed)
    .try_flatten();
    // Both end when the node stops; the subscription is counted while either runs.
    let events = stream::select(txs, sealed).map(move |event| {
        let _counted = &held;
        event
    });
    let keep_alive = KeepAlive::new().interval(state.events_keepalive);
    Ok(Sse::new(events).keep_alive(keep_alive).into_response())
}

/// Where the stream starts: after `Last-Event-ID` (a reconnecting client), else at
/// `from_seq`, else at the next transaction stored.
fn start(headers: &HeaderMap, query: Option<&str>) -> Result<Start, ApiError> {
    if let Some(last) = headers.get("last-event-id") {
        let seq: u64 = last
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| ApiError::invalid("Last-Event-ID must be an event's id (a poh_seq)"))?;
        return Ok(Start::At(seq.saturating_add(1)));
    }
    for (key, value) in query_pairs(query) {
        if key == "from_seq" {
            let seq = value
                .parse()
                .map_err(|_| ApiError::invalid("from_seq must be a whole number ≥ 0"))?;
            return Ok(Start::At(seq));
        }
    }
    Ok(Start::Next)
}

/// A store failure ends the stream; the client resumes from its last event id.
fn failed(e: NodeError) -> axum::Error {
    tracing::error!(error = %e, "an event stream failed");
    axum::Error::new(e)
}
