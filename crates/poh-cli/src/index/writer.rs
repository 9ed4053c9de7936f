//! The writer: one task per session that commits what the coordinator hands it, in order,
//! while the coordinator fills the next batch.

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use tokio::{sync::mpsc, task::JoinHandle};

use super::{
    IndexError,
    db::{Db, HeaderRow},
    progress::Progress,
    row::Row,
    seal::Seal,
    waiting::Waiting,
};

/// How long a stopping indexer waits for the batches it handed on to commit.
const DRAIN: Duration = Duration::from_secs(10);
/// How long one commit may take before the connection counts as lost: a database host that
/// vanished without closing the connection would otherwise hold the session until TCP gives
/// up, many minutes later.
const OP_TIMEOUT: Duration = Duration::from_secs(60);

/// What the coordinator hands the writer, in order.
pub(super) enum Op {
    Rows { rows: Vec<Row>, next_seq: u64 },
    Headers(Vec<(HeaderRow, Seal)>),
}

/// The writer task and the way to it.
pub(super) struct Writer {
    pub ops: mpsc::Sender<Op>,
    pub task: JoinHandle<Result<(), IndexError>>,
}

impl Writer {
    /// Hands `op` on; when the writer has stopped, why.
    pub(super) async fn send(&mut self, op: Op) -> Result<(), IndexError> {
        if self.ops.send(op).await.is_ok() {
            return Ok(());
        }
        match (&mut self.task).await {
            Ok(Err(e)) => Err(e),
            _ => Err(IndexError::WriterGone),
        }
    }

    /// Hands on `last` and lets the writer commit what it was handed, for a while: a
    /// database that is gone or hangs must not hold a stopping indexer (the next one writes
    /// those rows again).
    pub(super) async fn finish(self, last: Option<Op>) -> Result<(), IndexError> {
        let Self { ops, mut task } = self;
        let waiting = &mut task;
        let drained = tokio::time::timeout(DRAIN, async move {
            // A writer that already stopped says why below.
            if let Some(op) = last {
                let _ = ops.send(op).await;
            }
            drop(ops);
            waiting.await.unwrap_or(Err(IndexError::WriterGone))
        })
        .await;
        drained.unwrap_or_else(|_| {
            task.abort();
            tracing::warn!(
                "the database did not take the last rows in time; the next start indexes \
                 them again"
            );
            Ok(())
        })
    }
}

/// Commits each op in order; the first failure ends it (and the session).
pub(super) async fn write(
    mut db: Db,
    chain_id: String,
    mut ops: mpsc::Receiver<Op>,
    progress: Arc<Progress>,
    waiting: Arc<Mutex<Waiting>>,
) -> Result<(), IndexError> {
    let late = || IndexError::Timeout(OP_TIMEOUT);
    while let Some(op) = ops.recv().await {
        match op {
            Op::Rows { rows, next_seq } => {
                let candidates = lock(&waiting).batch(&rows);
                let written = db.write_rows(&chain_id, &rows, &candidates, next_seq);
                let (cursor, resolved) = tokio::time::timeout(OP_TIMEOUT, written)
                    .await
                    .map_err(|_| late())??;
                lock(&waiting).resolved(&resolved);
                progress.rows(rows.len() as u64, cursor);
            }
            Op::Headers(headers) => {
                let written = db.write_headers(&chain_id, &headers);
                tokio::time::timeout(OP_TIMEOUT, written)
                    .await
                    .map_err(|_| late())??;
                if let Some((last, _)) = headers.last() {
                    progress.headers(u64::try_from(last.height).unwrap_or(0) + 1);
                }
            }
        }
    }
    Ok(())
}

/// The waiting rows; a writer that panicked holding them left them as they were.
pub(super) fn lock(waiting: &Mutex<Waiting>) -> MutexGuard<'_, Waiting> {
    waiting
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
