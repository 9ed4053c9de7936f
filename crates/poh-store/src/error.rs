//! The one error type of poh-store.

use std::path::PathBuf;

/// Everything the store can fail at. Messages say what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file cannot be created or opened.
    #[error(
        "cannot open the database {path}: {source}; check that the data directory exists, is \
         writable, and that no other poh process uses it"
    )]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<redb::Error>,
    },
    /// Another process has the database open.
    #[error("the database {0} is in use by another process; stop it or choose another --data-dir")]
    InUse(PathBuf),
    /// The storage engine failed (I/O, a full disk, …).
    #[error("storage failure: {0}")]
    Engine(#[from] Box<redb::Error>),
    /// A stored value does not decode: the file is damaged or was written by something else.
    #[error("the database holds a damaged {0}; restore it from a backup or start a new data dir")]
    Corrupt(&'static str),
    /// A commit that does not continue what is stored (a bug in the caller, refused unwritten).
    #[error("refused commit: {0}")]
    Sequence(&'static str),
}

/// Every redb error type converts through `redb::Error`, boxed to keep results small.
macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                Self::Engine(Box::new(e.into()))
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::SetDurabilityError
);
