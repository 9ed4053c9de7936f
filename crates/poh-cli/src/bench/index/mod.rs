//! `poh bench index`: how fast `poh index` (SPEC §11) catches up with a loaded node. A node
//! (`poh serve` on a temporary data dir, as `bench ingest` starts it) takes `--count`
//! transactions over gRPC streams; then a fresh `poh index` process follows it into an
//! empty PostgreSQL ([`postgres`], or `--postgres URL`) and is timed until the database's
//! cursor holds every one: rows per second, the indexer's CPU per row, and the machine's load
//! when it ran.

mod postgres;

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Serialize;

use super::{
    cpu,
    ingest::{grpc, http_client, transactions},
    node::NodeProcess,
};

/// gRPC streams loading the node: `bench ingest`'s default.
const STREAMS: usize = 4;

#[derive(clap::Args)]
pub struct IndexArgs {
    /// Transactions in the node before the indexer starts.
    #[arg(long, default_value_t = 200_000)]
    count: usize,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 200)]
    payload_bytes: usize,
    /// An existing PostgreSQL to index into (its rows of the chain `local` are deleted
    /// first) [default: a server started here for the run].
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// The indexer's --batch-rows [default: its own].
    #[arg(long)]
    batch_rows: Option<usize>,
    /// Run the node without fsync.
    #[arg(long)]
    no_fsync: bool,
    /// Print one JSON object (keys are stable: scripts read them).
    #[arg(long)]
    json: bool,
}

/// The keys are a stable interface.
#[derive(Serialize)]
struct IndexReport {
    count: usize,
    payload_bytes: usize,
    /// `null`: the indexer's default.
    batch_rows: Option<usize>,
    /// Rows in the database when the indexer caught up (the node's seq).
    rows: u64,
    /// From starting the indexer's process until the cursor held every row.
    seconds: f64,
    rows_per_s: f64,
    /// The indexer process's CPU (user + system, start-up included) per row.
    indexer_cpu_us_per_row: f64,
    /// How fast the node took the transactions it was loaded with.
    load_tx_per_s: f64,
    /// How fast one gRPC `Subscribe` from seq 0 alone reads them back: the ceiling the node
    /// sets for any indexer.
    subscribe_records_per_s: f64,
    /// The 1-minute load average before the indexer started and when it had caught up.
    loadavg_before: f64,
    loadavg_after: f64,
}

pub fn run(args: &IndexArgs) -> anyhow::Result<()> {
    if args.count == 0 || args.payload_bytes > (1 << 20) || args.batch_rows == Some(0) {
        bail!("--count and --batch-rows must be at least 1, --payload-bytes at most 1048576");
    }
    let say = |what: std::fmt::Arguments<'_>| {
        if !args.json {
            eprintln!("{what}");
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let started_pg = match &args.postgres {
        Some(_) => None,
        None => {
            say(format_args!("starting PostgreSQL…"));
            Some(postgres::TempPostgres::start()?)
        }
    };
    let url = match (&args.postgres, &started_pg) {
        (Some(url), _) => url.clone(),
        (None, Some(pg)) => pg.url.clone(),
        (None, None) => bail!("no database"),
    };
    let db = runtime.block_on(connect(&url))?;
    runtime
        .block_on(db.batch_execute(
            "DELETE FROM poh_transactions WHERE chain_id = 'local'; \
         DELETE FROM poh_headers WHERE chain_id = 'local'; \
         DELETE FROM poh_index_cursor WHERE chain_id = 'local'",
        ))
        .or_else(|e| match e.code() {
            // A fresh database: the indexer makes the tables.
            Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => Ok(()),
            _ => Err(e),
        })
        .context("cannot empty the database's tables of the chain `local`")?;

    let node = NodeProcess::start(!args.no_fsync, &[])?;
    say(format_args!(
        "loading the node with {} transactions over gRPC streams…",
        args.count
    ));
    let txs = transactions(args.count, args.payload_bytes, false)?;
    let loading = Instant::now();
    runtime.block_on(grpc::stream(
        &node.grpc,
        txs,
        STREAMS.min(args.count),
        &indicatif::ProgressBar::hidden(),
    ))?;
    let load_tx_per_s = args.count as f64 / loading.elapsed().as_secs_f64();
    let target = runtime.block_on(node_seq(&node))?;
    if target < args.count as u64 {
        bail!(
            "the node holds {target} items after {} were acknowledged",
            args.count
        );
    }

    say(format_args!("reading them back over one gRPC Subscribe…"));
    let subscribe_records_per_s = runtime.block_on(subscribe_rate(&node, target))?;
    say(format_args!(
        "indexing {target} rows into a fresh database…"
    ));
    let loadavg_before = loadavg();
    let started = Instant::now();
    let mut indexer = spawn_indexer(args, &url, &node)?;
    let caught_up = runtime.block_on(wait_for_cursor(&db, target, &mut indexer));
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = cpu::seconds(&indexer.id().to_string()).unwrap_or(0.0);
    let loadavg_after = loadavg();
    let _ = indexer.kill();
    let _ = indexer.wait();
    caught_up?;
    let report = IndexReport {
        count: args.count,
        payload_bytes: args.payload_bytes,
        batch_rows: args.batch_rows,
        rows: target,
        seconds: (seconds * 1e3).round() / 1e3,
        rows_per_s: (target as f64 / seconds).round(),
        indexer_cpu_us_per_row: cpu::us_per_tx(0.0, cpu_seconds, target as f64),
        load_tx_per_s: load_tx_per_s.round(),
        subscribe_records_per_s: subscribe_records_per_s.round(),
        loadavg_before,
        loadavg_after,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "indexed {} rows in {:.2} s = {:.0} rows/s; indexer CPU {:.1} µs per row (the node \
             took them at {:.0} tx/s, and one Subscribe alone reads {:.0} records/s; load \
             average {:.2} before, {:.2} after)",
            report.rows,
            report.seconds,
            report.rows_per_s,
            report.indexer_cpu_us_per_row,
            report.load_tx_per_s,
            report.subscribe_records_per_s,
            report.loadavg_before,
            report.loadavg_after,
        );
    }
    Ok(())
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .context("cannot connect to the database")?;
    tokio::spawn(connection);
    Ok(client)
}

/// The node's seq once it stands still (every acknowledged transaction recorded).
async fn node_seq(node: &NodeProcess) -> anyhow::Result<u64> {
    let http = http_client(Duration::from_secs(10))?;
    let url = format!("http://{}/v1/poh", node.http);
    let mut last = None;
    loop {
        let poh: serde_json::Value = http.get(&url).send().await?.json().await?;
        let seq = poh["seq"].as_u64().context("GET /v1/poh has no seq")?;
        if last == Some(seq) {
            return Ok(seq);
        }
        last = Some(seq);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn spawn_indexer(
    args: &IndexArgs,
    url: &str,
    node: &NodeProcess,
) -> anyhow::Result<std::process::Child> {
    let exe = std::env::current_exe().context("cannot find the poh executable")?;
    let mut command = std::process::Command::new(exe);
    command
        .args(["index", "--postgres", url, "--endpoint", &node.grpc])
        .arg("--url")
        .arg(format!("http://{}", node.http))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .env("RUST_LOG", "warn");
    if let Some(rows) = args.batch_rows {
        command.args(["--batch-rows", &rows.to_string()]);
    }
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("POH_") {
            command.env_remove(key);
        }
    }
    command.spawn().context("cannot start `poh index`")
}

/// Polls the cursor until it reaches `target`; an error when the indexer exits first.
async fn wait_for_cursor(
    db: &tokio_postgres::Client,
    target: u64,
    indexer: &mut std::process::Child,
) -> anyhow::Result<()> {
    let target = i64::try_from(target).context("seq beyond a bigint")?;
    loop {
        if let Some(status) = indexer.try_wait()? {
            bail!("`poh index` exited ({status}) before it caught up");
        }
        // The table appears once the indexer has made the schema.
        let cursor = db
            .query_opt(
                "SELECT next_seq FROM poh_index_cursor WHERE chain_id = 'local'",
                &[],
            )
            .await
            .ok()
            .flatten()
            .and_then(|row| row.try_get::<_, i64>(0).ok());
        if cursor.is_some_and(|c| c >= target) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Records per second one `Subscribe` from seq 0 reads until it has `target` of them.
async fn subscribe_rate(node: &NodeProcess, target: u64) -> anyhow::Result<f64> {
    use poh_proto::v1::{SubscribeRequest, poh_service_client::PohServiceClient};
    let started = Instant::now();
    let mut client = PohServiceClient::new(grpc::connect(&node.grpc).await?);
    let mut stream = client
        .subscribe(SubscribeRequest { from_seq: 0 })
        .await?
        .into_inner();
    let mut read = 0u64;
    while read < target {
        match stream.message().await? {
            Some(_) => read += 1,
            None => bail!("the node ended the subscription after {read} records"),
        }
    }
    Ok(read as f64 / started.elapsed().as_secs_f64())
}

/// The 1-minute load average (`/proc/loadavg`); 0 where there is none.
fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}
