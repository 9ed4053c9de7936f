//! `GET /explorer`: a page for people, beside the API it reads. It watches the node's
//! transactions and headers live, shows its chain and the federation around it, and checks a
//! transaction's proof in the browser itself (SHA-256 by WebCrypto).
//!
//! The page is plain HTML, CSS and JavaScript modules kept next to this file and built into the
//! binary, so it works on a machine without internet and `cargo build` needs nothing else. It
//! asks only this node's API, by paths relative to the page, so it works behind a reverse proxy
//! that serves the node under a prefix. It is behind the same gate as every read: with
//! authentication on, a browser opening it is asked for the token (`Basic`, any user name).
//!
//! The files:
//! - `index.html`, `style.css`: the shell — navigation, search, one view at a time;
//! - `app.js`: the views by URL fragment (`#/live`, `#/chain`, `#/tx/ID`, `#/holder/ID`,
//!   `#/header/ID`), and `api.js`, `dom.js` under them;
//! - `live.js`: `/v1/events` as a bounded list; `chain.js`: headers, federation and the chart;
//!   `tx.js`, `holder.js`, `header.js`: one transaction, one holder, one header;
//! - `proof.js`: the checks of a proof (SPEC §2 signing bytes, §6 header bytes, RFC 6962 audit
//!   paths), with no other dependency, and `cards.js`, which shows them.

use axum::{
    Router,
    extract::Path,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};

/// One file of the page.
struct Asset {
    name: &'static str,
    mime: &'static str,
    body: &'static str,
    /// FNV-1a of the body, computed when the binary is built.
    hash: u64,
}

macro_rules! asset {
    ($name:literal, $mime:expr) => {
        Asset {
            name: $name,
            mime: $mime,
            body: include_str!($name),
            hash: fnv1a(include_str!($name).as_bytes()),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("live.js", JS),
    asset!("chain.js", JS),
    asset!("tx.js", JS),
    asset!("cards.js", JS),
    asset!("proof.js", JS),
    asset!("holder.js", JS),
    asset!("header.js", JS),
];

/// The page may load only its own files and ask only this node; nothing may frame it.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// The routes: the page, and its files under `/explorer/`.
pub(super) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/explorer", get(|headers: HeaderMap| async move { serve("index.html", &headers) }))
        .route("/explorer/", get(|| async { Redirect::permanent("../explorer") }))
        .route(
            "/explorer/{file}",
            get(|Path(file): Path<String>, headers: HeaderMap| async move {
                serve(&file, &headers)
            }),
        )
}

/// The route templates, for metrics that exist before the first request.
pub(super) const ROUTES: [&str; 2] = ["/explorer", "/explorer/{file}"];

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return super::error::ApiError::not_found("no such file of the explorer").into_response();
    };
    // The files change only with the binary: a cached copy with the same tag is current.
    let etag = format!("\"{:016x}\"", asset.hash);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.mime)], asset.body).into_response()
    };
    let h = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, etag);
    }
    // Revalidated on every load: an upgraded node serves its own page at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// FNV-1a: a tag that changes when a file does, computed at build time.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    let mut i = 0;
    while i < bytes.len() {
        hash = (hash ^ bytes[i] as u64).wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}
