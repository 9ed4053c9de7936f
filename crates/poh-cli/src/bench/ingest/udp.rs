//! The UDP driver of `poh bench ingest`. Datagrams have no answer, so the node's own counts
//! tell what became of them: `GET /v1/poh` `seq` (transactions stored so far), and in
//! `/metrics` `poh_tx_received_total{transport="udp"}` and `poh_tx_rejected_total{transport=
//! "udp",…}`.
//!
//! A poller reads `seq` every millisecond. The sender keeps at most `window` datagrams sent and
//! neither stored nor known lost: the node's socket buffer and pipeline absorb what is in
//! flight, so loss measures the node rather than a sender that outruns it by design. When
//! nothing is stored for [`STALL`], the counters are read: a commit may just be slow (fsync on
//! a busy disk), but a datagram sent and never received once the node's receive count has
//! settled was dropped by the kernel, and one refused was dropped by the node. The run ends
//! when everything sent is stored, or everything received is stored or refused.
//!
//! Datagrams go out [`BURST`] per `sendmmsg` call on Linux, so the sender's system calls are
//! not what limits the run. When the node is on this machine, the kernel's own count of what
//! its socket dropped (`/proc/net/udp`) closes the books: stored + refused by the node +
//! dropped by the kernel = sent.

use std::{
    ops::Range,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use hdrhistogram::Histogram;
use poh_core::Tx;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::histogram;

/// The largest UDP payload (SPEC §4).
const MAX_DATAGRAM: usize = 65_507;
/// How often `seq` is read.
const POLL: Duration = Duration::from_millis(1);
/// Datagrams per `sendmmsg` call, and sent before the other tasks (the poller) get a turn.
const BURST: usize = 64;
/// Nothing stored for this long while waiting: time to read the counters.
const STALL: Duration = Duration::from_millis(20);
/// The node's receive count is settled when it did not move for this long.
const SETTLE: Duration = Duration::from_millis(10);
/// Nothing stored for this long, and nothing explains why: the node is stuck.
const GIVE_UP: Duration = Duration::from_secs(60);

/// What a UDP run measured.
pub(super) struct UdpOutcome {
    /// Send to stored, matching stored datagrams with sent ones in order, the ones known lost
    /// left out (taken to be the newest sent when the loss was found: a full socket buffer
    /// drops arrivals).
    pub latencies: Histogram<u64>,
    /// Seconds from the first send to the moment the last stored datagram was seen stored.
    pub elapsed: f64,
    pub counts: UdpCounts,
}

/// What became of the datagrams.
#[derive(Clone, Copy)]
pub(super) struct UdpCounts {
    /// Datagrams the socket accepted.
    pub sent: usize,
    /// Datagrams the node stored.
    pub stored: u64,
    /// Datagrams the node received and refused (not transactions, invalid, overloaded).
    pub refused: u64,
    /// Datagrams the kernel dropped at the node's socket (a full receive buffer), when the
    /// node is on this machine.
    pub kernel_dropped: Option<u64>,
}

/// Stored so far (relative to the start), and when that was seen.
#[derive(Clone, Copy)]
struct Stored {
    count: u64,
    at: Instant,
}

/// The node's UDP counters, relative to the start.
#[derive(Clone, Copy, Default)]
pub(in crate::bench) struct Counters {
    /// Datagrams decoded as transactions (`poh_tx_received_total`).
    pub received: u64,
    /// Datagrams refused, for any reason (`poh_tx_rejected_total`).
    pub rejected: u64,
}

/// The node's HTTP endpoints used to count.
#[derive(Clone)]
pub(in crate::bench) struct Node {
    client: reqwest::Client,
    poh: String,
    metrics: String,
}

/// Sends one datagram per transaction to `target` (`host:port`) and counts, through `http`
/// (the node's URL), how many were stored.
pub(super) async fn udp(
    target: &str,
    http: &str,
    txs: Vec<Tx>,
    window: usize,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<UdpOutcome> {
    // Encoded before the clock starts: the node's work is what is measured.
    let datagrams: Vec<Vec<u8>> = txs.iter().map(poh_node::tx_to_json).collect();
    drop(txs);
    if let Some(big) = datagrams.iter().find(|d| d.len() > MAX_DATAGRAM) {
        bail!(
            "a transaction is {} bytes of JSON, more than one datagram holds ({MAX_DATAGRAM}); \
             lower --payload-bytes",
            big.len()
        );
    }
    let node = Node::new(http)?;
    let base_seq = node.seq().await?;
    let base = node.counters(Counters::default()).await?;
    let socket = connect(target).await?;
    let node_port = socket
        .peer_addr()
        .context("the UDP socket has no peer")?
        .port();
    let drops_before = kernel_drops(node_port);

    let started = Instant::now();
    let (updates, mut seen) = watch::channel(Stored {
        count: 0,
        at: started,
    });
    let stop = CancellationToken::new();
    // Stops the poller however this function ends.
    let _stop = stop.clone().drop_guard();
    let poller = tokio::spawn(poll_stored(node.clone(), base_seq, updates, stop.clone()));

    let window = window as u64;
    let mut send_times = Vec::with_capacity(datagrams.len());
    let mut lost = Lost::default();
    let mut next = 0;
    while next < datagrams.len() {
        let now = *seen.borrow_and_update();
        let in_flight = (next as u64).saturating_sub(now.count + lost.count);
        if in_flight >= window {
            match tokio::time::timeout(STALL, seen.changed()).await {
                Ok(Ok(())) => {}
                // The poller stopped: its error is reported below.
                Ok(Err(_)) => break,
                Err(_) => {
                    let counters = node.settled(base).await?;
                    let known = (next as u64).saturating_sub(counters.received) + counters.rejected;
                    if !lost.found(known, next) && now.at.elapsed() > GIVE_UP {
                        bail!("the node stored nothing for {} s", GIVE_UP.as_secs());
                    }
                }
            }
            continue;
        }
        let burst = BURST
            .min(datagrams.len() - next)
            .min((window - in_flight) as usize);
        send_burst(&socket, &datagrams[next..next + burst], |n| {
            send_times.extend(std::iter::repeat_n(Instant::now(), n));
        })
        .await
        .with_context(|| format!("cannot send to {target}"))?;
        next += burst;
        progress.inc(burst as u64);
        tokio::task::yield_now().await;
    }
    let sent = send_times.len();

    // Until everything sent is stored, or everything the node received is stored or refused.
    let last = loop {
        let now = *seen.borrow_and_update();
        if now.count >= sent as u64 {
            break now;
        }
        match tokio::time::timeout(STALL, seen.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break now,
            Err(_) => {
                let counters = node.settled(base).await?;
                if now.count + counters.rejected >= counters.received {
                    // The rest is lost: known now, for matching latencies.
                    lost.found(
                        (sent as u64).saturating_sub(counters.received) + counters.rejected,
                        sent,
                    );
                    break now;
                }
                if now.at.elapsed() > GIVE_UP {
                    break now;
                }
            }
        }
    };
    stop.cancel();
    let history = poller.await.context("the poller task failed")??;
    let refused = node.settled(base).await?.rejected;
    let kernel_dropped = drops_before
        .zip(kernel_drops(node_port))
        .map(|(before, after)| after.saturating_sub(before));

    let mut latencies = histogram()?;
    let mut survivors = (0..sent).filter(|i| !lost.ranges.iter().any(|r| r.contains(i)));
    let mut before = 0;
    for (count, at) in history {
        for _ in before..count {
            let Some(i) = survivors.next() else { break };
            latencies.saturating_record(at.duration_since(send_times[i]).as_micros() as u64);
        }
        before = before.max(count);
    }
    let elapsed = if last.count > 0 {
        last.at.duration_since(started)
    } else {
        started.elapsed()
    };
    Ok(UdpOutcome {
        latencies,
        elapsed: elapsed.as_secs_f64(),
        counts: UdpCounts {
            sent,
            stored: last.count,
            refused,
            kernel_dropped,
        },
    })
}

/// Sends every one of `datagrams`, waiting while the socket's buffer is full; `on_sent` is
/// told how many went at each system call.
pub(in crate::bench) async fn send_burst(
    socket: &tokio::net::UdpSocket,
    datagrams: &[Vec<u8>],
    mut on_sent: impl FnMut(usize),
) -> std::io::Result<()> {
    let mut pending = datagrams;
    while !pending.is_empty() {
        match try_send_many(socket, pending) {
            Ok(n) => {
                on_sent(n);
                pending = &pending[n..];
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => socket.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sends the first of `datagrams` it can without waiting: how many went.
#[cfg(target_os = "linux")]
fn try_send_many(socket: &tokio::net::UdpSocket, datagrams: &[Vec<u8>]) -> std::io::Result<usize> {
    use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, sendmmsg};
    use std::io::IoSlice;
    let slices: Vec<[IoSlice<'_>; 1]> = datagrams.iter().map(|d| [IoSlice::new(d)]).collect();
    let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> = slices
        .iter()
        .map(|_| SendAncillaryBuffer::default())
        .collect();
    let mut messages: Vec<MMsgHdr<'_>> = slices
        .iter()
        .zip(controls.iter_mut())
        .map(|(slice, control)| MMsgHdr::new(slice, control))
        .collect();
    socket.try_io(tokio::io::Interest::WRITABLE, || {
        sendmmsg(socket, &mut messages, SendFlags::DONTWAIT).map_err(std::io::Error::from)
    })
}

/// Sends the first of `datagrams` without waiting (one system call per datagram).
#[cfg(not(target_os = "linux"))]
fn try_send_many(socket: &tokio::net::UdpSocket, datagrams: &[Vec<u8>]) -> std::io::Result<usize> {
    let mut sent = 0;
    for datagram in datagrams {
        match socket.try_send(datagram) {
            Ok(_) => sent += 1,
            Err(e) if sent > 0 && e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(sent)
}

/// What the kernel dropped so far at the UDP socket bound to `port` on this machine (the
/// `drops` column of `/proc/net/udp` and `udp6`); `None` when no such socket is here.
pub(in crate::bench) fn kernel_drops(port: u16) -> Option<u64> {
    let port = format!(":{port:04X}");
    ["/proc/net/udp", "/proc/net/udp6"].iter().find_map(|path| {
        let table = std::fs::read_to_string(path).ok()?;
        table.lines().skip(1).find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl, local_address, rem_address, st, …, drops (the last).
            let local = fields.get(1)?;
            let unconnected = fields.get(2)?.ends_with(":0000");
            (local.ends_with(&port) && unconnected)
                .then(|| fields.last()?.parse().ok())
                .flatten()
        })
    })
}

/// Datagrams known lost, and which ones they are taken to be.
#[derive(Default)]
struct Lost {
    count: u64,
    ranges: Vec<Range<usize>>,
}

impl Lost {
    /// `known` are lost among the first `sent`; whether that is more than before. The new ones
    /// are taken to be the newest.
    fn found(&mut self, known: u64, sent: usize) -> bool {
        if known <= self.count {
            return false;
        }
        let new = (known - self.count) as usize;
        let after = self.ranges.last().map_or(0, |r| r.end);
        self.ranges.push(sent.saturating_sub(new).max(after)..sent);
        self.count = known;
        true
    }
}

/// A UDP socket connected to `target`.
pub(in crate::bench) async fn connect(target: &str) -> anyhow::Result<tokio::net::UdpSocket> {
    let addr = tokio::net::lookup_host(target)
        .await
        .with_context(|| format!("cannot resolve {target}"))?
        .next()
        .with_context(|| format!("{target} has no address"))?;
    let local: std::net::SocketAddr = if addr.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = tokio::net::UdpSocket::bind(local)
        .await
        .context("cannot bind a UDP socket")?;
    // Connected: each send skips the route lookup, and an ICMP error surfaces as an error.
    socket
        .connect(addr)
        .await
        .with_context(|| format!("cannot reach {target}"))?;
    Ok(socket)
}

/// Reads `seq` every [`POLL`] until `stop`; publishes each change and returns them all.
async fn poll_stored(
    node: Node,
    base: u64,
    updates: watch::Sender<Stored>,
    stop: CancellationToken,
) -> anyhow::Result<Vec<(u64, Instant)>> {
    let mut history = Vec::new();
    let mut last = 0;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(POLL) => {}
        }
        let count = node.seq().await?.saturating_sub(base);
        if count != last {
            last = count;
            let at = Instant::now();
            history.push((count, at));
            updates.send_replace(Stored { count, at });
        }
    }
    Ok(history)
}

impl Node {
    /// The node whose HTTP URL is `http`.
    pub(in crate::bench) fn new(http: &str) -> anyhow::Result<Self> {
        let http = http.trim_end_matches('/');
        Ok(Self {
            client: super::http_client(Duration::from_secs(10))?,
            poh: format!("{http}/v1/poh"),
            metrics: format!("{http}/metrics"),
        })
    }

    /// `GET url`. A node whose per-client rate limit is on counts these requests with the
    /// datagrams, and answers 503 while the sender is over it: that is waited out.
    async fn get(&self, url: &str) -> anyhow::Result<reqwest::Response> {
        let mut tries = 0;
        loop {
            let response = self
                .client
                .get(url)
                .send()
                .await
                .with_context(|| format!("cannot read {url}"))?;
            if response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE && tries < 1000 {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            return response
                .error_for_status()
                .with_context(|| format!("cannot read {url}"));
        }
    }

    /// The node's `seq`: transactions recorded in its PoH chain so far.
    async fn seq(&self) -> anyhow::Result<u64> {
        #[derive(serde::Deserialize)]
        struct Poh {
            seq: u64,
        }
        let poh: Poh = self
            .get(&self.poh)
            .await?
            .json()
            .await
            .with_context(|| format!("{} is not the PoH state", self.poh))?;
        Ok(poh.seq)
    }

    /// The UDP counters, less `base`.
    pub(in crate::bench) async fn counters(&self, base: Counters) -> anyhow::Result<Counters> {
        let text = self
            .get(&self.metrics)
            .await?
            .text()
            .await
            .with_context(|| format!("cannot read {}", self.metrics))?;
        let mut counters = Counters::default();
        for line in text.lines() {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            // Counters print as integers or floats; a bad one is not a count.
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let Some((family, labels)) = name.split_once('{') else {
                continue;
            };
            if !labels.split([',', '}']).any(|l| l == r#"transport="udp""#) {
                continue;
            }
            match family {
                "poh_tx_received_total" => counters.received += value as u64,
                // One line per reason.
                "poh_tx_rejected_total" => counters.rejected += value as u64,
                _ => {}
            }
        }
        Ok(Counters {
            received: counters.received.saturating_sub(base.received),
            rejected: counters.rejected.saturating_sub(base.rejected),
        })
    }

    /// The counters once the receive count stops moving: what the socket held is then read.
    async fn settled(&self, base: Counters) -> anyhow::Result<Counters> {
        let mut counters = self.counters(base).await?;
        for _ in 0..100 {
            tokio::time::sleep(SETTLE).await;
            let again = self.counters(base).await?;
            if again.received == counters.received {
                return Ok(again);
            }
            counters = again;
        }
        Ok(counters)
    }
}
