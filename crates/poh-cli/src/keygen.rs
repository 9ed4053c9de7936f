//! `poh keygen`: a new ML-DSA-87 key as a seed file (0600) and a public-key file.

use std::path::PathBuf;

use poh_core::SigningKey;
use poh_node::federation::key::write_key_files;

#[derive(clap::Args)]
pub struct Args {
    /// Where to write the secret seed (hex); the public key goes to the same path plus `.pub`.
    #[arg(long, short, default_value = "poh.key")]
    out: PathBuf,
    /// Replace existing files.
    #[arg(long)]
    force: bool,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let key = SigningKey::generate()?;
    let pub_path = write_key_files(&key, &args.out, args.force)?;
    println!("secret key (seed): {} (mode 0600)", args.out.display());
    println!(
        "public key:        {} (ML-DSA-87, 2592 bytes, hex)",
        pub_path.display()
    );
    println!("public key sha256: {}", poh_core::sha256(key.public_key()));
    Ok(())
}
