//! Mutual TLS on gRPC, HTTPS and QUIC with `poh certs`-style certificates: the right client
//! gets in; another CA's, an expired one, one off the allow-list, and a server whose pinned
//! fingerprint does not match are each refused.

use std::{path::Path, sync::Arc, time::Duration};

use poh_node::{
    config::TlsConfig,
    network::client::{ClientTls, QuicClient, grpc_channel},
    tls::{Identity, NodeCert, ServerTrust, certs::DevCa, client_config},
};
use poh_proto::v1::poh_service_client::PohServiceClient;

use crate::common::{self, TestNode, pb, tx};

pub(crate) struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    pub(crate) fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn identity(&self, name: &str) -> Arc<NodeCert> {
        NodeCert::new(
            Identity::from_pem(
                &self.path(&format!("{name}.crt")),
                &self.path(&format!("{name}.key")),
            )
            .unwrap(),
        )
        .unwrap()
    }
}

pub(crate) fn write_pair(dir: &Path, name: &str, (cert, key): (String, String)) {
    std::fs::write(dir.join(format!("{name}.crt")), cert).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key).unwrap();
}

pub(crate) fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::generate().unwrap();
    std::fs::write(dir.path().join("ca.crt"), &ca.cert_pem).unwrap();
    for name in ["node-a", "client-ok", "client-other"] {
        write_pair(dir.path(), name, ca.issue(name, 30).unwrap());
    }
    let past = time::OffsetDateTime::now_utc() - time::Duration::days(30);
    write_pair(
        dir.path(),
        "client-old",
        ca.issue_valid("client-ok", past, past + time::Duration::days(1))
            .unwrap(),
    );
    let other = DevCa::generate().unwrap();
    write_pair(
        dir.path(),
        "client-foreign",
        other.issue("client-ok", 30).unwrap(),
    );
    std::fs::write(dir.path().join("other-ca.crt"), &other.cert_pem).unwrap();
    Pki { dir }
}

pub(crate) async fn secured(pki: &Pki) -> TestNode {
    let (cert, key, ca) = (
        pki.path("node-a.crt"),
        pki.path("node-a.key"),
        pki.path("ca.crt"),
    );
    common::start_with(move |c| {
        c.tls = Some(TlsConfig {
            cert: Some(cert),
            key: Some(key),
            ca: Some(ca),
            allowed_clients: vec!["client-ok".into(), "node-a".into()],
            ..TlsConfig::default()
        });
    })
    .await
}

/// Whether a client with `trust` and `identity` gets a transaction stored, per transport.
pub(crate) async fn attempt(
    node: &TestNode,
    trust: &ServerTrust,
    identity: Option<Arc<NodeCert>>,
    id: &str,
) -> [bool; 3] {
    let tls = ClientTls {
        trust: trust.clone(),
        identity,
        token: None,
    };
    let timeout = Duration::from_secs(5);

    let channel = grpc_channel(&node.node.grpc_addr().unwrap().to_string(), &tls, timeout).unwrap();
    let grpc = PohServiceClient::new(channel)
        .broadcast(pb(&tx(&format!("{id}-grpc"))))
        .await
        .is_ok_and(|ack| ack.into_inner().success);

    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(
            client_config(&tls.trust, tls.identity.as_ref(), &[b"h2", b"http/1.1"]).unwrap(),
        )
        .timeout(timeout)
        .build()
        .unwrap()
        .post(format!(
            "https://127.0.0.1:{}/v1/tx",
            node.node.http_addr().unwrap().port()
        ))
        .json(&common::json(&tx(&format!("{id}-http"))))
        .send()
        .await
        .is_ok_and(|r| r.status() == 201);

    let quic = QuicClient::new(&tls.trust, tls.identity.as_ref()).unwrap();
    let answer = tokio::time::timeout(
        timeout,
        quic.send(
            &node.node.quic_addr().unwrap().to_string(),
            None,
            &[pb(&tx(&format!("{id}-quic")))],
        ),
    )
    .await;
    let quic_ok = matches!(answer, Ok(Ok(acks)) if acks[0].success);
    quic.close();
    [grpc, http, quic_ok]
}

#[tokio::test]
async fn mutual_tls_admits_the_right_client_and_refuses_every_wrong_one() {
    let pki = pki();
    let node = secured(&pki).await;
    let ca = ServerTrust::Ca(pki.path("ca.crt"));

    assert_eq!(
        attempt(&node, &ca, Some(pki.identity("client-ok")), "ok").await,
        [true; 3],
        "the allowed client, CA-verified server"
    );
    assert_eq!(
        attempt(&node, &ca, None, "anonymous").await,
        [false; 3],
        "no client certificate"
    );
    assert_eq!(
        attempt(&node, &ca, Some(pki.identity("client-foreign")), "foreign").await,
        [false; 3],
        "a certificate from another CA"
    );
    assert_eq!(
        attempt(&node, &ca, Some(pki.identity("client-old")), "old").await,
        [false; 3],
        "an expired certificate"
    );
    assert_eq!(
        attempt(&node, &ca, Some(pki.identity("client-other")), "other").await,
        [false; 3],
        "an identity not on the allow-list"
    );

    // Pinning: the node's own fingerprint is trusted; any other is refused by the client.
    let node_cert = poh_node::tls::read_certs(&pki.path("node-a.crt")).unwrap();
    let right = ServerTrust::Pinned(poh_node::tls::fingerprint(&node_cert[0]));
    assert_eq!(
        attempt(&node, &right, Some(pki.identity("client-ok")), "pinned").await,
        [true; 3],
        "the pinned fingerprint matches"
    );
    let wrong = ServerTrust::Pinned("00".repeat(32));
    assert_eq!(
        attempt(&node, &wrong, Some(pki.identity("client-ok")), "mispinned").await,
        [false; 3],
        "a pinned-fingerprint mismatch"
    );
    // A server whose certificate another CA issued is refused by a CA-trusting client.
    let foreign_ca = ServerTrust::Ca(pki.path("other-ca.crt"));
    assert_eq!(
        attempt(
            &node,
            &foreign_ca,
            Some(pki.identity("client-ok")),
            "wrong-ca"
        )
        .await,
        [false; 3],
        "the server is not from the CA the client trusts"
    );
    node.stop().await;
}

#[tokio::test]
async fn a_pkcs12_bundle_serves_tls_with_its_password_from_a_file() {
    let pki = pki();
    let cert = std::fs::read_to_string(pki.path("node-a.crt")).unwrap();
    let key = std::fs::read_to_string(pki.path("node-a.key")).unwrap();
    let bundle = poh_node::tls::certs::pkcs12(&cert, &key, "s3cret").unwrap();
    std::fs::write(pki.path("node-a.p12"), bundle).unwrap();
    std::fs::write(pki.path("password"), "s3cret\n").unwrap();
    let (p12, password, ca) = (
        pki.path("node-a.p12"),
        pki.path("password"),
        pki.path("ca.crt"),
    );
    let node = common::start_with(move |c| {
        c.tls = Some(TlsConfig {
            pkcs12: Some(p12),
            pkcs12_password_file: Some(password),
            ca: Some(ca),
            ..TlsConfig::default()
        });
    })
    .await;
    let ca = ServerTrust::Ca(pki.path("ca.crt"));
    assert_eq!(
        attempt(&node, &ca, Some(pki.identity("client-other")), "p12").await,
        [true; 3],
        "no allow-list: any client the CA issued"
    );
    node.stop().await;

    // A wrong password is a clear start-up error.
    std::fs::write(pki.path("password"), "wrong").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.tls = Some(TlsConfig {
        pkcs12: Some(pki.path("node-a.p12")),
        pkcs12_password_file: Some(pki.path("password")),
        ..TlsConfig::default()
    });
    let err = poh_node::Node::spawn(config)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("PKCS#12") && err.contains("password"), "{err}");
}

/// Certificate pins in the peers file: the broadcaster trusts a pinned peer by its pin alone
/// (here the CA it trusts is another one, so nothing else could admit the node), presents its
/// certificate for mutual TLS, and a wrong pin is refused on gRPC, HTTPS and QUIC alike, for
/// broadcasts and for health checks.
#[tokio::test]
async fn pins_in_the_peers_file_decide_whom_the_broadcaster_trusts() {
    use poh_node::{
        PeerBook, Transport, config::PeersConfig, network::Broadcaster, network::health,
    };

    let pki = pki();
    let node = secured(&pki).await;
    let node_cert = poh_node::tls::read_certs(&pki.path("node-a.crt")).unwrap();
    // In the colon form `openssl x509 -fingerprint` prints, upper case: stored normalised.
    let right = poh_node::tls::fingerprint(&node_cert[0])
        .to_ascii_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|pair| std::str::from_utf8(pair).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    let addresses = [
        (Transport::Grpc, node.node.grpc_addr().unwrap().to_string()),
        (
            Transport::Http,
            format!(
                "https://127.0.0.1:{}",
                node.node.http_addr().unwrap().port()
            ),
        ),
        (Transport::Quic, node.node.quic_addr().unwrap().to_string()),
    ];
    let book = PeerBook::new(pki.path("peers.json"));
    let broadcaster = Broadcaster::new(
        PeersConfig {
            timeout_ms: 3000,
            attempts: 1,
            ..PeersConfig::default()
        },
        ClientTls {
            trust: ServerTrust::Ca(pki.path("other-ca.crt")),
            identity: Some(pki.identity("client-ok")),
            token: None,
        },
        None,
    )
    .await
    .unwrap();

    let outcomes = async |id: &str| {
        let peers = book.load().unwrap();
        let report = broadcaster.broadcast(&peers, &tx(id)).await;
        let mut checks = Vec::new();
        for (protocol, address) in peers.iter() {
            checks.push(
                health::check(
                    broadcaster.clients(),
                    protocol,
                    address,
                    peers.pin(address),
                    std::time::Duration::from_millis(3000),
                )
                .await
                .is_ok(),
            );
        }
        let sent: Vec<bool> = report.peers.iter().map(|r| r.outcome.is_ok()).collect();
        (sent, checks)
    };

    // Without pins, the server's CA is not the trusted one: refused.
    for (protocol, address) in &addresses {
        book.add(*protocol, address, None).unwrap();
    }
    assert_eq!(outcomes("unpinned").await, (vec![false; 3], vec![false; 3]));

    for (protocol, address) in &addresses {
        assert!(book.add(*protocol, address, Some(&right)).unwrap());
    }
    let stored = std::fs::read_to_string(book.path()).unwrap();
    let fingerprint = poh_node::tls::fingerprint(&node_cert[0]);
    assert_eq!(stored.matches(&fingerprint).count(), 3, "{stored}");
    assert_eq!(outcomes("pinned").await, (vec![true; 3], vec![true; 3]));

    let wrong = "ab".repeat(32);
    for (protocol, address) in &addresses {
        assert!(book.add(*protocol, address, Some(&wrong)).unwrap());
    }
    assert_eq!(
        outcomes("mispinned").await,
        (vec![false; 3], vec![false; 3])
    );

    broadcaster.close();
    node.stop().await;
}

/// SPEC §8: with client authentication on, no transport takes an anonymous write. UDP and
/// QUIC carry no token, so a node refuses to start with them open; UDP runs only when the
/// operator allows unauthenticated datagrams by name, and QUIC only with mutual TLS.
#[tokio::test]
async fn with_authentication_on_no_transport_takes_an_anonymous_write() {
    let pki = pki();
    std::fs::write(pki.path("tokens"), "t0k3n\n").unwrap();
    let auth = || {
        Some(poh_node::config::AuthConfig {
            token_file: Some(pki.path("tokens")),
            ..Default::default()
        })
    };
    let refused = |config: poh_node::NodeConfig| async move {
        match poh_node::Node::spawn(config).await {
            Ok(_) => panic!("a node with an open write path started"),
            Err(e) => e.to_string(),
        }
    };

    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.auth = auth();
    let e = refused(config.clone()).await;
    assert!(
        e.contains("UDP") && e.contains("--udp-allow-unauthenticated"),
        "{e}"
    );
    config.udp = None;
    let e = refused(config.clone()).await;
    assert!(e.contains("QUIC") && e.contains("--tls-ca"), "{e}");

    // Allowed by name: a datagram is stored without credentials.
    let open_udp = common::start_with(|c| {
        c.auth = auth();
        c.quic = None;
        if let Some(udp) = c.udp.as_mut() {
            udp.allow_unauthenticated = true;
        }
    })
    .await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let datagram = serde_json::to_vec(&common::json(&tx("by-udp"))).unwrap();
    socket
        .send_to(&datagram, open_udp.node.udp_addr().unwrap())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let c = reqwest::Client::new();
    loop {
        let status = c
            .get(open_udp.http("/v1/tx/by-udp"))
            .bearer_auth("t0k3n")
            .send()
            .await
            .unwrap()
            .status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 404);
        assert!(tokio::time::Instant::now() < deadline, "never stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    open_udp.stop().await;

    // QUIC with a client CA: its certificate is the credential. Without one, nothing is
    // stored; with one, QUIC stores (gRPC and HTTP still want the token too).
    let (cert, key, ca) = (
        pki.path("node-a.crt"),
        pki.path("node-a.key"),
        pki.path("ca.crt"),
    );
    let node = common::start_with(move |c| {
        c.auth = auth();
        c.udp = None;
        c.tls = Some(TlsConfig {
            cert: Some(cert),
            key: Some(key),
            ca: Some(ca),
            ..TlsConfig::default()
        });
    })
    .await;
    let trust = ServerTrust::Ca(pki.path("ca.crt"));
    assert_eq!(attempt(&node, &trust, None, "anonymous").await, [false; 3]);
    let with_certificate = attempt(&node, &trust, Some(pki.identity("client-ok")), "cert").await;
    assert_eq!(with_certificate, [false, false, true]);
    node.stop().await;
}

/// SPEC §8: a client verifies every TLS server it talks to: against a CA, a pin, or the
/// system's trust roots; it takes any certificate only when told to (`Insecure`).
#[tokio::test]
async fn clients_verify_every_server_unless_told_not_to() {
    let pki = pki();
    let node = secured(&pki).await;
    let me = || Some(pki.identity("client-ok"));
    // The node's certificate comes from a CA the system does not know.
    let system = attempt(&node, &ServerTrust::default(), me(), "system").await;
    assert_eq!(
        system, [false; 3],
        "the default trusts the system's roots only"
    );
    let node_cert = poh_node::tls::read_certs(&pki.path("node-a.crt")).unwrap();
    let pin = ServerTrust::Pinned(poh_node::tls::fingerprint(&node_cert[0]));
    assert_eq!(attempt(&node, &pin, me(), "pinned").await, [true; 3]);
    assert_eq!(
        attempt(&node, &ServerTrust::Insecure, me(), "insecure").await,
        [true; 3],
        "asked for explicitly"
    );
    node.stop().await;
}

/// A node with a certificate reports when it lapses (`poh_tls_cert_expiry_seconds`, its
/// `notAfter` in Unix seconds, for an alert against `time()`); a node without one has no such
/// series for an alert to misread.
#[tokio::test]
async fn the_certificate_expiry_date_is_a_metric_of_tls_nodes_only() {
    let pki = pki();
    let node = secured(&pki).await;
    let cert = &poh_node::tls::read_certs(&pki.path("node-a.crt")).unwrap()[0];
    let end = poh_node::tls::expiry::not_after(cert).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let value = loop {
        let text = node.node.metrics().render();
        if let Some(v) = text
            .lines()
            .find_map(|l| l.strip_prefix("poh_tls_cert_expiry_seconds "))
        {
            break v.parse::<f64>().unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "no expiry series");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(value, end as f64);
    node.stop().await;

    let plain = common::start().await;
    assert!(
        !plain
            .node
            .metrics()
            .render()
            .contains("poh_tls_cert_expiry_seconds"),
        "a node without TLS has no expiry series"
    );
    plain.stop().await;
}

/// The token the clients below hold. HTTP/2 Huffman-codes header values, so a plaintext
/// capture need not show it literally: what shows it never crossed is that every captured
/// byte belongs to a TLS record.
const WIRE_TOKEN: &str = "wire-token-never-in-the-clear";

/// Everything the first client to connect to `listener` sends before it gives up on an
/// answer that never comes (at most two seconds of it).
async fn capture(listener: tokio::net::TcpListener) -> Vec<u8> {
    use tokio::io::AsyncReadExt as _;
    let (mut stream, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("nobody connected")
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Ok(n @ 1..) = stream.read(&mut buf).await {
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    seen
}

/// `seen` must open with a TLS handshake record (a ClientHello) and hold nothing but TLS
/// records: no HTTP/2 preface, no header, no message, no token.
fn assert_tls_only(seen: &[u8]) {
    let mut rest = seen;
    let mut records = 0;
    while let [kind @ 20..=23, 3, _, high, low, body @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*high, *low]));
        if body.len() < len || (records == 0 && *kind != 22) {
            break;
        }
        rest = &body[len..];
        records += 1;
    }
    let token = seen
        .windows(WIRE_TOKEN.len())
        .any(|w| w == WIRE_TOKEN.as_bytes());
    assert!(
        records > 0 && rest.is_empty() && !token,
        "an https:// address must be dialled with TLS: got {} bytes starting {:?}, of which \
         {} after {records} TLS records",
        seen.len(),
        String::from_utf8_lossy(&seen[..seen.len().min(24)]),
        rest.len(),
    );
}

/// A parent written `https://` is dialled with TLS, verified against the system's roots, though
/// the node has no `[tls]` settings: the stand-in parent sees a ClientHello, never the HTTP/2
/// preface, the peers' token or the `Hello` (SPEC §8).
#[tokio::test]
async fn an_https_parent_is_dialled_with_tls_without_any_tls_setting() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tokens = tempfile::tempdir().unwrap();
    let token_file = tokens.path().join("peers.token");
    std::fs::write(&token_file, format!("{WIRE_TOKEN}\n")).unwrap();
    let node = common::start_with(|c| {
        c.federation.parent = Some(format!("https://127.0.0.1:{port}"));
        c.peers.token_file = Some(token_file);
    })
    .await;
    assert_tls_only(&capture(listener).await);
    node.stop().await;
}

/// The same for a client application's endpoint (the CLI's and the Python package's
/// `--endpoint`), with a token and no TLS flags.
#[tokio::test]
async fn an_https_endpoint_is_dialled_with_tls_without_any_tls_setting() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tls = ClientTls {
        token: Some(poh_node::network::client::Bearer::new(WIRE_TOKEN.into()).unwrap()),
        ..ClientTls::default()
    };
    let endpoints = poh_node::network::client::Endpoints::new(
        &[format!("https://127.0.0.1:{port}")],
        Duration::from_secs(5),
        &tls,
    )
    .unwrap();
    let request = || endpoints.request(pb(&tx("over-tls")));
    let call = endpoints
        .call(|channel| async move { PohServiceClient::new(channel).broadcast(request()).await });
    let (seen, answer) = tokio::join!(capture(listener), call);
    assert!(answer.is_err(), "a plain listener cannot have answered");
    assert_tls_only(&seen);
}
