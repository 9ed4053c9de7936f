//! The peers file (SPEC §5): addresses per protocol in one JSON object with exactly the keys
//! `grpc`, `http`, `udp` and `quic`.
//!
//! [`PeerBook`] reads and edits the file. Every address is validated before anything is
//! written, and the file is replaced atomically (temporary file in the same directory, fsync,
//! rename, fsync of the directory), so a refused or interrupted edit leaves the previous file
//! exactly as it was. Addresses are stored verbatim: `Example.com:9000` and
//! `example.com:9000` are two entries.

use std::{
    fmt,
    fs::{self, File, OpenOptions},
    io::{self, Read as _, Write as _},
    net::{Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    str::FromStr,
    sync::atomic::{AtomicU64, Ordering},
};

use serde::{Deserialize, Serialize};

/// The largest peers file read (1 MiB, tens of thousands of peers): the node reads it on
/// every `GET /v1/peers`, so it must stay bounded.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// The longest `host:port` address: a 253-byte DNS name, a colon and five digits.
const MAX_HOST_PORT_LEN: usize = 253 + 6;
/// The longest HTTP peer URL.
const MAX_URL_LEN: usize = 2048;
const DEFAULT_FILE_NAME: &str = ".poh_peers.json";

/// A protocol a peer is reached by; the keys of the peers file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerProtocol {
    /// gRPC, `host:port`.
    Grpc,
    /// HTTP/JSON, an `http://` or `https://` URL.
    Http,
    /// UDP datagrams, `host:port`.
    Udp,
    /// QUIC, `host:port`.
    Quic,
}

impl PeerProtocol {
    /// Every protocol, in the order of the file's keys.
    pub const ALL: [Self; 4] = [Self::Grpc, Self::Http, Self::Udp, Self::Quic];

    /// The key in the peers file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::Http => "http",
            Self::Udp => "udp",
            Self::Quic => "quic",
        }
    }

    /// Checks `address` against this protocol's rules (SPEC §5): an `http://` or `https://`
    /// URL for HTTP, `host:port` for the others (host: IPv4, `[IPv6]` or a DNS name; port
    /// 1–65535, digits only, no leading zero).
    pub fn validate(self, address: &str) -> Result<(), PeersError> {
        let checked = match self {
            Self::Http => check_url(address),
            Self::Grpc | Self::Udp | Self::Quic => check_host_port(address),
        };
        checked.map_err(|reason| PeersError::InvalidAddress {
            protocol: self,
            address: address.to_owned(),
            reason,
        })
    }
}

impl fmt::Display for PeerProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PeerProtocol {
    type Err = PeersError;

    /// Parses a protocol name, ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| PeersError::UnknownProtocol(s.to_owned()))
    }
}

/// The contents of a peers file: addresses per protocol, in file order.
///
/// It always serializes with all four keys; deserializing refuses unknown and missing keys
/// (but does not validate addresses: [`PeerBook::load`] and [`Peers::validate`] do).
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
}

impl Peers {
    /// The addresses of one protocol.
    pub fn get(&self, protocol: PeerProtocol) -> &[String] {
        match protocol {
            PeerProtocol::Grpc => &self.grpc,
            PeerProtocol::Http => &self.http,
            PeerProtocol::Udp => &self.udp,
            PeerProtocol::Quic => &self.quic,
        }
    }

    fn get_mut(&mut self, protocol: PeerProtocol) -> &mut Vec<String> {
        match protocol {
            PeerProtocol::Grpc => &mut self.grpc,
            PeerProtocol::Http => &mut self.http,
            PeerProtocol::Udp => &mut self.udp,
            PeerProtocol::Quic => &mut self.quic,
        }
    }

    /// No peer of any protocol.
    pub fn is_empty(&self) -> bool {
        PeerProtocol::ALL.iter().all(|&p| self.get(p).is_empty())
    }

    /// Every peer as `(protocol, address)`, protocol by protocol in [`PeerProtocol::ALL`]
    /// order, each in file order.
    pub fn iter(&self) -> impl Iterator<Item = (PeerProtocol, &str)> + '_ {
        PeerProtocol::ALL
            .into_iter()
            .flat_map(move |p| self.get(p).iter().map(move |a| (p, a.as_str())))
    }

    /// Checks every address; the error names the first invalid one.
    pub fn validate(&self) -> Result<(), PeersError> {
        self.iter()
            .try_for_each(|(protocol, address)| protocol.validate(address))
    }
}

/// Why the peers file cannot be read or edited. Each message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum PeersError {
    /// A protocol name that is none of the four.
    #[error("unknown protocol {0:?}: expected one of grpc, http, udp, quic")]
    UnknownProtocol(String),
    /// An address that does not parse for its protocol.
    #[error("invalid {protocol} address {address:?}: {reason}")]
    InvalidAddress {
        /// The protocol it was given for.
        protocol: PeerProtocol,
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
    /// The file is not a JSON object with exactly the four keys, each a list of strings.
    #[error(
        "the peers file {path} is not valid: {source}; it must be a JSON object with exactly \
         the keys grpc, http, udp and quic, each a list of addresses: fix or remove it"
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
        protocol: PeerProtocol,
        /// The address, as stored.
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
    let peers: Peers = serde_json::from_slice(bytes).map_err(parse_error)?;
    peers.validate()?;
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
            other => other,
        })
    }

    /// Adds `address` for `protocol`, creating the file if it is missing (but not its
    /// directory). `Ok(false)` when it is already listed: the file is not rewritten. An
    /// invalid address or an unreadable or invalid file is refused before anything is
    /// written.
    pub fn add(&self, protocol: PeerProtocol, address: &str) -> Result<bool, PeersError> {
        protocol.validate(address)?;
        let mut peers = self.load()?;
        if peers.get(protocol).iter().any(|a| a == address) {
            return Ok(false);
        }
        peers.get_mut(protocol).push(address.to_owned());
        self.store(&peers)?;
        Ok(true)
    }

    /// Removes `address` (every copy of it) from `protocol`'s list. `Ok(false)` when it is
    /// not listed: nothing is written and a missing file stays missing. The address is
    /// validated first, so a typo gets the same clear error as in [`PeerBook::add`].
    pub fn remove(&self, protocol: PeerProtocol, address: &str) -> Result<bool, PeersError> {
        protocol.validate(address)?;
        let mut peers = self.load()?;
        let list = peers.get_mut(protocol);
        let before = list.len();
        list.retain(|a| a != address);
        if list.len() == before {
            return Ok(false);
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

    /// Replaces the file with `peers`: pretty JSON, keys in [`PeerProtocol::ALL`] order,
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

const HOST_PORT: &str = "expected host:port with a port from 1 to 65535";

/// `host:port` for gRPC, UDP and QUIC; the error is the reason, for [`PeersError`].
fn check_host_port(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!("the address is empty; {HOST_PORT}"));
    }
    if s.len() > MAX_HOST_PORT_LEN {
        return Err(format!(
            "the address is longer than {MAX_HOST_PORT_LEN} bytes; {HOST_PORT}"
        ));
    }
    check_chars(s)?;
    if s.contains("://") {
        return Err(format!(
            "{HOST_PORT}, without a scheme (only http peers are URLs)"
        ));
    }
    match split_authority(s)? {
        (host, Some(port)) => {
            check_host(host)?;
            check_port(port)
        }
        (_, None) => Err(format!("missing :port; {HOST_PORT}")),
    }
}

/// An `http://` or `https://` URL with a host, an optional port and an optional path.
fn check_url(s: &str) -> Result<(), String> {
    const EXPECTED: &str = "expected an http:// or https:// URL, e.g. http://127.0.0.1:8080";
    if s.is_empty() {
        return Err(format!("the address is empty; {EXPECTED}"));
    }
    if s.len() > MAX_URL_LEN {
        return Err(format!("the URL is longer than {MAX_URL_LEN} bytes"));
    }
    check_chars(s)?;
    let scheme_len = ["http://", "https://"]
        .into_iter()
        .find(|scheme| {
            s.get(..scheme.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
        })
        .map(str::len);
    let Some(scheme_len) = scheme_len else {
        return Err(match s.split_once("://") {
            Some((scheme, _)) => format!("the scheme {scheme:?} is not supported; {EXPECTED}"),
            None => EXPECTED.to_owned(),
        });
    };
    let rest = &s[scheme_len..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() {
        return Err(format!("the URL has no host; {EXPECTED}"));
    }
    if authority.contains('@') {
        return Err("a peer URL cannot hold credentials (user@host)".to_owned());
    }
    if path.contains(['?', '#']) {
        return Err("a peer URL takes no query or fragment, only a path".to_owned());
    }
    if !path.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') {
        return Err("the URL path must be printable ASCII (percent-encode the rest)".to_owned());
    }
    let (host, port) = split_authority(authority)?;
    check_host(host)?;
    port.map_or(Ok(()), check_port)
}

fn check_chars(s: &str) -> Result<(), String> {
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the address contains spaces or control characters".to_owned());
    }
    Ok(())
}

/// Splits `host[:port]`, where the host may be a bracketed IPv6 address.
fn split_authority(s: &str) -> Result<(&str, Option<&str>), String> {
    if s.starts_with('[') {
        let Some(close) = s.find(']') else {
            return Err(format!("{s:?} has no closing ']' after the IPv6 address"));
        };
        let (host, rest) = s.split_at(close + 1);
        return match rest.strip_prefix(':') {
            Some(port) => Ok((host, Some(port))),
            None if rest.is_empty() => Ok((host, None)),
            None => Err(format!("unexpected {rest:?} after the IPv6 address {host}")),
        };
    }
    match s.rsplit_once(':') {
        Some((host, _)) if host.contains(':') => {
            Err("an IPv6 host must be in brackets, e.g. [::1]:9000 or http://[::1]:8080".to_owned())
        }
        Some((host, port)) => Ok((host, Some(port))),
        None => Ok((s, None)),
    }
}

fn check_port(port: &str) -> Result<(), String> {
    if port.is_empty() {
        return Err("missing port after ':'; expected a port from 1 to 65535".to_owned());
    }
    if port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "port {port:?} is not a number from 1 to 65535 (digits only)"
        ));
    }
    if port.len() > 1 && port.starts_with('0') {
        return Err(format!(
            "port {port:?} has a leading zero; write it as a number from 1 to 65535"
        ));
    }
    match port.parse::<u32>() {
        Ok(1..=65535) => Ok(()),
        _ => Err(format!(
            "port {port} is out of range; expected a port from 1 to 65535"
        )),
    }
}

fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err(format!("the host is empty; {HOST_PORT}"));
    }
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').unwrap_or(inner);
        return match inner.parse::<Ipv6Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err(format!("{host} is not a valid IPv6 address")),
        };
    }
    // Digits and dots can only mean IPv4: `999.1.1.1` is a bad address, not a DNS name.
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return match host.parse::<Ipv4Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err(format!(
                "host {host:?} is not a valid IPv4 address (four numbers 0–255, no leading zeros)"
            )),
        };
    }
    check_dns_name(host).map_err(|why| format!("host {host:?} is not a valid DNS name: {why}"))
}

/// RFC 1123 host names, and (RFC 3696 §2) a last label that is not all digits, which URL
/// parsers would take for an IPv4 address.
fn check_dns_name(name: &str) -> Result<(), String> {
    if name.len() > 253 {
        return Err("it is longer than 253 characters".to_owned());
    }
    let mut last = "";
    for label in name.split('.') {
        if label.is_empty() {
            return Err("it has an empty label (two dots, or a dot at an end)".to_owned());
        }
        if label.len() > 63 {
            return Err(format!("the label {label:?} is longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(format!(
                "the label {label:?} has a character other than letters, digits and hyphens"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("the label {label:?} starts or ends with a hyphen"));
        }
        last = label;
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err("its last label is all digits".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
