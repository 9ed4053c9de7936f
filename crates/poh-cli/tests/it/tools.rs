//! The standalone commands: help, keygen, verify and generate-log, bench, certs.

use crate::common::{bench_json, generate, poh, text};

#[test]
fn help_lists_only_what_exists() {
    let out = poh(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for cmd in [
        "serve",
        "serve-grpc",
        "serve-http",
        "keygen",
        "verify",
        "generate-log",
        "bench",
        "export",
        "prove",
        "headers",
    ] {
        assert!(help.contains(cmd), "{cmd} missing from:\n{help}");
    }
}

#[test]
fn keygen_writes_a_private_seed_and_a_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("node.key");
    let k = key.to_str().unwrap();
    let out = poh(&["keygen", "--out", k]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let seed = std::fs::read_to_string(&key).unwrap();
    assert_eq!(seed.trim().len(), 64, "a 32-byte seed in hex");
    let public = std::fs::read_to_string(dir.path().join("node.key.pub")).unwrap();
    assert_eq!(hex::decode(public.trim()).unwrap().len(), 2592);
    // The seed expands to exactly that public key.
    let signing = poh_core::SigningKey::from_key_file(seed.as_bytes()).unwrap();
    assert_eq!(hex::encode(signing.public_key()), public.trim());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // An existing key is never overwritten by accident.
    let again = poh(&["keygen", "--out", k]);
    assert!(!again.status.success());
    let err = text(&again.stderr);
    assert!(err.contains("--force") && err.lines().count() == 1, "{err}");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), seed);
    assert!(poh(&["keygen", "--out", k, "--force"]).status.success());
    assert_ne!(std::fs::read_to_string(&key).unwrap(), seed);
}

#[test]
fn verify_accepts_a_good_log_and_names_the_first_bad_entry() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("chain.jsonl");
    generate(&log, "3000");
    for extra in [&[][..], &["--serial"][..], &["--threads", "1"][..]] {
        let mut args = vec!["verify", log.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = poh(&args);
        assert!(out.status.success(), "{extra:?}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).starts_with("ok: 3000 entries"),
            "{}",
            text(&out.stdout)
        );
    }

    // Corrupt entries 2500 and 2900 (line = index + 2): 2500 is named, on one line.
    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    for (index, change) in [(2500, "hash"), (1234, "mixins"), (17, "num_hashes")] {
        let mut bad = lines.clone();
        let mut entry: serde_json::Value = serde_json::from_str(&bad[index + 1]).unwrap();
        match change {
            "hash" => entry["hash"] = "00".repeat(32).into(),
            "mixins" => entry["mixins"] = serde_json::json!(["11".repeat(32)]),
            _ => entry["num_hashes"] = (entry["num_hashes"].as_u64().unwrap() + 1).into(),
        }
        bad[index + 1] = entry.to_string();
        let mut after = serde_json::from_str::<serde_json::Value>(&bad[2901]).unwrap();
        after["hash"] = "22".repeat(32).into();
        bad[2901] = after.to_string();
        let path = dir.path().join(format!("bad-{change}.jsonl"));
        std::fs::write(&path, bad.join("\n")).unwrap();
        for serial in [false, true] {
            let mut args = vec!["verify", path.to_str().unwrap()];
            if serial {
                args.push("--serial");
            }
            let out = poh(&args);
            assert!(!out.status.success());
            let err = text(&out.stderr);
            assert!(
                err.contains(&format!("PoH entry {index} does not verify"))
                    && err.lines().count() == 1,
                "{change}, serial={serial}: {err}"
            );
        }
    }
}

#[test]
fn verify_reports_unreadable_input_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = poh(&["verify", dir.path().join("nope").to_str().unwrap()]);
    assert!(!missing.status.success());
    assert!(text(&missing.stderr).starts_with("error: cannot open"));

    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, "not json\n").unwrap();
    let out = poh(&["verify", garbage.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("PoH log line 1"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bench_hash_json_has_exactly_the_stable_keys() {
    let out = poh(&["bench", "hash", "--json", "--seconds", "0.1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&out.stdout).unwrap();
    let mut keys: Vec<&str> = report.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "mldsa87_sign_per_s",
            "mldsa87_verify_per_s",
            "poh_generate_hps",
            "sha2_chain_hps",
            "verify_all_cores_hps",
            "verify_per_core_hps",
            "verify_serial_hps",
        ]
    );
    for (k, v) in &report {
        assert!(v.as_f64().unwrap() > 0.0, "{k} = {v}");
    }
}

#[test]
fn bench_ingest_starts_a_node_and_reports_its_keys_for_every_transport() {
    for transport in ["grpc-unary", "grpc-stream", "http-batch"] {
        let out = poh(&[
            "bench",
            "ingest",
            "--transport",
            transport,
            // Enough that the node's CPU surely passes a 10 ms clock tick of /proc (300
            // transactions could take less, and read as none).
            "--count",
            "3000",
            "--batch",
            "100",
            "--json",
        ]);
        assert!(out.status.success(), "{transport}: {}", text(&out.stderr));
        let report: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&out.stdout).unwrap();
        let mut keys: Vec<&str> = report.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "client_cpu_us_per_tx",
                "count",
                "disk_bytes_per_tx",
                "durable",
                "encoded_bytes_per_tx",
                "node_cpu_us_per_tx",
                "node_rss_mib",
                "p50_ms",
                "p99_ms",
                "transport",
                "tx_per_s"
            ]
        );
        // The node spends CPU on every transaction it stores; the client's few milliseconds
        // may fall under /proc's 10 ms resolution.
        assert!(report["node_cpu_us_per_tx"].as_f64().unwrap() > 0.0);
        assert!(report["client_cpu_us_per_tx"].as_f64().unwrap() >= 0.0);
        assert_eq!(report["transport"], transport);
        assert_eq!(report["count"], 3000);
        // 200-byte payloads: the protobuf form is a little larger, and the store holds more.
        let encoded = report["encoded_bytes_per_tx"].as_f64().unwrap();
        assert!((200.0..300.0).contains(&encoded), "{encoded}");
        assert!(report["disk_bytes_per_tx"].as_f64().unwrap() > encoded);
        assert!(report["node_rss_mib"].as_f64().unwrap() > 1.0);
        assert_eq!(report["durable"], true);
        assert!(report["tx_per_s"].as_f64().unwrap() > 0.0);
        assert!(report["p99_ms"].as_f64().unwrap() >= report["p50_ms"].as_f64().unwrap());
    }
}

#[test]
fn bench_ingest_refuses_a_batch_beyond_the_spec_cap() {
    let out = poh(&[
        "bench",
        "ingest",
        "--transport",
        "http-batch",
        "--batch",
        "10001",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--batch"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bench_ingest_over_udp_reports_what_was_sent_and_stored() {
    let (report, keys) = bench_json(&[
        "bench",
        "ingest",
        "--transport",
        "udp",
        "--count",
        "300",
        "--json",
    ]);
    assert_eq!(
        keys,
        [
            "client_cpu_us_per_tx",
            "count",
            "disk_bytes_per_tx",
            "durable",
            "encoded_bytes_per_tx",
            "kernel_dropped",
            "node_cpu_us_per_tx",
            "node_rss_mib",
            "p50_ms",
            "p99_ms",
            "refused",
            "sent",
            "stored",
            "transport",
            "tx_per_s"
        ]
    );
    assert_eq!(report["transport"], "udp");
    assert_eq!(report["count"], 300);
    assert_eq!(report["durable"], true);
    let (sent, stored) = (
        report["sent"].as_u64().unwrap(),
        report["stored"].as_u64().unwrap(),
    );
    assert_eq!(sent, 300);
    assert!(stored > 0 && stored <= sent, "sent {sent}, stored {stored}");
    assert_udp_books_balance(&report);
    assert!(report["tx_per_s"].as_f64().unwrap() > 0.0);
    assert!(report["p99_ms"].as_f64().unwrap() >= report["p50_ms"].as_f64().unwrap());
}

/// `--unpaced` sends the whole burst at once; the loss is what the node could not absorb.
#[test]
fn bench_ingest_over_udp_unpaced_reports_the_burst() {
    let args = [
        "bench",
        "ingest",
        "--transport",
        "udp",
        "--count",
        "2000",
        "--unpaced",
    ];
    let (report, _) = bench_json(&[&args[..], &["--json"]].concat());
    let (sent, stored) = (
        report["sent"].as_u64().unwrap(),
        report["stored"].as_u64().unwrap(),
    );
    assert_eq!(sent, 2000);
    assert!(stored > 0 && stored <= sent, "sent {sent}, stored {stored}");
    assert_udp_books_balance(&report);
    let out = poh(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("lost"), "{}", text(&out.stdout));
    let refused = poh(&["bench", "ingest", "--transport", "http-batch", "--unpaced"]);
    assert!(!refused.status.success());
}

/// Every datagram sent is accounted for: stored, refused by the node, or dropped by the
/// kernel at the node's socket (counted in `/proc/net/udp`).
fn assert_udp_books_balance(report: &serde_json::Map<String, serde_json::Value>) {
    let count = |key: &str| report[key].as_u64().unwrap();
    assert_eq!(
        count("stored") + count("refused") + count("kernel_dropped"),
        count("sent"),
        "{report:?}"
    );
}

/// `--memory-every` reads the node's resident memory at each step of the run.
#[test]
fn bench_ingest_samples_the_nodes_memory_every_step() {
    let (report, _) = bench_json(&[
        "bench",
        "ingest",
        "--transport",
        "grpc-stream",
        "--count",
        "3000",
        "--memory-every",
        "1000",
        "--json",
    ]);
    let samples = report["memory"].as_array().unwrap();
    let steps: Vec<u64> = samples
        .iter()
        .map(|s| s["transactions"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [1000, 2000, 3000]);
    for s in samples {
        assert!(s["rss_mib"].as_f64().unwrap() > 1.0, "{s}");
    }
    let refused = poh(&[
        "bench",
        "ingest",
        "--transport",
        "udp",
        "--memory-every",
        "0",
    ]);
    assert!(!refused.status.success());
}

#[test]
fn bench_ingest_over_quic_reports_its_keys() {
    let (report, keys) = bench_json(&[
        "bench",
        "ingest",
        "--transport",
        "quic",
        "--count",
        "300",
        "--batch",
        "100",
        "--json",
    ]);
    assert_eq!(
        keys,
        [
            "client_cpu_us_per_tx",
            "count",
            "disk_bytes_per_tx",
            "durable",
            "encoded_bytes_per_tx",
            "node_cpu_us_per_tx",
            "node_rss_mib",
            "p50_ms",
            "p99_ms",
            "transport",
            "tx_per_s"
        ]
    );
    assert_eq!(report["transport"], "quic");
    assert_eq!(report["count"], 300);
    assert_eq!(report["durable"], true);
    assert!(report["tx_per_s"].as_f64().unwrap() > 0.0);
    assert!(report["p99_ms"].as_f64().unwrap() >= report["p50_ms"].as_f64().unwrap());
}

#[test]
fn bench_broadcast_starts_the_peers_and_reports_its_keys() {
    let (report, keys) = bench_json(&[
        "bench",
        "broadcast",
        "--peers",
        "2",
        "--count",
        "20",
        "--peer-hashes-per-tick",
        "50",
        "--json",
    ]);
    assert_eq!(
        keys,
        [
            "broadcaster_cpu_us",
            "count",
            "durable",
            "overhead_p99_ms",
            "p50_ms",
            "p99_ms",
            "peer_hashes_per_tick",
            "peers",
            "protocols",
            "slowest_peer_p99_ms",
            "tx_per_s"
        ]
    );
    assert_eq!(report["peers"], 2);
    assert_eq!(report["count"], 20);
    assert_eq!(report["durable"], true);
    assert_eq!(report["peer_hashes_per_tick"], 50);
    assert_eq!(report["protocols"], serde_json::json!(["grpc"]));
    assert!(report["tx_per_s"].as_f64().unwrap() > 0.0);
    let at = |key: &str| report[key].as_f64().unwrap();
    assert!(at("p99_ms") >= at("p50_ms"));
    // A peer's answer is part of the fan-out, and the overhead is what is left of it.
    assert!(at("slowest_peer_p99_ms") > 0.0);
    assert!(
        at("slowest_peer_p99_ms") <= at("p99_ms") * 1.01,
        "{report:?}"
    );
    assert!(at("overhead_p99_ms") < at("p99_ms"), "{report:?}");
}

#[test]
fn certs_makes_a_ca_and_node_certificates_whose_fingerprints_fingerprint_prints() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("certs");
    let out_str = out_dir.to_str().unwrap();
    let out = poh(&[
        "certs", "--out", out_str, "--node", "node-a", "--node", "ops",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    for file in [
        "ca.crt",
        "ca.key",
        "node-a.crt",
        "node-a.key",
        "ops.crt",
        "ops.key",
    ] {
        assert!(out_dir.join(file).is_file(), "{file} missing");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in ["ca.key", "node-a.key"] {
            let mode = std::fs::metadata(out_dir.join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{key} is private");
        }
    }
    let crt = out_dir.join("node-a.crt");
    let fp = poh(&["fingerprint", crt.to_str().unwrap()]);
    assert!(fp.status.success(), "{}", text(&fp.stderr));
    let line = text(&fp.stdout);
    let hex = line.split_whitespace().next().unwrap();
    assert_eq!(hex.len(), 64);
    assert!(
        printed.contains(hex),
        "`poh certs` printed the same fingerprint:\n{printed}"
    );

    // A second run reuses the CA, so a node added later trusts the same root.
    let ca_before = std::fs::read(out_dir.join("ca.crt")).unwrap();
    let again = poh(&["certs", "--out", out_str, "--node", "node-b"]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(text(&again.stdout).contains("reusing the CA"));
    assert_eq!(std::fs::read(out_dir.join("ca.crt")).unwrap(), ca_before);

    let not_a_cert = dir.path().join("plain.txt");
    std::fs::write(&not_a_cert, "hello").unwrap();
    let bad = poh(&["fingerprint", not_a_cert.to_str().unwrap()]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).starts_with("error: "),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn bench_chain_reports_exactly_its_keys_and_verifies_what_it_built() {
    let (report, keys) = bench_json(&[
        "bench",
        "chain",
        "--entries",
        "3000",
        "--hashes-per-tick",
        "64",
        "--header-entries",
        "500",
        "--json",
    ]);
    assert_eq!(
        keys,
        [
            "entries",
            "hashes",
            "headers",
            "sha2_chain_hps",
            "verify_hps",
            "verify_s"
        ]
    );
    assert_eq!(report["entries"], 3000);
    assert_eq!(report["headers"], 6);
    assert!(report["hashes"].as_u64().unwrap() > 3000 * 32);
    assert!(report["verify_hps"].as_f64().unwrap() > 0.0);
}

#[test]
fn bench_gc_expires_half_compacts_and_reports_its_keys() {
    let (report, keys) = bench_json(&["bench", "gc", "--store-mb", "8", "--json"]);
    assert_eq!(
        keys,
        [
            "compact_commit_max_ms",
            "compact_ms",
            "expired",
            "idle_commit_max_ms",
            "records",
            "store_bytes",
            "store_bytes_after",
            "store_bytes_after_sweep",
            "sweep_commit_max_ms",
            "sweep_ms"
        ]
    );
    let at = |key: &str| report[key].as_f64().unwrap();
    assert_eq!(at("expired"), (at("records") / 2.0).floor());
    assert!(at("idle_commit_max_ms") > 0.0);
    // The committer beside it keeps adding, so the file after says nothing of the compaction
    // on so small a store; it is only there.
    assert!(at("store_bytes_after") > 0.0 && at("store_bytes_after_sweep") > 0.0);
    assert!(at("sweep_ms") > 0.0 && at("compact_ms") > 0.0);
}

#[test]
fn bench_store_reports_cpu_disk_latency_and_the_open_after_a_kill() {
    let (report, keys) = bench_json(&["bench", "store", "--count", "3000", "--json"]);
    assert_eq!(
        keys,
        [
            "batch",
            "children_p50_us",
            "children_p99_us",
            "commit_p50_ms",
            "commit_p99_ms",
            "count",
            "disk_bytes_per_tx",
            "disk_over_encoded",
            "encoded_bytes_per_tx",
            "engine",
            "get_p50_us",
            "get_p99_us",
            "list_page_p50_ms",
            "list_page_p99_ms",
            "list_rare_ms",
            "payload",
            "rare_count",
            "reopen_after_kill_ms",
            "tx_per_s",
            "writer_cpu_us_per_tx"
        ]
    );
    let at = |key: &str| report[key].as_f64().unwrap();
    assert_eq!(report["engine"], "log");
    assert_eq!(at("count"), 3000.0);
    assert!(at("encoded_bytes_per_tx") > 200.0);
    assert!(at("disk_bytes_per_tx") > at("encoded_bytes_per_tx"));
    assert!(at("reopen_after_kill_ms") > 0.0);
    assert!(at("commit_p99_ms") >= at("commit_p50_ms"));
    // One rare holder's transaction in 3,000 (the bench checks every answer's size).
    assert_eq!(at("rare_count"), 1.0);
    assert!(at("list_page_p99_ms") > 0.0 && at("children_p99_us") > 0.0);
}

/// A short soak: a node under paced load on every transport, sampled every 2 s; a healthy node
/// passes, and the report names what each transport and subscriber saw.
#[test]
fn bench_soak_samples_the_node_under_load_on_every_transport() {
    let (report, keys) = bench_json(&[
        "bench",
        "soak",
        "--seconds",
        "24",
        "--interval-secs",
        "2",
        // Gentle: the node is a debug build, on a machine that also builds.
        "--rate",
        "500",
        "--json",
    ]);
    assert_eq!(
        keys,
        [
            "acked",
            "durable",
            "elapsed_s",
            "errors",
            "growth",
            "interval_secs",
            "ok",
            "payload_bytes",
            "rate",
            "reason",
            "samples",
            "seconds",
            "subscribers",
            "transports",
            "ttl",
            "tx_per_s"
        ]
    );
    assert_eq!(report["ok"], true);
    assert!(report["reason"].is_null());
    assert_eq!(report["ttl"], "2m");
    let samples = report["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 12);
    for sample in samples {
        let mut keys: Vec<&str> = sample
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "acked", "errors", "fds", "rss_mib", "t_s", "threads", "tx_per_s"
            ]
        );
        assert!(sample["rss_mib"].as_f64().unwrap() > 1.0, "{sample}");
        assert!(sample["fds"].as_u64().unwrap() > 3, "{sample}");
        assert!(sample["threads"].as_u64().unwrap() > 1, "{sample}");
    }
    let acked: Vec<u64> = samples
        .iter()
        .map(|s| s["acked"].as_u64().unwrap())
        .collect();
    assert!(acked.windows(2).all(|w| w[0] <= w[1]), "{acked:?}");
    assert!(report["acked"].as_u64().unwrap() >= acked[11]);
    let transports = report["transports"].as_object().unwrap();
    let names: Vec<&str> = transports.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["grpc-stream", "grpc-unary", "http-batch", "quic", "udp"]
    );
    for (name, t) in transports {
        let (sent, got) = (t["sent"].as_u64().unwrap(), t["acked"].as_u64().unwrap());
        assert!(got > 0 && got <= sent, "{name}: {t}");
    }
    let subscribers = report["subscribers"].as_array().unwrap();
    assert_eq!(subscribers.len(), 4);
    for s in subscribers {
        assert!(s["received"].as_u64().unwrap() > 0, "{s}");
    }
    for key in ["rss_mib", "fds", "threads"] {
        let thirds = &report["growth"][key];
        assert!(thirds["middle"].as_f64().unwrap() > 0.0, "{key}: {thirds}");
        assert!(thirds["last"].as_f64().unwrap() > 0.0, "{key}: {thirds}");
    }
}

#[test]
fn bench_soak_refuses_a_run_too_short_to_cut_in_thirds() {
    let out = poh(&["bench", "soak", "--seconds", "5", "--interval-secs", "2"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("at least 3 intervals"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
