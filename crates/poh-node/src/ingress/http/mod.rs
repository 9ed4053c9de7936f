//! HTTP/JSON (SPEC §4): every endpoint, with exactly its status codes and JSON bodies.
//!
//! Bodies are read here with per-route limits (a single transaction, or a batch), so an
//! oversized body is a JSON `413`, a wrong content type a `415`, and anything that is not the
//! transaction shape a `400 {"error":"invalid"}`. One middleware counts every request by
//! route template, applies the request timeout and logs; a panic becomes a JSON `500`.

mod error;
mod events;
mod explorer;
mod export;
mod headers;
mod openapi;
mod queries;
mod replica;

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use axum::{
    Extension, Json, Router,
    body::{Body, Bytes},
    extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Path, RawQuery, Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use futures_util::StreamExt as _;
use poh_core::validate::check_tx_id;
use serde_json::value::RawValue;
use tower_http::catch_panic::CatchPanicLayer;

use error::{ApiError, HttpRefusals};

use super::{Services, gate, listener::ConnLimits};
use crate::{
    config::HttpConfig,
    shared::{ClientKey, RejectReason, Reservation, Transport},
    wire::json::{
        self, BatchItem, EntriesOut, EntryOut, ErrorBody, PeersOut, PohOut, TxIn, TxOut, tx_result,
    },
};

/// Most transactions in one `POST /v1/tx/batch`.
pub const MAX_BATCH: usize = 10_000;
/// Most entries one `GET /v1/poh/entries` returns.
pub const MAX_ENTRIES: usize = 10_000;
const DEFAULT_ENTRIES: usize = 1_000;

#[derive(Clone)]
struct HttpState {
    services: Services,
    max_body: usize,
    max_batch_body: usize,
    timeout: Duration,
    events_keepalive: Duration,
}

/// Routes and their methods, for metrics that exist before the first request.
const ROUTES: [(&str, &str, u16); 20] = [
    ("POST", "/v1/tx", 201),
    ("GET", "/v1/tx", 200),
    ("GET", "/v1/tx/{tx_id}/children", 200),
    ("POST", "/v1/tx/batch", 200),
    ("GET", "/v1/tx/{tx_id}", 200),
    ("GET", "/v1/tx/{tx_id}/proof", 200),
    ("GET", "/v1/poh", 200),
    ("GET", "/v1/poh/entries", 200),
    ("GET", "/v1/headers", 200),
    ("GET", "/v1/headers/{header_id}", 200),
    ("GET", "/v1/federation", 200),
    ("GET", "/v1/export", 200),
    ("GET", "/v1/events", 200),
    ("GET", "/v1/peers", 200),
    ("GET", "/v1/replica", 200),
    ("POST", "/v1/replica/promote", 200),
    ("GET", "/healthz", 200),
    ("GET", "/readyz", 200),
    ("GET", "/metrics", 200),
    ("GET", "/openapi.json", 200),
];

/// The HTTP router.
pub(crate) fn router(services: Services, config: &HttpConfig) -> Router {
    for (method, path, status) in ROUTES {
        services.metrics.preregister_http(method, path, status);
    }
    let state = HttpState {
        services,
        max_body: config.max_body_bytes,
        max_batch_body: config.max_batch_body_bytes,
        timeout: Duration::from_secs(config.request_timeout_secs.max(1)),
        events_keepalive: Duration::from_secs(config.events_keepalive_secs.max(1)),
    };
    let mut router = Router::new()
        .route("/v1/tx", post(post_tx).get(queries::list))
        .route("/v1/tx/batch", post(post_batch))
        .route("/v1/tx/{tx_id}", get(get_tx))
        .route("/v1/tx/{tx_id}/proof", get(headers::proof))
        .route("/v1/tx/{tx_id}/children", get(queries::children))
        .route("/v1/poh", get(get_poh))
        .route("/v1/poh/entries", get(get_entries))
        .route("/v1/headers", get(headers::list))
        .route("/v1/headers/{header_id}", get(headers::one))
        .route("/v1/federation", get(headers::federation))
        .route("/v1/export", get(export::export))
        .route("/v1/events", get(events::events))
        .route("/v1/peers", get(get_peers))
        .route("/v1/replica", get(replica::replica))
        .route("/v1/replica/promote", post(replica::promote))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi::serve))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    if config.explorer {
        for path in explorer::ROUTES {
            state.services.metrics.preregister_http("GET", path, 200);
        }
        router = router.merge(explorer::routes());
    }
    gate::guard(router, &state.services, HttpRefusals)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal().into_response()
        }))
        // Bodies are read by the handlers with their own limits.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// Connection settings of the HTTP listener.
pub(crate) fn conn_limits(config: &HttpConfig) -> ConnLimits {
    ConnLimits {
        name: "http",
        max_connections: config.max_connections,
        http2_only: false,
        max_concurrent_streams: 256,
        keepalive: None,
        header_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(config.idle_timeout_secs.max(1)),
        alpn: &[b"h2", b"http/1.1"],
    }
}

/// The `method` label of a request: a standard method, or `other`, so a client cannot grow
/// the label set (the `path` label is the route template, or `unmatched`).
fn method_label(method: &axum::http::Method) -> &'static str {
    const STANDARD: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
    ];
    STANDARD
        .into_iter()
        .find(|m| *m == method.as_str())
        .unwrap_or("other")
}

async fn observe(State(state): State<HttpState>, req: Request, next: Next) -> Response {
    let method = method_label(req.method());
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    let started = Instant::now();
    let response = match tokio::time::timeout(state.timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            ApiError::unavailable("unavailable", "the request timed out; retry").into_response()
        }
    };
    let status = response.status().as_u16();
    state.services.metrics.http_request(method, &path, status);
    tracing::debug!(target: "poh::http", %peer, method, %path, status, latency_ms = started.elapsed().as_secs_f64() * 1e3, "request");
    response
}

/// Reads a JSON body of at most `limit` bytes. Every byte is counted against the node's
/// `limits.buffered_bytes` before it is kept (503 when that is spent); the reservation comes
/// back with the body and is held while the body is.
async fn read_json_body(
    state: &HttpState,
    client: ClientKey,
    headers: &HeaderMap,
    mut body: Body,
    limit: usize,
) -> Result<(Bytes, Reservation), ApiError> {
    use http_body_util::BodyExt as _;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json" || mime.ends_with("+json")
        });
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as Content-Type: application/json",
        ));
    }
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is larger than this endpoint's limit of {limit} bytes"),
        )
    };
    if http_body::Body::size_hint(&body).lower() > limit as u64 {
        return Err(too_large());
    }
    let mut reservation = state.services.buffered.reserve(Some(client));
    let mut bytes = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|_| ApiError::invalid("the body could not be read to its end"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let len = bytes.len() + data.len();
        if len > limit {
            return Err(too_large());
        }
        reservation
            .resize(len)
            .map_err(|e| ApiError::unavailable("overloaded", e.to_string()))?;
        bytes.extend_from_slice(&data);
    }
    Ok((bytes.freeze(), reservation))
}

/// Parses one JSON transaction, counting it as received and malformed when it is not one.
fn parse_tx(state: &HttpState, bytes: &[u8]) -> Result<poh_core::Tx, ApiError> {
    let parsed = serde_json::from_slice::<TxIn>(bytes)
        .map_err(|e| format!("not a JSON transaction: {e}"))
        .and_then(TxIn::into_tx);
    parsed.map_err(|message| {
        let metrics = &state.services.metrics.ingest;
        metrics.received(Transport::Http, 1);
        metrics.rejected(Transport::Http, RejectReason::Malformed);
        ApiError::invalid(message)
    })
}

#[utoipa::path(post, path = "/v1/tx", request_body = TxIn, responses(
    (status = 201, description = "stored", body = json::TxOk),
    (status = 200, description = "a duplicate: the original's poh_seq and poh_hash", body = json::TxOk),
    (status = 400, description = "invalid or bad_signature", body = ErrorBody),
    (status = 409, description = "conflict: the id is stored with other contents", body = ErrorBody),
    (status = 413, description = "too_large", body = ErrorBody),
    (status = 415, description = "not JSON", body = ErrorBody),
    (status = 503, description = "overloaded; retry after Retry-After", body = ErrorBody),
    (status = 507, description = "storage_full: the node's disk is full and nothing was stored; reads go on, writes resume once space returns", body = ErrorBody),
))]
async fn post_tx(
    State(state): State<HttpState>,
    Extension(client): Extension<ClientKey>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (bytes, _held) = read_json_body(&state, client, &headers, body, state.max_body).await?;
    let tx = parse_tx(&state, &bytes)?;
    let tx_id = tx.tx_id.clone();
    let mut results = state
        .services
        .pipeline
        .submit(Transport::Http, vec![tx])
        .await?;
    let result = results.pop().ok_or_else(ApiError::internal)?;
    let (status, item) = tx_result(tx_id, &result);
    Ok((status, Json(item)).into_response())
}

#[utoipa::path(post, path = "/v1/tx/batch", request_body = Vec<TxIn>, responses(
    (status = 200, description = "one result per transaction, in order, each the body POST /v1/tx would give", body = Vec<BatchItem>),
    (status = 400, description = "not a JSON array, or more than 10,000 elements", body = ErrorBody),
    (status = 413, description = "body too large", body = ErrorBody),
    (status = 503, description = "overloaded; retry after Retry-After", body = ErrorBody),
    (status = 507, description = "storage_full: the node's disk is full and nothing was stored; reads go on, writes resume once space returns", body = ErrorBody),
))]
async fn post_batch(
    State(state): State<HttpState>,
    Extension(client): Extension<ClientKey>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (bytes, _held) =
        read_json_body(&state, client, &headers, body, state.max_batch_body).await?;
    let elements: Vec<&RawValue> = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::invalid(format!("not a JSON array: {e}")))?;
    if elements.len() > MAX_BATCH {
        return Err(ApiError::invalid(format!(
            "{} transactions; a batch holds at most {MAX_BATCH}",
            elements.len()
        )));
    }
    // Elements that are not transactions are answered in place; the rest go in one submission.
    let mut answers: Vec<Option<BatchItem>> = Vec::with_capacity(elements.len());
    let mut txs = Vec::with_capacity(elements.len());
    for raw in elements {
        match parse_tx(&state, raw.get().as_bytes()) {
            Ok(tx) => {
                answers.push(None);
                txs.push(tx);
            }
            Err(e) => answers.push(Some(BatchItem::Err(e.body))),
        }
    }
    let ids: Vec<String> = txs.iter().map(|t| t.tx_id.clone()).collect();
    let results = if txs.is_empty() {
        Vec::new()
    } else {
        state.services.pipeline.submit(Transport::Http, txs).await?
    };
    let mut results = ids.into_iter().zip(results);
    let items: Vec<BatchItem> = answers
        .into_iter()
        .map(|a| match a {
            Some(item) => item,
            None => match results.next() {
                Some((id, r)) => tx_result(id, &r).1,
                None => BatchItem::Err(ApiError::internal().body),
            },
        })
        .collect();
    Ok((StatusCode::OK, Json(items)).into_response())
}

#[utoipa::path(get, path = "/v1/tx/{tx_id}", params(("tx_id" = String, Path, description = "the transaction's id")), responses(
    (status = 200, description = "the transaction and its status", body = TxOut),
    (status = 400, description = "not a valid tx_id", body = ErrorBody),
    (status = 404, description = "not_found", body = ErrorBody),
    (status = 410, description = "expired (TTL): `header_id` names the header that sealed it", body = ErrorBody),
))]
async fn get_tx(
    State(state): State<HttpState>,
    Path(tx_id): Path<String>,
) -> Result<Json<TxOut>, ApiError> {
    check_tx_id(&tx_id).map_err(|rule| ApiError::invalid(format!("tx_id {rule}")))?;
    let found = state
        .services
        .read(move |store| match store.tx(&tx_id)? {
            Some(record) => Ok(Ok(record)),
            None => Ok(Err(store.expired(&tx_id)?)),
        })
        .await
        .map_err(error::internal)?;
    match found {
        Ok(record) => Ok(Json(TxOut::from(record))),
        Err(Some(header_id)) => Err(ApiError::expired(header_id)),
        Err(None) => Err(ApiError::not_found("no transaction with this tx_id")),
    }
}

#[utoipa::path(get, path = "/v1/poh", responses((status = 200, description = "the PoH chain as stored", body = PohOut)))]
async fn get_poh(State(state): State<HttpState>) -> Json<PohOut> {
    Json(state.services.pipeline.poh().into())
}

/// The `key=value` pairs of a query string (a key alone has the value "").
fn query_pairs(query: Option<&str>) -> impl Iterator<Item = (&str, &str)> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// `from` (default 0) and `limit` (default `default`, 1–`max`) of a paged read.
fn paging(query: Option<&str>, default: usize, max: usize) -> Result<(u64, usize), ApiError> {
    let mut from = 0u64;
    let mut limit = default;
    for (key, value) in query_pairs(query) {
        match key {
            "from" => {
                from = value
                    .parse()
                    .map_err(|_| ApiError::invalid("from must be a whole number ≥ 0"))?;
            }
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|l| (1..=max).contains(l))
                    .ok_or_else(|| ApiError::invalid(format!("limit must be 1–{max}")))?;
            }
            _ => {}
        }
    }
    Ok((from, limit))
}

#[utoipa::path(get, path = "/v1/poh/entries", params(
    ("from" = Option<u64>, Query, description = "index of the first entry (default 0)"),
    ("limit" = Option<usize>, Query, description = "entries to return, 1–10,000 (default 1,000)"),
), responses(
    (status = 200, description = "the entries and the hash before the first", body = EntriesOut),
    (status = 400, description = "a bad parameter", body = ErrorBody),
    (status = 404, description = "from is past the last stored entry", body = ErrorBody),
))]
async fn get_entries(
    State(state): State<HttpState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let (from, limit) = paging(query.as_deref(), DEFAULT_ENTRIES, MAX_ENTRIES)?;
    // Only durable entries: an idle tick committed without fsync could be generated again
    // differently after a crash, and a client must never have seen the other version.
    let durable = state.services.pipeline.poh().state.entries;
    if from > durable {
        return Err(ApiError::not_found(format!("no entry {from} yet")));
    }
    let limit = limit.min(usize::try_from(durable - from).unwrap_or(usize::MAX));
    // The first page decides the answer's status; the rest is streamed page by page, so an
    // answer of 10,000 large entries never sits in memory whole.
    let first = read_entries(&state.services, from, limit).await?;
    let first = first.ok_or_else(|| ApiError::not_found(format!("no entry {from} yet")))?;
    let head = format!(
        r#"{{"start_hash":"{}","entries":["#,
        first.start_hash.to_hex()
    );
    let pages = EntryPages {
        services: state.services.clone(),
        next: from + first.entries.len() as u64,
        left: limit - first.entries.len(),
        done: first.entries.is_empty(),
    };
    let first = entries_json(&first.entries, true);
    let rest = futures_util::stream::unfold(pages, |mut pages| async move {
        pages.next_page().await.map(|chunk| (chunk, pages))
    });
    let body = futures_util::stream::once(async move { Ok(Bytes::from(head + &first)) })
        .chain(rest)
        .chain(futures_util::stream::once(async {
            Ok(Bytes::from_static(b"]}"))
        }))
        .map(|chunk: Result<Bytes, ApiError>| chunk.map_err(|e| e.body.message));
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

/// Entries read from the store at a time for `GET /v1/poh/entries`…
const PAGE_ENTRIES: usize = 1000;
/// …and at most this many bytes of them.
const PAGE_BYTES: usize = 1 << 20;

async fn read_entries(
    services: &Services,
    from: u64,
    limit: usize,
) -> Result<Option<poh_store::EntryPage>, ApiError> {
    let want = limit.min(PAGE_ENTRIES);
    services
        .read(move |store| store.entries(from, want, PAGE_BYTES))
        .await
        .map_err(error::internal)
}

/// The JSON of `entries`, each preceded by a comma unless it opens the array.
fn entries_json(entries: &[poh_core::Entry], first: bool) -> String {
    let mut out = String::new();
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 || !first {
            out.push(',');
        }
        // An entry is numbers and hex strings: serialising it cannot fail.
        out.push_str(&serde_json::to_string(&EntryOut::from(entry.clone())).unwrap_or_default());
    }
    out
}

/// The pages after the first of one `GET /v1/poh/entries` answer.
struct EntryPages {
    services: Services,
    next: u64,
    left: usize,
    done: bool,
}

impl EntryPages {
    async fn next_page(&mut self) -> Option<Result<Bytes, ApiError>> {
        if self.done || self.left == 0 {
            return None;
        }
        let page = match read_entries(&self.services, self.next, self.left).await {
            Ok(Some(page)) if !page.entries.is_empty() => page,
            Ok(_) => return None,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        self.next += page.entries.len() as u64;
        self.left -= page.entries.len();
        Some(Ok(Bytes::from(entries_json(&page.entries, false))))
    }
}

#[utoipa::path(get, path = "/v1/peers", responses((status = 200, description = "the peers file", body = PeersOut)))]
async fn get_peers(State(state): State<HttpState>) -> Result<Json<PeersOut>, ApiError> {
    // Read now, not from the relay's once-a-second view: an operator who just ran add-peer
    // sees it. An unreadable file is a 500 here (logged); relaying keeps the last good list.
    let peers = state
        .services
        .peers
        .fresh()
        .await
        .map_err(error::internal)?;
    Ok(Json(PeersOut {
        grpc: peers.grpc.clone(),
        http: peers.http.clone(),
        udp: peers.udp.clone(),
        quic: peers.quic.clone(),
    }))
}

#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "the process is alive")))]
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/readyz", responses(
    (status = 200, description = "storage open and PoH running"),
    (status = 503, description = "not ready", body = ErrorBody),
))]
async fn readyz(State(state): State<HttpState>) -> Result<Json<serde_json::Value>, ApiError> {
    if state.services.pipeline.is_running() {
        Ok(Json(serde_json::json!({"status": "ready"})))
    } else {
        Err(ApiError::unavailable(
            "not_ready",
            "the PoH generator or the store is not running",
        ))
    }
}

#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain")))]
async fn metrics(State(state): State<HttpState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.services.metrics.render(),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see /openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method; see /openapi.json",
    )
}
