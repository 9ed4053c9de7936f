//! `poh index` (SPEC §11) against a real PostgreSQL ([`postgres`]) and real `poh serve`
//! processes: 20,000 transactions over every transport indexed once each with every column
//! as the node serves it, sealed with their headers; an indexer killed with SIGKILL at random
//! points that resumes without losing or repeating a row; one that rides out a restart of
//! the database; and TLS to the database, verified.

mod check;
mod postgres;
mod send;

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use check::{Sql, check_all, wait_complete};
use postgres::Postgres;
use send::Addresses;

use crate::common::{
    Http, Served, poh, quic_pin, random, serve_flags, signal, stop, text, wait_for,
};

/// Transactions the first two tests send.
const TXS: u64 = 20_000;

/// A node that seals often, so sealing is seen many times in a run.
fn node(dir: &std::path::Path) -> (Served, Addresses) {
    let data = dir.join("node");
    let node = serve_flags(
        &data,
        &["--min-batch-interval", "0.1", "--max-batch-interval", "0.5"],
    );
    let to = Addresses {
        base: node.base.clone(),
        grpc: node.grpc.clone(),
        udp: node.udp.clone(),
        quic: node.quic.clone(),
        quic_pin: quic_pin(&data),
    };
    (node, to)
}

fn signing_key(dir: &std::path::Path) -> poh_core::SigningKey {
    let path = crate::common::keygen(dir, "sender");
    poh_core::SigningKey::from_key_file(&std::fs::read(path).unwrap()).unwrap()
}

/// A `poh index --json` process; killed when dropped.
struct Indexer {
    child: Child,
    /// What it printed on stdout and stderr.
    out: Arc<Mutex<Vec<String>>>,
}

impl Indexer {
    fn start(pg: &Postgres, node: &Served) -> Self {
        Self::start_with(&pg.url, node, &[])
    }

    fn start_with(url: &str, node: &Served, flags: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_poh"))
            .args(["index", "--postgres", url, "--endpoint", &node.grpc])
            .args(flags)
            .args(["--url", &node.base, "--json"])
            .args([
                "--batch-ms",
                "50",
                "--headers-ms",
                "100",
                "--progress-ms",
                "200",
            ])
            .env("RUST_LOG", "info")
            .env_remove("POH_INDEX_POSTGRES")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for pipe in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let out = out.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    out.lock().unwrap().push(line);
                }
            });
        }
        Self { child, out }
    }

    fn printed(&self, needle: &str) -> bool {
        self.out.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    fn tail(&self) -> String {
        let out = self.out.lock().unwrap();
        out[out.len().saturating_sub(10)..].join("\n")
    }

    /// Still running.
    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGTERM: a clean stop, exit 0, and a last progress line.
    fn stop(mut self) {
        signal(&self.child, "TERM");
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status:?}: {}", self.tail());
        assert!(self.printed("\"next_seq\""), "{}", self.tail());
    }
}

impl Drop for Indexer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sql(pg: &Postgres) -> Sql {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = pg.client(&runtime);
    Sql { runtime, client }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The indexer follows a node while 20,000 transactions arrive over HTTP (single and batch),
/// gRPC (unary and stream), QUIC and UDP: once the node has sealed them, the database holds
/// each stored one once, every column as `GET /v1/tx/{id}` answers (SEALED, with its header),
/// `poh_headers` as `GET /v1/headers` serves them, and the queries by holder and by parent
/// (through the GIN index) answer what was sent.
#[test]
fn every_transaction_over_every_transport_is_indexed_once_as_the_node_serves_it() {
    let dir = tempfile::tempdir().unwrap();
    let pg = Postgres::start();
    let (node, to) = node(dir.path());
    let key = signing_key(dir.path());
    let indexer = Indexer::start(&pg, &node);
    let started = std::time::Instant::now();
    let runtime = runtime();
    runtime.block_on(send::send(&to, 0..TXS, &key));
    eprintln!("sent {TXS} in {:?}", started.elapsed());
    let http = Http::new();
    let sql = sql(&pg);
    // The children of the late parents are indexed PENDING, and sealed, before those come.
    wait_complete(&http, &node.base, &sql, TXS, &|| indexer.tail());
    let pending = || -> i64 {
        let sql_text = "SELECT count(*) FROM poh_transactions \
                        WHERE status = 'PENDING' AND header_id IS NOT NULL";
        sql.query(sql_text, &[])[0].get(0)
    };
    let pending_before = pending();
    runtime.block_on(send::send_late(&to, 0..TXS));
    let stored = wait_complete(&http, &node.base, &sql, TXS, &|| indexer.tail());
    eprintln!("indexed {} in {:?}", stored.len(), started.elapsed());
    assert!(
        stored.len() as u64 > TXS - TXS / 20,
        "{} stored",
        stored.len()
    );
    check_all(&http, &node.base, &sql, &stored);
    // Those that named a late parent went from PENDING to SEALED; those that name a parent
    // never sent stay PENDING, with their header, as the node answers them.
    let pending_after = pending();
    assert!(
        pending_before > pending_after && pending_after > 0,
        "{pending_before} PENDING before the late parents came, {pending_after} after"
    );
    indexer.stop();
    stop(node);
}

/// The indexer is killed with SIGKILL at four random points while 20,000 transactions
/// arrive, and started again each time: in the end every stored transaction is there once,
/// as the node serves it, and the cursor is the node's seq.
#[test]
fn an_indexer_killed_at_random_points_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pg = Postgres::start();
    let (node, to) = node(dir.path());
    let key = signing_key(dir.path());
    let sender = std::thread::spawn(move || {
        let runtime = runtime();
        for part in 0..4 {
            runtime.block_on(send::send(&to, part * TXS / 4..(part + 1) * TXS / 4, &key));
            // The late parents of the first half: PENDING rows that end while indexers
            // come and go.
            if part == 2 {
                runtime.block_on(send::send_late(&to, 0..TXS / 2));
            }
        }
    });
    let seed = random(std::process::id() as u64);
    for kill in 0..4 {
        let mut indexer = Indexer::start(&pg, &node);
        let ms = 300 + random(seed + kill) % 1500;
        std::thread::sleep(Duration::from_millis(ms));
        assert!(indexer.alive(), "{}", indexer.tail());
        eprintln!("kill -9 after {ms} ms");
        drop(indexer);
    }
    sender.join().unwrap();
    let indexer = Indexer::start(&pg, &node);
    let http = Http::new();
    let sql = sql(&pg);
    let stored = wait_complete(&http, &node.base, &sql, TXS, &|| indexer.tail());
    let seq = http.get_ok(&format!("{}/v1/poh", node.base))["seq"]
        .as_i64()
        .unwrap();
    let cursor: i64 = sql.query("SELECT next_seq FROM poh_index_cursor", &[])[0].get(0);
    assert_eq!(cursor, seq);
    check_all(&http, &node.base, &sql, &stored);
    indexer.stop();

    // Rows below the cursor without their header (what a kill under heavy load once left):
    // the next start finds the first, indexes again from there, and seals them.
    sql.query(
        "UPDATE poh_transactions SET header_id = NULL, status = 'ORDERED' \
         WHERE poh_seq >= 100 AND poh_seq < 2100 AND status = 'SEALED'",
        &[],
    );
    let indexer = Indexer::start(&pg, &node);
    let healed = wait_complete(&http, &node.base, &sql, TXS, &|| indexer.tail());
    check_all(&http, &node.base, &sql, &healed);
    assert!(indexer.printed("lack their header"), "{}", indexer.tail());
    indexer.stop();
    stop(node);
}

/// Two indexers of one chain: the second waits while the first runs, then takes over from
/// where it left off.
#[test]
fn a_second_indexer_of_a_chain_waits_for_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let pg = Postgres::start();
    let (node, to) = node(dir.path());
    let key = signing_key(dir.path());
    runtime().block_on(send::send(&to, 0..2_000, &key));
    let first = Indexer::start(&pg, &node);
    wait_for("the first indexer's progress", || {
        first.printed("\"rows\"").then_some(())
    });
    let second = Indexer::start(&pg, &node);
    wait_for("the second indexer to wait", || {
        second
            .printed("another indexer holds this chain")
            .then_some(())
    });
    assert!(!second.printed("resuming"), "{}", second.tail());
    first.stop();
    runtime().block_on(send::send(&to, 2_000..4_000, &key));
    let http = Http::new();
    let sql = sql(&pg);
    let stored = wait_complete(&http, &node.base, &sql, 4_000, &|| second.tail());
    check_all(&http, &node.base, &sql, &stored);
    second.stop();
    stop(node);
}

/// PostgreSQL stops (`pg_ctl stop -m fast`) and starts again under a running indexer while
/// transactions arrive: the indexer retries, never exits, and the database ends complete.
#[test]
fn an_indexer_rides_out_a_database_restart() {
    let pg = Postgres::start();
    if !pg.is_own() {
        eprintln!("skipped: POH_TEST_POSTGRES_URL names a server this test may not restart");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (node, to) = node(dir.path());
    let key = signing_key(dir.path());
    let mut indexer = Indexer::start(&pg, &node);
    let runtime = runtime();
    let sent = 6_000;
    runtime.block_on(send::send(&to, 0..sent / 2, &key));
    pg.stop();
    // Sent while the database is down: the indexer must wait for it, not drop them.
    runtime.block_on(send::send(&to, sent / 2..sent, &key));
    std::thread::sleep(Duration::from_secs(2));
    assert!(indexer.alive(), "{}", indexer.tail());
    pg.start_again();
    let http = Http::new();
    let sql = sql(&pg);
    let stored = wait_complete(&http, &node.base, &sql, sent, &|| indexer.tail());
    check_all(&http, &node.base, &sql, &stored);
    assert!(indexer.alive(), "{}", indexer.tail());
    assert!(
        indexer.printed("starting again from the database"),
        "{}",
        indexer.tail()
    );
    indexer.stop();
    stop(node);
}

/// `sslmode=require` against a server that takes TLS only: its certificate is refused
/// without the CA that issued it (the indexer keeps retrying, writing nothing), and with
/// `--pg-ca` every transaction is indexed.
#[test]
fn tls_to_the_database_is_verified() {
    if std::env::var_os("POH_TEST_POSTGRES_URL").is_some() {
        eprintln!("skipped: this test starts a TLS server of its own");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let out = poh(&[
        "certs",
        "--out",
        certs.to_str().unwrap(),
        "--node",
        "localhost",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pg = Postgres::start_tls(&certs.join("localhost.crt"), &certs.join("localhost.key"));
    let url = format!(
        "{}?sslmode=require",
        pg.url.replace("@127.0.0.1:", "@localhost:")
    );
    let (node, to) = node(dir.path());
    let key = signing_key(dir.path());
    runtime().block_on(send::send(&to, 0..400, &key));
    let http = Http::new();
    let seq = http.get_ok(&format!("{}/v1/poh", node.base))["seq"]
        .as_u64()
        .unwrap();

    let mut refused = Indexer::start_with(&url, &node, &[]);
    wait_for("the server's certificate refused", || {
        refused.printed("invalid peer certificate").then_some(())
    });
    assert!(refused.alive(), "{}", refused.tail());
    assert!(!refused.printed("\"rows\":1"), "{}", refused.tail());
    drop(refused);

    let ca = certs.join("ca.crt");
    let indexer = Indexer::start_with(&url, &node, &["--pg-ca", ca.to_str().unwrap()]);
    let done = format!("\"next_seq\":{seq},");
    wait_for("every transaction indexed over TLS", || {
        indexer.printed(&done).then_some(())
    });
    indexer.stop();
    stop(node);
}

/// Transactions the node's TTL expired are passed over (the subscription's `OUT_OF_RANGE`
/// names them): the indexer says which, moves its cursor past them and indexes what follows.
#[test]
fn expired_transactions_are_named_and_passed_over() {
    let dir = tempfile::tempdir().unwrap();
    let pg = Postgres::start();
    let node = serve_flags(
        &dir.path().join("node"),
        &[
            "--ttl",
            "2s",
            "--ttl-sweep-interval",
            "50ms",
            "--min-batch-interval",
            "0.05",
            "--max-batch-interval",
            "0.2",
        ],
    );
    let http = Http::new();
    let tx = |id: &str| serde_json::json!({"tx_id": id, "holder_id": "h", "timestamp": 1.5, "payload_b64": "aGk="});
    let url = format!("{}/v1/tx/batch", node.base);
    let old: Vec<serde_json::Value> = (0..5).map(|i| tx(&format!("old-{i}"))).collect();
    assert_eq!(http.post(&url, &serde_json::Value::Array(old)), Some(200));
    wait_for("old-4 expired", || {
        (http.get(&format!("{}/v1/tx/old-4", node.base)).0 == 410).then_some(())
    });
    let indexer = Indexer::start(&pg, &node);
    wait_for("the expired seqs named", || {
        indexer.printed("no longer holds").then_some(())
    });
    assert_eq!(
        http.post(&url, &serde_json::json!([tx("new-0")])),
        Some(200)
    );
    let sql = sql(&pg);
    let (row, cursor) = wait_for("new-0 indexed and sealed", || {
        let rows = sql.query(
            "SELECT tx_id, poh_seq, status, header_id FROM poh_transactions",
            &[],
        );
        let cursor = sql.query("SELECT next_seq FROM poh_index_cursor", &[]);
        let row = rows.first()?;
        (rows.len() == 1 && row.get::<_, &str>(2) == "SEALED").then(|| {
            let seq: i64 = cursor[0].get(0);
            ((row.get::<_, String>(0), row.get::<_, i64>(1)), seq)
        })
    });
    assert_eq!((row, cursor), (("new-0".to_string(), 5), 6));
    indexer.stop();
    stop(node);
}

/// `poh bench index` at a tiny scale: its JSON has the stable keys, and every row was indexed.
#[test]
fn bench_index_reports_a_catch_up_with_sane_figures() {
    if std::env::var_os("POH_TEST_POSTGRES_URL").is_some() {
        eprintln!("skipped: the bench starts a PostgreSQL of its own");
        return;
    }
    let (report, keys) =
        crate::common::bench_json(&["bench", "index", "--count", "2000", "--json"]);
    assert_eq!(
        keys,
        [
            "batch_rows",
            "count",
            "indexer_cpu_us_per_row",
            "load_tx_per_s",
            "loadavg_after",
            "loadavg_before",
            "payload_bytes",
            "rows",
            "rows_per_s",
            "seconds",
            "subscribe_records_per_s"
        ]
    );
    assert_eq!(report["rows"], 2000);
    for key in [
        "rows_per_s",
        "seconds",
        "indexer_cpu_us_per_row",
        "subscribe_records_per_s",
    ] {
        assert!(report[key].as_f64().unwrap() > 0.0, "{key}: {report:?}");
    }
}
