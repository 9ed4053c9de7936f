//! The one error type of the package, and the Python exceptions it becomes: every one a
//! subclass of `poh.PohError`, so a service can catch the package's errors in one clause.

use pyo3::{create_exception, exceptions::PyException, prelude::*};

create_exception!(
    poh,
    PohError,
    PyException,
    "Base class of every error the poh package raises."
);
create_exception!(
    poh,
    InvalidTxError,
    PohError,
    "A transaction that breaks a rule of the specification, or JSON that is not one."
);
create_exception!(
    poh,
    SignatureError,
    PohError,
    "A signature that does not verify, or a key or key file that is not ML-DSA-87."
);
create_exception!(
    poh,
    VerifyError,
    PohError,
    "PoH entries that do not verify; `index` is the first bad entry."
);
create_exception!(
    poh,
    HeaderError,
    PohError,
    "A header that does not verify: its JSON, its signature, its link or its entries."
);
create_exception!(
    poh,
    ProofError,
    PohError,
    "An inclusion proof that does not verify."
);
create_exception!(
    poh,
    ClientError,
    PohError,
    "A call a node refused or no node answered; `code` is the gRPC status name."
);
create_exception!(
    poh,
    ExpiredError,
    ClientError,
    "A subscription reached transactions the node no longer holds (expired by its TTL); \
     `from_seq`, `to_seq` (inclusive) and `header_ids` name them."
);

/// Everything that can go wrong in the package.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A transaction that breaks a rule, or bytes that are not one.
    #[error("{0}")]
    InvalidTx(String),
    /// A bad signature, key or key file.
    #[error("{0}")]
    Signature(String),
    /// PoH entries that do not verify, from entry `index` on.
    #[error("entry {index}: {why}")]
    Verify {
        /// The first bad entry.
        index: usize,
        /// What is wrong with it.
        why: String,
    },
    /// A header that does not verify.
    #[error("{0}")]
    Header(String),
    /// A proof that does not verify.
    #[error("{0}")]
    Proof(String),
    /// A call that failed, with its gRPC code.
    #[error("{message}")]
    Client {
        /// The gRPC status code's name, e.g. `UNAVAILABLE`.
        code: &'static str,
        /// What went wrong, and at which endpoint.
        message: String,
    },
    /// A subscription reached transactions the node's TTL expired (gRPC `OUT_OF_RANGE`).
    #[error("{message}")]
    Expired {
        /// What the node said.
        message: String,
        /// The first expired `poh_seq`.
        from_seq: u64,
        /// The last expired `poh_seq` (inclusive).
        to_seq: u64,
        /// The headers that sealed them.
        header_ids: Vec<String>,
    },
    /// A file that cannot be read or written.
    #[error("{message}")]
    Io {
        /// The operating system's error number, when there is one; Python turns it into the
        /// matching `OSError` subclass (`FileNotFoundError`, `PermissionError`...).
        errno: Option<i32>,
        /// What could not be done, naming the file.
        message: String,
    },
    /// A setting the client cannot use.
    #[error("{0}")]
    Config(String),
}

impl From<poh_core::Error> for Error {
    fn from(e: poh_core::Error) -> Self {
        match e {
            poh_core::Error::Invalid(_) => Self::InvalidTx(e.to_string()),
            poh_core::Error::Verify(v) => Self::Verify {
                index: v.index,
                why: v.failure.to_string(),
            },
            _ => Self::Signature(e.to_string()),
        }
    }
}

impl From<poh_node::NodeError> for Error {
    fn from(e: poh_node::NodeError) -> Self {
        Self::Config(e.to_string())
    }
}

impl From<Error> for PyErr {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        match e {
            Error::InvalidTx(_) => InvalidTxError::new_err(message),
            Error::Signature(_) => SignatureError::new_err(message),
            Error::Verify { index, .. } => {
                with_attribute(VerifyError::new_err(message), "index", index)
            }
            Error::Header(_) => HeaderError::new_err(message),
            Error::Proof(_) => ProofError::new_err(message),
            Error::Client { code, .. } => {
                with_attribute(ClientError::new_err(message), "code", code)
            }
            Error::Expired {
                from_seq,
                to_seq,
                header_ids,
                ..
            } => {
                let err = with_attribute(ExpiredError::new_err(message), "code", "OUT_OF_RANGE");
                let err = with_attribute(err, "from_seq", from_seq);
                let err = with_attribute(err, "to_seq", to_seq);
                with_attribute(err, "header_ids", header_ids)
            }
            Error::Io {
                errno: Some(errno), ..
            } => pyo3::exceptions::PyOSError::new_err((errno, message)),
            Error::Io { errno: None, .. } => pyo3::exceptions::PyOSError::new_err(message),
            Error::Config(_) => pyo3::exceptions::PyValueError::new_err(message),
        }
    }
}

/// `err` with `name` set on the exception object, so Python code reads `e.index` or `e.code`.
fn with_attribute<T>(err: PyErr, name: &str, value: T) -> PyErr
where
    T: for<'py> IntoPyObject<'py>,
{
    Python::attach(|py| {
        // Setting an attribute on a fresh exception instance only fails when memory runs out;
        // the exception then still carries its message.
        let _ = err.value(py).setattr(name, value);
    });
    err
}

/// The result type of the package's Rust functions.
pub type Result<T> = std::result::Result<T, Error>;
