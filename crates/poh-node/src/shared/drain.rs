//! The accept-and-drain shape every listener runs ([`accept_and_drain`]): a
//! [`CancellationToken`] to stop it, a [`JoinSet`] of tasks, and a semaphore acquired *before*
//! the next connection is taken, so a node at its connection limit leaves new connections
//! waiting outside (the kernel's backlog, the QUIC endpoint) instead of taking on more work.
//! On shutdown it stops accepting, gives the running tasks [`DRAIN_TIMEOUT`] to finish, and
//! cuts what is still busy. TCP and QUIC connections (ingress), and the relay's sends (the
//! network, below ingress), all run in it, which is why it is down here.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::{sync::Semaphore, task::JoinSet};
use tokio_util::sync::CancellationToken;

/// How long in-flight work gets to finish on shutdown, on every listener.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a loop takes its work from: a TCP listener, a QUIC endpoint, the relay's queue.
pub(crate) trait Source: Send {
    /// One piece of work, handed to a task of its own.
    type Item: Send + 'static;
    /// The next piece of work; `None` when there will be no more.
    fn next(&mut self) -> impl Future<Output = Option<Self::Item>> + Send;
    /// Stops taking work; called once, before the drain.
    fn stop(&mut self) {}
}

/// Runs `handle` on a task of its own for each item of `source`, at most `max_tasks` at once,
/// until `shutdown`; then stops the source and drains (see the module documentation).
pub(crate) async fn accept_and_drain<S, F, Fut>(
    name: &'static str,
    mut source: S,
    max_tasks: usize,
    shutdown: CancellationToken,
    mut handle: F,
) where
    S: Source,
    F: FnMut(S::Item) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(max_tasks.max(1)));
    let mut tasks = JoinSet::new();
    loop {
        let permit = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let item = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            item = source.next() => match item {
                Some(item) => item,
                None => break,
            },
        };
        while tasks.try_join_next().is_some() {}
        let task = handle(item);
        tasks.spawn(async move {
            task.await;
            drop(permit);
        });
    }
    source.stop();
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            listener = name,
            open = tasks.len(),
            "still busy after the drain timeout; cutting them"
        );
        tasks.shutdown().await;
    }
}
