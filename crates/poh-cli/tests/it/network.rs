//! The client commands against real `poh serve` processes: broadcast over all four protocols
//! with a dead peer, submit with fail-over, status, check-peers.

use serde_json::Value;

use crate::common::{Served, poh, quic_pin, serve, serve_flags, stop};

fn http_status(url: &str) -> u16 {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async { reqwest::get(url).await.unwrap().status().as_u16() })
}

#[test]
fn broadcast_submit_status_and_check_peers_against_two_nodes_and_a_dead_one() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes: Vec<Served> = dirs.iter().map(|d| serve(d.path())).collect();
    let book = tempfile::tempdir().unwrap();
    let file = book.path().join("peers.json");
    let file = file.to_str().unwrap();
    let dead = "127.0.0.1:1";
    for (n, dir) in nodes.iter().zip(&dirs) {
        for (protocol, addr) in [
            ("grpc", n.grpc.as_str()),
            ("http", n.base.as_str()),
            ("udp", n.udp.as_str()),
        ] {
            let out = poh(&["add-peer", protocol, addr, "--peers-file", file]);
            assert!(out.status.success(), "{out:?}");
        }
        // The QUIC certificate is the development one the node made: pinned, as an operator
        // does it.
        let pin = quic_pin(dir.path());
        let out = poh(&[
            "add-peer",
            "quic",
            &n.quic,
            "--pin",
            &pin,
            "--peers-file",
            file,
        ]);
        assert!(out.status.success(), "{out:?}");
    }
    for (protocol, addr) in [
        ("grpc", dead),
        ("http", "http://127.0.0.1:1"),
        ("quic", dead),
    ] {
        assert!(
            poh(&["add-peer", protocol, addr, "--peers-file", file])
                .status
                .success()
        );
    }

    // Unpinned, the development certificate is not trusted (the system's roots do not know
    // it); --insecure takes it, and says so on stderr.
    let unpinned = book.path().join("unpinned.json");
    let unpinned = unpinned.to_str().unwrap();
    assert!(
        poh(&["add-peer", "quic", &nodes[0].quic, "--peers-file", unpinned])
            .status
            .success()
    );
    let send = |extra: &[&str]| {
        let mut args = vec![
            "broadcast",
            "--tx-id",
            "cli-0",
            "--payload",
            "hi",
            "--peers-file",
            unpinned,
        ];
        args.extend(extra);
        poh(&args)
    };
    let out = send(&[]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FAILED") && text.contains("certificate"),
        "{text}"
    );
    let out = send(&["--insecure"]);
    assert!(out.status.success(), "{out:?}");
    let warning = String::from_utf8_lossy(&out.stderr);
    assert!(
        warning.contains("insecure") && warning.contains("WARN"),
        "{warning}"
    );

    let started = std::time::Instant::now();
    let out = poh(&[
        "broadcast",
        "--tx-id",
        "cli-1",
        "--holder-id",
        "h",
        "--payload",
        "hello",
        "--peers-file",
        file,
        "--timeout-ms",
        "800",
        "--json",
    ]);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["summary"],
        serde_json::json!({"grpc_ok": true, "http_ok": true, "udp_ok": true, "quic_ok": true})
    );
    let peers = report["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 11);
    let failed: Vec<&Value> = peers.iter().filter(|p| p["ok"] == false).collect();
    assert_eq!(failed.len(), 3, "{failed:?}");
    assert!(
        failed
            .iter()
            .all(|p| p["peer"].as_str().unwrap().contains("127.0.0.1:1"))
    );
    for n in &nodes {
        assert_eq!(http_status(&format!("{}/v1/tx/cli-1", n.base)), 200);
    }

    // Human output names each peer and the summary.
    let out = poh(&[
        "broadcast",
        "--tx-id",
        "cli-1",
        "--payload",
        "hello",
        "--holder-id",
        "h",
        "--timestamp",
        "1",
        "--peers-file",
        file,
        "--timeout-ms",
        "500",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FAILED") && text.contains("grpc_ok="),
        "{text}"
    );

    // submit: the dead endpoint first, then fail-over to a live one.
    let out = poh(&[
        "submit",
        "--endpoint",
        dead,
        "--endpoint",
        &nodes[0].grpc,
        "--tx-id",
        "cli-2",
        "--payload",
        "via dag",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["status"], "accepted");
    assert_eq!(answer["endpoint"], nodes[0].grpc.as_str());

    // Several transactions from one file go round robin over the endpoints.
    let many = book.path().join("many.json");
    let items: Vec<Value> = (0..4)
        .map(|i| serde_json::json!({"tx_id": format!("rr-{i}"), "holder_id": "h", "timestamp": 1.0, "payload_b64": "aGk="}))
        .collect();
    std::fs::write(&many, serde_json::to_vec(&items).unwrap()).unwrap();
    let out = poh(&[
        "submit",
        "--endpoint",
        &nodes[0].grpc,
        "--endpoint",
        &nodes[1].grpc,
        "--tx-file",
        many.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let used: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["endpoint"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let (a, b) = (nodes[0].grpc.clone(), nodes[1].grpc.clone());
    assert_eq!(used, [a.clone(), b.clone(), a, b]);

    let out = poh(&["status", "cli-2", "--endpoint", &nodes[0].grpc, "--json"]);
    assert!(out.status.success());
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["status"], "ORDERED");
    let out = poh(&["status", "never-sent", "--endpoint", &nodes[0].grpc]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("UNKNOWN"));

    let out = poh(&[
        "check-peers",
        "--peers-file",
        file,
        "--timeout-ms",
        "500",
        "--json",
    ]);
    assert!(!out.status.success(), "three peers are dead");
    let check: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(check["unreachable"], 3);

    // No peer answers: non-zero.
    let lonely = book.path().join("dead.json");
    let lonely = lonely.to_str().unwrap();
    assert!(
        poh(&["add-peer", "grpc", dead, "--peers-file", lonely])
            .status
            .success()
    );
    let out = poh(&[
        "broadcast",
        "--tx-id",
        "cli-3",
        "--payload",
        "x",
        "--peers-file",
        lonely,
        "--timeout-ms",
        "300",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no peer acknowledged"));

    for n in nodes {
        stop(n);
    }
}

/// Mutual TLS end to end with what `poh certs` writes: a node serving gRPC, HTTPS and QUIC
/// with its certificate and `--tls-allow ops`, and `poh broadcast` as the operator. The right
/// certificate gets through on all three; none, another CA's, and a wrong pin in the peers
/// file are refused on all three; the right pin is trusted even with the wrong CA.
#[test]
fn broadcast_over_mutual_tls_with_poh_certs_output_and_pins() {
    let dir = tempfile::tempdir().unwrap();
    let path = |p: &str| dir.path().join(p).to_str().unwrap().to_string();
    for (out, names) in [("pki", &["node-a", "ops"][..]), ("other", &["ops"][..])] {
        let mut args = vec!["certs".to_string(), "--out".into(), path(out)];
        for n in names {
            args.extend(["--node".to_string(), n.to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert!(poh(&args).status.success());
    }
    let data = dir.path().join("data");
    let node = serve_flags(
        &data,
        &[
            "--tls-cert",
            &path("pki/node-a.crt"),
            "--tls-key",
            &path("pki/node-a.key"),
            "--tls-ca",
            &path("pki/ca.crt"),
            "--tls-allow",
            "ops",
        ],
    );
    let file = path("peers.json");
    let https = node.base.replacen("http://", "https://", 1);
    let listed = [
        ("grpc", node.grpc.as_str()),
        ("http", https.as_str()),
        ("quic", node.quic.as_str()),
    ];
    let add = |pin: Option<&str>| {
        for (protocol, addr) in listed {
            let mut args = vec!["add-peer", protocol, addr, "--peers-file", &file];
            args.extend(pin.iter().flat_map(|p| ["--pin", *p]));
            let out = poh(&args);
            assert!(out.status.success(), "{out:?}");
        }
    };
    add(None);
    // One broadcast; returns how many of the three peers acknowledged.
    let broadcast = |id: &str, tls: &[&str]| -> usize {
        let mut args = vec![
            "broadcast",
            "--tx-id",
            id,
            "--payload",
            "secured",
            "--peers-file",
            &file,
            "--timeout-ms",
            "3000",
            "--json",
        ];
        args.extend_from_slice(tls);
        let out = poh(&args);
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
        let peers = report["peers"].as_array().unwrap();
        assert_eq!(peers.len(), 3, "{report}");
        let ok = peers.iter().filter(|p| p["ok"] == true).count();
        assert_eq!(out.status.success(), ok > 0, "{report}");
        ok
    };
    let (ca, other_ca) = (path("pki/ca.crt"), path("other/ca.crt"));
    let (ops_crt, ops_key) = (path("pki/ops.crt"), path("pki/ops.key"));
    let (foreign_crt, foreign_key) = (path("other/ops.crt"), path("other/ops.key"));
    let ops = [
        "--tls-ca",
        &ca,
        "--tls-cert",
        &ops_crt,
        "--tls-key",
        &ops_key,
    ];

    assert_eq!(broadcast("mtls-ok", &ops), 3, "the allowed operator");
    assert_eq!(
        broadcast("mtls-anon", &["--tls-ca", &ca]),
        0,
        "no certificate"
    );
    let foreign = [
        "--tls-ca",
        &ca,
        "--tls-cert",
        &foreign_crt,
        "--tls-key",
        &foreign_key,
    ];
    assert_eq!(
        broadcast("mtls-foreign", &foreign),
        0,
        "another CA's certificate"
    );

    let fingerprint = |cert: &str| {
        let out = poh(&["fingerprint", cert]);
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    add(Some(&fingerprint(&ops_crt)));
    assert_eq!(
        broadcast("mtls-mispinned", &ops),
        0,
        "a wrong pin in the peers file"
    );
    add(Some(&fingerprint(&path("pki/node-a.crt"))));
    let trusting_another_ca = [
        "--tls-ca",
        &other_ca,
        "--tls-cert",
        &ops_crt,
        "--tls-key",
        &ops_key,
    ];
    assert_eq!(
        broadcast("mtls-pinned", &trusting_another_ca),
        3,
        "the pin, not the CA, decides"
    );
    assert_eq!(
        http_status_tls(&https, &ca, &ops_crt, &ops_key, "/v1/tx/mtls-pinned"),
        200
    );
    stop(node);
}

/// An HTTPS GET with a client certificate, through the node crate's own TLS setup.
fn http_status_tls(base: &str, ca: &str, cert: &str, key: &str, path: &str) -> u16 {
    use poh_node::tls::{Identity, NodeCert, ServerTrust, client_config};
    let identity = NodeCert::new(Identity::from_pem(cert.as_ref(), key.as_ref()).unwrap()).unwrap();
    let config =
        client_config(&ServerTrust::Ca(ca.into()), Some(&identity), &[b"http/1.1"]).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            reqwest::Client::builder()
                .tls_backend_preconfigured(config)
                .build()
                .unwrap()
                .get(format!("{base}{path}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
}

/// `poh submit --endpoint https://…` speaks TLS with no TLS flag (trusting the system's roots):
/// a plain listener standing in for the node sees a ClientHello, never the HTTP/2 preface and
/// the token, and the command fails instead of talking in the clear.
#[test]
fn submit_to_an_https_endpoint_speaks_tls_without_any_tls_flag() {
    use std::io::Read as _;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let node = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let mut first = [0u8; 16];
        let n = stream.read(&mut first).unwrap_or(0);
        first[..n].to_vec()
    });
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "cli-token\n").unwrap();
    let out = poh(&[
        "submit",
        "--endpoint",
        &format!("https://{addr}"),
        "--tx-id",
        "over-tls",
        "--payload",
        "hi",
        "--token-file",
        token.to_str().unwrap(),
        "--timeout-ms",
        "3000",
    ]);
    // Unblocks the listener when poh never connected, so the test fails instead of hanging.
    let _ = std::net::TcpStream::connect(addr);
    let first = node.join().unwrap();
    assert!(
        first.starts_with(&[0x16, 0x03]),
        "expected a TLS ClientHello, got {:?}; poh said {}",
        String::from_utf8_lossy(&first),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{out:?}");
}
