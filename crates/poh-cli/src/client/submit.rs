//! `poh submit`: transactions through `DAGService.SubmitTransaction`, round robin over the
//! `--endpoint`s, failing over past one that is down.

use anyhow::{Context as _, bail};
use poh_proto::v1::{self as pb, dag_service_client::DagServiceClient};
use serde_json::json;

use super::{EndpointArgs, TxArgs};

/// `poh submit`.
#[derive(clap::Args, Debug)]
pub struct SubmitArgs {
    #[command(flatten)]
    tx: TxArgs,
    #[command(flatten)]
    endpoints: EndpointArgs,
    /// One JSON object instead of a line.
    #[arg(long)]
    json: bool,
}

pub fn submit(args: &SubmitArgs) -> anyhow::Result<()> {
    let txs = args.tx.build_all()?;
    let (runtime, endpoints) = args.endpoints.connect()?;
    let mut rejected = 0;
    for tx in txs {
        let payload = String::from_utf8(tx.payload.clone()).with_context(|| {
            format!(
                "{}: DAGService carries the payload as UTF-8 text; use `poh broadcast` for other bytes",
                tx.tx_id
            )
        })?;
        let request = pb::TxRequest {
            tx_id: tx.tx_id.clone(),
            payload,
            parent_ids: tx.parent_ids.clone(),
            holder_id: tx.holder_id.clone(),
            timestamp: tx.timestamp,
            public_key: tx.public_key.clone(),
            signature: tx.signature.clone(),
        };
        let (answer, endpoint) = runtime.block_on(endpoints.call(|channel| {
            let request = endpoints.request(request.clone());
            async move {
                DagServiceClient::new(channel)
                    .submit_transaction(request)
                    .await
                    .map(|r| r.into_inner())
            }
        }))?;
        if args.json {
            println!(
                "{}",
                json!({"tx_id": tx.tx_id, "endpoint": endpoint, "status": answer.status,
                       "message": answer.message, "poh_seq": answer.poh_seq})
            );
        } else {
            println!(
                "{}: {} via {endpoint}, poh_seq {}{}",
                tx.tx_id,
                answer.status,
                answer.poh_seq,
                if answer.message.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", answer.message)
                }
            );
        }
        if answer.status == "rejected" {
            rejected += 1;
        }
    }
    if rejected > 0 {
        bail!("{rejected} transaction(s) rejected");
    }
    Ok(())
}
