//! `/metrics`: every SPEC §7 family with its exact name and type from start-up, and the
//! counters move with the traffic.

use std::collections::HashMap;

use reqwest::Client;

use crate::common::{json, metrics_text, pb, start, tx};

const SPEC: [(&str, &str); 13] = [
    ("poh_issued_total", "counter"),
    ("poh_issue_latency_seconds", "histogram"),
    ("poh_issue_latency_summary_seconds", "summary"),
    ("poh_verify_latency_seconds", "histogram"),
    ("gc_events_total", "counter"),
    ("active_peers", "gauge"),
    ("http_requests_total", "counter"),
    ("grpc_requests_total", "counter"),
    ("poh_tx_received_total", "counter"),
    ("poh_tx_rejected_total", "counter"),
    ("poh_broadcast_total", "counter"),
    ("poh_block_count", "counter"),
    ("poh_child_headers_total", "counter"),
];

/// Families beyond SPEC §7 that the alert rules and the dashboard under `deploy/` read.
const OPERATIONS: [(&str, &str); 12] = [
    ("poh_hashes_total", "counter"),
    ("poh_target_hashes_per_second", "gauge"),
    ("poh_peers", "gauge"),
    ("poh_max_batch_interval_seconds", "gauge"),
    ("poh_disk_free_bytes", "gauge"),
    ("poh_disk_size_bytes", "gauge"),
    ("poh_store_bytes", "gauge"),
    ("poh_commit_seconds", "histogram"),
    ("poh_replica_lag_entries", "gauge"),
    ("poh_replica_copied_entries_total", "counter"),
    ("poh_replica_copied_records_total", "counter"),
    ("poh_replica_refused_total", "counter"),
];

/// `# TYPE` per family, `# HELP` presence, and every sample line as (name{labels}, value).
struct Scrape {
    types: HashMap<String, String>,
    help: Vec<String>,
    samples: HashMap<String, f64>,
}

fn parse(text: &str) -> Scrape {
    let mut scrape = Scrape {
        types: HashMap::new(),
        help: Vec::new(),
        samples: HashMap::new(),
    };
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(
                scrape.types.insert(name.into(), kind.into()).is_none(),
                "{name} typed twice"
            );
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            scrape.help.push(rest.split_once(' ').unwrap().0.into());
        } else {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad sample {line}"));
            scrape.samples.insert(series.into(), value);
        }
    }
    scrape
}

fn sample(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .find(|(series, _)| {
            series.split('{').next() == Some(name)
                && labels
                    .iter()
                    .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
}

#[tokio::test]
async fn every_spec_family_is_exposed_from_start_up_and_counts() {
    let node = start().await;
    let c = Client::new();
    let scrape = |c: Client, url: String| async move {
        let r = c.get(url).send().await.unwrap();
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        parse(&r.text().await.unwrap())
    };
    let first = scrape(c.clone(), node.http("/metrics")).await;
    for (name, kind) in SPEC {
        assert_eq!(
            first.types.get(name).map(String::as_str),
            Some(kind),
            "{name}"
        );
        assert!(first.help.iter().any(|h| h == name), "{name} has no # HELP");
    }
    for transport in ["grpc", "http", "udp", "quic"] {
        assert_eq!(
            sample(&first, "poh_tx_received_total", &[("transport", transport)]),
            0.0
        );
    }
    // The families the alert rules read, and what they hold at start: the PoH clock's
    // configured rate, a hash count that moves, the disk. (Each configured child has its
    // `poh_child_last_header_timestamp_seconds`; the federation tests read it.)
    for (name, kind) in OPERATIONS {
        assert_eq!(
            first.types.get(name).map(String::as_str),
            Some(kind),
            "{name}"
        );
        assert!(first.help.iter().any(|h| h == name), "{name} has no # HELP");
    }
    assert!(sample(&first, "poh_target_hashes_per_second", &[]) > 0.0);
    assert!(
        sample(&first, "poh_disk_size_bytes", &[]) >= sample(&first, "poh_disk_free_bytes", &[])
    );
    assert!(sample(&first, "poh_disk_free_bytes", &[]) > 0.0);
    assert!(sample(&first, "poh_store_bytes", &[]) > 0.0);
    assert_eq!(sample(&first, "poh_max_batch_interval_seconds", &[]), 10.0);
    // A primary: the replica rules' series are there, at 0, so they evaluate on every node.
    for name in [
        "poh_replica_lag_entries",
        "poh_replica_copied_entries_total",
        "poh_replica_copied_records_total",
        "poh_replica_refused_total",
    ] {
        assert_eq!(sample(&first, name, &[]), 0.0, "{name}");
    }
    let hashes = sample(&first, "poh_hashes_total", &[]);

    c.post(node.http("/v1/tx"))
        .json(&json(&tx("m1")))
        .send()
        .await
        .unwrap();
    c.post(node.http("/v1/tx"))
        .json(&json(&tx("bad id")))
        .send()
        .await
        .unwrap();
    c.post(node.http("/v1/tx"))
        .body("{")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    c.get(node.http("/v1/tx/m1")).send().await.unwrap();
    let mut grpc = node.grpc().await;
    grpc.broadcast(pb(&tx("m2"))).await.unwrap();
    grpc.broadcast(pb(&tx("m2"))).await.unwrap();

    let after = scrape(c.clone(), node.http("/metrics")).await;
    assert!(
        sample(&after, "poh_hashes_total", &[]) > hashes,
        "the clock runs"
    );
    assert_eq!(
        sample(&after, "poh_tx_received_total", &[("transport", "http")]),
        3.0
    );
    assert_eq!(
        sample(&after, "poh_tx_received_total", &[("transport", "grpc")]),
        2.0
    );
    assert_eq!(
        sample(
            &after,
            "poh_tx_rejected_total",
            &[("transport", "http"), ("reason", "invalid")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &after,
            "poh_tx_rejected_total",
            &[("transport", "http"), ("reason", "malformed")]
        ),
        1.0
    );
    assert_eq!(
        sample(&after, "poh_issued_total", &[("result", "success")]),
        3.0,
        "stored twice, one duplicate"
    );
    assert_eq!(sample(&after, "poh_issue_latency_seconds_count", &[]), 4.0);
    assert_eq!(
        sample(&after, "poh_issue_latency_summary_seconds_count", &[]),
        4.0
    );
    assert!(
        after
            .samples
            .keys()
            .any(|k| k.starts_with("poh_issue_latency_summary_seconds{quantile="))
    );
    assert_eq!(
        sample(
            &after,
            "http_requests_total",
            &[("method", "POST"), ("path", "/v1/tx"), ("status", "201")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &after,
            "http_requests_total",
            &[
                ("method", "GET"),
                ("path", "/v1/tx/{tx_id}"),
                ("status", "200")
            ]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &after,
            "grpc_requests_total",
            &[("method", "Broadcast"), ("code", "OK")]
        ),
        2.0
    );
    node.stop().await;
}

/// The series of a scrape: every sample's name and labels, without values.
fn series(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(series, _)| series.to_string()))
        .collect()
}

/// Labels come from what the node serves, never from what a client sends: 100,000 calls to
/// distinct gRPC methods and HTTP methods and paths, before any authentication, add no series.
#[tokio::test]
async fn a_flood_of_unknown_methods_and_paths_adds_no_series() {
    use futures_util::StreamExt as _;
    let node = start().await;
    let grpc = format!("http://{}", node.node.grpc_addr().unwrap());
    let h2 = Client::builder().http2_prior_knowledge().build().unwrap();
    let h1 = Client::new();
    let unknown_grpc = |i: usize| {
        let h2 = h2.clone();
        let url = match i % 2 {
            0 => format!("{grpc}/poh.v1.PohService/Nope{i}"),
            _ => format!("{grpc}/made.up.Service{i}/Call"),
        };
        async move {
            h2.post(url)
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(vec![0u8; 5])
                .send()
                .await
                .unwrap();
        }
    };
    let unknown_http = |i: usize| {
        let (h1, url) = (h1.clone(), node.http(&format!("/x/{i}")));
        async move {
            let method = reqwest::Method::from_bytes(format!("M{i}").as_bytes()).unwrap();
            h1.request(method, url).send().await.unwrap();
        }
    };
    // One of each first, so the series they may add (method="other") exist.
    unknown_grpc(0).await;
    unknown_grpc(1).await;
    unknown_http(0).await;
    let client = Client::new();
    let scrape = || metrics_text(&client, &node);
    let before = scrape().await;

    futures_util::stream::iter(2..50_000)
        .map(unknown_grpc)
        .buffer_unordered(64)
        .collect::<()>()
        .await;
    // HTTP/1 takes a connection per request in flight: fewer than one client's limit.
    futures_util::stream::iter(1..50_000)
        .map(unknown_http)
        .buffer_unordered(32)
        .collect::<()>()
        .await;

    let after = scrape().await;
    // The same series, label for label: only their values moved.
    assert_eq!(series(&before), series(&after));
    let counted = parse(&after).samples;
    assert_eq!(
        counted[r#"grpc_requests_total{method="other",code="UNIMPLEMENTED"}"#],
        50_000.0
    );
    node.stop().await;
}
