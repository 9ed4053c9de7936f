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
    /// A file of the store cannot be read or written.
    #[error(
        "cannot read or write {path}: {source}; check the disk and the data directory's permissions"
    )]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Bytes of a store file fail their checksum or do not decode: they are never returned as
    /// data.
    #[error(
        "the store file {path} is damaged at byte {offset} ({what}); restore the data directory \
         from a backup or copy the chain again from a peer"
    )]
    Damaged {
        /// The file.
        path: PathBuf,
        /// Where the damaged bytes begin.
        offset: u64,
        /// What was found there.
        what: &'static str,
    },
    /// A commit that does not continue what is stored (a bug in the caller, refused unwritten).
    #[error("refused commit: {0}")]
    Sequence(&'static str),
    /// The file system holding the database is full, or has less free space than the store
    /// keeps in reserve. Nothing was written; reads still work.
    #[error(
        "the disk holding {path} is full ({why}); nothing was written. Free space or grow the \
         volume: writes resume by themselves"
    )]
    Full {
        /// The database file.
        path: PathBuf,
        /// What said so: the free space left, or the engine's I/O error.
        why: String,
    },
}

impl StoreError {
    /// Whether the store could not be written or reached just now but may be later: a full
    /// disk, or a reopen after an I/O failure that has not succeeded yet.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Full { .. } | Self::InUse(_) | Self::Open { .. }) || self.is_io()
    }

    /// Whether the engine met an I/O error, after which it must be reopened before it can be
    /// used again (redb refuses every later operation of the failed handle).
    pub(crate) fn is_io(&self) -> bool {
        matches!(
            self,
            Self::Engine(e) if matches!(**e, redb::Error::Io(_) | redb::Error::PreviousIo)
        ) || matches!(self, Self::Io { .. })
    }

    /// Whether the engine's I/O error says the disk (or the user's quota) is full.
    pub(crate) fn is_disk_full(&self) -> bool {
        match self {
            Self::Engine(e) => match &**e {
                redb::Error::Io(io) => io_is_disk_full(io),
                // A handle that failed before: the failure that made it so was reported then.
                _ => false,
            },
            Self::Io { source, .. } => io_is_disk_full(source),
            _ => false,
        }
    }
}

/// Whether an I/O error says the disk (or the user's quota) is full.
fn io_is_disk_full(io: &std::io::Error) -> bool {
    matches!(
        io.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    ) || matches!(io.raw_os_error(), Some(ENOSPC | EDQUOT))
}

impl StoreError {
    /// An I/O error on `path`.
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// `ENOSPC` and `EDQUOT` on Linux, for errors whose kind the standard library leaves generic.
const ENOSPC: i32 = 28;
const EDQUOT: i32 = 122;

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
