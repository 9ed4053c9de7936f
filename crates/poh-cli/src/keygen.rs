//! `poh keygen`: a new ML-DSA-87 key as a seed file (0600) and a public-key file.

use std::{io::Write as _, path::PathBuf};

use anyhow::Context as _;
use poh_core::SigningKey;

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
    let mut pub_path = args.out.clone().into_os_string();
    pub_path.push(".pub");
    let pub_path = PathBuf::from(pub_path);

    let mut secret = crate::create_file(&args.out, args.force, 0o600)?;
    secret
        .write_all(key.to_key_file().as_bytes())
        .and_then(|()| secret.sync_all())
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let mut public = crate::create_file(&pub_path, args.force, 0o644)?;
    public
        .write_all(format!("{}\n", hex::encode(key.public_key())).as_bytes())
        .and_then(|()| public.sync_all())
        .with_context(|| format!("cannot write {}", pub_path.display()))?;

    println!("secret key (seed): {} (mode 0600)", args.out.display());
    println!(
        "public key:        {} (ML-DSA-87, 2592 bytes, hex)",
        pub_path.display()
    );
    println!("public key sha256: {}", poh_core::sha256(key.public_key()));
    Ok(())
}
