//! `poh certs`: a development CA and one certificate per node name, ready for `--tls-cert`,
//! `--tls-key` and `--tls-ca` (SPEC §8). An existing CA in the directory is reused, so more
//! nodes can join later.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use poh_node::tls::{self, certs::DevCa};

/// `poh certs`.
#[derive(clap::Args, Debug)]
pub struct CertsArgs {
    /// Where the files go (created if missing).
    #[arg(long, default_value = "certs")]
    out: PathBuf,
    /// A node name: its certificate's CN and SAN (repeat for several).
    #[arg(long = "node", required = true)]
    nodes: Vec<String>,
    /// Days the node certificates are valid.
    #[arg(long, default_value_t = 365)]
    days: i64,
    /// Also write NAME.p12 bundles, encrypted with the password in this file.
    #[arg(long)]
    pkcs12_password_file: Option<PathBuf>,
}

pub fn run(args: &CertsArgs) -> anyhow::Result<()> {
    if args.days < 1 {
        bail!("--days must be at least 1");
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let (ca_cert, ca_key) = (args.out.join("ca.crt"), args.out.join("ca.key"));
    let ca = if ca_key.exists() {
        let pem = std::fs::read_to_string(&ca_key)
            .with_context(|| format!("cannot read {}", ca_key.display()))?;
        let ca = DevCa::from_key_pem(&pem)?;
        println!("reusing the CA in {}", ca_key.display());
        ca
    } else {
        let ca = DevCa::generate()?;
        tls::write_private(&ca_key, ca.key_pem().as_bytes())?;
        std::fs::write(&ca_cert, &ca.cert_pem)
            .with_context(|| format!("cannot write {}", ca_cert.display()))?;
        println!("wrote {} and {}", ca_cert.display(), ca_key.display());
        ca
    };
    let password = match &args.pkcs12_password_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
        ),
        None => None,
    };
    for name in &args.nodes {
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            bail!("node name {name:?}: use letters, digits, dots and hyphens");
        }
        let (cert_pem, key_pem) = ca.issue(name, args.days)?;
        let (cert, key) = (
            args.out.join(format!("{name}.crt")),
            args.out.join(format!("{name}.key")),
        );
        std::fs::write(&cert, &cert_pem)
            .with_context(|| format!("cannot write {}", cert.display()))?;
        tls::write_private(&key, key_pem.as_bytes())?;
        let der = tls::read_certs(&cert)?;
        let fingerprint = der.first().map(tls::fingerprint).unwrap_or_default();
        println!(
            "wrote {} and {} (SHA-256 {fingerprint})",
            cert.display(),
            key.display()
        );
        if let Some(password) = &password {
            let bundle = args.out.join(format!("{name}.p12"));
            let bytes = tls::certs::pkcs12(&cert_pem, &key_pem, password)?;
            tls::write_private(&bundle, &bytes)?;
            println!("wrote {}", bundle.display());
        }
    }
    let first = &args.nodes[0];
    let dir = args.out.display();
    println!(
        "serve with: poh serve --tls-cert {dir}/{first}.crt --tls-key {dir}/{first}.key --tls-ca {dir}/ca.crt"
    );
    Ok(())
}

/// `poh fingerprint`.
#[derive(clap::Args, Debug)]
pub struct FingerprintArgs {
    /// PEM certificate files, whose first certificate (the leaf) is fingerprinted; or a chain's
    /// public key (`poh keygen`'s FILE.pub), whose fingerprint the explorer and the node's log
    /// (`key_fingerprint`) show.
    #[arg(required = true)]
    certs: Vec<PathBuf>,
}

/// Prints `SHA256  FILE` per file, as `sha256sum` lays it out: for a certificate the value
/// `--tls-pin` and `add-peer --pin` take, for a public key SHA-256 of the key.
pub fn fingerprint(args: &FingerprintArgs) -> anyhow::Result<()> {
    for path in &args.certs {
        if let Ok(key) = poh_node::federation::key::read_public_key(path) {
            let print = poh_node::federation::key::fingerprint(&key);
            println!("{print}  {}", path.display());
            continue;
        }
        let certs = tls::read_certs(path)?;
        let Some(leaf) = certs.first() else {
            bail!(
                "{} holds no certificate, nor a public key as `poh keygen` writes it",
                path.display()
            );
        };
        println!("{}  {}", tls::fingerprint(leaf), path.display());
    }
    Ok(())
}
