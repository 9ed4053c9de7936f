//! `poh add-peer`, `poh remove-peer` and `poh list-peers`: the peers file (SPEC §5), with
//! an optional certificate pin per address (`add-peer --pin`).
//!
//! PROTOCOL and ADDR are plain strings parsed here rather than by clap, so that a bad value
//! is the same one-line error as every other failure. Removing an address that is not listed
//! is an error (exit 1, nothing written): a typo must not look like a successful removal.

use std::path::PathBuf;

use poh_node::{PeerBook, Transport};

/// `--peers-file`, shared by every command that reads the peers file.
#[derive(clap::Args, Debug)]
pub struct FileArg {
    /// The peers file [default: ~/.poh_peers.json].
    #[arg(long, env = "POH_PEERS_FILE", value_name = "FILE")]
    peers_file: Option<PathBuf>,
}

impl FileArg {
    /// The file given, or the default `~/.poh_peers.json`.
    pub fn book(&self) -> anyhow::Result<PeerBook> {
        let path = match &self.peers_file {
            Some(path) => path.clone(),
            None => PeerBook::default_path().map_err(one_line)?,
        };
        Ok(PeerBook::new(path))
    }
}

#[derive(clap::Args)]
pub struct EditArgs {
    /// grpc, http, udp or quic.
    protocol: String,
    /// host:port for grpc, udp and quic; an http:// or https:// URL for http.
    address: String,
    #[command(flatten)]
    file: FileArg,
}

#[derive(clap::Args)]
pub struct AddArgs {
    #[command(flatten)]
    edit: EditArgs,
    /// Pin the peer's certificate: the SHA-256 fingerprint (hex) it must present, as
    /// `poh certs` prints it. Replaces an earlier pin of the address.
    #[arg(long, value_name = "SHA256")]
    pin: Option<String>,
}

#[derive(clap::Args)]
pub struct ListArgs {
    /// Print the JSON object (the four keys, and pins when any) instead of one line per peer.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    file: FileArg,
}

/// `poh add-peer PROTOCOL ADDR [--pin SHA256]`: adding a listed address again (with the same
/// pin) changes nothing (exit 0).
pub fn add(args: &AddArgs) -> anyhow::Result<()> {
    let (book, protocol) = edit_target(&args.edit)?;
    let (path, address) = (book.path().display(), &args.edit.address);
    let pinned = match &args.pin {
        Some(_) => " (certificate pinned)",
        None => "",
    };
    if book
        .add(protocol, address, args.pin.as_deref())
        .map_err(one_line)?
    {
        println!("added {protocol} {address}{pinned} to {path}");
    } else {
        println!("{protocol} {address}{pinned} is already in {path}");
    }
    Ok(())
}

/// `poh remove-peer PROTOCOL ADDR`.
pub fn remove(args: &EditArgs) -> anyhow::Result<()> {
    let (book, protocol) = edit_target(args)?;
    let path = book.path().display();
    if !book.remove(protocol, &args.address).map_err(one_line)? {
        anyhow::bail!(
            "{protocol} peer {:?} is not in {path}; nothing removed (see poh list-peers)",
            args.address
        );
    }
    println!("removed {protocol} {} from {path}", args.address);
    Ok(())
}

/// `poh list-peers [--json]`.
pub fn list(args: &ListArgs) -> anyhow::Result<()> {
    let peers = args.file.book()?.load().map_err(one_line)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&peers)?);
    } else if peers.is_empty() {
        println!("no peers");
    } else {
        for (protocol, address) in peers.iter() {
            match peers.pin(address) {
                Some(pin) => println!("{protocol} {address} pin={pin}"),
                None => println!("{protocol} {address}"),
            }
        }
    }
    Ok(())
}

fn edit_target(args: &EditArgs) -> anyhow::Result<(PeerBook, Transport)> {
    let protocol = args
        .protocol
        .parse::<Transport>()
        .map_err(anyhow::Error::msg)?;
    Ok((args.file.book()?, protocol))
}

/// The error's own message only: it already includes its cause, and `main` prints the
/// whole chain, which would repeat it.
fn one_line(e: poh_node::PeersError) -> anyhow::Error {
    anyhow::Error::msg(e.to_string())
}
