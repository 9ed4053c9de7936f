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
        ..AuthConfig::default()
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

/// A peer that protects its health endpoints answers the health checks of a node that sends
/// its token (`peers.token_file`): `active_peers` counts it.
#[tokio::test]
async fn health_checks_send_the_token_to_peers_that_protect_health() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokens"), "peer-token\n").unwrap();
    let tokens = dir.path().join("tokens");
    let guarded = common::start_with(|c| {
        c.auth = Some(AuthConfig {
            token_file: Some(tokens.clone()),
            protect_health: true,
            ..AuthConfig::default()
        });
        c.udp = None;
        c.quic = None;
    })
    .await;
    let file = dir.path().join("peers.json");
    let peers = poh_node::Peers {
        grpc: vec![guarded.node.grpc_addr().unwrap().to_string()],
        http: vec![format!("http://{}", guarded.node.http_addr().unwrap())],
        ..poh_node::Peers::default()
    };
    std::fs::write(&file, serde_json::to_vec(&peers).unwrap()).unwrap();
    let checker = common::start_with(|c| {
        c.peers_file = Some(file);
        c.peers.health_interval_secs = 1;
        c.peers.token_file = Some(tokens);
    })
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let metrics = reqwest::get(checker.http("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.lines().any(|l| l == "active_peers 2") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "both protected checks should answer: {}",
            metrics
                .lines()
                .find(|l| l.starts_with("active_peers "))
                .unwrap_or("")
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    checker.stop().await;
    guarded.stop().await;
}

/// With an issuer and an audience configured, a JWT must carry both, exactly; without them
/// configured, neither is checked.
#[tokio::test]
async fn jwts_are_checked_for_issuer_and_audience_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), SECRET).unwrap();
    let secret = dir.path().join("secret");
    let node = common::start_with(|c| {
        c.auth = Some(AuthConfig {
            jwt_hs256_secret_file: Some(secret),
            jwt_issuer: Some("https://issuer.example".into()),
            jwt_audience: Some("poh-node".into()),
            ..AuthConfig::default()
        });
        c.udp = None;
        c.quic = None;
    })
    .await;
    let exp = now() + 60;
    let cases = [
        (
            "both",
            serde_json::json!({"exp": exp, "iss": "https://issuer.example", "aud": "poh-node"}),
            201,
        ),
        (
            "aud-list",
            serde_json::json!({"exp": exp, "iss": "https://issuer.example", "aud": ["x", "poh-node"]}),
            201,
        ),
        (
            "no-iss",
            serde_json::json!({"exp": exp, "aud": "poh-node"}),
            403,
        ),
        (
            "wrong-iss",
            serde_json::json!({"exp": exp, "iss": "https://evil.example", "aud": "poh-node"}),
            403,
        ),
        (
            "no-aud",
            serde_json::json!({"exp": exp, "iss": "https://issuer.example"}),
            403,
        ),
        (
            "wrong-aud",
            serde_json::json!({"exp": exp, "iss": "https://issuer.example", "aud": "other"}),
            403,
        ),
    ];
    for (name, claims, status) in cases {
        assert_eq!(
            http_status(&node, name, Some(&hs256(claims))).await,
            status,
            "{name}"
        );
    }
    node.stop().await;
}
