//! The observability kit under `deploy/` against a real Prometheus scraping real `poh serve`
//! processes under load: every query of the Grafana dashboard returns data, and every alert
//! rule evaluates without error. The `prometheus` binary comes from Debian's `prometheus`
//! package, which `.ci/run` installs (`POH_PROMETHEUS` names another one).

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::common::{Http, Served, poh, serve_flags, stop, text, wait_for, wait_within};

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(path)
}

/// A Prometheus server on a free port, killed with the test.
struct Prometheus {
    child: Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_prometheus(dir: &Path, targets: &[&str]) -> Prometheus {
    let binary = std::env::var("POH_PROMETHEUS").unwrap_or_else(|_| "prometheus".into());
    let config = dir.join("prometheus.yml");
    let targets: Vec<String> = targets
        .iter()
        .map(|t| t.trim_start_matches("http://").to_string())
        .collect();
    // The deploy config's job and rules, scraped every 2 s so a test sees rates soon.
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 2s\n  evaluation_interval: 2s\nrule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: poh\n    static_configs:\n      - targets: {}\n",
            deploy("prometheus/alerts.yml").display(),
            serde_json::to_string(&targets).unwrap(),
        ),
    )
    .unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new(&binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {binary} ({e}): install Debian's prometheus package \
                 (apt-get install prometheus) or set POH_PROMETHEUS"
            )
        });
    Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// `/api/v1/query` of `expr` now.
fn query(c: &Http, prom: &Prometheus, expr: &str) -> Option<Value> {
    c.try_get(&format!("{}/api/v1/query", prom.url), &[("query", expr)])
}

fn results(answer: &Value) -> &[Value] {
    answer["data"]["result"]
        .as_array()
        .map_or(&[], Vec::as_slice)
}

/// Every `expr` of the dashboard's panels, with the title of its panel.
fn dashboard_queries() -> Vec<(String, String)> {
    let dashboard: Value =
        serde_json::from_slice(&std::fs::read(deploy("grafana/poh-dashboard.json")).unwrap())
            .unwrap();
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push((
                panel["title"].as_str().unwrap().to_string(),
                target["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

/// Two nodes, the second a gRPC and HTTP peer of the first, a continental chain with one
/// child.
fn two_nodes(dir: &Path) -> (Served, Served) {
    let key = dir.join("child.key");
    let out = poh(&["keygen", "--out", key.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let child = format!("municipality/kobe={}.pub", key.display());
    let b = serve_flags(&dir.join("b"), &[]);
    let peers = dir.join("peers.json");
    // Relayed to over HTTP/1.1 as well: A's sends and Prometheus's scrapes share B's
    // connection allowance for 127.0.0.1.
    for (protocol, addr) in [("grpc", b.grpc.as_str()), ("http", b.base.as_str())] {
        let out = poh(&[
            "add-peer",
            protocol,
            addr,
            "--peers-file",
            peers.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let a = serve_flags(
        &dir.join("a"),
        &[
            "--peers-file",
            peers.to_str().unwrap(),
            "--relay",
            "--level",
            "continental",
            "--child",
            &child,
        ],
    );
    (a, b)
}

/// HTTP batches into `node` until `stop`, a few of them invalid, so every family moves.
fn load(base: String, done: Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let c = Http::new();
        let mut sent = 0;
        while !done.load(Ordering::Relaxed) {
            let batch: Vec<Value> = (0..200)
                .map(|i| {
                    let n = sent + i;
                    json!({
                        "tx_id": if n % 50 == 0 { String::new() } else { format!("load-{n}") },
                        "holder_id": "observability",
                        "timestamp": 1_700_000_000.0 + n as f64,
                        "payload_b64": "aGVsbG8=",
                    })
                })
                .collect();
            sent += batch.len();
            c.post(&format!("{base}/v1/tx/batch"), &Value::Array(batch));
            std::thread::sleep(Duration::from_millis(50));
        }
        sent
    })
}

#[test]
fn every_dashboard_query_and_alert_rule_works_against_a_real_prometheus() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes(tmp.path());
    let done = Arc::new(AtomicBool::new(false));
    let loader = load(a.base.clone(), done.clone());
    // Signed transactions, so signature checks are timed too.
    let key = tmp.path().join("child.key");
    for i in 0..3 {
        let id = format!("signed-{i}");
        let out = poh(&[
            "submit",
            "--endpoint",
            &a.grpc,
            "--tx-id",
            &id,
            "--payload",
            "hi",
            "--sign-key",
            key.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let prom = start_prometheus(tmp.path(), &[&a.base, &b.base]);
    let c = Http::new();

    // Both nodes scraped, and enough samples for the rates of a 30 s window.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = query(&c, &prom, "sum_over_time(up{job=\"poh\"}[1m]) >= 5");
        if up.is_some_and(|answer| results(&answer).len() == 2) {
            break;
        }
        if Instant::now() > deadline {
            let targets = c.try_get(&format!("{}/api/v1/targets", prom.url), &[]);
            panic!("both nodes not scraped 5 times within 60 s: {targets:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_within(Duration::from_secs(60), "both PoH clocks measured", || {
        let answer = query(&c, &prom, "rate(poh_hashes_total[30s]) > 0")?;
        (results(&answer).len() == 2).then_some(())
    });

    let mut failed = Vec::new();
    let queries = dashboard_queries();
    assert!(queries.len() >= 25, "{} queries", queries.len());
    for (panel, expr) in &queries {
        let concrete = expr
            .replace("$__rate_interval", "30s")
            .replace("$instance", ".+");
        let answer = query(&c, &prom, &concrete).unwrap();
        if answer["status"] != "success" || results(&answer).is_empty() {
            failed.push(format!("{panel}: {concrete}: {answer}"));
        }
    }
    assert!(
        failed.is_empty(),
        "dashboard queries without data:\n{}",
        failed.join("\n")
    );

    // The template variable's values name both nodes.
    let instances = c
        .try_get(
            &format!("{}/api/v1/label/instance/values", prom.url),
            &[("match[]", "poh_issued_total")],
        )
        .unwrap();
    assert_eq!(
        instances["data"].as_array().map(Vec::len),
        Some(2),
        "{instances}"
    );

    // Every alert rule was evaluated against the real series without an error (a rule whose
    // matching is wrong for the real labels reports `health: err`), and none fires for these
    // healthy nodes.
    let rules = wait_for("every rule evaluated", || {
        let rules = c.try_get(&format!("{}/api/v1/rules", prom.url), &[])?;
        let all: Vec<Value> = rules["data"]["groups"]
            .as_array()?
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        all.iter()
            .all(|r| r["lastEvaluation"].as_str() != Some("0001-01-01T00:00:00Z"))
            .then_some(all)
    });
    assert_eq!(rules.len(), 15, "{rules:?}");
    for rule in &rules {
        assert_eq!(rule["health"], "ok", "{rule}");
        assert_ne!(rule["state"], "firing", "{rule}");
    }

    done.store(true, Ordering::Relaxed);
    assert!(loader.join().unwrap() > 0);
    // A node that stops is seen down.
    stop(b);
    wait_for("b seen down", || {
        let answer = query(&c, &prom, "up{job=\"poh\"} == 0")?;
        (results(&answer).len() == 1).then_some(())
    });
    stop(a);
}
