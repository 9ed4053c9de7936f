//! The peers file (SPEC §5): addresses per protocol in one JSON object with the keys `grpc`,
//! `http`, `udp` and `quic`, always all four, and optionally `pins`: a certificate pin per
//! address, `{"127.0.0.1:4433": "<SHA-256 of its certificate, hex>"}` (SPEC §8's "optional
//! pinning of a peer's certificate"). The key is written only when a pin is set, so a file
//! without pins is exactly SPEC §5's. A pinned peer is reached over TLS and must present
//! exactly that certificate; it applies to every protocol the address is listed under that
//! has TLS (gRPC, QUIC, and HTTP with an `https://` URL).
//!
//! [`PeerBook`] reads and edits the file. Every address is validated before anything is
//! written, and the file is replaced atomically (temporary file in the same directory, fsync,
//! rename, fsync of the directory), so a refused or interrupted edit leaves the previous file
//! exactly as it was. Addresses are stored verbatim: `Example.com:9000` and
//! `example.com:9000` are two entries. [`PeersCache`] is a running node's one view of it.

use std::{
    collections::BTreeMap,
    fs::{self, File, OpenOptions},
    io::{self, Read as _, Write as _},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use serde::{Deserialize, Serialize};

use crate::shared::{Transport, UnknownTransport};

mod address;
mod cache;

pub use cache::PeersCache;

/// The largest peers file read (1 MiB, tens of thousands of peers): the node reads it
/// whenever it changes, so it must stay bounded.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
const DEFAULT_FILE_NAME: &str = ".poh_peers.json";

/// Checks `address` against `protocol`'s rules (SPEC §5): an `http://` or `https://` URL for
/// HTTP, `host:port` for the others (host: IPv4, `[IPv6]` or a DNS name; port 1–65535,
/// digits only, no leading zero).
pub fn validate(protocol: Transport, address: &str) -> Result<(), PeersError> {
    let checked = match protocol {
        Transport::Http => address::check_url(address),
        Transport::Grpc | Transport::Udp | Transport::Quic => address::check_host_port(address),
    };
    checked.map_err(|reason| PeersError::InvalidAddress {
        protocol,
        address: address.to_owned(),
        reason,
    })
}

/// The contents of a peers file: addresses per protocol, in file order.
///
/// It always serializes with all four keys, and `pins` when there is one; deserializing
/// refuses unknown and missing keys (but does not validate addresses: [`PeerBook::load`] and
/// [`Peers::validate`] do).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peers {
    /// gRPC peers, `host:port`.
    pub grpc: Vec<String>,
    /// HTTP peers, `http://` or `https://` URLs.
    pub http: Vec<String>,
    /// UDP peers, `host:port`.
    pub udp: Vec<String>,
    /// QUIC peers, `host:port`.
    pub quic: Vec<String>,
    /// Certificate pins: a listed address → the SHA-256 fingerprint of the certificate it
    /// must present.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pins: BTreeMap<String, String>,
}

impl Peers {
    /// The addresses of one protocol.
    pub fn get(&self, protocol: Transport) -> &[String] {
        match protocol {
            Transport::Grpc => &self.grpc,
            Transport::Http => &self.http,
            Transport::Udp => &self.udp,
            Transport::Quic => &self.quic,
        }
    }

    fn get_mut(&mut self, protocol: Transport) -> &mut Vec<String> {
        match protocol {
            Transport::Grpc => &mut self.grpc,
            Transport::Http => &mut self.http,
            Transport::Udp => &mut self.udp,
            Transport::Quic => &mut self.quic,
        }
    }

    /// No peer of any protocol.
    pub fn is_empty(&self) -> bool {
        Transport::ALL.iter().all(|&p| self.get(p).is_empty())
    }

    /// Every peer as `(protocol, address)`, protocol by protocol in [`Transport::ALL`]
    /// order, each in file order.
    pub fn iter(&self) -> impl Iterator<Item = (Transport, &str)> + '_ {
        Transport::ALL
            .into_iter()
            .flat_map(move |p| self.get(p).iter().map(move |a| (p, a.as_str())))
    }

    /// The certificate pin of `address`, when it has one (lowercase hex once
    /// [`parse`]d: a broadcast asks this per peer, so it only looks up).
    pub fn pin(&self, address: &str) -> Option<&str> {
        self.pins.get(address).map(String::as_str)
    }

    /// Checks every address, then every pin; the error names the first invalid one.
    pub fn validate(&self) -> Result<(), PeersError> {
        self.validate_addresses()?;
        self.pins
            .iter()
            .try_for_each(|(address, pin)| self.check_pin(address, pin).map(drop))
    }

    fn validate_addresses(&self) -> Result<(), PeersError> {
        self.iter()
            .try_for_each(|(protocol, address)| validate(protocol, address))
    }

    /// A pin must be a fingerprint and belong to an address listed under a protocol with TLS.
    /// Returns it in the form certificates are compared in (lowercase hex, no colons).
    fn check_pin(&self, address: &str, pin: &str) -> Result<String, PeersError> {
        let invalid = |reason: &str| PeersError::InvalidPin {
            address: address.to_owned(),
            reason: reason.to_owned(),
        };
        let pin = crate::tls::parse_pin(pin).map_err(|reason| invalid(&reason))?;
        let mut listed = Transport::ALL
            .into_iter()
            .filter(|&p| self.get(p).iter().any(|a| a == address))
            .peekable();
        if listed.peek().is_none() {
            return Err(invalid(
                "the address is not listed under any protocol; add the peer first",
            ));
        }
        let mut tls = listed.map(|p| match p {
            Transport::Grpc | Transport::Quic => true,
            Transport::Http => address.starts_with("https://"),
            Transport::Udp => false,
        });
        if tls.any(|has_tls| has_tls) {
            Ok(pin)
        } else {
            Err(invalid(
                "the address has no TLS to pin: pins apply to grpc and quic peers and https:// URLs",
            ))
        }
    }
}

/// Why the peers file cannot be read or edited. Each message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum PeersError {
    /// A protocol name that is none of the four.
    #[error(transparent)]
    UnknownProtocol(#[from] UnknownTransport),
    /// An address that does not parse for its protocol.
    #[error("invalid {protocol} address {address:?}: {reason}")]
    InvalidAddress {
        /// The protocol it was given for.
        protocol: Transport,
        /// The address, as given.
        address: String,
        /// What is wrong with it and what is expected.
        reason: String,
    },
    /// The file exists but cannot be read.
    #[error("cannot read the peers file {path}: {source}; check that it is a readable file")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("the peers file {path} is larger than {limit} bytes; check that it is the right file")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// The file is not a JSON object with the four keys, each a list of strings (and
    /// optionally `pins`, an object of strings).
    #[error(
        "the peers file {path} is not valid: {source}; it must be a JSON object with the keys \
         grpc, http, udp and quic, each a list of addresses, and optionally pins, an object \
         from address to certificate fingerprint: fix or remove it"
    )]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The file holds an address that does not parse for its protocol.
    #[error(
        "the peers file {path} holds an invalid {protocol} address {address:?}: {reason}; \
         fix or remove that entry"
    )]
    InvalidEntry {
        /// The file.
        path: PathBuf,
        /// The protocol (the key it is listed under).
        protocol: Transport,
        /// The address, as stored.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A certificate pin that is not a fingerprint, or for an address it cannot apply to.
    #[error("invalid pin for {address:?}: {reason}")]
    InvalidPin {
        /// The address it pins.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The file holds such a pin.
    #[error(
        "the peers file {path} holds an invalid pin for {address:?}: {reason}; fix or remove that entry"
    )]
    InvalidPinEntry {
        /// The file.
        path: PathBuf,
        /// The address it pins.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The new file cannot be written or moved into place (the old one is unchanged).
    #[error(
        "cannot write the peers file {path}: {source}; check that its directory exists and \
         is writable (the file is unchanged)"
    )]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// There is no home directory for the default file.
    #[error(
        "cannot find the home directory for the default peers file ~/{DEFAULT_FILE_NAME}; \
         pass --peers-file or set POH_PEERS_FILE"
    )]
    NoHome,
}

/// Parses and validates the contents of a peers file, exactly as [`PeerBook::load`] does
/// after reading it (the caller bounds the size, e.g. by [`MAX_FILE_BYTES`]). Shared with
/// `load` so the fuzz target `peers_file` exercises the very code the node runs.
///
/// Errors: [`PeersError::Parse`] with an empty `path` when the bytes are not a JSON object
/// with exactly the four keys, each a list of strings; [`PeersError::InvalidAddress`] for
/// the first invalid address. `load` puts the file's path into both.
pub fn parse(bytes: &[u8]) -> Result<Peers, PeersError> {
    let parse_error = |source| PeersError::Parse {
        path: PathBuf::new(),
        source,
    };
    // Serde also takes a struct from a JSON array (`[[], [], [], []]`); the file is an
    // object.
    if bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b != b'{')
    {
        return Err(parse_error(serde::de::Error::custom(
            "the top level is not a JSON object",
        )));
    }
    let mut peers: Peers = serde_json::from_slice(bytes).map_err(parse_error)?;
    peers.validate_addresses()?;
    // Each pin checked once, and kept in the form certificates are compared in.
    for (address, pin) in std::mem::take(&mut peers.pins) {
        let pin = peers.check_pin(&address, &pin)?;
        peers.pins.insert(address, pin);
    }
    Ok(peers)
}

/// A peers file on disk. It holds only the path: every call reads the file afresh, so
/// edits by other processes are seen.
///
/// Concurrent edits are not locked against each other: two `add`s racing may lose one
/// (never corrupt the file, since every write is an atomic replace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerBook {
    path: PathBuf,
}

impl PeerBook {
    /// The peers file at `path` (it need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// `$HOME/.poh_peers.json`, the default of `--peers-file` (SPEC §5).
    pub fn default_path() -> Result<PathBuf, PeersError> {
        std::env::home_dir()
            .filter(|home| !home.as_os_str().is_empty())
            .map(|home| home.join(DEFAULT_FILE_NAME))
            .ok_or(PeersError::NoHome)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads and validates the file. A missing file is an empty book; a file that is not
    /// valid JSON, has an unknown or a missing key, or holds an invalid address is an
    /// error naming the file and the problem. Duplicate addresses in a hand-edited file are
    /// kept as they are.
    pub fn load(&self) -> Result<Peers, PeersError> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Peers::default()),
            Err(source) => return Err(self.read_error(source)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| self.read_error(source))?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(PeersError::TooLarge {
                path: self.path.clone(),
                limit: MAX_FILE_BYTES,
            });
        }
        // The same parse as `parse`; only the errors gain the file's path.
        parse(&bytes).map_err(|e| match e {
            PeersError::Parse { source, .. } => PeersError::Parse {
                path: self.path.clone(),
                source,
            },
            PeersError::InvalidAddress {
                protocol,
                address,
                reason,
            } => PeersError::InvalidEntry {
                path: self.path.clone(),
                protocol,
                address,
                reason,
            },
            PeersError::InvalidPin { address, reason } => PeersError::InvalidPinEntry {
                path: self.path.clone(),
                address,
                reason,
            },
            other => other,
        })
    }

    /// Adds `address` for `protocol`, and sets its certificate pin when `pin` is given,
    /// creating the file if it is missing (but not its directory). `Ok(false)` when the file
    /// already says exactly that: it is not rewritten. An invalid address or pin, or an
    /// unreadable or invalid file, is refused before anything is written.
    pub fn add(
        &self,
        protocol: Transport,
        address: &str,
        pin: Option<&str>,
    ) -> Result<bool, PeersError> {
        validate(protocol, address)?;
        let mut peers = self.load()?;
        let before = peers.clone();
        if !peers.get(protocol).iter().any(|a| a == address) {
            peers.get_mut(protocol).push(address.to_owned());
        }
        if let Some(pin) = pin {
            let pin = peers.check_pin(address, pin)?;
            peers.pins.insert(address.to_owned(), pin);
        }
        if peers == before {
            return Ok(false);
        }
        self.store(&peers)?;
        Ok(true)
    }

    /// Removes `address` (every copy of it) from `protocol`'s list, and its pin once it is
    /// listed nowhere a pin applies. `Ok(false)` when it is not listed: nothing is written
    /// and a missing file stays missing. The address is validated first, so a typo gets the
    /// same clear error as in [`PeerBook::add`].
    pub fn remove(&self, protocol: Transport, address: &str) -> Result<bool, PeersError> {
        validate(protocol, address)?;
        let mut peers = self.load()?;
        let list = peers.get_mut(protocol);
        let before = list.len();
        list.retain(|a| a != address);
        if list.len() == before {
            return Ok(false);
        }
        if let Some(pin) = peers.pins.get(address).cloned()
            && peers.check_pin(address, &pin).is_err()
        {
            peers.pins.remove(address);
        }
        self.store(&peers)?;
        Ok(true)
    }

    fn read_error(&self, source: io::Error) -> PeersError {
        PeersError::Read {
            path: self.path.clone(),
            source,
        }
    }

    fn write_error(&self, source: io::Error) -> PeersError {
        PeersError::Write {
            path: self.path.clone(),
            source,
        }
    }

    /// Replaces the file with `peers`: pretty JSON, keys in [`Transport::ALL`] order,
    /// one trailing newline, so equal books are equal bytes.
    fn store(&self, peers: &Peers) -> Result<(), PeersError> {
        let mut bytes =
            serde_json::to_vec_pretty(peers).map_err(|e| self.write_error(io::Error::other(e)))?;
        bytes.push(b'\n');
        write_atomic(&self.path, &bytes).map_err(|e| self.write_error(e))
    }
}

/// Writes `bytes` to a new file beside `path`, fsyncs it, renames it over `path` and fsyncs
/// the directory, so a crash leaves either the old file or the new one, never a mix.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    // A symlinked peers file (dotfiles kept elsewhere) stays a symlink: replace its target.
    let target = match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => fs::canonicalize(path)?,
        _ => path.to_path_buf(),
    };
    let name = target.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "the path does not name a file")
    })?;
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Keep the mode of the file being replaced (a private peer list stays private).
    let permissions = fs::metadata(&target).ok().map(|m| m.permissions());

    let (tmp_path, mut tmp) = create_temp(&dir, name)?;
    let written = (|| {
        tmp.write_all(bytes)?;
        if let Some(permissions) = permissions {
            tmp.set_permissions(permissions)?;
        }
        tmp.sync_all()?;
        drop(tmp);
        fs::rename(&tmp_path, &target)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp_path);
        return Err(e);
    }
    sync_dir(&dir)
}

/// A new, empty file in `dir` named after `name`, never one that already exists.
fn create_temp(dir: &Path, name: &std::ffi::OsStr) -> io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut last = None;
    for _ in 0..16 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{}.{n}.tmp", std::process::id()));
        let tmp_path = dir.join(tmp_name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)
        {
            Ok(file) => return Ok((tmp_path, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("cannot create a temporary file")))
}

/// Makes the rename durable: on Unix a rename is only on disk once its directory is synced.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests;
