//! [`FragmentWriter`]: the node's task that writes the fragments of every sealed height, in
//! height order, and only then moves the durable marker [`PROGRESS_KEY`].
//!
//! A height is never skipped: a failed write is retried with backoff (one log line per
//! round) until it succeeds or the node stops, and a restart resumes from the marker,
//! rewriting that height's fragments whole (a put replaces an object, so a half-written
//! height is harmless). The sealer's watch channel only wakes the writer; how many headers
//! exist is read from the store, so headers sealed before a restart are covered too.
//!
//! A batch must hold every item of its header (records + child headers = `item_count`).
//! One that does not (its records expired before fragments were configured) is not written:
//! the writer logs what is missing, counts `poh_fragment_batches_incomplete_total`, and stays
//! at that height until the node stops, so the marker never claims a batch its fragments
//! cannot rebuild.

use std::{sync::Arc, time::Duration};

use futures_util::future::join_all;
use object_store::{ObjectStoreExt as _, PutPayload};
use poh_store::Store;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{
    FragmentError, PROGRESS_KEY, SealedBatch, format,
    location::{self, Location},
};
use crate::{
    NodeError,
    config::{FragmentsConfig, check_coding},
    metrics::FragmentMetrics,
};

/// The first pause after a failed round of writes; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Writes the fragments of every sealed height.
pub struct FragmentWriter {
    store: Arc<dyn Store>,
    locations: Vec<Location>,
    data: usize,
    parity: usize,
    metrics: FragmentMetrics,
}

impl FragmentWriter {
    /// A writer to `config`'s locations (opened now: a local directory is created, a bad
    /// location is an error before the node starts).
    pub fn new(
        config: &FragmentsConfig,
        store: Arc<dyn Store>,
        metrics: FragmentMetrics,
    ) -> Result<Self, NodeError> {
        check_coding(config.data, config.parity).map_err(NodeError::Config)?;
        let locations = location::open_all(config)?;
        if locations.is_empty() {
            return Err(NodeError::Config(
                "fragments.locations is empty: there is nowhere to write".into(),
            ));
        }
        Ok(Self {
            store,
            locations,
            data: config.data,
            parity: config.parity,
            metrics,
        })
    }

    /// Writes every sealed height's fragments until `shutdown`; a storage failure ends it
    /// with the error (the node then stops, as for the sealer).
    pub async fn run(
        self,
        mut sealed: watch::Receiver<u64>,
        shutdown: CancellationToken,
    ) -> Result<(), NodeError> {
        let store = self.store.clone();
        let mut next = blocking(move || Ok(store.progress(PROGRESS_KEY)?.unwrap_or(0))).await?;
        self.metrics.height.set(next as f64);
        loop {
            let announced = *sealed.borrow_and_update();
            let store = self.store.clone();
            let stored = blocking(move || Ok(store.header_head()?.map_or(0, |h| h.height))).await?;
            while next < announced.max(stored) {
                if !self.write_height(next, &shutdown).await? {
                    return Ok(());
                }
                next += 1;
            }
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(()),
                changed = sealed.changed() => {
                    if changed.is_err() {
                        // The sealer is gone (the node is stopping).
                        shutdown.cancelled().await;
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Writes height `height`'s fragments, then the marker past it. `false`: stopped first.
    async fn write_height(
        &self,
        height: u64,
        shutdown: &CancellationToken,
    ) -> Result<bool, NodeError> {
        let store = self.store.clone();
        let (k, m) = (self.data, self.parity);
        let prepared = blocking(move || {
            let batch = SealedBatch::read(store.as_ref(), height)?.ok_or(NodeError::TaskFailed(
                "fragment writer (a sealed header is missing)",
            ))?;
            if let Err(incomplete) = batch.check_complete(store.as_ref()) {
                return Ok(Err(incomplete));
            }
            let bytes = batch.encode()?;
            let header_id = batch.header.id();
            Ok(Ok((
                header_id,
                format::encode(&batch.header.hash(), &bytes, k, m)?,
            )))
        })
        .await?;
        let (header_id, fragments) = match prepared {
            Ok(prepared) => prepared,
            Err(incomplete) => {
                // Nothing this node does puts the records back while it runs, so the writer
                // stays here; never skipping keeps the TTL from taking anything after it.
                self.metrics.incomplete.increment(1);
                tracing::error!(
                    height,
                    error = %incomplete,
                    "not writing this height's fragments, nor any after it: fragments of an \
                     incomplete batch could not restore what it lacks, and the TTL now keeps \
                     every transaction from this height on. To go on, stop the node and put \
                     back a copy of its data directory that still holds those records, or \
                     remove [fragments] locations to expire without fragments (see \
                     docs/durability.md, Fragments)"
                );
                shutdown.cancelled().await;
                return Ok(false);
            }
        };
        let mut pending: Vec<usize> = (0..fragments.len()).collect();
        let mut backoff = FIRST_BACKOFF;
        loop {
            let puts = pending
                .iter()
                .map(|&i| self.put(&header_id, i, &fragments[i]));
            let results = join_all(puts).await;
            let mut failed = Vec::new();
            let mut first_error = None;
            for (&i, result) in pending.iter().zip(results) {
                match result {
                    Ok(()) => self.metrics.written.increment(1),
                    Err(e) => {
                        self.metrics.write_failures.increment(1);
                        failed.push(i);
                        first_error.get_or_insert(e);
                    }
                }
            }
            pending = failed;
            let Some(error) = first_error else { break };
            tracing::warn!(
                height,
                %header_id,
                fragments = ?pending,
                %error,
                retry_in = ?backoff,
                "cannot write fragments; retrying (the TTL keeps this height's transactions until they are written)"
            );
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(false),
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        // A full disk holds the marker back (so the TTL keeps the height) until it has room.
        let mut backoff = FIRST_BACKOFF;
        loop {
            let store = self.store.clone();
            match blocking(move || Ok(store.set_progress(PROGRESS_KEY, height + 1)?)).await {
                Ok(()) => break,
                Err(NodeError::Store(e)) if e.is_unavailable() => {
                    tracing::warn!(height, error = %e, retry_in = ?backoff, "cannot move the fragments marker; retrying");
                }
                Err(e) => return Err(e),
            }
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(false),
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        self.metrics.height.set((height + 1) as f64);
        tracing::debug!(height, %header_id, "fragments written");
        Ok(true)
    }

    async fn put(&self, header_id: &str, index: usize, bytes: &[u8]) -> Result<(), FragmentError> {
        let location = location::for_index(&self.locations, index)
            .ok_or(FragmentError::FragmentFormat("no locations"))?;
        location
            .store()
            .put(
                &location.object(header_id, index),
                PutPayload::from(bytes.to_vec()),
            )
            .await
            .map(drop)
            .map_err(|source| FragmentError::Object {
                location: location.name.clone(),
                source,
            })
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, NodeError> + Send + 'static,
) -> Result<T, NodeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| NodeError::TaskFailed("fragment writer"))?
}
