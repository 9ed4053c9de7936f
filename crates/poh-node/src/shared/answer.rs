//! What becomes of a transaction: stored ([`Accepted`]) or refused ([`Rejected`],
//! [`SubmitError`]), the `reason` label it is counted under ([`RejectReason`]), and the one
//! table from a refusal to its code on every wire ([`Refusal`]). They are down here, below both
//! the pipeline that answers and the wire that encodes the answers, so neither reaches up to
//! the other for them.

use http::StatusCode;
use poh_core::{Hash, ValidationError};
use poh_proto::v1::AckCode;

/// A transaction that was stored, now or before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// Stored by this submission.
    Stored {
        /// Its index in the node's stream of recorded mixins.
        poh_seq: u64,
        /// The hash of the entry that recorded it.
        poh_hash: Hash,
    },
    /// Already stored with the same digest; the original's place.
    Duplicate {
        /// The original's `poh_seq`.
        poh_seq: u64,
        /// The original's `poh_hash`.
        poh_hash: Hash,
    },
}

/// Why one transaction was not stored. Nothing was changed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Rejected {
    /// A SPEC §2 rule is broken (`INVALID`, or `TOO_LARGE` for the payload size).
    #[error("{0}")]
    Invalid(#[from] ValidationError),
    /// A present signature does not verify (`BAD_SIGNATURE`).
    #[error("the ML-DSA-87 signature does not verify against public_key over the signing bytes")]
    BadSignature,
    /// The id is stored with a different digest (`CONFLICT`).
    #[error("tx_id is already stored with different contents; the stored one is unchanged")]
    Conflict,
    /// The node failed internally; the transaction may be retried.
    #[error("internal error; retry later")]
    Internal,
}

/// The answer for one transaction.
pub type TxResult = Result<Accepted, Rejected>;

/// Why a whole submission was refused before any of it was looked at.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The node is at capacity; back off and retry.
    #[error("the node is overloaded; back off and retry")]
    Overloaded,
    /// The node is stopping.
    #[error("the node is shutting down; retry on another node")]
    ShuttingDown,
    /// The node's disk is full: nothing of the submission was stored.
    #[error("the node's disk is full and nothing was stored; retry later or on another node")]
    StorageFull,
    /// The node is a replica: it takes no writes (SPEC §10).
    #[error("this node is a read-only replica; send writes to its primary at {primary}")]
    ReadOnly {
        /// The primary's address, as the replica follows it.
        primary: std::sync::Arc<str>,
    },
}

impl SubmitError {
    /// The short code of the refusal: the HTTP body's `error`, and the start of a refused
    /// QUIC `Ack`'s message.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Overloaded => "overloaded",
            Self::ShuttingDown => "unavailable",
            Self::StorageFull => "storage_full",
            Self::ReadOnly { .. } => "read_only",
        }
    }

    /// The `reason` label a refused transaction is counted under.
    pub(crate) fn reason(&self) -> RejectReason {
        match self {
            Self::Overloaded | Self::ShuttingDown => RejectReason::Overloaded,
            Self::StorageFull => RejectReason::StorageFull,
            Self::ReadOnly { .. } => RejectReason::ReadOnly,
        }
    }
}

/// Why a transaction was not stored, as the `reason` label of `poh_tx_rejected_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectReason {
    /// The bytes are not a transaction (bad JSON, bad protobuf, bad base64, bad frame).
    Malformed,
    /// A SPEC §2 rule is broken.
    Invalid,
    /// The payload is above the node's limit.
    TooLarge,
    /// A present signature does not verify.
    BadSignature,
    /// The id is stored with a different digest.
    Conflict,
    /// Refused because the node is at capacity.
    Overloaded,
    /// Refused because the node's disk is full.
    StorageFull,
    /// Refused because the node is a replica.
    ReadOnly,
    /// An internal error stopped it.
    Internal,
}

impl RejectReason {
    pub(crate) const ALL: [Self; 9] = [
        Self::Malformed,
        Self::Invalid,
        Self::TooLarge,
        Self::BadSignature,
        Self::Conflict,
        Self::Overloaded,
        Self::StorageFull,
        Self::ReadOnly,
        Self::Internal,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Invalid => "invalid",
            Self::TooLarge => "too_large",
            Self::BadSignature => "bad_signature",
            Self::Conflict => "conflict",
            Self::Overloaded => "overloaded",
            Self::StorageFull => "storage_full",
            Self::ReadOnly => "read_only",
            Self::Internal => "internal",
        }
    }
}

/// How one refused transaction is told on every wire, and counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The `Ack` code (gRPC and QUIC).
    pub ack: AckCode,
    /// The HTTP status.
    pub status: StatusCode,
    /// The HTTP body's `error` code.
    pub error: &'static str,
    /// The `reason` label of `poh_tx_rejected_total`.
    pub reason: RejectReason,
}

impl Refusal {
    /// The one table: each refusal's codes, decided in one place.
    pub fn of(rejected: &Rejected) -> Self {
        let (ack, status, error, reason) = match rejected {
            Rejected::Invalid(v) if v.is_too_large() => (
                AckCode::TooLarge,
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                RejectReason::TooLarge,
            ),
            Rejected::Invalid(_) => (
                AckCode::Invalid,
                StatusCode::BAD_REQUEST,
                "invalid",
                RejectReason::Invalid,
            ),
            Rejected::BadSignature => (
                AckCode::BadSignature,
                StatusCode::BAD_REQUEST,
                "bad_signature",
                RejectReason::BadSignature,
            ),
            Rejected::Conflict => (
                AckCode::Conflict,
                StatusCode::CONFLICT,
                "conflict",
                RejectReason::Conflict,
            ),
            Rejected::Internal => (
                AckCode::Internal,
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                RejectReason::Internal,
            ),
        };
        Self {
            ack,
            status,
            error,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_has_one_code_per_wire() {
        let too_large = Rejected::Invalid(poh_core::ValidationError {
            field: poh_core::validate::Field::Payload,
            rule: poh_core::validate::Rule::TooLarge { max: 1, actual: 2 },
        });
        let r = Refusal::of(&too_large);
        assert_eq!(
            (r.ack, r.status, r.error, r.reason),
            (
                AckCode::TooLarge,
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                RejectReason::TooLarge
            )
        );
        let r = Refusal::of(&Rejected::Conflict);
        assert_eq!((r.ack, r.status.as_u16()), (AckCode::Conflict, 409));
        let r = Refusal::of(&Rejected::Internal);
        assert_eq!((r.ack, r.status.as_u16()), (AckCode::Internal, 500));
    }
}
