//! The UDP listener (SPEC §4): one JSON transaction per datagram, no reply.
//!
//! Datagrams are read in batches (`recvmmsg` and GRO on Linux, through `quinn-udp`), decoded
//! ([`decode`]) on the receive task, and handed to the [`IngestPipeline`](crate::IngestPipeline) as one
//! submission per batch, whose answers are awaited on a task of their own so the receive loop
//! never waits for a commit. When the pipeline's budget is spent, the loop waits for room
//! instead of refusing: datagrams meanwhile queue in the socket's receive buffer, and only
//! what overflows that buffer is lost (the kernel counts it, `/proc/net/udp` `drops`). A datagram that is not a transaction is dropped and counted
//! (`poh_tx_rejected_total{transport="udp",reason="malformed"}`); one the pipeline refuses is
//! counted with the pipeline's reason. Nothing a sender does stops the loop.

use std::{io::IoSliceMut, sync::Arc};

use poh_core::Tx;
use quinn_udp::{BATCH_SIZE, RecvMeta, UdpSocketState};
use tokio::{io::Interest, net::UdpSocket, task::JoinSet};
use tokio_util::sync::CancellationToken;

use super::Services;
use crate::{
    NodeError,
    config::UdpConfig,
    pipeline::Admission,
    shared::{RejectReason, Transport},
    wire::json::tx_from_json,
};

/// The largest UDP payload; with GRO one buffer holds at most this much too.
const BUFFER_BYTES: usize = 1 << 16;

/// A bound UDP socket made ready for [`serve`]: large receive buffer, batch receive state.
pub(crate) struct UdpListener {
    socket: UdpSocket,
    state: UdpSocketState,
}

impl UdpListener {
    /// Binds `addr` and sizes the receive buffer: what absorbs a burst while the pipeline is
    /// busy. The kernel caps `SO_RCVBUF` at `net.core.rmem_max`; a process allowed to
    /// (`CAP_NET_ADMIN`) goes past it with `SO_RCVBUFFORCE`. What was granted is logged, and a
    /// warning says when it is less than asked.
    pub(crate) async fn bind(
        addr: std::net::SocketAddr,
        config: &UdpConfig,
    ) -> Result<Self, NodeError> {
        let socket = UdpSocket::bind(addr)
            .await
            .map_err(|source| NodeError::Bind {
                what: "UDP",
                addr,
                source,
            })?;
        let state = UdpSocketState::new((&socket).into()).map_err(|source| NodeError::Bind {
            what: "UDP",
            addr,
            source,
        })?;
        let wanted = config.recv_buffer_bytes;
        #[cfg(target_os = "linux")]
        let forced =
            rustix::net::sockopt::set_socket_recv_buffer_size_force(&socket, wanted).is_ok();
        #[cfg(not(target_os = "linux"))]
        let forced = false;
        if !forced && let Err(e) = state.set_recv_buffer_size((&socket).into(), wanted) {
            tracing::warn!(error = %e, "cannot set the UDP receive buffer size");
        }
        let listener = Self { socket, state };
        // Linux reports twice what was set (the other half is its bookkeeping).
        let granted = listener.recv_buffer();
        tracing::info!(
            wanted,
            granted,
            forced,
            gro_segments = listener.state.gro_segments(),
            "UDP receive buffer"
        );
        if granted < wanted {
            tracing::warn!(
                wanted,
                granted,
                "the kernel granted a smaller UDP receive buffer than asked: bursts beyond it \
                 are dropped; raise net.core.rmem_max or give the node CAP_NET_ADMIN"
            );
        }
        Ok(listener)
    }

    /// The bound address.
    pub(crate) fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.socket.local_addr()
    }

    /// The receive buffer the kernel granted, in bytes.
    fn recv_buffer(&self) -> usize {
        let reported = self
            .state
            .recv_buffer_size((&self.socket).into())
            .unwrap_or(0);
        if cfg!(target_os = "linux") {
            reported / 2
        } else {
            reported
        }
    }
}

/// Receives until `shutdown`, then waits for the submissions already handed over.
pub(crate) async fn serve(
    listener: UdpListener,
    services: Services,
    config: UdpConfig,
    shutdown: CancellationToken,
) {
    let UdpListener { socket, state } = listener;
    let socket = Arc::new(socket);
    let mut buffers = vec![vec![0u8; BUFFER_BYTES]; BATCH_SIZE];
    let mut meta = vec![RecvMeta::default(); BATCH_SIZE];
    let mut batch: Vec<Tx> = Vec::with_capacity(config.max_batch);
    let mut answers = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            ready = socket.readable() => {
                if let Err(e) = ready {
                    tracing::warn!(error = %e, "UDP socket failed");
                    break;
                }
            }
        }
        // Everything queued now, in as few system calls as the platform allows.
        loop {
            let received = socket.try_io(Interest::READABLE, || {
                let mut slices: Vec<IoSliceMut<'_>> =
                    buffers.iter_mut().map(|b| IoSliceMut::new(b)).collect();
                state.recv((&*socket).into(), &mut slices, &mut meta)
            });
            let n = match received {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // An ICMP error for an earlier send, a truncated datagram: not a reason to stop.
                Err(e) => {
                    tracing::debug!(error = %e, "UDP receive error");
                    break;
                }
            };
            for (buffer, m) in buffers.iter().zip(&meta).take(n) {
                let mut take = |datagram: &[u8]| {
                    let client = services.limiter.key(m.addr.ip());
                    if !services.limiter.allow(client) {
                        services
                            .metrics
                            .ingest
                            .rejected(Transport::Udp, RejectReason::Overloaded);
                        return;
                    }
                    match decode(datagram) {
                        Some(tx) => batch.push(tx),
                        None => services
                            .metrics
                            .ingest
                            .rejected(Transport::Udp, RejectReason::Malformed),
                    }
                };
                // With GRO one buffer holds several datagrams of `stride` bytes; an empty
                // datagram is no transaction either, and is counted as such.
                match m.len {
                    0 => take(&[]),
                    len => buffer[..len].chunks(m.stride.max(1)).for_each(take),
                }
            }
            if batch.len() >= config.max_batch {
                submit(&services, &mut batch, &mut answers, &shutdown).await;
            }
        }
        submit(&services, &mut batch, &mut answers, &shutdown).await;
    }
    submit(&services, &mut batch, &mut answers, &shutdown).await;
    while answers.join_next().await.is_some() {}
}

/// One datagram as a transaction, or `None` when it is not one.
pub fn decode(datagram: &[u8]) -> Option<Tx> {
    tx_from_json(datagram).ok()
}

async fn submit(
    services: &Services,
    batch: &mut Vec<Tx>,
    answers: &mut JoinSet<()>,
    shutdown: &CancellationToken,
) {
    while answers.try_join_next().is_some() {}
    if batch.is_empty() {
        return;
    }
    let txs = std::mem::take(batch);
    let pipeline = &services.pipeline;
    // The pipeline counts what it refuses; nobody is answered. Stopping, the node no longer
    // waits for room: what does not fit now is refused as overload.
    let admitted = if shutdown.is_cancelled() {
        pipeline
            .enqueue(Transport::Udp, txs, Admission::FailFast)
            .await
    } else {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            admitted = pipeline.enqueue(Transport::Udp, txs, Admission::Wait) => admitted,
        }
    };
    if let Ok(pending) = admitted {
        answers.spawn(async move {
            // Refusals, a full disk's included, are counted by the pipeline.
            let _ = pending.wait().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The receive buffer is what was asked where the process may force it (root, or
    /// CAP_NET_ADMIN), and never less than the kernel's cap allows otherwise.
    #[tokio::test]
    async fn the_receive_buffer_is_sized_past_the_default_cap_when_allowed() {
        let config = UdpConfig {
            recv_buffer_bytes: 16 << 20,
            ..UdpConfig::default()
        };
        let listener = UdpListener::bind("127.0.0.1:0".parse().unwrap(), &config)
            .await
            .unwrap();
        let granted = listener.recv_buffer();
        let rmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .map_or(usize::MAX, |s| s.trim().parse().unwrap());
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        #[cfg(target_os = "linux")]
        let may_force =
            rustix::net::sockopt::set_socket_recv_buffer_size_force(&probe, 1 << 20).is_ok();
        #[cfg(not(target_os = "linux"))]
        let may_force = false;
        if may_force {
            assert!(granted >= 16 << 20, "{granted}");
        } else {
            assert!(
                granted >= (16 << 20).min(rmem_max),
                "{granted} (rmem_max {rmem_max})"
            );
        }
    }
}
