//! `GET /v1/export?from_height=H`: this node's chain as a chain file (`poh_core::chain_file`),
//! streamed header by header — the header, its entries, the child headers it recorded — so
//! an export of any length holds one header's entries in memory at a time.

use axum::{
    body::{Body, Bytes},
    extract::{RawQuery, State},
    http::header,
    response::{IntoResponse, Response},
};
use futures_util::StreamExt as _;
use poh_core::{
    ChainHead,
    chain_file::{ChainStart, ChildKey, FORMAT, Record},
};

use super::{
    HttpState,
    error::{self, ApiError},
    query_pairs,
};
use crate::federation::link::covered_entries;

#[utoipa::path(get, path = "/v1/export", params(
    ("from_height" = Option<u64>, Query, description = "the first header's height (default 0)"),
), responses(
    (status = 200, description = "the chain file (JSON lines: the start, then each header, its PoH entries and the child headers it recorded)", content_type = "application/x-ndjson"),
    (status = 400, description = "a bad parameter", body = crate::wire::json::ErrorBody),
    (status = 404, description = "no header at that height yet", body = crate::wire::json::ErrorBody),
))]
pub(super) async fn export(
    State(state): State<HttpState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut from = 0u64;
    for (key, value) in query_pairs(query.as_deref()) {
        if key == "from_height" {
            from = value
                .parse()
                .map_err(|_| ApiError::invalid("from_height must be a whole number ≥ 0"))?;
        }
    }
    let services = state.services.clone();
    let (chain, start_head, end, signed_by) = services
        .read(move |store| {
            let chain = store.chain()?;
            let start = match from.checked_sub(1) {
                None => chain.as_ref().map(|c| ChainHead::genesis(&c.chain_id)),
                Some(before) => store.head_after(before)?,
            };
            let end = store.header_head()?.map_or(0, |h| h.height);
            // The key the exported headers are signed with: on a replica, its primary's
            // key, not this node's own.
            let signed_by = store.headers(from, 1)?.into_iter().next();
            Ok((chain, start, end, signed_by.map(|h| h.public_key)))
        })
        .await
        .map_err(error::internal)?;
    let (Some(chain), Some(head)) = (chain, start_head) else {
        return Err(ApiError::not_found(format!(
            "no header at height {} yet",
            from.saturating_sub(1)
        )));
    };
    if from >= end.max(1) && from > 0 {
        return Err(ApiError::not_found(format!(
            "no header at height {from} yet"
        )));
    }
    let federation = &services.federation;
    let start = ChainStart {
        format: FORMAT.into(),
        chain_id: chain.chain_id.clone(),
        level: federation.level,
        hashes_per_tick: chain.hashes_per_tick,
        public_key: hex::encode(signed_by.as_deref().unwrap_or(&federation.public_key)),
        height: head.height,
        prev_header_hash: head.prev_header_hash,
        poh_start: head.poh_start,
        start_hash: head.start_hash,
        hashes_in_tick: Some(head.hashes_in_tick),
        seq: head.seq,
        children: federation
            .children
            .iter()
            .map(|c| ChildKey {
                chain_id: c.chain_id.clone(),
                public_key: hex::encode(&c.public_key),
            })
            .collect(),
    };
    let mut first = serde_json::to_string(&start).map_err(error::internal)?;
    first.push('\n');
    let headers = futures_util::stream::unfold(
        (services, from, head.seq),
        move |(s, height, seq)| async move {
            if height >= end {
                return None;
            }
            let chunk = s.read(move |store| header_lines(store, height, seq)).await;
            match chunk {
                Ok(Some((text, next_seq))) => {
                    Some((Ok(Bytes::from(text)), (s, height + 1, next_seq)))
                }
                Ok(None) => None,
                Err(e) => {
                    tracing::error!(error = %e, "export failed");
                    Some((Err(std::io::Error::other("export failed")), (s, end, seq)))
                }
            }
        },
    );
    let body = futures_util::stream::once(async move { Ok(Bytes::from(first)) }).chain(headers);
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(body),
    )
        .into_response())
}

/// Header `height` (whose first item has `seq`), its entries and its children, as lines; and
/// the seq after its items.
fn header_lines(
    store: &dyn poh_store::Store,
    height: u64,
    seq: u64,
) -> Result<Option<(String, u64)>, poh_store::StoreError> {
    let Some(header) = store.headers(height, 1)?.into_iter().next() else {
        return Ok(None);
    };
    let mut text = Record::Header(header.clone()).to_line();
    for entry in covered_entries(store, &header)? {
        text.push_str(&Record::Entry(entry).to_line());
    }
    let next = seq + header.item_count;
    for child in store.children_recorded(seq..next)? {
        text.push_str(&Record::Child(child.header, child.recorded_at_seq).to_line());
    }
    Ok(Some((text, next)))
}
