//! [`Transport`] is down here, not in the wire, because the metrics count by it and they sit
//! below the wire.

use std::{fmt, str::FromStr};

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
}
