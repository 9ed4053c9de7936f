//! `GET /explorer`: every file the page loads is served, as what it is, under a policy that
//! lets it load nothing else; it can be turned off; and with authentication on a browser is
//! asked for the token and gets in with it. (What the page does is tested in a real browser by
//! `poh-cli`'s `explorer` test.)

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use poh_node::config::AuthConfig;
use reqwest::{StatusCode, header};

use crate::common::{self, TestNode};

async fn fetch(url: &str, authorization: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url);
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    request.send().await.unwrap()
}

/// The page's own files named by `text`: `./explorer/NAME` in the HTML, `from "./NAME"` in a
/// module.
fn references(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for marker in ["\"./explorer/", "from \"./"] {
        for piece in text.split(marker).skip(1) {
            if let Some(end) = piece.find('"') {
                found.push(piece[..end].to_string());
            }
        }
    }
    found
}

#[tokio::test]
async fn every_file_the_page_loads_is_served_as_what_it_is_and_nothing_else_may_load() {
    let node = common::start().await;
    let page = fetch(&node.http("/explorer"), None).await;
    assert_eq!(page.status(), StatusCode::OK);
    let policy = page.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_string();
    for rule in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
    ] {
        assert!(policy.contains(rule), "{policy}");
    }
    assert!(
        page.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();

    // Follow every reference from the page through every module it imports.
    let mut todo = references(&html);
    let mut seen = std::collections::BTreeSet::new();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let response = fetch(&node.http(&format!("/explorer/{name}")), None).await;
        assert_eq!(response.status(), StatusCode::OK, "{name}");
        let mime = response.headers()[header::CONTENT_TYPE].to_str().unwrap();
        let want = if name.ends_with(".js") {
            "text/javascript"
        } else {
            "text/css"
        };
        assert!(mime.starts_with(want), "{name}: {mime}");
        let etag = response.headers()[header::ETAG].clone();
        let body = response.text().await.unwrap();
        todo.extend(references(&body));
        // A cached copy is revalidated, not sent again.
        let again = reqwest::Client::new()
            .get(node.http(&format!("/explorer/{name}")))
            .header(header::IF_NONE_MATCH, etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{name}");
    }
    for module in [
        "app.js",
        "live.js",
        "chain.js",
        "tx.js",
        "proof.js",
        "holder.js",
    ] {
        assert!(seen.contains(module), "{module} is not reached: {seen:?}");
    }

    let missing = fetch(&node.http("/explorer/nothing.js"), None).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
    let slash = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(node.http("/explorer/"))
        .send()
        .await
        .unwrap();
    assert!(slash.status().is_redirection());
    assert_eq!(slash.headers()[header::LOCATION], "../explorer");
}

#[tokio::test]
async fn the_page_can_be_turned_off() {
    let node = common::start_with(|c| c.http.as_mut().unwrap().explorer = false).await;
    for path in ["/explorer", "/explorer/app.js"] {
        let response = fetch(&node.http(path), None).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    // The API is there as ever.
    let poh = fetch(&node.http("/v1/poh"), None).await;
    assert_eq!(poh.status(), StatusCode::OK);
}

async fn with_tokens() -> (TestNode, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokens"), "explorer-token\n").unwrap();
    let auth = AuthConfig {
        token_file: Some(dir.path().join("tokens")),
        ..AuthConfig::default()
    };
    let node = common::start_with(move |c| {
        c.auth = Some(auth);
        c.udp = None;
        c.quic = None;
    })
    .await;
    (node, dir)
}

/// A browser asks its user for credentials only when offered `Basic`, and then sends them with
/// every request of the page: the files, the API calls and the event stream.
#[tokio::test]
async fn with_authentication_on_a_browser_is_asked_for_the_token_and_gets_in_with_it() {
    let (node, _dir) = with_tokens().await;
    let basic = |user_and_token: &str| format!("Basic {}", B64.encode(user_and_token));

    let asked = fetch(&node.http("/explorer"), None).await;
    assert_eq!(asked.status(), StatusCode::UNAUTHORIZED);
    let challenge = asked.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
    assert!(challenge.contains("Basic realm=\"poh\""), "{challenge}");
    // API clients are not offered Basic.
    let api = fetch(&node.http("/v1/poh"), None).await;
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(api.headers()[header::WWW_AUTHENTICATE], "Bearer");

    for path in ["/explorer", "/explorer/app.js", "/v1/poh", "/v1/federation"] {
        let good = fetch(&node.http(path), Some(&basic("operator:explorer-token"))).await;
        assert_eq!(good.status(), StatusCode::OK, "{path}");
        let any_user = fetch(&node.http(path), Some(&basic(":explorer-token"))).await;
        assert_eq!(any_user.status(), StatusCode::OK, "{path}");
        let wrong = fetch(&node.http(path), Some(&basic("operator:guess"))).await;
        assert_eq!(wrong.status(), StatusCode::FORBIDDEN, "{path}");
        let unreadable = fetch(&node.http(path), Some("Basic !!!")).await;
        assert_eq!(unreadable.status(), StatusCode::UNAUTHORIZED, "{path}");
        let no_colon = fetch(&node.http(path), Some(&basic("explorer-token"))).await;
        assert_eq!(no_colon.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    // The event stream, which the page opens with the same credentials.
    let events = reqwest::Client::new()
        .get(node.http("/v1/events"))
        .header(header::AUTHORIZATION, basic("operator:explorer-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), StatusCode::OK);
    assert!(
        events.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
}
