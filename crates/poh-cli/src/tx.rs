//! `poh tx`: a transaction as the node sees it, without sending it: its canonical signing
//! bytes, its digest, whether its signature verifies, and its JSON (signed with
//! `--sign-key`), so another implementation can be checked byte for byte and a transaction
//! signed offline.

use serde_json::json;

use crate::client::TxArgs;

/// `poh tx`.
#[derive(clap::Args, Debug)]
pub struct TxCommandArgs {
    #[command(flatten)]
    tx: TxArgs,
}

pub fn tx(args: &TxCommandArgs) -> anyhow::Result<()> {
    for tx in args.tx.build_all()? {
        let signature = if tx.signature.is_empty() && tx.public_key.is_empty() {
            "none"
        } else if tx.verify_signature().is_ok() {
            "valid"
        } else {
            "invalid"
        };
        let tx_json: serde_json::Value = serde_json::from_slice(&poh_node::tx_to_json(&tx))?;
        println!(
            "{}",
            json!({
                "tx_id": tx.tx_id,
                "signing_bytes": hex::encode(tx.signing_bytes()),
                "digest": tx.digest().to_hex(),
                "signature": signature,
                "tx": tx_json,
            })
        );
    }
    Ok(())
}
