//! HTTP/JSON: every status of SPEC §4 from the input that causes it, and the JSON bodies.

use poh_core::SigningKey;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::common::{json, signed, start, start_with, tx};

async fn post(client: &Client, url: &str, body: &Value) -> (StatusCode, Value) {
    let r = client.post(url).json(body).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap())
}

fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn every_status_of_post_tx_comes_from_the_input_that_causes_it() {
    let node = start_with(|c| {
        c.ingest.max_payload_bytes = 1024;
        c.http.as_mut().unwrap().max_body_bytes = 64 << 10;
    })
    .await;
    let c = Client::new();
    let url = node.http("/v1/tx");

    let (status, stored) = post(&c, &url, &json(&tx("h1"))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(stored["status"], "stored");
    assert_eq!(stored["tx_id"], "h1");
    assert_eq!(stored["poh_hash"].as_str().unwrap().len(), 64);

    let (status, dup) = post(&c, &url, &json(&tx("h1"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(dup["status"], "duplicate");
    assert_eq!(
        (&dup["poh_seq"], &dup["poh_hash"]),
        (&stored["poh_seq"], &stored["poh_hash"])
    );

    let mut other = tx("h1");
    other.payload = b"else".to_vec();
    let (status, body) = post(&c, &url, &json(&other)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, "conflict");

    let (status, body) = post(&c, &url, &json(&tx("bad/id"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid");

    let mut v = json(&tx("h2"));
    v.as_object_mut().unwrap().remove("timestamp");
    let (status, body) = post(&c, &url, &v).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a missing field");
    assert_error(&body, "invalid");
    assert!(body["message"].as_str().unwrap().contains("timestamp"));

    let mut v = json(&tx("h2"));
    v["timestamp"] = json!("yesterday");
    assert_eq!(
        post(&c, &url, &v).await.0,
        StatusCode::BAD_REQUEST,
        "a wrong JSON type"
    );
    let mut v = json(&tx("h2"));
    v["payload_b64"] = json!("not base64!");
    let (status, body) = post(&c, &url, &v).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "bad base64");
    assert!(body["message"].as_str().unwrap().contains("payload_b64"));

    let key = SigningKey::generate().unwrap();
    let mut forged = signed("h3", &key);
    forged.timestamp += 1.0;
    let (status, body) = post(&c, &url, &json(&forged)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "bad_signature");
    assert_eq!(
        post(&c, &url, &json(&signed("h3", &key))).await.0,
        StatusCode::CREATED
    );

    let mut big = tx("h4");
    big.payload = vec![1; 1025];
    let (status, body) = post(&c, &url, &json(&big)).await;
    assert_eq!(
        status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload above max_payload_bytes"
    );
    assert_error(&body, "too_large");
    big.payload = vec![1; 70 << 10];
    let (status, body) = post(&c, &url, &json(&big)).await;
    assert_eq!(
        status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "body above the endpoint's limit"
    );
    assert_error(&body, "too_large");

    let r = c
        .post(&url)
        .body(json(&tx("h5")).to_string())
        .header("content-type", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_error(&r.json().await.unwrap(), "unsupported_media_type");

    let r = c
        .post(&url)
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_error(&r.json().await.unwrap(), "invalid");

    let r = c.get(node.http("/v1/nothing-here")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_error(&r.json().await.unwrap(), "not_found");
    let r = c.delete(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_error(&r.json().await.unwrap(), "method_not_allowed");

    // Only h1 and h3 were stored.
    for (id, expected) in [
        ("h1", 200),
        ("h2", 404),
        ("h3", 200),
        ("h4", 404),
        ("h5", 404),
    ] {
        let r = c
            .get(node.http(&format!("/v1/tx/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), expected, "{id}");
    }
    node.stop().await;
}

#[tokio::test]
async fn get_tx_returns_the_transaction_exactly_as_sent() {
    let node = start().await;
    let c = Client::new();
    let mut t = tx("exact");
    t.timestamp = 0.1 + 0.2;
    t.payload = vec![0, 159, 146, 150, 255];
    t.holder_id = "ホルダー".into();
    let (status, _) = post(&c, &node.http("/v1/tx"), &json(&t)).await;
    assert_eq!(status, StatusCode::CREATED);
    let mut child = tx("kid");
    child.parent_ids = vec!["exact".into()];
    post(&c, &node.http("/v1/tx"), &json(&child)).await;

    let r = c.get(node.http("/v1/tx/exact")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        body["timestamp"].as_f64().unwrap().to_bits(),
        (0.1f64 + 0.2).to_bits()
    );
    assert!(text.contains("0.30000000000000004"), "{text}");
    assert_eq!(body["payload_b64"], "AJ+Slv8=");
    assert_eq!(body["holder_id"], "ホルダー");
    assert_eq!(body["status"], "ORDERED");
    assert_eq!(body["header_id"], Value::Null);
    assert_eq!(body["poh_seq"], 0);
    assert_eq!(body["dag_parents"], json!([]));
    assert!(body["received_at"].as_f64().unwrap() > 1.6e9);

    let kid: Value = c
        .get(node.http("/v1/tx/kid"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(kid["dag_parents"], json!(["exact"]));
    assert_eq!(kid["parent_ids"], json!(["exact"]));

    let r = c.get(node.http("/v1/tx/bad%20id")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c.get(node.http("/v1/tx/missing")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "not_found");
    node.stop().await;
}

#[tokio::test]
async fn batch_answers_each_element_in_order() {
    let node = start().await;
    let c = Client::new();
    let url = node.http("/v1/tx/batch");
    let batch = json!([
        json(&tx("b1")),
        {"tx_id": "b2"},
        json(&tx("b3")),
        json(&tx("b1")),
        json(&tx("no good")),
    ]);
    let (status, body) = post(&c, &url, &batch).await;
    assert_eq!(status, StatusCode::OK);
    let items = body.as_array().unwrap();
    assert_eq!(items.len(), 5);
    assert_eq!(items[0]["status"], "stored");
    assert_eq!(items[1]["error"], "invalid");
    assert_eq!(items[2]["status"], "stored");
    assert_eq!(items[3]["status"], "duplicate");
    assert_eq!(items[3]["poh_seq"], items[0]["poh_seq"]);
    assert_eq!(items[4]["error"], "invalid");

    let too_many: Vec<Value> = (0..10_001).map(|i| json(&tx(&format!("m{i}")))).collect();
    let (status, body) = post(&c, &url, &Value::Array(too_many)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("10000"));
    let (status, _) = post(&c, &url, &json!({"not": "an array"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = post(&c, &url, &json!([])).await;
    assert_eq!((status, body), (StatusCode::OK, json!([])));
    node.stop().await;
}

#[tokio::test]
async fn overload_is_503_with_retry_after() {
    let node = start_with(|c| c.ingest.queue_bytes = 1 << 20).await;
    let c = Client::new();
    let mut refused = None;
    for round in 0..20 {
        let batch: Vec<Value> = (0..3000)
            .map(|i| {
                let mut t = tx(&format!("f{round}-{i}"));
                t.payload = vec![3; 1000];
                json(&t)
            })
            .collect();
        let (c2, url) = (c.clone(), node.http("/v1/tx/batch"));
        let fill =
            tokio::spawn(async move { c2.post(url).json(&batch).send().await.unwrap().status() });
        for i in 0..200 {
            let r = c
                .post(node.http("/v1/tx"))
                .json(&json(&tx(&format!("p{round}-{i}"))))
                .send()
                .await
                .unwrap();
            if r.status() == StatusCode::SERVICE_UNAVAILABLE {
                refused = Some((
                    r.headers().get("retry-after").cloned(),
                    r.json::<Value>().await.unwrap(),
                ));
                break;
            }
            assert_eq!(r.status(), StatusCode::CREATED);
        }
        // The batch itself may find the queue already full (the single posts raced it).
        let filled = fill.await.unwrap();
        assert!(
            [StatusCode::OK, StatusCode::SERVICE_UNAVAILABLE].contains(&filled),
            "{filled}"
        );
        if refused.is_some() {
            break;
        }
    }
    let (retry_after, body) = refused.expect("a full queue answers 503");
    assert_eq!(retry_after.unwrap(), "1");
    assert_error(&body, "overloaded");
    node.stop().await;
}

#[tokio::test]
async fn poh_health_peers_and_openapi() {
    let dir = tempfile::tempdir().unwrap();
    let peers = dir.path().join("peers.json");
    std::fs::write(
        &peers,
        r#"{"grpc": ["127.0.0.1:50051"], "http": [], "udp": [], "quic": []}"#,
    )
    .unwrap();
    let node = start_with(|c| c.peers_file = Some(peers.clone())).await;
    let c = Client::new();
    post(&c, &node.http("/v1/tx"), &json(&tx("one"))).await;

    let poh: Value = c
        .get(node.http("/v1/poh"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(poh["chain_id"], "local");
    assert_eq!(poh["seq"], 1);
    assert!(poh["entries"].as_u64().unwrap() >= 1);
    assert_eq!(poh["hash"].as_str().unwrap().len(), 64);
    assert!(poh["hashes_per_second"].is_number());

    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            c.get(node.http(path)).send().await.unwrap().status(),
            StatusCode::OK,
            "{path}"
        );
    }
    let peers: Value = c
        .get(node.http("/v1/peers"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        peers,
        json!({"grpc": ["127.0.0.1:50051"], "http": [], "udp": [], "quic": []})
    );

    let api: Value = c
        .get(node.http("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(api["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/tx",
        "/v1/tx/batch",
        "/v1/tx/{tx_id}",
        "/v1/poh",
        "/v1/poh/entries",
        "/v1/peers",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(
            api["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(api["components"]["schemas"]["TxIn"]["properties"]["payload_b64"].is_object());

    for (query, status) in [
        ("limit=0", 400),
        ("limit=10001", 400),
        ("from=x", 400),
        ("from=999999", 404),
        ("from=0&limit=1", 200),
    ] {
        let r = c
            .get(node.http(&format!("/v1/poh/entries?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{query}");
    }
    node.stop().await;
}
