//! The real `poh serve` process: nothing acknowledged is lost to `kill -9`, a SIGTERM under
//! load exits 0 with everything flushed, and bad start-ups are one clear line.

use std::{
    collections::HashMap,
    path::Path,
    process::Command,
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use poh_core::{Entry, Hash, genesis, verify::verify_serial};
use serde_json::{Value, json};

use crate::common::{
    HASHES_PER_TICK, Http, Served, serve, serve_flags, serve_with, signal, wait_within,
};

/// `poh serve` whose files may not grow past `kib` KiB: bash sets the limit, and SIGXFSZ is
/// ignored so a write past it fails with EFBIG instead of killing. Unlike a full disk (which
/// the node waits out, see `full_disk`), an I/O failure it cannot wait out stops the node.
fn serve_on_full_disk(data_dir: &Path, kib: u64) -> Served {
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(format!("trap '' XFSZ; ulimit -f {kib}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_poh"));
    serve_with(command, data_dir, &[])
}

/// Waits until `n` transactions are acknowledged; fails after a deadline instead of hanging.
fn wait_for_acks(acked: &Mutex<HashMap<String, Value>>, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "fewer than {n} acknowledgements in 60 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub(crate) fn tx(id: &str) -> Value {
    json!({"tx_id": id, "holder_id": "h", "timestamp": 1.5, "payload_b64": B64.encode(id)})
}

/// Submits from `tasks` tasks until `stop`, recording every acknowledged (201) answer.
fn load(
    base: &str,
    tasks: usize,
    acked: Arc<Mutex<HashMap<String, Value>>>,
    runtime: &tokio::runtime::Runtime,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..tasks)
        .map(|t| {
            let (base, acked) = (base.to_string(), acked.clone());
            runtime.spawn(async move {
                let client = reqwest::Client::new();
                for i in 0.. {
                    let id = format!("load-{t}-{i}");
                    let Ok(r) = client
                        .post(format!("{base}/v1/tx"))
                        .json(&tx(&id))
                        .send()
                        .await
                    else {
                        return;
                    };
                    if r.status() != 201 {
                        return;
                    }
                    let Ok(body) = r.json::<Value>().await else {
                        return;
                    };
                    acked.lock().unwrap().insert(id, body);
                }
            })
        })
        .collect()
}

/// Posts `limit` transactions of 64 KiB one by one until one is not stored: the answers of
/// those stored, by id, and the status and body of the first refusal.
pub(crate) async fn post_until_refused(
    base: &str,
    limit: usize,
) -> (HashMap<String, Value>, (u16, Value)) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let big = B64.encode(vec![7u8; 64 << 10]);
    let mut acked = HashMap::new();
    for i in 0..limit {
        let id = format!("big-{i}");
        let mut body = tx(&id);
        body["payload_b64"] = json!(big);
        let r = client
            .post(format!("{base}/v1/tx"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let answer: Value = r.json().await.unwrap();
        if status != 201 {
            return (acked, (status, answer));
        }
        acked.insert(id, answer);
    }
    panic!("{limit} transactions of 64 KiB were all stored: the disk never filled");
}

/// Every acknowledged transaction is stored with the answer it got, and the chain verifies.
pub(crate) async fn check_restarted(base: &str, acked: &HashMap<String, Value>) {
    let client = reqwest::Client::new();
    for (id, answer) in acked {
        let r = client
            .get(format!("{base}/v1/tx/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "acknowledged {id} was lost");
        let stored: Value = r.json().await.unwrap();
        assert_eq!(stored["poh_seq"], answer["poh_seq"], "{id}");
        assert_eq!(stored["poh_hash"], answer["poh_hash"], "{id}");
    }
    let mut entries: Vec<Entry> = Vec::new();
    loop {
        let page: Value = client
            .get(format!(
                "{base}/v1/poh/entries?from={}&limit=10000",
                entries.len()
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let batch = page["entries"].as_array().unwrap();
        if batch.is_empty() {
            break;
        }
        for e in batch {
            let hex = |v: &Value| v.as_str().unwrap().parse::<Hash>().unwrap();
            entries.push(Entry {
                num_hashes: e["num_hashes"].as_u64().unwrap(),
                hash: hex(&e["hash"]),
                mixins: e["mixins"].as_array().unwrap().iter().map(hex).collect(),
            });
        }
    }
    verify_serial(&genesis("local"), &entries, HASHES_PER_TICK)
        .expect("the chain verifies from genesis");
    let mixins: usize = entries.iter().map(|e| e.mixins.len()).sum();
    assert!(mixins >= acked.len());
}

#[test]
fn nothing_acknowledged_is_lost_to_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut node = serve(dir.path());
    let acked = Arc::new(Mutex::new(HashMap::new()));
    let tasks = load(&node.base, 8, acked.clone(), &runtime);
    wait_for_acks(&acked, 300);
    node.child.kill().unwrap(); // SIGKILL, mid-stream
    node.child.wait().unwrap();
    runtime.block_on(async {
        for t in tasks {
            t.await.unwrap();
        }
    });
    let acked = acked.lock().unwrap().clone();

    let mut node = serve(dir.path());
    runtime.block_on(check_restarted(&node.base, &acked));
    signal(&node.child, "TERM");
    assert!(node.child.wait().unwrap().success());
}

#[test]
fn sigterm_under_load_exits_zero_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut node = serve(dir.path());
    let acked = Arc::new(Mutex::new(HashMap::new()));
    let tasks = load(&node.base, 8, acked.clone(), &runtime);
    wait_for_acks(&acked, 300);
    signal(&node.child, "TERM");
    let status = node.child.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    runtime.block_on(async {
        for t in tasks {
            t.await.unwrap();
        }
    });
    let acked = acked.lock().unwrap().clone();
    let mut node = serve(dir.path());
    runtime.block_on(check_restarted(&node.base, &acked));
    signal(&node.child, "INT");
    assert!(node.child.wait().unwrap().success());
}

#[test]
fn bad_start_ups_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_poh"))
            .args(args)
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let data = dir.path().to_str().unwrap();
    let err = run(&[
        "serve",
        "--data-dir",
        data,
        "--grpc-port",
        "0",
        "--http-port",
        &port,
        "--udp-port",
        "0",
        "--quic-port",
        "0",
    ]);
    assert!(
        err.starts_with("error: cannot listen for HTTP") && err.lines().count() == 1,
        "{err}"
    );

    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let err = run(&[
        "serve",
        "--data-dir",
        file.to_str().unwrap(),
        "--grpc-port",
        "0",
        "--http-port",
        "0",
        "--udp-port",
        "0",
        "--quic-port",
        "0",
    ]);
    assert!(
        err.contains("data directory") && err.lines().count() == 1,
        "{err}"
    );

    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "chian_id = \"typo\"\n").unwrap();
    let err = run(&["serve", "--config", config.to_str().unwrap()]);
    assert!(
        err.contains("chian_id") && err.lines().count() == 1,
        "{err}"
    );

    // With authentication on, a write path without credentials is refused by name: UDP
    // unless allowed explicitly, QUIC without a client CA (mutual TLS).
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "t0k3n\n").unwrap();
    let tokens = tokens.to_str().unwrap();
    let authed = |more: &[&str]| {
        let mut args = vec!["serve", "--data-dir", data, "--auth-token-file", tokens];
        args.extend([
            "--grpc-port",
            "0",
            "--http-port",
            "0",
            "--udp-port",
            "0",
            "--quic-port",
            "0",
        ]);
        args.extend(more);
        run(&args)
    };
    let err = authed(&[]);
    assert!(
        err.contains("UDP")
            && err.contains("--udp-allow-unauthenticated")
            && err.lines().count() == 1,
        "{err}"
    );
    let err = authed(&["--udp-allow-unauthenticated"]);
    assert!(
        err.contains("QUIC") && err.contains("--tls-ca") && err.lines().count() == 1,
        "{err}"
    );
    let err = authed(&["--no-udp"]);
    assert!(err.contains("QUIC") && err.lines().count() == 1, "{err}");

    let err = run(&["serve", "--data-dir", data, "--hashes-per-tick", "1"]);
    assert!(
        err.contains("hashes_per_tick must be between 2") && err.lines().count() == 1,
        "{err}"
    );
    let err = run(&["serve", "--data-dir", data, "--ttl", "0s"]);
    assert!(
        err.contains("ttl.after must be longer than 0s") && err.lines().count() == 1,
        "{err}"
    );
    let err = run(&["serve", "--data-dir", data, "--ttl", "a week"]);
    assert!(
        err.contains("--ttl") && err.contains("7d"),
        "a bad duration names the flag and the form: {err}"
    );
}

/// Every PoH entry a node serves is durable: after a crash the chain resumes from its last
/// durable entry, so an entry served before the crash is never generated again differently
/// (here, a record where a tick was served).
#[test]
fn entries_served_before_a_crash_are_the_entries_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let entries = |base: &str| {
        let url = format!("{base}/v1/poh/entries?from=0&limit=10000");
        runtime.block_on(async {
            let page: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
            page["entries"].as_array().unwrap().clone()
        })
    };
    for round in 0..3 {
        let mut node = serve(dir.path());
        // Idle ticks are committed every 100 ms, durably at least once a second: read while
        // some of them are not durable yet, then crash.
        std::thread::sleep(Duration::from_millis(1500));
        let served = entries(&node.base);
        node.child.kill().unwrap();
        node.child.wait().unwrap();

        let mut node = serve(dir.path());
        // A record right away lands where the crashed node may have served a tick.
        runtime.block_on(async {
            let r = reqwest::Client::new()
                .post(format!("{}/v1/tx", node.base))
                .json(&tx(&format!("after-crash-{round}")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        });
        let now = entries(&node.base);
        assert!(now.len() >= served.len(), "round {round}: the chain shrank");
        assert_eq!(
            now[..served.len()],
            served[..],
            "round {round}: a served entry changed"
        );
        signal(&node.child, "TERM");
        assert!(node.child.wait().unwrap().success());
    }
}

#[test]
fn a_file_it_may_not_grow_answers_internal_stops_the_node_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut node = serve_on_full_disk(dir.path(), 4096);
    let (acked, failure) = runtime.block_on(post_until_refused(&node.base, 1000));
    assert_eq!(failure.0, 500, "{failure:?}");
    assert_eq!(
        failure.1,
        json!({"error": "internal", "message": "internal error; retry later"}),
        "no internal detail"
    );
    assert!(!acked.is_empty());
    // The node does not stay half-alive: it stops, non-zero.
    let status = node.child.wait().unwrap();
    assert!(!status.success());

    let mut node = serve(dir.path());
    runtime.block_on(check_restarted(&node.base, &acked));
    signal(&node.child, "TERM");
    assert!(node.child.wait().unwrap().success());
}

#[test]
fn a_file_it_may_not_grow_is_ack_code_internal_over_grpc() {
    use poh_proto::v1::{AckCode, Tx, poh_service_client::PohServiceClient};
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut node = serve_on_full_disk(dir.path(), 4096);
    let grpc = node.grpc.clone();
    let ack = runtime.block_on(async move {
        let mut client = PohServiceClient::connect(format!("http://{grpc}"))
            .await
            .unwrap();
        for i in 0..1000 {
            let tx = Tx {
                tx_id: format!("big-{i}"),
                payload: vec![9; 64 << 10],
                ..Tx::default()
            };
            let ack = client.broadcast(tx).await.unwrap().into_inner();
            if !ack.success {
                return ack;
            }
        }
        panic!("the file size limit was never reached");
    });
    assert_eq!(ack.code(), AckCode::Internal);
    assert_eq!(ack.message, "internal error; retry later");
    assert!(ack.poh_hash.is_empty());
    assert!(!node.child.wait().unwrap().success());
}

/// Certificate rotation with what `poh certs` writes: issuing `node-a` again (the same CA, a
/// new key) over the files a node serves is picked up, and new connections are shown the new
/// certificate; `SIGHUP` reloads too (counted in `poh_reload_total` even with nothing
/// changed).
#[test]
fn a_node_serves_the_certificate_poh_certs_issued_again_and_sighup_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let pki_str = pki.to_str().unwrap();
    let issue = || {
        let out = crate::common::poh(&["certs", "--out", pki_str, "--node", "node-a"]);
        assert!(out.status.success(), "{out:?}");
        let fp = crate::common::poh(&["fingerprint", &format!("{pki_str}/node-a.crt")]);
        crate::common::text(&fp.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    let first = issue();
    let node = crate::common::serve_flags(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            &format!("{pki_str}/node-a.crt"),
            "--tls-key",
            &format!("{pki_str}/node-a.key"),
        ],
    );
    let https = node.base.replacen("http://", "https://", 1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let trust = poh_node::tls::ServerTrust::Ca(pki.join("ca.crt"));
    // A new client each time: a new connection, shown the certificate served now.
    let get = |path: &str| -> (String, String) {
        runtime.block_on(async {
            let client = reqwest::Client::builder()
                .tls_backend_preconfigured(
                    poh_node::tls::client_config(&trust, None, &[b"h2", b"http/1.1"]).unwrap(),
                )
                .tls_info(true)
                .build()
                .unwrap();
            let r = client.get(format!("{https}{path}")).send().await.unwrap();
            let info = r.extensions().get::<reqwest::tls::TlsInfo>().unwrap();
            let der = info.peer_certificate().unwrap().to_vec();
            let served = poh_node::tls::fingerprint(&der.into());
            (served, r.text().await.unwrap())
        })
    };
    let reloads = |text: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(r#"poh_reload_total{result="success"} "#))
            .unwrap()
            .parse()
            .unwrap()
    };
    let (served, metrics) = get("/metrics");
    assert_eq!(served, first);
    assert_eq!(reloads(&metrics), 0.0);

    signal(&node.child, "HUP");
    crate::common::wait_for("the SIGHUP reload", || {
        (reloads(&get("/metrics").1) == 1.0).then_some(())
    });

    let second = issue();
    assert_ne!(first, second);
    crate::common::wait_for("the new certificate served", || {
        (get("/healthz").0 == second).then_some(())
    });
    crate::common::stop(node);
}

/// `SIGHUP` reads the config file again: its `[limits]` apply (a lowered rate refuses a burst
/// it took before), a setting that cannot change live (the chain id) is named in one line and
/// keeps its value, and a file that does not parse changes nothing and is logged.
#[test]
fn sighup_applies_the_changed_config_file_and_names_what_waits_for_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("poh.toml");
    std::fs::write(&config, "chain_id = \"municipality/a\"\n").unwrap();
    let node = crate::common::serve_flags(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let http = crate::common::Http::new();
    let url = format!("{}/v1/poh", node.base);
    let refused = || (0..20).filter(|_| http.get(&url).0 == 503).count();
    assert_eq!(refused(), 0);

    std::fs::write(
        &config,
        "chain_id = \"municipality/b\"\n[limits]\nrequests_per_second = 2\nburst = 2\n",
    )
    .unwrap();
    signal(&node.child, "HUP");
    crate::common::wait_for("the reload", || {
        node.logged("limits.requests_per_second 200000 → 2")
            .then_some(())
    });
    assert!(
        node.logged("setting=chain_id running=\"municipality/a\" configured=\"municipality/b\""),
        "{:#?}",
        node.log.lock().unwrap()
    );
    assert!(refused() >= 15, "two requests a second");

    std::fs::write(&config, "chain_id = [\n").unwrap();
    signal(&node.child, "HUP");
    crate::common::wait_for("the failed reload", || {
        node.logged("reload failed").then_some(())
    });
    assert!(node.logged("poh.toml"), "the file is named");
    assert!(refused() >= 15, "the limits applied before still hold");
    crate::common::stop(node);
}

/// A generator far faster than the committer drains (2 hashes a tick, 100,000 ticks a
/// second) fills its entry sink at once. A batch's record used to wait for that sink while
/// only the batch's committer could empty it: every write hung, and so did SIGTERM. Now the
/// record is answered while the sink is full and the clock waits for the committer.
#[test]
fn a_tick_rate_the_store_cannot_keep_up_with_hangs_neither_writes_nor_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let node = serve_flags(
        &dir.path().join("data"),
        &["--hashes-per-tick", "2", "--ticks-per-second", "100000"],
    );
    let http = Http::new();
    for i in 0..50 {
        let tx = json!({"tx_id": format!("fast-{i}"), "holder_id": "h",
                                    "timestamp": 1.0, "payload_b64": "AAAA"});
        let status = http.post(&format!("{}/v1/tx", node.base), &tx);
        assert_eq!(status, Some(201), "write {i}");
    }
    let mut node = node;
    signal(&node.child, "TERM");
    let exited = wait_within(
        Duration::from_secs(20),
        "poh serve to exit on SIGTERM",
        || node.child.try_wait().unwrap(),
    );
    assert!(exited.success(), "{exited:?}");
}
