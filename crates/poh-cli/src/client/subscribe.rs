//! `poh subscribe`: every transaction a node stores, one line each, as it is stored
//! (`PohService.Subscribe`). When the stream ends (the node stopped) or the connection fails,
//! it resumes after the last transaction printed, so a restart of the node loses nothing and
//! repeats nothing; `--once` exits instead.
//!
//! Transactions the node no longer holds (expired by its TTL) end the stream with
//! `OUT_OF_RANGE`: the command says which seqs and which headers sealed them, and exits
//! non-zero, so nothing is passed over unnoticed; `--skip-expired` goes on after them instead,
//! with a warning.

use std::{
    io::{ErrorKind, Write as _},
    time::Duration,
};

use anyhow::bail;
use poh_node::{network::client::CallError, wire::expired::Expired};
use poh_proto::v1::{self as pb, poh_service_client::PohServiceClient};
use serde_json::{Value, json};
use tonic::Code;

use super::EndpointArgs;

/// Longest wait between two attempts to resume.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// `poh subscribe`.
#[derive(clap::Args, Debug)]
pub struct SubscribeArgs {
    /// The `poh_seq` to start at (0: the first transaction the node stored).
    #[arg(long, default_value_t = 0)]
    from_seq: u64,
    #[command(flatten)]
    endpoints: EndpointArgs,
    /// One JSON object per transaction (as `GET /v1/tx/{tx_id}` gives it, without
    /// `dag_parents`) instead of `poh_seq tx_id status poh_hash`.
    #[arg(long)]
    json: bool,
    /// Exit when the stream ends instead of resuming.
    #[arg(long)]
    once: bool,
    /// Go on after transactions the node no longer holds (expired by its TTL), with a
    /// warning, instead of exiting.
    #[arg(long)]
    skip_expired: bool,
}

/// How one stream ended.
enum Ended {
    /// The node ended it (it is stopping).
    Cleanly,
    /// It reached transactions the node no longer holds, and goes on after them.
    Skipped,
    /// The connection failed, or the node could not be reached.
    Failed(String),
}

pub fn subscribe(args: &SubscribeArgs) -> anyhow::Result<()> {
    let (runtime, endpoints) = args.endpoints.connect()?;
    let mut next = args.from_seq;
    let mut backoff = Duration::from_millis(250);
    let mut out = std::io::stdout().lock();
    runtime.block_on(async {
        loop {
            let request = pb::SubscribeRequest { from_seq: next };
            let opened = endpoints
                .call(|channel| {
                    let request = endpoints.request(request);
                    async move {
                        PohServiceClient::new(channel)
                            .subscribe(request)
                            .await
                            .map(|r| r.into_inner())
                    }
                })
                .await;
            let ended = match opened {
                Ok((mut stream, _)) => loop {
                    match stream.message().await {
                        Ok(Some(record)) => {
                            backoff = Duration::from_millis(250);
                            next = record.poh_seq + 1;
                            let line = line(&record, args.json);
                            if let Err(e) = writeln!(out, "{line}") {
                                // A reader that went away (`| head`) ends the command.
                                if e.kind() == ErrorKind::BrokenPipe {
                                    return Ok(());
                                }
                                return Err(e.into());
                            }
                        }
                        Ok(None) => break Ended::Cleanly,
                        Err(status) => match Expired::from_status(&status) {
                            Some(run) => break passed(&run, args.skip_expired, &mut next)?,
                            None if resumable(status.code()) => {
                                break Ended::Failed(status.message().to_string());
                            }
                            None => bail!("{:?}: {}", status.code(), status.message()),
                        },
                    }
                },
                // A stream that ends before its first record may come as the call's answer.
                Err(e) => match expired_answer(&e) {
                    Some(run) => passed(&run, args.skip_expired, &mut next)?,
                    None if resumable(e.code()) => Ended::Failed(e.to_string()),
                    None => return Err(e.into()),
                },
            };
            if args.once {
                return match ended {
                    Ended::Cleanly => Ok(()),
                    Ended::Skipped => continue,
                    Ended::Failed(why) => bail!("{why}"),
                };
            }
            match ended {
                Ended::Skipped => continue,
                Ended::Cleanly => {
                    tracing::warn!(next_seq = next, "the node ended the stream; resuming")
                }
                Ended::Failed(why) => {
                    tracing::warn!(next_seq = next, %why, "the stream failed; resuming")
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    })
}

/// A stream that reached transactions the node no longer holds: an error, or with
/// `--skip-expired` a warning and the seq after them as the next one.
fn passed(run: &Expired, skip: bool, next: &mut u64) -> anyhow::Result<Ended> {
    if !skip {
        bail!("{}", expired_text(run));
    }
    tracing::warn!("{}; going on after them", expired_text(run));
    *next = run.next_seq();
    Ok(Ended::Skipped)
}

fn expired_answer(e: &CallError) -> Option<Expired> {
    match e {
        CallError::Refused { status, .. } => Expired::from_status(status),
        CallError::Unreachable(_) => None,
    }
}

/// What a subscriber is told of transactions the node no longer holds.
fn expired_text(run: &Expired) -> String {
    format!(
        "the node no longer holds seqs {}..={}: {} transactions expired by its TTL, sealed by \
         headers {}; restore them there (poh restore HEADER_ID) or resume after them \
         (--from-seq {} or --skip-expired)",
        run.from_seq,
        run.to_seq,
        run.count,
        run.header_ids.join(","),
        run.next_seq()
    )
}

/// Whether a stream that failed with `code` is worth opening again.
fn resumable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::ResourceExhausted
            | Code::DeadlineExceeded
            | Code::Unknown
            | Code::Internal
    )
}

/// A stored transaction as one line: `seq id status poh_hash`, or its JSON (as `GET
/// /v1/tx/{id}` has it).
pub(super) fn line(record: &pb::TxRecord, as_json: bool) -> String {
    let status =
        pb::TxStatus::try_from(record.status).map_or("TX_STATUS_UNSPECIFIED", |s| s.as_str_name());
    let tx_id = record.tx.as_ref().map_or("", |t| t.tx_id.as_str());
    if !as_json {
        return format!(
            "{} {tx_id} {status} {}",
            record.poh_seq,
            hex::encode(&record.poh_hash)
        );
    }
    let tx = record
        .tx
        .clone()
        .map(|t| poh_node::tx_to_json(&poh_node::tx_from_pb(t)));
    let mut object = tx
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .unwrap_or_else(|| json!({}));
    if let Some(map) = object.as_object_mut() {
        map.insert("status".into(), status.into());
        map.insert("poh_seq".into(), record.poh_seq.into());
        map.insert("poh_hash".into(), hex::encode(&record.poh_hash).into());
        let header_id = (!record.header_id.is_empty()).then(|| record.header_id.clone());
        map.insert("header_id".into(), header_id.into());
        map.insert("received_at".into(), record.received_at.into());
    }
    object.to_string()
}
