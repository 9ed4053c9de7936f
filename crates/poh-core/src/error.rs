//! The one error type of poh-core.

use crate::{validate::ValidationError, verify::VerifyError};

/// Everything poh-core can refuse or fail at. Messages say what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The transaction breaks a rule of SPEC §2; nothing was changed.
    #[error("invalid transaction: {0}")]
    Invalid(#[from] ValidationError),
    /// A present signature does not verify.
    #[error(
        "bad signature: the ML-DSA-87 signature does not verify against public_key over the \
         transaction's signing bytes; re-sign the transaction exactly as sent"
    )]
    BadSignature,
    /// A key file that is not a 32-byte ML-DSA-87 seed.
    #[error("unreadable key file: {0}")]
    KeyFile(&'static str),
    /// The crypto provider failed (not the input's fault).
    #[error("crypto provider failure: {0}")]
    Crypto(&'static str),
    /// A PoH chain does not verify.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// A PoH log that does not follow the format of [`poh_log`](crate::poh_log).
    #[error("PoH log line {line}: {reason}")]
    Log {
        /// 1-based line number.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The PoH recorder thread has stopped, so nothing more can be recorded.
    #[error("the PoH recorder has stopped; restart the node")]
    RecorderStopped,
    /// A record call with no mixins.
    #[error("nothing to record: a record needs at least one mixin")]
    EmptyRecord,
    /// A setting that cannot work.
    #[error("invalid PoH configuration: {0}")]
    Config(&'static str),
}
