//! `poh index` (SPEC §11): a node's transactions and sealed headers, kept current in
//! PostgreSQL.
//!
//! A session is one database connection and the tasks that feed it: [`node::follow`] (gRPC
//! `Subscribe` from the cursor), [`node::poll_headers`] (the headers `poh_headers` lacks), a
//! coordinator that batches rows ([`batch`]) and works out which header seals which row
//! ([`seal`]), and a [`writer`] that commits each batch with the cursor in one SQL transaction
//! ([`db`]) while the next batch fills.
//!
//! The node's side retries by itself: the subscription resumes after the last record, the
//! poller at the next height. Whatever goes wrong with the database (a lost connection, a
//! refused or hung statement) ends the session, and a new one starts from what the database
//! holds, after a backoff: every commit is whole, so starting again from it is exact. Only the
//! rows waiting for a parent ([`waiting`]) outlive a session, and an entry leaves them only
//! once the commit that ended its wait is durable.

mod batch;
mod db;
mod node;
mod progress;
mod row;
mod seal;
mod target;
mod waiting;
mod writer;

use std::{path::PathBuf, sync::Arc, time::Duration};

use tokio::{sync::mpsc, task::JoinHandle, time::Instant};
use tokio_util::sync::CancellationToken;

use self::{
    batch::Batch,
    node::{Feed, Node},
    progress::Progress,
    seal::Sealer,
    target::Target,
    waiting::Waiting,
    writer::{Op, Writer, write},
};
use crate::client::{EndpointArgs, NodeHttp};

/// Records waiting between the subscription and the coordinator.
const FEED: usize = 1024;

/// `poh index`.
#[derive(clap::Args, Debug)]
pub struct IndexArgs {
    /// The database, as a URL (`postgresql://USER:PASSWORD@HOST:PORT/DB`) or `key=value`
    /// pairs. `sslmode=require` (or --pg-ca) connects with TLS, verified against the
    /// system's roots or --pg-ca; otherwise there is no TLS.
    #[arg(
        long,
        env = "POH_INDEX_POSTGRES",
        hide_env_values = true,
        value_name = "URL"
    )]
    postgres: String,
    /// Trust a database server certificate this CA issued (PEM); turns TLS on.
    #[arg(long, value_name = "FILE")]
    pg_ca: Option<PathBuf>,
    #[command(flatten)]
    endpoints: EndpointArgs,
    /// The same node's HTTP address: its chain id (`GET /v1/poh`) and its sealed headers
    /// (`GET /v1/headers`).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Rows per SQL transaction at most.
    #[arg(long, default_value_t = 5000)]
    batch_rows: usize,
    /// Milliseconds a row waits for the rest of its batch at most.
    #[arg(long, default_value_t = 200)]
    batch_ms: u64,
    /// Milliseconds between two reads of the node's headers once they are all indexed.
    #[arg(long, default_value_t = 500)]
    headers_ms: u64,
    /// Milliseconds between two progress lines at most.
    #[arg(long, default_value_t = 1000)]
    progress_ms: u64,
    /// Progress as JSON lines: `{"next_seq","rows","rows_per_s","headers"}`.
    #[arg(long)]
    json: bool,
}

/// Why a session of the indexer ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IndexError {
    /// Settings that cannot work: the command stops.
    #[error("{0}")]
    Config(String),
    /// The database refused a statement or could not be reached.
    #[error("database {shown}: {}", pg_text(.error))]
    Db {
        /// Host and database.
        shown: String,
        error: tokio_postgres::Error,
    },
    /// The node could not be reached, or answered with something else than asked.
    #[error("{0}")]
    Node(String),
    /// A header that does not hash to its `header_id`, or not the one asked for.
    #[error("the node served a bad header at height {height}: {why}")]
    BadHeader { height: u64, why: String },
    /// `poh_headers` misses heights, so the seqs the later ones seal are unknown.
    #[error(
        "poh_headers holds {count} headers of {chain_id}, not heights 0..{next_height}: \
         delete its rows of that chain from the first missing height on"
    )]
    Gap {
        chain_id: String,
        count: i64,
        next_height: i64,
    },
    /// A commit took longer than this: the connection is taken for lost.
    #[error("the database took more than {0:?} over one commit")]
    Timeout(Duration),
    /// The writer task ended without saying why (it panicked).
    #[error("the database writer stopped")]
    WriterGone,
}

/// A PostgreSQL error with what the server said, not only "db error".
fn pg_text(e: &tokio_postgres::Error) -> String {
    match (e.as_db_error(), std::error::Error::source(e)) {
        (Some(db), _) => db.to_string(),
        (None, Some(source)) => format!("{e}: {source}"),
        (None, None) => e.to_string(),
    }
}

/// Exponential backoff, from 100 ms to at most 5 s.
#[derive(Debug)]
pub(super) struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Self(Self::FIRST)
    }
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    pub(super) fn reset(&mut self) {
        self.0 = Self::FIRST;
    }

    pub(super) fn next(&mut self) -> Duration {
        let now = self.0;
        self.0 = (now * 2).min(Self::MAX);
        now
    }

    pub(super) async fn wait(&mut self) {
        tokio::time::sleep(self.next()).await;
    }
}

pub fn index(args: &IndexArgs) -> anyhow::Result<()> {
    crate::init_logging("info");
    if args.batch_rows == 0 {
        anyhow::bail!("--batch-rows must be at least 1");
    }
    let target = Target::new(&args.postgres, args.pg_ca.as_deref())?;
    // Two workers: the subscription's decoding and the batch's encoding run side by side.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let node = Arc::new(Node {
            endpoints: args.endpoints.channels()?,
            http: NodeHttp::new(&args.url, args.endpoints.tls(), args.endpoints.timeout())?,
            headers_every: Duration::from_millis(args.headers_ms.max(10)),
        });
        let stop = CancellationToken::new();
        tokio::spawn(stop_on_signals(stop.clone()));
        run(args, &target, node, &stop).await?;
        anyhow::Ok(())
    })
}

/// Cancels `stop` on SIGINT or SIGTERM.
async fn stop_on_signals(stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        tracing::warn!("cannot watch SIGTERM; only SIGINT stops the indexer cleanly");
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    stop.cancel();
}

/// Sleeps `how_long`; whether `stop` came first.
async fn stopped_during(stop: &CancellationToken, how_long: Duration) -> bool {
    tokio::select! {
        () = stop.cancelled() => true,
        () = tokio::time::sleep(how_long) => false,
    }
}

/// Sessions, one after the other, until `stop`.
async fn run(
    args: &IndexArgs,
    target: &Target,
    node: Arc<Node>,
    stop: &CancellationToken,
) -> Result<(), IndexError> {
    let mut backoff = Backoff::default();
    let chain_id = loop {
        let answer = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            answer = node.chain_id() => answer,
        };
        match answer {
            Ok(id) => break id,
            Err(e) => tracing::warn!(error = %e, "cannot learn the node's chain id; retrying"),
        }
        if stopped_during(stop, backoff.next()).await {
            return Ok(());
        }
    };
    tracing::info!(chain_id, database = target.shown(), "indexing");
    let waiting = Arc::new(std::sync::Mutex::new(Waiting::default()));
    let progress = Arc::new(Progress::new(
        args.json,
        Duration::from_millis(args.progress_ms),
    ));
    backoff.reset();
    loop {
        let before = progress.committed();
        match session(args, target, &node, &chain_id, stop, &progress, &waiting).await {
            Ok(()) => {
                progress.print();
                return Ok(());
            }
            // Settings, or a table another hand changed: no retry mends them.
            Err(e @ (IndexError::Config(_) | IndexError::Gap { .. })) => return Err(e),
            Err(e) => {
                if progress.committed() > before {
                    backoff.reset();
                }
                tracing::warn!(error = %e, "indexing stopped; starting again from the database");
            }
        }
        if stopped_during(stop, backoff.next()).await {
            progress.print();
            return Ok(());
        }
    }
}

/// Aborts the session's tasks when it ends, however it ends.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// One connection's worth of indexing: until `stop` (`Ok`) or a failure.
async fn session(
    args: &IndexArgs,
    target: &Target,
    node: &Arc<Node>,
    chain_id: &str,
    stop: &CancellationToken,
    progress: &Arc<Progress>,
    waiting: &Arc<std::sync::Mutex<Waiting>>,
) -> Result<(), IndexError> {
    let db = tokio::select! {
        () = stop.cancelled() => return Ok(()),
        db = target.connect() => db?,
    };
    tokio::select! {
        () = stop.cancelled() => return Ok(()),
        held = db.hold(chain_id) => held?,
    }
    let resume = db.resume(chain_id).await?;
    tracing::info!(
        next_seq = resume.next_seq,
        headers = resume.next_height,
        from_seq = resume.start_seq(),
        "resuming"
    );
    progress.resumed(resume.next_seq, resume.next_height);
    if !writer::lock(waiting).loaded {
        let pending = db.pending(chain_id).await?;
        let mut waiting = writer::lock(waiting);
        for (tx_id, parents) in &pending {
            waiting.add(tx_id, parents);
        }
        waiting.loaded = true;
        tracing::info!(rows = waiting.len(), "transactions waiting for a parent");
    }
    let mut sealer = Sealer::new(&resume);
    let (feed_tx, mut feed) = mpsc::channel(FEED);
    let (heads_tx, mut heads) = mpsc::channel(2);
    let _tasks = Tasks(vec![
        tokio::spawn(node::follow(node.clone(), resume.start_seq(), feed_tx)),
        tokio::spawn(node::poll_headers(
            node.clone(),
            chain_id.to_string(),
            sealer.next_height(),
            heads_tx,
        )),
    ]);
    let (ops, ops_rx) = mpsc::channel(2);
    let mut writer = Writer {
        ops,
        task: tokio::spawn(write(
            db,
            chain_id.to_string(),
            ops_rx,
            progress.clone(),
            waiting.clone(),
        )),
    };
    let mut batch = Batch::new(resume.start_seq());
    let wait = Duration::from_millis(args.batch_ms);
    loop {
        let deadline = batch.since.map_or_else(far_future, |t| t + wait);
        tokio::select! {
            biased;
            () = stop.cancelled() => {
                let last = batch.pending().then(|| {
                    let (rows, next_seq) = batch.take(&mut sealer);
                    Op::Rows { rows, next_seq }
                });
                return writer.finish(last).await;
            }
            ended = &mut writer.task => return Err(match ended {
                Ok(Err(e)) => e,
                _ => IndexError::WriterGone,
            }),
            page = heads.recv() => {
                let page = page.ok_or_else(|| ended("header poller"))?;
                let mut out = Vec::with_capacity(page.len());
                for h in page {
                    let items = u64::try_from(h.row.item_count).unwrap_or(0);
                    let seal = sealer.header(&h.header_id, items);
                    batch.seal(&seal.span);
                    out.push((h.row, seal));
                }
                writer.send(Op::Headers(out)).await?;
            }
            item = feed.recv() => {
                match item.ok_or_else(|| ended("subscription"))? {
                    Feed::Record(record) => batch.push(record, &mut sealer),
                    Feed::Passed(next_seq) => {
                        sealer.passed(next_seq);
                        batch.pass(next_seq);
                    }
                }
                if batch.full(args.batch_rows) {
                    let (rows, next_seq) = batch.take(&mut sealer);
                    writer.send(Op::Rows { rows, next_seq }).await?;
                }
            }
            () = tokio::time::sleep_until(deadline), if batch.pending() => {
                let (rows, next_seq) = batch.take(&mut sealer);
                writer.send(Op::Rows { rows, next_seq }).await?;
            }
        }
    }
}

/// A task of the session that should run as long as it does ended (it panicked).
fn ended(task: &str) -> IndexError {
    IndexError::Node(format!("the {task} task ended"))
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}
