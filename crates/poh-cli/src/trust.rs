//! `--trust PUBKEY_FILE` and `--untrusted`, shared by `poh verify --proof`, `poh verify
//! --chain` and `poh prove`. A header's signature only shows that the key inside it signed
//! it, and anyone can make a key and sign headers under any chain id: a proof or a chain file
//! proves something only under a key the verifier already holds. One that no such key signs
//! is refused as self-consistent but unanchored, unless the operator accepts exactly that.

use std::path::PathBuf;

use anyhow::bail;
use poh_node::{NodeError, federation::key::read_public_key};

#[derive(clap::Args, Debug)]
pub struct TrustArgs {
    /// A public-key file (`FILE.pub` from `poh keygen`, or `node.key.pub` in a node's data
    /// directory) of a chain you trust: the top chain's, or any chain's on the path.
    /// Repeatable.
    #[arg(long = "trust", value_name = "PUBKEY_FILE")]
    trust: Vec<PathBuf>,
    /// Accept a file that verifies but that no trusted key signs: it is reported as
    /// unanchored, and the exit code is 0.
    #[arg(long, conflicts_with = "trust")]
    untrusted: bool,
}

impl TrustArgs {
    /// The trusted public keys, every file read and checked.
    pub fn keys(&self) -> anyhow::Result<Vec<Vec<u8>>> {
        self.trust
            .iter()
            .map(|path| {
                read_public_key(path).map_err(|e| match e {
                    NodeError::Config(why) => anyhow::anyhow!("--trust: {why}"),
                    other => anyhow::anyhow!("--trust {}: {other}", path.display()),
                })
            })
            .collect()
    }

    /// What to say of `subject`, which verifies but no trusted key signs, given the chains
    /// and keys it carries (`signers`): an error, or with `--untrusted` the line that says so.
    pub fn unanchored(
        &self,
        subject: &str,
        signers: &str,
        trusted: &[Vec<u8>],
    ) -> anyhow::Result<String> {
        if self.untrusted {
            return Ok(format!(
                "unanchored: {subject} is self-consistent, but no trusted key signs it \
                 ({signers}); --trust KEY.pub with the key of a chain you trust anchors it"
            ));
        }
        let why = if trusted.is_empty() {
            "no --trust key was given".to_string()
        } else {
            let given: Vec<String> = trusted.iter().map(|k| fingerprint(k)).collect();
            format!("no --trust key ({}) signs it", given.join(", "))
        };
        bail!(
            "{subject} is self-consistent but unanchored: {why}; it carries {signers}. Pass \
             --trust KEY.pub with the public key of a chain you trust (the top chain's, or any \
             on the path), or --untrusted to accept it unanchored"
        )
    }
}

/// A public key as messages show it: the first 16 hex digits of its SHA-256, of which `poh
/// keygen` prints all 64.
pub fn fingerprint(public_key: &[u8]) -> String {
    let mut hex = poh_core::sha256(public_key).to_hex();
    hex.truncate(16);
    hex
}

/// How a header's chain and key are named in messages.
pub fn signer(chain_id: &str, public_key: &[u8]) -> String {
    format!("{chain_id} key {}", fingerprint(public_key))
}
