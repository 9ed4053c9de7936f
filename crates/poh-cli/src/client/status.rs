//! `poh status TX_ID`: what a node knows of a transaction (`QueryTransactionStatus`); exit 1
//! when it is `UNKNOWN`.

use anyhow::bail;
use poh_proto::v1::{self as pb, dag_service_client::DagServiceClient};
use serde_json::json;

use super::EndpointArgs;

/// `poh status`.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The transaction's id.
    tx_id: String,
    #[command(flatten)]
    endpoints: EndpointArgs,
    /// One JSON object instead of lines.
    #[arg(long)]
    json: bool,
}

pub fn status(args: &StatusArgs) -> anyhow::Result<()> {
    let (runtime, endpoints) = args.endpoints.connect()?;
    let request = pb::StatusRequest {
        tx_id: args.tx_id.clone(),
    };
    let (answer, _) = runtime.block_on(endpoints.call(|channel| {
        let request = endpoints.request(request.clone());
        async move {
            DagServiceClient::new(channel)
                .query_transaction_status(request)
                .await
                .map(|r| r.into_inner())
        }
    }))?;
    let status =
        pb::TxStatus::try_from(answer.status).map_or("TX_STATUS_UNSPECIFIED", |s| s.as_str_name());
    if args.json {
        println!(
            "{}",
            json!({"tx_id": answer.tx_id, "status": status, "message": answer.message,
                   "poh_seq": answer.poh_seq, "poh_hash": hex::encode(&answer.poh_hash),
                   "parent_ids": answer.parent_ids, "header_id": answer.header_id})
        );
    } else {
        println!("{}: {status}", answer.tx_id);
        if !answer.poh_hash.is_empty() {
            println!("  poh_seq   {}", answer.poh_seq);
            println!("  poh_hash  {}", hex::encode(&answer.poh_hash));
        }
        if !answer.parent_ids.is_empty() {
            println!("  parents   {}", answer.parent_ids.join(", "));
        }
        if !answer.header_id.is_empty() {
            println!("  header    {}", answer.header_id);
        }
        if !answer.message.is_empty() {
            println!("  {}", answer.message);
        }
    }
    if status == "UNKNOWN" {
        bail!("{} is not known to the node", args.tx_id);
    }
    Ok(())
}
