//! [`Calls`]: every call the clients make, once, as futures. `Client` runs them to completion
//! with the GIL released; `AsyncClient` hands them to asyncio. Both run them on the one tokio
//! runtime of the process ([`runtime`]).

use std::{future::Future, path::PathBuf, time::Duration};

use poh_node::{
    network::client::{CallError, ClientTls, Endpoints},
    wire::{expired::Expired, protobuf::code_name},
};
use poh_proto::v1::{
    self as pb, dag_service_client::DagServiceClient, poh_service_client::PohServiceClient,
};
use pyo3::prelude::*;
use tokio::runtime::Runtime;
use tonic::Code;

use super::{
    convert::{Ack, PageData, ProofText, Record, Status, malformed},
    http::NodeHttp,
    runtime::runtime,
};
use crate::error::{Error, Result};

/// One endpoint or several.
#[derive(FromPyObject)]
pub enum EndpointList {
    One(String),
    Many(Vec<String>),
}

impl Default for EndpointList {
    fn default() -> Self {
        Self::One("127.0.0.1:50051".into())
    }
}

/// A client's settings, as both constructors take them.
pub struct Settings {
    pub endpoints: EndpointList,
    pub tls_ca: Option<PathBuf>,
    pub tls_pin: Option<String>,
    pub insecure: bool,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
    pub timeout: f64,
    pub http: Option<String>,
}

/// The nodes a client calls, and how.
pub struct Calls {
    /// The process the client was made in, whose runtime runs its connections.
    pid: u32,
    runtime: &'static Runtime,
    endpoints: Endpoints,
    timeout: Duration,
    /// For `prove`, which only the HTTP API answers.
    http: Option<NodeHttp>,
}

impl Calls {
    /// Checks `settings` and makes the channels; `class` names the client in the warning an
    /// insecure one gives.
    pub fn new(py: Python<'_>, class: &str, settings: Settings) -> PyResult<Self> {
        let endpoints = match settings.endpoints {
            EndpointList::One(e) => vec![e],
            EndpointList::Many(list) => list,
        };
        let options = [
            settings.tls_ca.is_some(),
            settings.tls_pin.is_some(),
            settings.insecure,
        ];
        if options.iter().filter(|set| **set).count() > 1 {
            return Err(
                Error::Config("give at most one of tls_ca, tls_pin and insecure".into()).into(),
            );
        }
        let identity = match (&settings.tls_cert, &settings.tls_key) {
            (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
            (None, None) => None,
            _ => return Err(Error::Config("tls_cert and tls_key go together".into()).into()),
        };
        let timeout = Duration::try_from_secs_f64(settings.timeout)
            .ok()
            .filter(|t| !t.is_zero())
            .ok_or_else(|| {
                Error::Config(format!(
                    "timeout must be a positive number of seconds, not {}",
                    settings.timeout
                ))
            })?;
        if settings.insecure {
            let warning = std::ffi::CString::new(format!(
                "poh.{class}(insecure=True): TLS servers are not verified; any certificate is \
                 accepted and the token goes to whoever answers. Use tls_ca or tls_pin."
            ))
            .map_err(|e| Error::Config(e.to_string()))?;
            PyErr::warn(
                py,
                &py.get_type::<pyo3::exceptions::PyUserWarning>(),
                &warning,
                1,
            )?;
        }
        let tls = ClientTls::from_files(
            settings.tls_ca.as_deref(),
            settings.tls_pin.as_deref(),
            settings.insecure,
            identity,
            settings.token_file.as_deref(),
        )
        .map_err(Error::from)?;
        let runtime = runtime()?;
        let _context = runtime.enter();
        let endpoints = Endpoints::new(&endpoints, timeout, &tls).map_err(Error::from)?;
        let http = settings
            .http
            .map(|url| NodeHttp::new(&url, &tls, timeout))
            .transpose()?;
        Ok(Self {
            pid: std::process::id(),
            runtime,
            endpoints,
            timeout,
            http,
        })
    }

    /// The client's runtime, unless the process has forked since the client was made: the
    /// connections stayed with the parent, and a call would wait for them forever.
    pub fn runtime(&self) -> Result<&'static Runtime> {
        if std::process::id() == self.pid {
            return Ok(self.runtime);
        }
        Err(Error::Client {
            code: code_name(Code::FailedPrecondition),
            message: "this client was made before the process forked, and its connections \
                      stayed with the parent: make a new client in this process"
                .into(),
        })
    }

    /// Runs `call` to completion on the runtime, with the GIL released.
    pub fn block_on<T: Send>(
        &self,
        py: Python<'_>,
        call: impl Future<Output = Result<T>> + Send,
    ) -> Result<T> {
        let runtime = self.runtime()?;
        py.detach(|| runtime.block_on(call))
    }

    /// `call` through the endpoints.
    async fn grpc<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: FnMut(tonic::transport::Channel) -> Fut,
        Fut: Future<Output = std::result::Result<T, tonic::Status>>,
    {
        self.endpoints
            .call(call)
            .await
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

    /// `PohService.Broadcast`.
    pub async fn submit(&self, tx: pb::Tx) -> Result<Ack> {
        let ack = self
            .grpc(|channel| {
                let request = self.endpoints.request(tx.clone());
                bounded(self.timeout, async move {
                    PohServiceClient::new(channel).broadcast(request).await
                })
            })
            .await?;
        Ok(ack.into_inner().into())
    }

    /// `PohService.BroadcastStream`: one `Ack` per transaction, in order.
    pub async fn submit_batch(&self, txs: Vec<pb::Tx>) -> Result<Vec<Ack>> {
        let expected = txs.len();
        let timeout = self.timeout;
        self.grpc(|channel| {
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
        })
        .await
    }

    /// `DAGService.QueryTransactionStatus`.
    pub async fn status(&self, tx_id: String) -> Result<Status> {
        let request = pb::StatusRequest { tx_id };
        let answer = self
            .grpc(|channel| {
                let request = self.endpoints.request(request.clone());
                bounded(self.timeout, async move {
                    DagServiceClient::new(channel)
                        .query_transaction_status(request)
                        .await
                })
            })
            .await?;
        Ok(answer.into_inner().into())
    }

    /// `PohService.GetTx`; `None` for `NOT_FOUND`.
    pub async fn get_tx(&self, tx_id: String) -> Result<Option<Record>> {
        let request = pb::GetTxRequest { tx_id };
        let answer = self
            .grpc(|channel| {
                let request = self.endpoints.request(request.clone());
                bounded(self.timeout, async move {
                    PohServiceClient::new(channel).get_tx(request).await
                })
            })
            .await;
        match answer {
            Ok(answer) => Record::try_from(answer.into_inner()).map(Some),
            Err(Error::Client { code, .. }) if code == code_name(Code::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `PohService.Subscribe`, open: read it with [`next_record`].
    pub async fn subscribe(&self, from_seq: u64) -> Result<tonic::Streaming<pb::TxRecord>> {
        let request = pb::SubscribeRequest { from_seq };
        let stream = self
            .grpc(|channel| {
                let request = self.endpoints.request(request);
                bounded(self.timeout, async move {
                    PohServiceClient::new(channel).subscribe(request).await
                })
            })
            .await?;
        Ok(stream.into_inner())
    }

    /// One page of `PohService.List`.
    pub async fn list(&self, holder_id: String, from_seq: u64, limit: u32) -> Result<PageData> {
        let request = pb::ListRequest {
            holder_id,
            from_seq,
            limit,
        };
        let page = self
            .grpc(|channel| {
                let request = self.endpoints.request(request.clone());
                bounded(self.timeout, async move {
                    PohServiceClient::new(channel).list(request).await
                })
            })
            .await?;
        PageData::try_from(page.into_inner())
    }

    /// `GET /v1/tx/{tx_id}/proof`, the proof `poh prove` fetches.
    pub async fn prove(&self, tx_id: String) -> Result<ProofText> {
        let http = self.http.as_ref().ok_or_else(|| {
            Error::Config(
                "prove reads proofs from the node's HTTP API: give the client its address, \
                 http=\"http://HOST:PORT\""
                    .into(),
            )
        })?;
        http.proof(&tx_id).await
    }
}

/// Where a listing is: the holder, the next page's `from_seq` (none once the node said there
/// is no more), and the page size.
pub struct Cursor {
    holder_id: String,
    next: Option<u64>,
    limit: u32,
}

impl Cursor {
    /// `limit` 0 would mean the node's default, which the Python signature already gives.
    pub fn new(holder_id: String, from_seq: u64, limit: u32) -> Result<Self> {
        if limit == 0 {
            return Err(Error::Config("limit must be at least 1".into()));
        }
        Ok(Self {
            holder_id,
            next: Some(from_seq),
            limit,
        })
    }

    /// The next page, or `None` after the last. A failed call leaves the cursor where it was,
    /// so asking again retries the same page.
    pub async fn next(&mut self, calls: &Calls) -> Result<Option<PageData>> {
        let Some(from_seq) = self.next else {
            return Ok(None);
        };
        let page = calls
            .list(self.holder_id.clone(), from_seq, self.limit)
            .await?;
        if page.more && page.next_seq <= from_seq {
            // Asking again from there would get the same page forever.
            return Err(malformed(format!(
                "the node said there is more after seq {from_seq} but gave next_seq {}",
                page.next_seq
            )));
        }
        self.next = page.more.then_some(page.next_seq);
        Ok(Some(page))
    }
}

/// The next record of a subscription, or `None` when the node ended it.
pub async fn next_record(stream: &mut tonic::Streaming<pb::TxRecord>) -> Result<Option<Record>> {
    match stream.message().await {
        Ok(Some(record)) => Record::try_from(record).map(Some),
        Ok(None) => Ok(None),
        Err(status) => Err(match Expired::from_status(&status) {
            Some(run) => expired(&status, run),
            None => Error::Client {
                code: code_name(status.code()),
                message: status.message().to_string(),
            },
        }),
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
