//! `poh bench replica` at a tiny scale: its JSON has the stable keys, and each figure is one
//! a working copy could give. (The other benches' tests are in `tools.rs`.)

use serde_json::Value;

use crate::common::bench_json;

fn keys(object: &Value) -> Vec<String> {
    let mut keys: Vec<String> = object.as_object().unwrap().keys().cloned().collect();
    keys.sort_unstable();
    keys
}

#[test]
fn bench_replica_copies_follows_and_compares_acks_with_sane_figures() {
    let (report, top) = bench_json(&[
        "bench",
        "replica",
        "--count",
        "2000",
        "--lag-count",
        "2000",
        "--acks-count",
        "300",
        "--unary-count",
        "100",
        // A slow clock: the replica re-hashes every entry, and the test has few cores.
        "--hashes-per-tick",
        "100",
        "--json",
    ]);
    assert_eq!(
        top,
        [
            "acks",
            "copy",
            "count",
            "durable",
            "hashes_per_tick",
            "lag",
            "payload_bytes"
        ]
    );
    assert_eq!(report["count"], 2000);
    assert_eq!(report["durable"], true);
    assert_eq!(report["hashes_per_tick"], 100);
    let f = |v: &Value, key: &str| v[key].as_f64().unwrap_or_else(|| panic!("{key} in {v}"));

    let copy = &report["copy"];
    assert_eq!(
        keys(copy),
        [
            "entries",
            "entries_per_s",
            "load_tx_per_s",
            "records",
            "records_per_s",
            "replica_cpu_us_per_record",
            "seconds"
        ]
    );
    // Every loaded transaction is an item the replica copied, in at least one entry.
    assert_eq!(copy["records"], 2000, "{copy}");
    assert!(f(copy, "entries") >= 1.0, "{copy}");
    assert!(f(copy, "seconds") > 0.0, "{copy}");
    let rate = f(copy, "records") / f(copy, "seconds");
    assert!(
        (f(copy, "records_per_s") - rate).abs() <= rate * 0.02 + 1.0,
        "{copy}"
    );
    // The replica process spent CPU on it, and not a second per record.
    let cpu = f(copy, "replica_cpu_us_per_record");
    assert!(cpu > 0.0 && cpu < 1e6, "{copy}");
    assert!(f(copy, "load_tx_per_s") > 0.0, "{copy}");

    let lag = &report["lag"];
    assert_eq!(
        keys(lag),
        [
            "catch_up_seconds",
            "count",
            "load_tx_per_s",
            "max_entries",
            "max_seconds",
            "observed_max_entries",
            "observed_p99_entries",
            "p99_entries",
            "p99_seconds",
            "samples"
        ]
    );
    assert_eq!(lag["count"], 2000);
    assert!(f(lag, "load_tx_per_s") > 0.0, "{lag}");
    for (p99, max) in [
        ("p99_entries", "max_entries"),
        ("p99_seconds", "max_seconds"),
        ("observed_p99_entries", "observed_max_entries"),
    ] {
        assert!(0.0 <= f(lag, p99) && f(lag, p99) <= f(lag, max), "{lag}");
    }
    assert!(f(lag, "catch_up_seconds") >= 0.0, "{lag}");

    let acks = report["acks"].as_array().unwrap();
    let runs: Vec<(u64, &str, u64)> = acks
        .iter()
        .map(|a| {
            assert_eq!(
                keys(a),
                [
                    "count",
                    "min_replica_acks",
                    "p50_ms",
                    "p99_ms",
                    "transport",
                    "tx_per_s"
                ]
            );
            assert!(f(a, "tx_per_s") > 0.0, "{a}");
            assert!(
                f(a, "p99_ms") >= f(a, "p50_ms") && f(a, "p50_ms") > 0.0,
                "{a}"
            );
            (
                a["min_replica_acks"].as_u64().unwrap(),
                a["transport"].as_str().unwrap(),
                a["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        runs,
        [
            (0, "grpc-stream", 300),
            (0, "grpc-unary", 100),
            (1, "grpc-stream", 300),
            (1, "grpc-unary", 100)
        ]
    );
}
