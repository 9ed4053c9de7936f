//! The UDP sender: one socket for every peer, IPv6 with IPv4-mapped addresses where the host
//! has IPv6, IPv4 otherwise. A datagram carries one JSON transaction (SPEC §4) and gets no
//! answer, so "sent" is all a sender can know.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::UdpSocket;

use crate::NodeError;

/// The largest UDP payload.
pub const MAX_DATAGRAM: usize = 65_507;

/// Why a datagram was not sent.
#[derive(Debug, thiserror::Error)]
pub enum UdpError {
    /// The datagram is larger than UDP carries.
    #[error("{0} bytes do not fit in one datagram")]
    TooLarge(usize),
    /// The name does not resolve (now: DNS may answer later).
    #[error("cannot resolve {peer}: {source}")]
    Resolve {
        /// The address as given.
        peer: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It resolves only to addresses this socket cannot reach.
    #[error("{0} has no address this host can reach")]
    Unreachable(String),
    /// The socket refused it.
    #[error("cannot send: {0}")]
    Send(#[source] std::io::Error),
}

impl UdpError {
    /// Whether trying again may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Resolve { .. } | Self::Send(_))
    }
}

/// One socket sending datagrams to any peer.
pub struct UdpClient {
    socket: UdpSocket,
}

impl UdpClient {
    /// Binds an ephemeral port: IPv6 (reaching IPv4 peers through mapped addresses), or IPv4
    /// on a host without IPv6.
    pub async fn bind() -> Result<Self, NodeError> {
        let any: SocketAddr = (Ipv6Addr::UNSPECIFIED, 0).into();
        let socket = match UdpSocket::bind(any).await {
            Ok(s) => s,
            Err(_) => UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
                .await
                .map_err(|source| NodeError::Bind {
                    what: "UDP client",
                    addr: any,
                    source,
                })?,
        };
        Ok(Self { socket })
    }

    /// Sends `datagram` to `peer` (`host:port`).
    pub async fn send(&self, peer: &str, datagram: &[u8]) -> Result<(), UdpError> {
        if datagram.len() > MAX_DATAGRAM {
            return Err(UdpError::TooLarge(datagram.len()));
        }
        let addr = self.resolve(peer).await?;
        self.socket
            .send_to(datagram, addr)
            .await
            .map(drop)
            .map_err(UdpError::Send)
    }

    /// The address of `peer` this socket can send to.
    pub async fn resolve(&self, peer: &str) -> Result<SocketAddr, UdpError> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(peer)
            .await
            .map_err(|source| UdpError::Resolve {
                peer: peer.to_string(),
                source,
            })?
            .collect();
        let local_v6 = self.socket.local_addr().is_ok_and(|a| a.is_ipv6());
        addrs
            .iter()
            .map(|a| match (a, local_v6) {
                // An IPv6 socket reaches IPv4 peers through mapped addresses.
                (SocketAddr::V4(v4), true) => {
                    SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port())
                }
                _ => *a,
            })
            .find(|a| local_v6 || a.is_ipv4())
            .ok_or_else(|| UdpError::Unreachable(peer.to_string()))
    }
}
