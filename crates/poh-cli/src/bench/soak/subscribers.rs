//! The subscriptions `bench soak` keeps open beside its load: gRPC `Subscribe` and HTTP
//! `GET /v1/events` (SSE), each read to the end of everything the node sends, as a live
//! subscriber reads it. A subscriber costs the node a stream, a task and its reads of the
//! store for the whole run, which is what a leak per subscription would show in.
//!
//! The node ends a subscription only when it stops (SPEC §4), so any end before the soak's is
//! counted as an error, and the subscriber resumes after the last transaction it saw.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, bail};
use poh_node::wire::expired::Expired;
use poh_proto::v1::{self as pb, poh_service_client::PohServiceClient};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::super::ingest::{grpc, http_client};

/// The wait before a subscription that ended is opened again.
const RESUME_AFTER: Duration = Duration::from_secs(1);
/// The longest SSE line taken: a transaction's JSON with the largest payload base64-encoded
/// is under 1.5 MiB, so a longer line is a broken stream, not one to buffer.
const MAX_LINE: usize = 4 << 20;

/// The kinds of subscription, as reported.
#[derive(Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Kind {
    /// gRPC `PohService.Subscribe`.
    Grpc,
    /// `GET /v1/events`.
    Sse,
}

/// What one subscriber counted so far.
pub(super) struct Subscriber {
    pub kind: Kind,
    /// Transactions received (`TxRecord`s; SSE `tx` events).
    pub received: AtomicU64,
    /// Subscriptions that ended or failed before the soak did, and expiry notices.
    pub errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Subscriber {
    pub(super) fn new(kind: Kind) -> Self {
        Self {
            kind,
            received: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    fn failed(&self, why: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
    }

    /// The latest failure, if any.
    pub(super) fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Waits `RESUME_AFTER`; whether the soak is still on.
async fn pause(stop: &CancellationToken) -> bool {
    tokio::select! {
        () = stop.cancelled() => false,
        () = tokio::time::sleep(RESUME_AFTER) => true,
    }
}

/// Why a subscription ended: its error, or the node ending it.
fn ended(result: anyhow::Result<()>) -> anyhow::Error {
    result
        .err()
        .unwrap_or_else(|| anyhow::anyhow!("the node ended the stream"))
}

/// Subscribes over gRPC at `target` from the first transaction, and again after the last one
/// seen whenever the stream ends, until `stop`.
pub(super) async fn grpc(target: String, me: Arc<Subscriber>, stop: CancellationToken) {
    let mut next = 0;
    loop {
        let reading = async {
            let channel = grpc::connect(&target).await?;
            let request = pb::SubscribeRequest { from_seq: next };
            let mut stream = PohServiceClient::new(channel)
                .subscribe(request)
                .await?
                .into_inner();
            while let Some(record) = stream.message().await? {
                next = record.poh_seq + 1;
                me.received.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        };
        let ended = tokio::select! {
            () = stop.cancelled() => return,
            result = reading => ended(result),
        };
        // A subscriber the TTL overtook is told which seqs it can no longer have; it goes on
        // after them, and the notice counts as an error: a live one should never fall so far.
        if let Some(run) = ended
            .downcast_ref::<tonic::Status>()
            .and_then(Expired::from_status)
        {
            next = run.next_seq();
        }
        me.failed(super::brief(&ended));
        if !pause(&stop).await {
            return;
        }
    }
}

/// Subscribes to `GET {http}/v1/events` from the next transaction stored, and again after the
/// last one seen (`Last-Event-ID`) whenever the stream ends, until `stop`; no request lasts
/// longer than `longest`.
pub(super) async fn sse(
    http: String,
    me: Arc<Subscriber>,
    longest: Duration,
    stop: CancellationToken,
) {
    let client = match http_client(longest) {
        Ok(client) => client,
        Err(e) => return me.failed(super::brief(&e)),
    };
    let url = format!("{http}/v1/events");
    let mut last_id: Option<String> = None;
    loop {
        let reading = async {
            let mut request = client.get(&url);
            if let Some(id) = &last_id {
                request = request.header("last-event-id", id.as_str());
            }
            let mut response = request
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .with_context(|| format!("cannot subscribe to {url}"))?;
            let mut lines = Lines::default();
            while let Some(chunk) = response.chunk().await? {
                lines.push(&chunk, |line| {
                    if let Some(id) = field(line, "id") {
                        last_id = Some(id.to_string());
                    } else if let Some(event) = field(line, "event") {
                        match event {
                            "tx" => {
                                me.received.fetch_add(1, Ordering::Relaxed);
                            }
                            "expired" => me.failed("the TTL overtook the subscriber".into()),
                            _ => {}
                        }
                    }
                })?;
            }
            anyhow::Ok(())
        };
        let ended = tokio::select! {
            () = stop.cancelled() => return,
            result = reading => ended(result),
        };
        me.failed(super::brief(&ended));
        if !pause(&stop).await {
            return;
        }
    }
}

/// The value of an SSE field line `name: value` (the space after the colon is optional).
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let value = line.strip_prefix(name)?.strip_prefix(':')?;
    Some(value.strip_prefix(' ').unwrap_or(value))
}

/// Bytes cut into lines across chunks.
#[derive(Default)]
struct Lines {
    pending: Vec<u8>,
}

impl Lines {
    /// Adds `chunk` and gives `each` every line it completes, without its `\n` or `\r\n`.
    fn push(&mut self, chunk: &[u8], mut each: impl FnMut(&str)) -> anyhow::Result<()> {
        self.pending.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(end) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let line = &self.pending[start..start + end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            each(&String::from_utf8_lossy(line));
            start += end + 1;
        }
        self.pending.drain(..start);
        if self.pending.len() > MAX_LINE {
            bail!("an SSE line longer than {MAX_LINE} bytes");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_across_chunks_and_fields_read() {
        let mut seen = Vec::new();
        let mut lines = Lines::default();
        lines
            .push(b"id: 7\r\nevent: t", |l| seen.push(l.to_string()))
            .unwrap();
        lines
            .push(b"x\ndata: {}\n\n", |l| seen.push(l.to_string()))
            .unwrap();
        assert_eq!(seen, ["id: 7", "event: tx", "data: {}", ""]);
        assert_eq!(field("id: 7", "id"), Some("7"));
        assert_eq!(field("event:tx", "event"), Some("tx"));
        assert_eq!(field("data: {}", "id"), None);
        assert_eq!(field(": keep-alive", "event"), None);
    }

    #[test]
    fn a_line_that_never_ends_is_refused() {
        let mut lines = Lines::default();
        assert!(lines.push(&vec![b'x'; MAX_LINE + 1], |_| {}).is_err());
    }
}
