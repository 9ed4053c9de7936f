//! [`Client`]: a blocking gRPC client of one or more nodes, over the same channels, TLS and
//! token handling as the `poh` CLI (`poh_node::network::client`). Each call releases the GIL
//! while it waits, so other Python threads run.

use std::{future::Future, path::PathBuf, sync::Arc, time::Duration};

use poh_node::{
    network::client::{CallError, ClientTls, Endpoints},
    wire::{expired::Expired, protobuf::code_name},
};
use poh_proto::v1::{
    self as pb, dag_service_client::DagServiceClient, poh_service_client::PohServiceClient,
};
use pyo3::prelude::*;
use tonic::Code;

use crate::{
    error::{Error, Result},
    tx::Tx,
};

/// A node's answer to one transaction (`Ack`, SPEC §4).
#[pyclass(module = "poh", frozen, get_all)]
pub struct Ack {
    /// True when the transaction is stored (`STORED`) or already was (`DUPLICATE`).
    pub success: bool,
    /// `STORED`, `DUPLICATE`, `INVALID`, `CONFLICT`, `BAD_SIGNATURE`, `TOO_LARGE` or
    /// `INTERNAL`.
    pub code: &'static str,
    /// Why, when `success` is false.
    pub message: String,
    /// Its index in the node's stream of recorded mixins.
    pub poh_seq: u64,
    /// The PoH entry hash that recorded it (32 bytes when `success`).
    pub poh_hash: Vec<u8>,
}

#[pymethods]
impl Ack {
    fn __repr__(&self) -> String {
        format!(
            "Ack(success={}, code={:?}, poh_seq={}, message={:?})",
            if self.success { "True" } else { "False" },
            self.code,
            self.poh_seq,
            self.message
        )
    }
}

impl From<pb::Ack> for Ack {
    fn from(a: pb::Ack) -> Self {
        Self {
            success: a.success,
            code: pb::AckCode::try_from(a.code).map_or("ACK_CODE_UNSPECIFIED", |c| c.as_str_name()),
            message: a.message,
            poh_seq: a.poh_seq,
            poh_hash: a.poh_hash,
        }
    }
}

fn status_name(status: i32) -> &'static str {
    pb::TxStatus::try_from(status).map_or("TX_STATUS_UNSPECIFIED", |s| s.as_str_name())
}

/// What a node knows of a transaction (`QueryTransactionStatus`).
#[pyclass(module = "poh", frozen, get_all)]
pub struct Status {
    /// The transaction's id.
    pub tx_id: String,
    /// `UNKNOWN`, `PENDING`, `ORDERED` or `SEALED`.
    pub status: &'static str,
    /// A note from the node (an expired transaction's header, say).
    pub message: String,
    /// Its index in the node's stream of recorded mixins.
    pub poh_seq: u64,
    /// The PoH entry hash that recorded it (empty when `UNKNOWN`).
    pub poh_hash: Vec<u8>,
    /// Its explicit parents.
    pub parent_ids: Vec<String>,
    /// The header that sealed it, once `SEALED`.
    pub header_id: Option<String>,
}

#[pymethods]
impl Status {
    fn __repr__(&self) -> String {
        format!(
            "Status(tx_id={:?}, status={:?}, poh_seq={}, header_id={:?})",
            self.tx_id, self.status, self.poh_seq, self.header_id
        )
    }
}

/// A stored transaction and where it stands (`GetTx`).
#[pyclass(module = "poh", frozen, get_all)]
pub struct Record {
    /// The transaction, exactly as stored.
    pub tx: Tx,
    /// `PENDING`, `ORDERED` or `SEALED`.
    pub status: &'static str,
    /// Its index in the node's stream of recorded mixins.
    pub poh_seq: u64,
    /// The PoH entry hash that recorded it.
    pub poh_hash: Vec<u8>,
    /// The header that sealed it, once `SEALED`.
    pub header_id: Option<String>,
    /// When the node received it (Unix seconds).
    pub received_at: f64,
}

#[pymethods]
impl Record {
    fn __repr__(&self) -> String {
        format!(
            "Record(tx_id={:?}, status={:?}, poh_seq={}, header_id={:?})",
            self.tx.0.tx_id, self.status, self.poh_seq, self.header_id
        )
    }
}

/// A blocking client of one or more nodes' gRPC API.
///
/// `endpoints` is one `host:port` (or URL) or a list; each call starts at the next one and
/// fails over past endpoints that cannot be reached. TLS is on when `tls_ca`, `tls_pin`,
/// `insecure` or a client certificate is given, exactly as for the CLI's `--tls-ca`,
/// `--tls-pin`, `--insecure`, `--tls-cert`/`--tls-key`; `token_file` holds the bearer token.
/// `timeout` (seconds) bounds connecting and each answer.
#[pyclass(module = "poh", frozen)]
pub struct Client {
    /// Shared with the client's subscriptions, which read their streams on it.
    runtime: Arc<tokio::runtime::Runtime>,
    endpoints: Endpoints,
    timeout: Duration,
}

/// One endpoint or several.
#[derive(FromPyObject)]
enum EndpointList {
    One(String),
    Many(Vec<String>),
}

#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (endpoints = EndpointList::One("127.0.0.1:50051".into()), *, tls_ca = None,
                        tls_pin = None, insecure = false, tls_cert = None, tls_key = None,
                        token_file = None, timeout = 5.0))]
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
    ) -> PyResult<Self> {
        let endpoints = match endpoints {
            EndpointList::One(e) => vec![e],
            EndpointList::Many(list) => list,
        };
        let options = [tls_ca.is_some(), tls_pin.is_some(), insecure];
        if options.iter().filter(|set| **set).count() > 1 {
            return Err(
                Error::Config("give at most one of tls_ca, tls_pin and insecure".into()).into(),
            );
        }
        let identity = match (&tls_cert, &tls_key) {
            (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
            (None, None) => None,
            _ => return Err(Error::Config("tls_cert and tls_key go together".into()).into()),
        };
        let timeout = Duration::try_from_secs_f64(timeout)
            .ok()
            .filter(|t| !t.is_zero())
            .ok_or_else(|| {
                Error::Config(format!(
                    "timeout must be a positive number of seconds, not {timeout}"
                ))
            })?;
        if insecure {
            pyo3::PyErr::warn(
                py,
                &py.get_type::<pyo3::exceptions::PyUserWarning>(),
                c"poh.Client(insecure=True): TLS servers are not verified; any certificate is \
                  accepted and the token goes to whoever answers. Use tls_ca or tls_pin.",
                1,
            )?;
        }
        let tls = ClientTls::from_files(
            tls_ca.as_deref(),
            tls_pin.as_deref(),
            insecure,
            identity,
            token_file.as_deref(),
        )
        .map_err(Error::from)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("poh-client")
            .enable_all()
            .build()
            .map_err(|e| Error::Config(format!("cannot start the client's runtime: {e}")))?;
        let endpoints = {
            let _context = runtime.enter();
            Endpoints::new(&endpoints, timeout, &tls).map_err(Error::from)?
        };
        Ok(Self {
            runtime: Arc::new(runtime),
            endpoints,
            timeout,
        })
    }

    /// Submits one transaction (`PohService.Broadcast`; the payload may be any bytes). A
    /// refused transaction is an `Ack` with `success` false and its `code`; `ClientError` is
    /// for calls that fail as a whole (no node answered, authentication, overload).
    fn submit(&self, py: Python<'_>, tx: &Tx) -> Result<Ack> {
        let tx = poh_node::tx_to_pb(tx.0.clone());
        let timeout = self.timeout;
        let ack = self.call(py, |channel| {
            let request = self.endpoints.request(tx.clone());
            bounded(timeout, async move {
                PohServiceClient::new(channel).broadcast(request).await
            })
        })?;
        Ok(ack.into_inner().into())
    }

    /// Submits transactions in order over one stream (`PohService.BroadcastStream`); one
    /// `Ack` per transaction, in the same order.
    fn submit_batch(&self, py: Python<'_>, txs: Vec<PyRef<'_, Tx>>) -> Result<Vec<Ack>> {
        let txs: Vec<pb::Tx> = txs
            .iter()
            .map(|t| poh_node::tx_to_pb(t.0.clone()))
            .collect();
        let expected = txs.len();
        let timeout = self.timeout;
        let acks = self.call(py, |channel| {
            let request = self.endpoints.request(tokio_stream::iter(txs.clone()));
            async move {
                let mut answers = bounded(
                    timeout,
                    PohServiceClient::new(channel).broadcast_stream(request),
                )
                .await?
                .into_inner();
                let mut acks = Vec::with_capacity(expected);
                while acks.len() < expected {
                    match bounded(timeout, answers.message()).await? {
                        Some(ack) => acks.push(Ack::from(ack)),
                        None => {
                            return Err(tonic::Status::data_loss(format!(
                                "the node answered {} of {expected} transactions, then ended the stream",
                                acks.len()
                            )));
                        }
                    }
                }
                Ok(acks)
            }
        })?;
        Ok(acks)
    }

    /// What the node knows of `tx_id` (`DAGService.QueryTransactionStatus`); `status` is
    /// `UNKNOWN` when it has never seen it.
    fn status(&self, py: Python<'_>, tx_id: String) -> Result<Status> {
        let request = pb::StatusRequest { tx_id };
        let timeout = self.timeout;
        let answer = self
            .call(py, |channel| {
                let request = self.endpoints.request(request.clone());
                bounded(timeout, async move {
                    DagServiceClient::new(channel)
                        .query_transaction_status(request)
                        .await
                })
            })?
            .into_inner();
        Ok(Status {
            status: status_name(answer.status),
            tx_id: answer.tx_id,
            message: answer.message,
            poh_seq: answer.poh_seq,
            poh_hash: answer.poh_hash,
            parent_ids: answer.parent_ids,
            header_id: (!answer.header_id.is_empty()).then_some(answer.header_id),
        })
    }

    /// The stored transaction `tx_id` and where it stands (`PohService.GetTx`), or `None`
    /// when the node does not hold it.
    fn get_tx(&self, py: Python<'_>, tx_id: String) -> Result<Option<Record>> {
        let request = pb::GetTxRequest { tx_id };
        let timeout = self.timeout;
        let answer = self.call(py, |channel| {
            let request = self.endpoints.request(request.clone());
            bounded(timeout, async move {
                PohServiceClient::new(channel).get_tx(request).await
            })
        });
        match answer {
            Ok(answer) => record_from_pb(answer.into_inner()).map(Some),
            Err(Error::Client { code, .. }) if code == code_name(Code::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every transaction the node stores, from `from_seq` (`PohService.Subscribe`): what is
    /// stored first, then each one as it is stored, in `poh_seq` order, as `Record`s. The
    /// iteration ends when the node stops; to resume, subscribe again from the last
    /// `poh_seq` seen plus one. Transactions the node no longer holds (expired by its TTL)
    /// raise `ExpiredError` naming them: restore them on the node, or subscribe again from
    /// `to_seq + 1` to go on without them.
    #[pyo3(signature = (from_seq = 0))]
    fn subscribe(&self, py: Python<'_>, from_seq: u64) -> Result<Subscription> {
        let request = pb::SubscribeRequest { from_seq };
        let timeout = self.timeout;
        let stream = self.call(py, |channel| {
            let request = self.endpoints.request(request);
            bounded(timeout, async move {
                PohServiceClient::new(channel).subscribe(request).await
            })
        })?;
        Ok(Subscription {
            runtime: self.runtime.clone(),
            stream: Some(stream.into_inner()),
        })
    }
}

/// An open subscription: iterate it for `Record`s; each step waits, with the GIL released,
/// until the node stores the next transaction. `close()` (or leaving a `with` block) ends it.
#[pyclass(module = "poh")]
pub struct Subscription {
    runtime: Arc<tokio::runtime::Runtime>,
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
        let runtime = &self.runtime;
        let next = py.detach(|| runtime.block_on(stream.message()));
        match next {
            Ok(Some(record)) => record_from_pb(record).map(Some),
            Ok(None) => {
                self.stream = None;
                Ok(None)
            }
            Err(status) => {
                self.stream = None;
                Err(match Expired::from_status(&status) {
                    Some(run) => expired(&status, run),
                    None => Error::Client {
                        code: code_name(status.code()),
                        message: status.message().to_string(),
                    },
                })
            }
        }
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

fn record_from_pb(record: pb::TxRecord) -> Result<Record> {
    let tx = record.tx.ok_or_else(|| Error::Client {
        code: code_name(Code::Internal),
        message: "the node sent a record without its transaction".into(),
    })?;
    Ok(Record {
        tx: Tx(poh_node::tx_from_pb(tx)),
        status: status_name(record.status),
        poh_seq: record.poh_seq,
        poh_hash: record.poh_hash,
        header_id: (!record.header_id.is_empty()).then_some(record.header_id),
        received_at: record.received_at,
    })
}

impl Client {
    /// Runs `call` through the endpoints with the GIL released.
    fn call<T, F, Fut>(&self, py: Python<'_>, call: F) -> Result<T>
    where
        T: Send,
        F: FnMut(tonic::transport::Channel) -> Fut + Send,
        Fut: Future<Output = std::result::Result<T, tonic::Status>> + Send,
    {
        py.detach(|| self.runtime.block_on(self.endpoints.call(call)))
            .map(|(answer, _endpoint)| answer)
            .map_err(|e: CallError| match &e {
                // A subscription that meets expired seqs before its first record ends here.
                CallError::Refused { status, .. } => match Expired::from_status(status) {
                    Some(run) => expired(status, run),
                    None => Error::Client {
                        code: code_name(e.code()),
                        message: e.to_string(),
                    },
                },
                CallError::Unreachable(_) => Error::Client {
                    code: code_name(e.code()),
                    message: e.to_string(),
                },
            })
    }
}

/// The error of a subscription that reached transactions the node's TTL expired.
fn expired(status: &tonic::Status, run: Expired) -> Error {
    Error::Expired {
        message: status.message().to_string(),
        from_seq: run.from_seq,
        to_seq: run.to_seq,
        header_ids: run.header_ids,
    }
}

/// `answer`, or `DEADLINE_EXCEEDED` when it takes longer than `timeout`.
async fn bounded<T>(
    timeout: Duration,
    answer: impl Future<Output = std::result::Result<T, tonic::Status>>,
) -> std::result::Result<T, tonic::Status> {
    tokio::time::timeout(timeout, answer)
        .await
        .unwrap_or_else(|_| {
            Err(tonic::Status::deadline_exceeded(format!(
                "no answer within {timeout:?}"
            )))
        })
}
