//! The client commands against real `poh serve` processes: broadcast over all four protocols
//! with a dead peer, submit with fail-over, status, check-peers.

use std::process::Output;

use serde_json::Value;

use crate::serve::{Served, serve, signal};

fn poh(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_poh"))
        .args(args)
        .env_remove("POH_PEERS_FILE")
        .output()
        .unwrap()
}

fn http_status(url: &str) -> u16 {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async { reqwest::get(url).await.unwrap().status().as_u16() })
}

fn stop(mut node: Served) {
    signal(&node.child, "TERM");
    assert!(node.child.wait().unwrap().success());
}

#[test]
fn broadcast_submit_status_and_check_peers_against_two_nodes_and_a_dead_one() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes: Vec<Served> = dirs.iter().map(|d| serve(d.path())).collect();
    let book = tempfile::tempdir().unwrap();
    let file = book.path().join("peers.json");
    let file = file.to_str().unwrap();
    let dead = "127.0.0.1:1";
    for n in &nodes {
        for (protocol, addr) in [
            ("grpc", n.grpc.as_str()),
            ("http", n.base.as_str()),
            ("udp", n.udp.as_str()),
            ("quic", n.quic.as_str()),
        ] {
            let out = poh(&["add-peer", protocol, addr, "--peers-file", file]);
            assert!(out.status.success(), "{out:?}");
        }
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
