//! `poh list --holder H`: a holder's transactions by `poh_seq` (`PohService.List`), a page at
//! a time, or every page with `--all`.

use poh_proto::v1::{self as pb, poh_service_client::PohServiceClient};
use serde_json::json;

use super::{EndpointArgs, subscribe::line};

/// `poh list`.
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// The holder whose transactions to list.
    #[arg(long)]
    holder: String,
    /// The first poh_seq to consider.
    #[arg(long, default_value_t = 0)]
    from_seq: u64,
    /// Transactions per page, 1–1000.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    limit: u32,
    /// Every page, not only the first.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    endpoints: EndpointArgs,
    /// One JSON object per transaction (as `GET /v1/tx/{id}` has it), then
    /// `{"next_seq": …}` (`null` when there is no more).
    #[arg(long)]
    json: bool,
}

pub fn list(args: &ListArgs) -> anyhow::Result<()> {
    let (runtime, endpoints) = args.endpoints.connect()?;
    let mut from_seq = args.from_seq;
    loop {
        let request = pb::ListRequest {
            holder_id: args.holder.clone(),
            from_seq,
            limit: args.limit,
        };
        let (page, _) = runtime.block_on(endpoints.call(|channel| {
            let request = endpoints.request(request.clone());
            async move {
                PohServiceClient::new(channel)
                    .list(request)
                    .await
                    .map(|r| r.into_inner())
            }
        }))?;
        for record in &page.records {
            println!("{}", line(record, args.json));
        }
        let next = page.more.then_some(page.next_seq);
        match next {
            Some(next) if args.all => from_seq = next,
            _ => {
                if args.json {
                    println!("{}", json!({ "next_seq": next }));
                } else if let Some(next) = next {
                    println!(
                        "more: poh list --holder {:?} --from-seq {next}",
                        args.holder
                    );
                }
                return Ok(());
            }
        }
    }
}
