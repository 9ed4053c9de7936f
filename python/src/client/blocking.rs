//! [`Client`]: a blocking gRPC client of one or more nodes, over the same channels, TLS and
//! token handling as the `poh` CLI (`poh_node::network::client`). Each call releases the GIL
//! while it waits, so other Python threads run.

use std::{path::PathBuf, sync::Arc};

use poh_proto::v1 as pb;
use pyo3::prelude::*;

use super::{
    calls::{Calls, Cursor, EndpointList, Settings, next_record},
    convert::{Ack, PageData, ProofText, Record, Status},
};
use crate::{error::Result, tx::Tx};

/// A blocking client of one or more nodes' gRPC API.
///
/// `endpoints` is one `host:port` (or URL) or a list; each call starts at the next one and
/// fails over past endpoints that cannot be reached. TLS is on when `tls_ca`, `tls_pin`,
/// `insecure` or a client certificate is given, exactly as for the CLI's `--tls-ca`,
/// `--tls-pin`, `--insecure`, `--tls-cert`/`--tls-key`; `token_file` holds the bearer token.
/// `timeout` (seconds) bounds connecting and each answer. `http` is the node's HTTP address,
/// which `prove` reads proofs from.
#[pyclass(module = "poh", frozen)]
pub struct Client {
    calls: Arc<Calls>,
}

#[pymethods]
impl Client {
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
            calls: Arc::new(Calls::new(py, "Client", settings)?),
        })
    }

    /// Submits one transaction (`PohService.Broadcast`; the payload may be any bytes). A
    /// refused transaction is an `Ack` with `success` false and its `code`; `ClientError` is
    /// for calls that fail as a whole (no node answered, authentication, overload).
    fn submit(&self, py: Python<'_>, tx: &Tx) -> Result<Ack> {
        let tx = poh_node::tx_to_pb(tx.0.clone());
        self.calls.block_on(py, self.calls.submit(tx))
    }

    /// Submits transactions in order over one stream (`PohService.BroadcastStream`); one
    /// `Ack` per transaction, in the same order.
    fn submit_batch(&self, py: Python<'_>, txs: Vec<PyRef<'_, Tx>>) -> Result<Vec<Ack>> {
        let txs: Vec<pb::Tx> = txs
            .iter()
            .map(|t| poh_node::tx_to_pb(t.0.clone()))
            .collect();
        self.calls.block_on(py, self.calls.submit_batch(txs))
    }

    /// What the node knows of `tx_id` (`DAGService.QueryTransactionStatus`); `status` is
    /// `UNKNOWN` when it has never seen it.
    fn status(&self, py: Python<'_>, tx_id: String) -> Result<Status> {
        self.calls.block_on(py, self.calls.status(tx_id))
    }

    /// The stored transaction `tx_id` and where it stands (`PohService.GetTx`), or `None`
    /// when the node does not hold it.
    fn get_tx(&self, py: Python<'_>, tx_id: String) -> Result<Option<Record>> {
        self.calls.block_on(py, self.calls.get_tx(tx_id))
    }

    /// One holder's transactions in `poh_seq` order from `from_seq` (`PohService.List`): an
    /// iterator of `Page`s of at most `limit` records, each asked for as the iteration
    /// reaches it, ending after the page the node says is the last (`more` false).
    #[pyo3(signature = (holder_id, from_seq = 0, limit = 100))]
    fn list(&self, holder_id: String, from_seq: u64, limit: u32) -> Result<Pages> {
        Ok(Pages {
            calls: self.calls.clone(),
            cursor: Cursor::new(holder_id, from_seq, limit)?,
        })
    }

    /// The inclusion proof of `tx_id` as `poh prove` fetches it (`GET /v1/tx/{tx_id}/proof`
    /// from the node at `http`), parsed from its JSON: check it with `verify_proof`.
    /// `ClientError` with code `NOT_FOUND` when the node does not hold the transaction or has
    /// not sealed it yet.
    fn prove(&self, py: Python<'_>, tx_id: String) -> Result<ProofText> {
        self.calls.block_on(py, self.calls.prove(tx_id))
    }

    /// Every transaction the node stores, from `from_seq` (`PohService.Subscribe`): what is
    /// stored first, then each one as it is stored, in `poh_seq` order, as `Record`s. The
    /// iteration ends when the node stops; to resume, subscribe again from the last
    /// `poh_seq` seen plus one. Transactions the node no longer holds (expired by its TTL)
    /// raise `ExpiredError` naming them: restore them on the node, or subscribe again from
    /// `to_seq + 1` to go on without them.
    #[pyo3(signature = (from_seq = 0))]
    fn subscribe(&self, py: Python<'_>, from_seq: u64) -> Result<Subscription> {
        let stream = self.calls.block_on(py, self.calls.subscribe(from_seq))?;
        Ok(Subscription {
            calls: self.calls.clone(),
            stream: Some(stream),
        })
    }
}

/// An open subscription: iterate it for `Record`s; each step waits, with the GIL released,
/// until the node stores the next transaction. `close()` (or leaving a `with` block) ends it.
#[pyclass(module = "poh")]
pub struct Subscription {
    calls: Arc<Calls>,
    stream: Option<tonic::Streaming<pb::TxRecord>>,
}

#[pymethods]
impl Subscription {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> Result<Option<Record>> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(None);
        };
        let next = self.calls.block_on(py, next_record(stream));
        if !matches!(next, Ok(Some(_))) {
            self.stream = None;
        }
        next
    }

    /// Ends the subscription (the node stops sending at once).
    fn close(&mut self) {
        self.stream = None;
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __exit__(
        &mut self,
        _kind: Option<&Bound<'_, PyAny>>,
        _value: Option<&Bound<'_, PyAny>>,
        _traceback: Option<&Bound<'_, PyAny>>,
    ) {
        self.close();
    }
}

/// The pages of `Client.list`: iterate it for `Page`s.
#[pyclass(module = "poh")]
pub struct Pages {
    calls: Arc<Calls>,
    cursor: Cursor,
}

#[pymethods]
impl Pages {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> Result<Option<PageData>> {
        let calls = &self.calls;
        calls.block_on(py, self.cursor.next(calls))
    }
}
