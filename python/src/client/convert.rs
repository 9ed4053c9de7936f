//! What the clients return: [`Ack`], [`Status`], [`Record`] and [`Page`], made from the node's
//! protobuf answers; and [`Answer`], which turns a call's error into its Python exception only
//! once the GIL is held.

use poh_node::wire::protobuf::code_name;
use poh_proto::v1 as pb;
use pyo3::{IntoPyObjectExt as _, prelude::*, types::PyList};
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

impl From<pb::StatusResponse> for Status {
    fn from(answer: pb::StatusResponse) -> Self {
        Self {
            status: status_name(answer.status),
            tx_id: answer.tx_id,
            message: answer.message,
            poh_seq: answer.poh_seq,
            poh_hash: answer.poh_hash,
            parent_ids: answer.parent_ids,
            header_id: (!answer.header_id.is_empty()).then_some(answer.header_id),
        }
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

impl TryFrom<pb::TxRecord> for Record {
    type Error = Error;

    fn try_from(record: pb::TxRecord) -> Result<Self> {
        let tx = record
            .tx
            .ok_or_else(|| malformed("the node sent a record without its transaction"))?;
        Ok(Self {
            tx: Tx(poh_node::tx_from_pb(tx)),
            status: status_name(record.status),
            poh_seq: record.poh_seq,
            poh_hash: record.poh_hash,
            header_id: (!record.header_id.is_empty()).then_some(record.header_id),
            received_at: record.received_at,
        })
    }
}

/// An answer a node should never give.
pub(super) fn malformed(why: impl Into<String>) -> Error {
    Error::Client {
        code: code_name(Code::Internal),
        message: why.into(),
    }
}

/// One page of a holder's transactions (`PohService.List`).
#[pyclass(module = "poh", frozen)]
pub struct Page {
    /// The transactions, in `poh_seq` order.
    #[pyo3(get)]
    records: Py<PyList>,
    /// The `from_seq` to ask for the page after this one.
    #[pyo3(get)]
    next_seq: u64,
    /// Whether the node holds more after this page.
    #[pyo3(get)]
    more: bool,
}

#[pymethods]
impl Page {
    fn __len__(&self, py: Python<'_>) -> usize {
        self.records.bind(py).len()
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyIterator>> {
        self.records.bind(py).try_iter()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Page(records=<{}>, next_seq={}, more={})",
            self.records.bind(py).len(),
            self.next_seq,
            if self.more { "True" } else { "False" }
        )
    }
}

/// A [`Page`] before it meets Python: made where the GIL is not held.
pub struct PageData {
    pub records: Vec<Record>,
    pub next_seq: u64,
    pub more: bool,
}

impl TryFrom<pb::ListResponse> for PageData {
    type Error = Error;

    fn try_from(page: pb::ListResponse) -> Result<Self> {
        Ok(Self {
            records: page
                .records
                .into_iter()
                .map(Record::try_from)
                .collect::<Result<_>>()?,
            next_seq: page.next_seq,
            more: page.more,
        })
    }
}

impl<'py> IntoPyObject<'py> for PageData {
    type Target = Page;
    type Output = Bound<'py, Page>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, Page>> {
        let records = PyList::new(py, self.records)?.unbind();
        Bound::new(
            py,
            Page {
                records,
                next_seq: self.next_seq,
                more: self.more,
            },
        )
    }
}

/// A proof's JSON as the node served it; it meets Python as the parsed `dict`, the shape
/// `verify_proof` and `json.dump` take.
pub struct ProofText(pub String);

impl<'py> IntoPyObject<'py> for ProofText {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("json")?.call_method1("loads", (self.0,))
    }
}

/// A call's outcome on its way to an asyncio future. An [`Error`] becomes its exception here,
/// when the future's result is set with the GIL held, and not on the runtime's workers, where
/// taking the GIL (to set `code` and the other attributes) would stall every other call.
pub struct Answer<T>(pub Result<T>);

impl<'py, T> IntoPyObject<'py> for Answer<T>
where
    T: IntoPyObject<'py>,
{
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.0?.into_bound_py_any(py)
    }
}
