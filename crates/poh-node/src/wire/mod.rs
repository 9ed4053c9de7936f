//! The wire encodings of SPEC §4, in both directions: what the listeners decode and the
//! clients encode. Nothing here does I/O.
//!
//! - [`Transport`]: the four protocols, one enum for the metrics' `transport` label and the
//!   peers file's keys;
//! - [`json`]: the JSON form of a transaction (HTTP bodies and UDP datagrams) and every HTTP
//!   answer body;
//! - [`protobuf`]: `poh.v1` messages to and from the node's types, and the `Ack` of a result;
//! - [`headers`]: a sealed header and the federation's state in JSON (SPEC §6);
//! - [`expired`]: how a subscriber or `Sync` client is told of transactions the TTL expired;
//! - [`frame`]: QUIC's `u32 length || protobuf` framing, its ALPN and its error codes;
//! - [`Refusal`]: the one table from a refused transaction to its code on every wire.

pub mod expired;
pub mod frame;
pub mod headers;
pub mod json;
pub mod protobuf;

use std::{fmt, str::FromStr};

use http::StatusCode;
use poh_proto::v1::AckCode;

use crate::{metrics::RejectReason, pipeline::Rejected};

/// A protocol a transaction travels by: the `transport` label of SPEC §7 and the keys of the
/// peers file (SPEC §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// gRPC (`host:port`).
    Grpc = 0,
    /// HTTP/JSON (an `http://` or `https://` URL).
    Http = 1,
    /// UDP datagrams (`host:port`).
    Udp = 2,
    /// QUIC streams (`host:port`).
    Quic = 3,
}

impl Transport {
    /// Every transport, in label order (the order of the peers file's keys).
    pub const ALL: [Self; 4] = [Self::Grpc, Self::Http, Self::Udp, Self::Quic];

    /// The label value and peers-file key.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::Http => "http",
            Self::Udp => "udp",
            Self::Quic => "quic",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A protocol name that is none of the four.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol {0:?}: expected one of grpc, http, udp, quic")]
pub struct UnknownTransport(pub String);

impl FromStr for Transport {
    type Err = UnknownTransport;

    /// Parses a protocol name, ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownTransport(s.to_owned()))
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
    fn protocol_names_round_trip_and_unknown_ones_list_the_four() {
        for p in Transport::ALL {
            assert_eq!(p.as_str().parse::<Transport>().unwrap(), p);
            assert_eq!(p.to_string(), p.as_str());
        }
        assert_eq!("GRPC".parse::<Transport>().unwrap(), Transport::Grpc);
        for unknown in ["tcp", "", "grpcs", " grpc"] {
            let e = unknown.parse::<Transport>().unwrap_err().to_string();
            assert_eq!(
                e,
                format!("unknown protocol {unknown:?}: expected one of grpc, http, udp, quic")
            );
        }
    }

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
