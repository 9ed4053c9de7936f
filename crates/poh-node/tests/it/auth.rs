//! Tokens and JWTs on gRPC and HTTP: missing, wrong, expired, not yet valid, right; the
//! health endpoints stay open.

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use poh_node::config::AuthConfig;
use tonic::{Code, Request};

use crate::common::{self, TestNode, pb, tx};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-secret";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

struct Keys {
    _dir: tempfile::TempDir,
    ed_private: Vec<u8>,
}

async fn node() -> (TestNode, Keys) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tokens"),
        "# clients\nstatic-token-1\nstatic-token-2\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("secret"), SECRET).unwrap();
    // An Ed25519 key: PKCS#8 for signing, the SubjectPublicKeyInfo PEM for the node.
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    use aws_lc_rs::signature::KeyPair as _;
    let mut spki = hex::decode("302a300506032b6570032100").unwrap();
    spki.extend_from_slice(pair.public_key().as_ref());
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        B64.encode(&spki)
    );
    std::fs::write(dir.path().join("ed.pub"), pem).unwrap();
    let auth = AuthConfig {
        token_file: Some(dir.path().join("tokens")),
        jwt_hs256_secret_file: Some(dir.path().join("secret")),
        jwt_eddsa_public_key_file: Some(dir.path().join("ed.pub")),
        protect_health: false,
    };
    // gRPC and HTTP carry credentials; UDP and QUIC (without mutual TLS) cannot, so a node
    // with authentication on runs without them.
    let node = common::start_with(move |c| {
        c.auth = Some(auth);
        c.udp = None;
        c.quic = None;
    })
    .await;
    (
        node,
        Keys {
            _dir: dir,
            ed_private: pkcs8.as_ref().to_vec(),
        },
    )
}

fn hs256(claims: serde_json::Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

async fn grpc_code(node: &TestNode, id: &str, bearer: Option<&str>) -> Code {
    let mut request = Request::new(pb(&tx(id)));
    if let Some(b) = bearer {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {b}").parse().unwrap());
    }
    match node.grpc().await.broadcast(request).await {
        Ok(_) => Code::Ok,
        Err(status) => {
            assert!(!status.message().contains("src/"), "{status:?}");
            status.code()
        }
    }
}

async fn http_status(node: &TestNode, id: &str, bearer: Option<&str>) -> u16 {
    let mut request = reqwest::Client::new()
        .post(node.http("/v1/tx"))
        .json(&common::json(&tx(id)));
    if let Some(b) = bearer {
        request = request.bearer_auth(b);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    if status == 401 {
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
    }
    if status >= 400 {
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(
            body["error"].is_string() && body["message"].is_string(),
            "{body}"
        );
    }
    status
}

#[tokio::test]
async fn tokens_and_jwts_missing_wrong_expired_early_and_right() {
    let (node, keys) = node().await;
    let t = now();
    let ed = EncodingKey::from_ed_der(&keys.ed_private);
    let cases: Vec<(&str, Option<String>, Code, u16)> = vec![
        ("missing", None, Code::Unauthenticated, 401),
        (
            "not-bearer",
            Some(String::new()),
            Code::Unauthenticated,
            401,
        ),
        (
            "wrong",
            Some("static-token-3".into()),
            Code::PermissionDenied,
            403,
        ),
        ("right", Some("static-token-2".into()), Code::Ok, 201),
        (
            "jwt-right",
            Some(hs256(serde_json::json!({"sub": "svc", "exp": t + 60}))),
            Code::Ok,
            201,
        ),
        (
            "jwt-expired",
            Some(hs256(serde_json::json!({"sub": "svc", "exp": t - 60}))),
            Code::PermissionDenied,
            403,
        ),
        (
            "jwt-early",
            Some(hs256(
                serde_json::json!({"sub": "svc", "exp": t + 600, "nbf": t + 300}),
            )),
            Code::PermissionDenied,
            403,
        ),
        (
            "jwt-wrong-secret",
            Some(
                encode(
                    &Header::new(Algorithm::HS256),
                    &serde_json::json!({"exp": t + 60}),
                    &EncodingKey::from_secret(b"another secret of at least thirty-two bytes"),
                )
                .unwrap(),
            ),
            Code::PermissionDenied,
            403,
        ),
        (
            "jwt-eddsa",
            Some(
                encode(
                    &Header::new(Algorithm::EdDSA),
                    &serde_json::json!({"exp": t + 60}),
                    &ed,
                )
                .unwrap(),
            ),
            Code::Ok,
            201,
        ),
        (
            "jwt-eddsa-expired",
            Some(
                encode(
                    &Header::new(Algorithm::EdDSA),
                    &serde_json::json!({"exp": t - 5}),
                    &ed,
                )
                .unwrap(),
            ),
            Code::PermissionDenied,
            403,
        ),
    ];
    for (name, bearer, code, status) in &cases {
        let bearer = bearer.as_deref();
        // An empty bearer means a header that is not `Bearer …`.
        let (g, h) = if bearer == Some("") {
            let mut request = Request::new(pb(&tx(&format!("{name}-g"))));
            request
                .metadata_mut()
                .insert("authorization", "Basic abc".parse().unwrap());
            let g = node
                .grpc()
                .await
                .broadcast(request)
                .await
                .unwrap_err()
                .code();
            let h = reqwest::Client::new()
                .post(node.http("/v1/tx"))
                .header("authorization", "Basic abc")
                .json(&common::json(&tx(&format!("{name}-h"))))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            (g, h)
        } else {
            (
                grpc_code(&node, &format!("{name}-g"), bearer).await,
                http_status(&node, &format!("{name}-h"), bearer).await,
            )
        };
        assert_eq!((g, h), (*code, *status), "{name}");
    }

    // Health stays open; the API needs credentials.
    for open in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            reqwest::get(node.http(open)).await.unwrap().status(),
            200,
            "{open}"
        );
    }
    assert_eq!(
        reqwest::get(node.http("/v1/poh")).await.unwrap().status(),
        401
    );
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        tonic::transport::Channel::from_shared(format!(
            "http://{}",
            node.node.grpc_addr().unwrap()
        ))
        .unwrap()
        .connect()
        .await
        .unwrap(),
    );
    assert!(
        health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .is_ok()
    );
    node.stop().await;
}
