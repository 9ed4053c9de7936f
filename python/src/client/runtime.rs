//! The one tokio runtime of the process, which every client's channels, calls and
//! subscriptions run on, and [`Tokio`], which hands it to pyo3-async-runtimes for
//! `AsyncClient`'s futures.
//!
//! A forked child (a pre-fork server's worker, `multiprocessing`) inherits the parent's
//! runtime without its threads, so the first client made in the child makes the child a
//! runtime of its own; a client made before the fork refuses to be used in the child (its
//! connections are the parent's) rather than wait forever.

use std::{
    cell::OnceCell,
    future::Future,
    pin::Pin,
    sync::{Mutex, PoisonError},
};

use pyo3_async_runtimes::{
    TaskLocals,
    generic::{ContextExt, Runtime as AsyncRuntime},
};
use tokio::runtime::Runtime;

use crate::error::{Error, Result};

/// This process's runtime and the process it was made in.
static RUNTIME: Mutex<Option<(u32, &'static Runtime)>> = Mutex::new(None);

/// The runtime of this process, made by its first client.
pub fn runtime() -> Result<&'static Runtime> {
    let mut slot = RUNTIME.lock().unwrap_or_else(PoisonError::into_inner);
    let pid = std::process::id();
    if let Some((made_in, runtime)) = *slot
        && made_in == pid
    {
        return Ok(runtime);
    }
    // A few workers are plenty for network calls; one per core on a large machine would be
    // threads a Python process never uses.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        // pyo3-async-runtimes delivers each result on a blocking thread that waits for the
        // GIL: hundreds of calls ending at once would otherwise make hundreds of threads.
        .max_blocking_threads(16)
        .thread_name("poh-client")
        .enable_all()
        .build()
        .map_err(|e| Error::Config(format!("cannot start the client's runtime: {e}")))?;
    // Never dropped: the process keeps it to its end, and a forked child's copy, whose
    // threads were never forked, has none to stop.
    let runtime: &'static Runtime = Box::leak(Box::new(runtime));
    *slot = Some((pid, runtime));
    Ok(runtime)
}

/// The runtime as pyo3-async-runtimes sees it: tasks go to the runtime whose context they are
/// spawned in, which `AsyncClient` enters before it makes each future, so a forked child's
/// futures run on the child's runtime. (The crate's own tokio runtime is made once and kept
/// across a fork.)
pub struct Tokio;

tokio::task_local! {
    /// The asyncio event loop (and context) that awaits the task.
    static TASK_LOCALS: OnceCell<TaskLocals>;
}

impl AsyncRuntime for Tokio {
    type JoinError = tokio::task::JoinError;
    type JoinHandle = tokio::task::JoinHandle<()>;

    fn spawn<F>(fut: F) -> Self::JoinHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        tokio::spawn(fut)
    }

    fn spawn_blocking<F>(f: F) -> Self::JoinHandle
    where
        F: FnOnce() + Send + 'static,
    {
        tokio::task::spawn_blocking(f)
    }
}

impl ContextExt for Tokio {
    fn scope<F, R>(locals: TaskLocals, fut: F) -> Pin<Box<dyn Future<Output = R> + Send>>
    where
        F: Future<Output = R> + Send + 'static,
    {
        Box::pin(TASK_LOCALS.scope(OnceCell::from(locals), fut))
    }

    fn get_task_locals() -> Option<TaskLocals> {
        TASK_LOCALS
            .try_with(|locals| locals.get().cloned())
            .unwrap_or_default()
    }
}
