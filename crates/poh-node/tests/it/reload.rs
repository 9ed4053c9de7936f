//! Live reload: the node's certificate replaced under load, a client taken off the
//! allow-list, the certificate the node presents to its peers, the token file, and the
//! `[limits]`, each changed without a restart; a broken part changes nothing, and a setting
//! that cannot change live keeps its running value.

use std::{path::Path, time::Duration};

use poh_node::{
    PeerBook, Transport,
    config::{AuthConfig, ClientLimits, PeersConfig, TlsConfig},
    network::client::{ClientTls, QuicClient, grpc_channel},
    tls::{ServerTrust, certs::DevCa, client_config},
};
use poh_proto::v1::poh_service_client::PohServiceClient;
use rustls::pki_types::{CertificateDer, pem::PemObject as _};
use tonic::{Code, Request};

use crate::{
    common::{self, TestNode, pb, tx},
    security::{Pki, attempt, pki, secured, write_pair},
};

/// `poh_reload_total{result}` as the node counts it.
fn reloads(node: &common::TestNode, result: &str) -> f64 {
    let text = node.node.metrics().render();
    let line = format!("poh_reload_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(line.as_str()))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {line} in\n{text}"))
}

/// A client taken off `allowed_clients` cannot make a new connection once the settings are
/// reloaded, on gRPC, HTTPS and QUIC, while one put on it can; a CA file that does not read
/// fails the reload and changes nothing.
#[tokio::test]
async fn a_client_taken_off_the_allow_list_cannot_connect_after_a_reload() {
    let pki = pki();
    let node = secured(&pki).await;
    let ca = ServerTrust::Ca(pki.path("ca.crt"));
    let ok = || Some(pki.identity("client-ok"));
    let other = || Some(pki.identity("client-other"));
    assert_eq!(attempt(&node, &ca, ok(), "before").await, [true; 3]);
    assert_eq!(
        attempt(&node, &ca, other(), "other-before").await,
        [false; 3]
    );

    let mut broken = node.config.clone();
    broken.tls.as_mut().unwrap().ca = Some(pki.path("no-such-ca.crt"));
    broken.tls.as_mut().unwrap().allowed_clients = vec!["client-other".into()];
    let err = node.node.reload(&broken).unwrap_err().to_string();
    assert!(err.contains("no-such-ca.crt"), "{err}");
    assert_eq!(
        attempt(&node, &ca, ok(), "after-failure").await,
        [true; 3],
        "a failed reload changes nothing"
    );
    assert_eq!(reloads(&node, "failure"), 1.0);

    let mut revoked = node.config.clone();
    revoked.tls.as_mut().unwrap().allowed_clients = vec!["client-other".into(), "node-a".into()];
    node.node.reload(&revoked).unwrap();
    assert_eq!(
        attempt(&node, &ca, ok(), "revoked").await,
        [false; 3],
        "client-ok is off the list"
    );
    assert_eq!(
        attempt(&node, &ca, other(), "added").await,
        [true; 3],
        "client-other is on it"
    );
    assert_eq!(reloads(&node, "success"), 1.0);
    node.stop().await;
}

/// A node relaying to `peer` over gRPC, HTTPS and QUIC, showing the certificate in
/// `sender.crt` / `sender.key` and trusting (and admitting) the CA in `sender-ca.crt`, all
/// under `pki`.
async fn relaying_to(pki: &Pki, peer: &TestNode) -> TestNode {
    let book = PeerBook::new(pki.path("sender-peers.json"));
    let https = format!(
        "https://127.0.0.1:{}",
        peer.node.http_addr().unwrap().port()
    );
    for (protocol, address) in [
        (Transport::Grpc, peer.node.grpc_addr().unwrap().to_string()),
        (Transport::Http, https),
        (Transport::Quic, peer.node.quic_addr().unwrap().to_string()),
    ] {
        book.add(protocol, &address, None).unwrap();
    }
    let (cert, key, ca) = (
        pki.path("sender.crt"),
        pki.path("sender.key"),
        pki.path("sender-ca.crt"),
    );
    let peers_file = book.path().to_path_buf();
    common::start_with(move |c| {
        c.tls = Some(TlsConfig {
            cert: Some(cert),
            key: Some(key),
            ca: Some(ca),
            ..TlsConfig::default()
        });
        c.peers_file = Some(peers_file);
        c.relay = true;
        c.peers = PeersConfig {
            attempts: 1,
            timeout_ms: 3000,
            health_interval_secs: 0,
            ..PeersConfig::default()
        };
        c.udp = None;
    })
    .await
}

/// Writes `name`'s certificate and key over the files [`relaying_to`]'s node shows.
fn shows(pki: &Pki, name: &str) {
    for ext in ["crt", "key"] {
        std::fs::copy(
            pki.path(&format!("{name}.{ext}")),
            pki.path(&format!("sender.{ext}")),
        )
        .unwrap();
    }
}

/// `poh_broadcast_total{protocol, result}` for gRPC, HTTP and QUIC.
fn sends(node: &TestNode, result: &str) -> Vec<f64> {
    let text = node.node.metrics().render();
    ["grpc", "http", "quic"]
        .map(|p| {
            let line = format!(r#"poh_broadcast_total{{protocol="{p}",result="{result}"}} "#);
            text.lines()
                .find_map(|l| l.strip_prefix(line.as_str()))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0)
        })
        .to_vec()
}

/// Waits until `node` has counted `want` sends with `result` over gRPC, HTTP and QUIC.
async fn sent(node: &TestNode, result: &str, want: [f64; 3]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while sends(node, result) != want {
        assert!(
            std::time::Instant::now() < deadline,
            "{result} sends: {:?}, want {want:?}",
            sends(node, result)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The node presents its reloaded certificate to the peers it relays to, on gRPC, HTTPS and
/// QUIC: a peer admitting only `client-ok` refuses the node while it shows `client-other`,
/// and takes its relays once `client-ok`'s certificate is written over the node's files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_presents_its_reloaded_certificate_to_its_peers() {
    let pki = pki();
    let peer = secured(&pki).await;
    shows(&pki, "client-other");
    std::fs::copy(pki.path("ca.crt"), pki.path("sender-ca.crt")).unwrap();
    let sender = relaying_to(&pki, &peer).await;
    let trust = ServerTrust::Ca(pki.path("ca.crt"));

    // Three transactions (one per transport), each relayed over each transport.
    let me = || Some(pki.identity("client-ok"));
    assert_eq!(attempt(&sender, &trust, me(), "refused").await, [true; 3]);
    sent(&sender, "failed", [3.0; 3]).await;
    assert_eq!(
        sends(&sender, "ok"),
        [0.0; 3],
        "the peer refuses client-other"
    );

    shows(&pki, "client-ok");
    sender.reload().unwrap();
    assert_eq!(attempt(&sender, &trust, me(), "relayed").await, [true; 3]);
    sent(&sender, "ok", [3.0; 3]).await;
    sender.stop().await;
    peer.stop().await;
}

/// A reloaded CA file is what the node's clients trust from then on (as well as whom its
/// listeners admit): a node trusting only another CA cannot relay to a peer, and can once
/// the peer's CA is added to its CA file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_clients_trust_its_reloaded_ca() {
    let pki = pki();
    let peer = secured(&pki).await;
    shows(&pki, "client-ok");
    std::fs::copy(pki.path("other-ca.crt"), pki.path("sender-ca.crt")).unwrap();
    let sender = relaying_to(&pki, &peer).await;
    // The sender shows a certificate from `ca` and admits clients of `other-ca` only.
    let trust = ServerTrust::Ca(pki.path("ca.crt"));
    let foreign = Some(pki.identity("client-foreign"));
    assert_eq!(
        attempt(&sender, &trust, foreign, "untrusted").await,
        [true; 3]
    );
    sent(&sender, "failed", [3.0; 3]).await;
    assert_eq!(
        sends(&sender, "ok"),
        [0.0; 3],
        "the peer's CA is not trusted"
    );

    let both = [pki.path("other-ca.crt"), pki.path("ca.crt")]
        .map(|p| std::fs::read_to_string(p).unwrap())
        .concat();
    std::fs::write(pki.path("sender-ca.crt"), both).unwrap();
    sender.reload().unwrap();
    let ok = Some(pki.identity("client-ok"));
    assert_eq!(attempt(&sender, &trust, ok, "trusted").await, [true; 3]);
    sent(&sender, "ok", [3.0; 3]).await;
    sender.stop().await;
    peer.stop().await;
}

/// A node whose clients need a token from `tokens` (gRPC and HTTP; UDP and QUIC off).
async fn with_tokens(tokens: &Path) -> TestNode {
    let file = tokens.to_path_buf();
    common::start_with(move |c| {
        c.auth = Some(AuthConfig {
            token_file: Some(file),
            ..AuthConfig::default()
        });
        c.udp = None;
        c.quic = None;
    })
    .await
}

/// A token rotated between two nodes: the receiving node's token file changes, and the
/// sending node's `peers.token_file` follows; its relays are refused in between and go
/// through again once it has reloaded too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_peers_token_is_sent_after_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let (tokens, token) = (dir.path().join("tokens"), dir.path().join("peer-token"));
    std::fs::write(&tokens, "old-token\n").unwrap();
    std::fs::write(&token, "old-token\n").unwrap();
    let receiver = with_tokens(&tokens).await;
    let book = PeerBook::new(dir.path().join("peers.json"));
    let grpc = receiver.node.grpc_addr().unwrap().to_string();
    book.add(Transport::Grpc, &grpc, None).unwrap();
    let http = format!("http://{}", receiver.node.http_addr().unwrap());
    book.add(Transport::Http, &http, None).unwrap();
    let (peers_file, file) = (book.path().to_path_buf(), token.clone());
    let sender = common::start_with(move |c| {
        c.peers_file = Some(peers_file);
        c.relay = true;
        c.peers = PeersConfig {
            attempts: 1,
            timeout_ms: 3000,
            health_interval_secs: 0,
            token_file: Some(file),
            ..PeersConfig::default()
        };
    })
    .await;
    let client = reqwest::Client::new();
    let submit = async |id: &str| {
        let r = client
            .post(sender.http("/v1/tx"))
            .json(&common::json(&tx(id)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    };

    submit("token-before").await;
    sent(&sender, "ok", [1.0, 1.0, 0.0]).await;

    std::fs::write(&tokens, "new-token\n").unwrap();
    receiver.reload().unwrap();
    submit("token-between").await;
    sent(&sender, "failed", [1.0, 1.0, 0.0]).await;

    std::fs::write(&token, "new-token\n").unwrap();
    sender.reload().unwrap();
    submit("token-after").await;
    sent(&sender, "ok", [2.0, 2.0, 0.0]).await;
    sender.stop().await;
    receiver.stop().await;
}

/// On a node without `[tls]`, QUIC's own certificate (`[quic]` cert and key) reloads too:
/// a new connection is shown the new one, as its pin proves.
#[tokio::test]
async fn quics_own_certificate_reloads_on_a_node_without_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::generate().unwrap();
    write_pair(dir.path(), "quic", ca.issue("node-a", 30).unwrap());
    let (cert, key) = (dir.path().join("quic.crt"), dir.path().join("quic.key"));
    let node = common::start_with(move |c| {
        let quic = c.quic.as_mut().unwrap();
        quic.cert = Some(cert);
        quic.key = Some(key);
    })
    .await;
    let addr = node.node.quic_addr().unwrap().to_string();
    let pin = || {
        let certs = poh_node::tls::read_certs(&dir.path().join("quic.crt")).unwrap();
        poh_node::tls::fingerprint(&certs[0])
    };
    let reaches = async |pin: &str, id: &str| {
        let client = QuicClient::new(&ServerTrust::System, None).unwrap();
        let sent = client.send(&addr, Some(pin), &[pb(&tx(id))]).await;
        client.close();
        sent.is_ok()
    };
    let first = pin();
    assert!(reaches(&first, "quic-first").await);

    write_pair(dir.path(), "quic", ca.issue("node-a", 30).unwrap());
    let second = pin();
    node.reload().unwrap();
    assert!(reaches(&second, "quic-second").await, "the new certificate");
    assert!(!reaches(&first, "quic-old").await, "not the old one");
    node.stop().await;
}

/// `[limits]` change live: a rate lowered refuses a burst it took before, and raised again
/// takes it; limits that do not hold together fail the reload and change nothing; a changed
/// port cannot move a bound listener and keeps its value while the rest applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_change_live_and_a_port_waits_for_a_restart() {
    let node = common::start().await;
    let client = reqwest::Client::new();
    let url = node.http("/v1/poh");
    let burst = async || {
        let mut refused = 0;
        for _ in 0..20 {
            let r = client.get(&url).send().await.unwrap();
            match r.status().as_u16() {
                200 => {}
                503 => refused += 1,
                other => panic!("status {other}"),
            }
        }
        refused
    };
    assert_eq!(burst().await, 0);

    let mut slow = node.config.clone();
    slow.limits = ClientLimits {
        requests_per_second: 2,
        burst: 2,
        ..ClientLimits::default()
    };
    slow.grpc.as_mut().unwrap().port = 1;
    node.node.reload(&slow).unwrap();
    assert!(burst().await >= 15, "two a second");
    let grpc = node.node.grpc_addr().unwrap();
    assert_ne!(grpc.port(), 1);
    assert!(
        tokio::net::TcpStream::connect(grpc).await.is_ok(),
        "gRPC still served"
    );

    let mut inconsistent = node.config.clone();
    inconsistent.limits.buffered_bytes = 1 << 20;
    inconsistent.limits.buffered_bytes_per_client = 2 << 20;
    let err = node.node.reload(&inconsistent).unwrap_err().to_string();
    assert!(err.contains("buffered_bytes_per_client"), "{err}");
    assert!(burst().await >= 15, "still two a second");

    node.node.reload(&node.config).unwrap();
    assert_eq!(burst().await, 0);
    assert_eq!(
        (reloads(&node, "success"), reloads(&node, "failure")),
        (2.0, 1.0)
    );
    node.stop().await;
}

/// The SHA-256 fingerprint of the certificate a new TLS connection to `addr` is shown.
async fn served_fingerprint(addr: std::net::SocketAddr, ca: &Path) -> String {
    let config = client_config(&ServerTrust::Ca(ca.to_path_buf()), None, &[b"h2"]).unwrap();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let (_, session) = tls.get_ref();
    poh_node::tls::fingerprint(&session.peer_certificates().unwrap()[0])
}

/// The node's certificate is replaced (a new key, the same CA) while HTTPS and gRPC clients
/// keep submitting: no request fails, connections made before keep working, new ones see the
/// new certificate (the node noticed the files changed), and a broken replacement (a key
/// that is not the certificate's) keeps the new certificate served and counts a failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_certificate_is_served_to_new_connections_without_a_failed_request() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::generate().unwrap();
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, &ca.cert_pem).unwrap();
    write_pair(dir.path(), "node-a", ca.issue("node-a", 30).unwrap());
    let (cert, key) = (dir.path().join("node-a.crt"), dir.path().join("node-a.key"));
    let node = common::start_with(move |c| {
        c.tls = Some(TlsConfig {
            cert: Some(cert),
            key: Some(key),
            ..TlsConfig::default()
        });
        c.quic = None;
    })
    .await;
    let http_addr = node.node.http_addr().unwrap();
    let grpc_addr = node.node.grpc_addr().unwrap();
    let trust = ServerTrust::Ca(ca_file.clone());
    let first = served_fingerprint(http_addr, &ca_file).await;

    // Load on one HTTPS client and one gRPC channel, each keeping its connection.
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let load = {
        let (done, trust) = (done.clone(), trust.clone());
        tokio::spawn(async move {
            let https = reqwest::Client::builder()
                .tls_backend_preconfigured(
                    client_config(&trust, None, &[b"h2", b"http/1.1"]).unwrap(),
                )
                .build()
                .unwrap();
            let tls = ClientTls {
                trust,
                identity: None,
                token: None,
            };
            let channel =
                grpc_channel(&grpc_addr.to_string(), &tls, Duration::from_secs(5)).unwrap();
            let mut grpc = PohServiceClient::new(channel);
            let (mut ok, mut failed) = (0, Vec::new());
            let mut i = 0;
            while !done.load(Ordering::Relaxed) {
                i += 1;
                let url = format!("https://127.0.0.1:{}/v1/tx", http_addr.port());
                let body = common::json(&tx(&format!("rot-http-{i}")));
                match https.post(url).json(&body).send().await {
                    Ok(r) if r.status() == 201 => ok += 1,
                    other => failed.push(format!("{other:?}")),
                }
                match grpc.broadcast(pb(&tx(&format!("rot-grpc-{i}")))).await {
                    Ok(ack) if ack.get_ref().success => ok += 1,
                    other => failed.push(format!("{other:?}")),
                }
            }
            (ok, failed)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A new key for the same name from the same CA, written over the files: the node sees
    // the change by itself.
    write_pair(dir.path(), "node-a", ca.issue("node-a", 30).unwrap());
    let second = std::fs::read_to_string(dir.path().join("node-a.crt")).unwrap();
    let second =
        poh_node::tls::fingerprint(&CertificateDer::from_pem_slice(second.as_bytes()).unwrap());
    assert_ne!(first, second);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while served_fingerprint(http_addr, &ca_file).await != second {
        assert!(
            std::time::Instant::now() < deadline,
            "still the old certificate"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served_fingerprint(grpc_addr, &ca_file).await, second);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A key that is not the certificate's: refused, the second certificate stays.
    let (_, other_key) = ca.issue("node-a", 30).unwrap();
    std::fs::write(dir.path().join("node-a.key"), other_key).unwrap();
    let err = node.reload().unwrap_err().to_string();
    assert!(err.contains("does not match"), "{err}");
    assert_eq!(served_fingerprint(http_addr, &ca_file).await, second);
    let text = node.node.metrics().render();
    assert!(
        text.contains(r#"poh_reload_total{result="success"} 1"#),
        "{text}"
    );
    assert!(
        !text.contains(r#"poh_reload_total{result="failure"} 0"#),
        "{text}"
    );

    done.store(true, Ordering::Relaxed);
    let (ok, failed) = load.await.unwrap();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {:?}",
        failed.len(),
        ok + failed.len(),
        &failed[..failed.len().min(3)]
    );
    assert!(ok > 20, "only {ok} requests made");
    node.stop().await;
}

/// The token file is read again when it changes: a token removed is refused from then on, one
/// added is accepted, on gRPC and HTTP; a file left with no token is refused by `reload` and
/// the tokens before stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_token_file_is_reloaded_and_a_broken_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "alpha\nbeta\n").unwrap();
    let node = with_tokens(&tokens).await;
    let mut grpc = node.grpc().await;
    let http = reqwest::Client::new();
    let mut n = 0;
    // (gRPC code, HTTP status) of a submission with `token`.
    let mut submit = async |token: &str| {
        n += 1;
        let mut request = Request::new(pb(&tx(&format!("reload-{n}"))));
        let bearer = format!("Bearer {token}").parse().unwrap();
        request.metadata_mut().insert("authorization", bearer);
        let code = grpc
            .broadcast(request)
            .await
            .map_or_else(|s| s.code(), |_| Code::Ok);
        let status = http
            .post(node.http("/v1/tx"))
            .bearer_auth(token)
            .json(&common::json(&tx(&format!("reload-http-{n}"))))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        (code, status)
    };
    assert_eq!(submit("beta").await, (Code::Ok, 201));
    assert_eq!(submit("gamma").await, (Code::PermissionDenied, 403));

    std::fs::write(&tokens, "alpha\ngamma\n").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while submit("gamma").await != (Code::Ok, 201) {
        assert!(std::time::Instant::now() < deadline, "gamma still refused");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(submit("beta").await, (Code::PermissionDenied, 403));
    assert_eq!(submit("alpha").await, (Code::Ok, 201));

    std::fs::write(&tokens, "# nobody\n").unwrap();
    let err = node.reload().unwrap_err().to_string();
    assert!(err.contains("holds no token"), "{err}");
    assert_eq!(submit("gamma").await, (Code::Ok, 201));
    let text = node.node.metrics().render();
    assert!(
        text.contains(r#"poh_reload_total{result="success"} 1"#),
        "{text}"
    );
    node.stop().await;
}
