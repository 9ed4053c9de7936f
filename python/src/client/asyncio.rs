//! [`AsyncClient`]: `Client`'s calls for asyncio. Each method starts the call on the process's
//! tokio runtime at once and returns an asyncio future of its answer (pyo3-async-runtimes);
//! `list` and `subscribe` return async iterators. Nothing holds the GIL while it waits.

use std::{future::Future, path::PathBuf, sync::Arc};

use poh_proto::v1 as pb;
use pyo3::{exceptions::PyStopAsyncIteration, prelude::*};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::{
    calls::{Calls, Cursor, EndpointList, Settings, next_record},
    convert::Answer,
    runtime::Tokio,
};
use crate::{error::Result, tx::Tx};

/// An asyncio future of `call`'s answer, or of its error as the blocking client raises it.
fn awaitable<'py, T, F>(py: Python<'py>, calls: &Calls, call: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    spawn(py, calls, async move { Ok(Answer(call.await)) })
}

/// An asyncio future of the next item `call` gives; `None` ends the iteration.
fn next_item<'py, T, F>(py: Python<'py>, calls: &Calls, call: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Result<Option<T>>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    spawn(py, calls, async move {
        match call.await {
            Ok(Some(item)) => Ok(Answer(Ok(item))),
            Ok(None) => Err(PyStopAsyncIteration::new_err(())),
            Err(e) => Ok(Answer(Err(e))),
        }
    })
}

/// `future` started on the client's runtime, as an asyncio future of the current event loop.
fn spawn<'py, T, F>(py: Python<'py>, calls: &Calls, future: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    // `Tokio` spawns on the runtime whose context this is.
    let _context = calls.runtime()?.enter();
    pyo3_async_runtimes::generic::future_into_py::<Tokio, _, _>(py, future)
}

/// An asyncio client of one or more nodes' gRPC API: the blocking `Client`'s methods, each
/// returning an asyncio future, and its settings.
///
/// Every call starts when the method is called (inside a running event loop) and runs on
/// the process's one tokio runtime, shared with every `Client`; thousands may be in flight
/// from one event loop. Errors are the blocking client's: `ClientError`, `ExpiredError`,
/// `ValueError`.
#[pyclass(module = "poh", frozen)]
pub struct AsyncClient {
    calls: Arc<Calls>,
}

#[pymethods]
impl AsyncClient {
    #[new]
    #[pyo3(signature = (endpoints = EndpointList::default(), *, tls_ca = None, tls_pin = None,
                        insecure = false, tls_cert = None, tls_key = None, token_file = None,
                        timeout = 5.0, http = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        endpoints: EndpointList,
        tls_ca: Option<PathBuf>,
        tls_pin: Option<String>,
        insecure: bool,
        tls_cert: Option<PathBuf>,
        tls_key: Option<PathBuf>,
        token_file: Option<PathBuf>,
        timeout: f64,
        http: Option<String>,
    ) -> PyResult<Self> {
        let settings = Settings {
            endpoints,
            tls_ca,
            tls_pin,
            insecure,
            tls_cert,
            tls_key,
            token_file,
            timeout,
            http,
        };
        Ok(Self {
            calls: Arc::new(Calls::new(py, "AsyncClient", settings)?),
        })
    }

    /// `Client.submit`: the transaction's `Ack`.
    fn submit<'py>(&self, py: Python<'py>, tx: &Tx) -> PyResult<Bound<'py, PyAny>> {
        let (calls, tx) = (self.calls.clone(), poh_node::tx_to_pb(tx.0.clone()));
        awaitable(py, &self.calls, async move { calls.submit(tx).await })
    }

    /// `Client.submit_batch`: one `Ack` per transaction, in order.
    fn submit_batch<'py>(
        &self,
        py: Python<'py>,
        txs: Vec<PyRef<'py, Tx>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let txs: Vec<pb::Tx> = txs
            .iter()
            .map(|t| poh_node::tx_to_pb(t.0.clone()))
            .collect();
        let calls = self.calls.clone();
        awaitable(
            py,
            &self.calls,
            async move { calls.submit_batch(txs).await },
        )
    }

    /// `Client.status`.
    fn status<'py>(&self, py: Python<'py>, tx_id: String) -> PyResult<Bound<'py, PyAny>> {
        let calls = self.calls.clone();
        awaitable(py, &self.calls, async move { calls.status(tx_id).await })
    }

    /// `Client.get_tx`: the `Record`, or `None` when the node does not hold it.
    fn get_tx<'py>(&self, py: Python<'py>, tx_id: String) -> PyResult<Bound<'py, PyAny>> {
        let calls = self.calls.clone();
        awaitable(py, &self.calls, async move { calls.get_tx(tx_id).await })
    }

    /// `Client.prove`: the proof's JSON, parsed, for `verify_proof`.
    fn prove<'py>(&self, py: Python<'py>, tx_id: String) -> PyResult<Bound<'py, PyAny>> {
        let calls = self.calls.clone();
        awaitable(py, &self.calls, async move { calls.prove(tx_id).await })
    }

    /// `Client.list`, as an async iterator of `Page`s.
    #[pyo3(signature = (holder_id, from_seq = 0, limit = 100))]
    fn list(&self, holder_id: String, from_seq: u64, limit: u32) -> Result<AsyncPages> {
        Ok(AsyncPages {
            calls: self.calls.clone(),
            cursor: Arc::new(Mutex::new(Cursor::new(holder_id, from_seq, limit)?)),
        })
    }

    /// `Client.subscribe`, as an async iterator of `Record`s. The call is made by `async with`
    /// or by the first step of the iteration, whichever comes first.
    #[pyo3(signature = (from_seq = 0))]
    fn subscribe(&self, from_seq: u64) -> AsyncSubscription {
        AsyncSubscription {
            calls: self.calls.clone(),
            from_seq,
            feed: Arc::new(Mutex::new(Feed::Unopened)),
            closed: CancellationToken::new(),
        }
    }
}

/// The pages of `AsyncClient.list`: `async for` over it for `Page`s.
#[pyclass(module = "poh", frozen)]
pub struct AsyncPages {
    calls: Arc<Calls>,
    /// Behind a lock held across the call, so steps taken together still go in order.
    cursor: Arc<Mutex<Cursor>>,
}

#[pymethods]
impl AsyncPages {
    fn __aiter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (calls, cursor) = (self.calls.clone(), self.cursor.clone());
        next_item(py, &self.calls, async move {
            cursor.lock().await.next(&calls).await
        })
    }
}

/// Where an async subscription is.
enum Feed {
    Unopened,
    Open(Box<tonic::Streaming<pb::TxRecord>>),
    /// Closed, ended by the node, or failed: the iteration is over.
    Over,
}

/// An async subscription: `async for` over it for `Record`s. `close()` (or leaving an
/// `async with` block) ends it, and a step waiting for the next record then ends the
/// iteration.
#[pyclass(module = "poh", frozen)]
pub struct AsyncSubscription {
    calls: Arc<Calls>,
    from_seq: u64,
    feed: Arc<Mutex<Feed>>,
    closed: CancellationToken,
}

impl AsyncSubscription {
    /// The next record, opening the subscription first if need be; `None` once it is over.
    fn step(&self, open_only: bool) -> impl Future<Output = Result<Option<super::Record>>> + use<> {
        let (calls, from_seq) = (self.calls.clone(), self.from_seq);
        let (feed, closed) = (self.feed.clone(), self.closed.clone());
        async move {
            let mut feed = feed.lock().await;
            let read = async {
                if matches!(*feed, Feed::Unopened) {
                    *feed = Feed::Open(Box::new(calls.subscribe(from_seq).await?));
                }
                match &mut *feed {
                    Feed::Open(stream) if !open_only => next_record(stream).await,
                    _ => Ok(None),
                }
            };
            let next = tokio::select! {
                biased;
                () = closed.cancelled() => Ok(None),
                next = read => next,
            };
            let over = match &next {
                Ok(Some(_)) => false,
                Ok(None) => !open_only || closed.is_cancelled(),
                Err(_) => true,
            };
            if over {
                *feed = Feed::Over;
            }
            next
        }
    }
}

#[pymethods]
impl AsyncSubscription {
    fn __aiter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        next_item(py, &self.calls, self.step(false))
    }

    /// Ends the subscription: the node stops sending, and a step waiting for a record ends
    /// the iteration.
    fn close(&self) {
        self.closed.cancel();
        // With a step waiting, the lock is its: that step drops the stream as it ends.
        if let Ok(mut feed) = self.feed.try_lock() {
            *feed = Feed::Over;
        }
    }

    /// `close()`, as an awaitable.
    fn aclose<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.close();
        awaitable(py, &self.calls, async { Ok(()) })
    }

    /// Opens the subscription (raising as the call would) and gives it to the block.
    fn __aenter__<'py>(slf: PyRef<'py, Self>, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (open, calls) = (slf.step(true), slf.calls.clone());
        let this: Py<Self> = slf.into();
        awaitable(py, &calls, async move {
            open.await?;
            Ok(this)
        })
    }

    fn __aexit__<'py>(
        &self,
        py: Python<'py>,
        _kind: Option<&Bound<'py, PyAny>>,
        _value: Option<&Bound<'py, PyAny>>,
        _traceback: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.aclose(py)
    }
}
