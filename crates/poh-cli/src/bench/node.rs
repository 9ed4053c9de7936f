//! [`NodeProcess`]: a `poh serve` child for the benches, on a temporary data dir and
//! ephemeral ports, as operators run it.

use std::time::Duration;

use anyhow::{Context as _, bail};

/// A `poh serve` child on a temporary data dir and ephemeral ports; killed when dropped.
pub(crate) struct NodeProcess {
    child: std::process::Child,
    /// gRPC `host:port`.
    pub grpc: String,
    /// HTTP `host:port`.
    pub http: String,
    /// UDP `host:port`.
    pub udp: String,
    /// QUIC `host:port`.
    pub quic: String,
    /// The SHA-256 fingerprint of the node's QUIC development certificate, to pin.
    pub quic_pin: String,
    dir: tempfile::TempDir,
}

/// The listeners' addresses, as the start-up line names them.
struct Addresses {
    grpc: String,
    http: String,
    udp: String,
    quic: String,
}

impl Addresses {
    /// The addresses in `line` when it is the start-up line (` grpc=… http=… udp=… quic=…`).
    fn parse(line: &str) -> Option<Self> {
        let field = |name: &str| {
            line.split(&format!(" {name}="))
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_string)
        };
        Some(Self {
            grpc: field("grpc")?,
            http: field("http")?,
            udp: field("udp")?,
            quic: field("quic")?,
        })
    }
}

impl NodeProcess {
    /// The node's CPU seconds (user + system) so far.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        super::cpu::seconds(&self.child.id().to_string())
    }

    /// The node's resident memory now, in bytes (`VmRSS` of `/proc/PID/status`).
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        Ok(self.status_field("VmRSS")? * 1024)
    }

    /// The node's threads now (`Threads` of `/proc/PID/status`).
    pub fn threads(&self) -> anyhow::Result<u64> {
        self.status_field("Threads")
    }

    /// The node's open file descriptors now (entries of `/proc/PID/fd`): files, sockets,
    /// pipes, epoll and event fds alike.
    pub fn open_fds(&self) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/fd", self.child.id());
        let entries = std::fs::read_dir(&path).with_context(|| format!("cannot list {path}"))?;
        Ok(entries.count() as u64)
    }

    /// How the node ended, once it has; `None` while it runs.
    pub fn exited(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        self.child
            .try_wait()
            .context("cannot tell whether `poh serve` runs")
    }

    /// The number in field `name` of `/proc/PID/status` (a unit after it, such as `kB`, left
    /// out).
    fn status_field(&self, name: &str) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.child.id());
        let status =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .with_context(|| format!("{path} has no {name}"))
    }

    /// Bytes the node's data dir takes on disk (allocated blocks, as `du` counts them).
    pub fn disk_bytes(&self) -> anyhow::Result<u64> {
        du(self.dir.path())
    }

    /// Starts a node; `serve_args` are added to its `poh serve` command line.
    pub(crate) fn start(durable: bool, serve_args: &[String]) -> anyhow::Result<Self> {
        use std::io::BufRead as _;
        let dir = tempfile::tempdir().context("cannot create a temporary data dir")?;
        // A load generator on loopback is one client flooding the node, which is what the
        // per-client rate limit (SPEC §8; 50,000 requests or datagrams per second by default)
        // is there to stop: with it on, a bench would measure the policy, not the node.
        let config = dir.path().join("bench.toml");
        std::fs::write(&config, "[limits]\nrequests_per_second = 0\n")
            .context("cannot write the node's config file")?;
        let exe = std::env::current_exe().context("cannot find the poh executable")?;
        let mut command = std::process::Command::new(exe);
        command
            .args([
                "serve",
                "--grpc-port",
                "0",
                "--http-port",
                "0",
                "--udp-port",
                "0",
                "--quic-port",
                "0",
                "--data-dir",
            ])
            .arg(dir.path())
            .arg("--config")
            .arg(&config)
            // A peers file of its own (missing, so empty): the default one in the home
            // directory would make the node health-check whatever the operator listed there.
            .arg("--peers-file")
            .arg(dir.path().join("peers.json"))
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        if !durable {
            command.arg("--no-fsync");
        }
        command.args(serve_args);
        // Settings of the caller's environment would make this node differ from the default.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("POH_") {
                command.env_remove(key);
            }
        }
        let mut child = command.spawn().context("cannot start `poh serve`")?;
        let stderr = child.stderr.take().context("no stderr from `poh serve`")?;
        let (found, addresses) = std::sync::mpsc::channel();
        // Read for the child's whole life, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut last = String::new();
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(addresses) = Addresses::parse(&line) {
                    let _ = found.send(Ok(addresses));
                }
                last = line;
            }
            let _ = found.send(Err(last));
        });
        match addresses.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(a)) => {
                // Made on the node's first start, before it logged its addresses.
                let cert = poh_node::tls::read_certs(&dir.path().join("quic-dev-cert.pem"))
                    .context("cannot read the node's QUIC certificate")?;
                Ok(Self {
                    quic_pin: cert
                        .first()
                        .map(poh_node::tls::fingerprint)
                        .unwrap_or_default(),
                    child,
                    grpc: a.grpc,
                    http: a.http,
                    udp: a.udp,
                    quic: a.quic,
                    dir,
                })
            }
            Ok(Err(last)) => {
                let _ = child.wait();
                bail!("`poh serve` stopped: {last}")
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("`poh serve` did not start within 30 s")
            }
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The allocated bytes of the files under `dir`, as `du` counts them.
fn du(dir: &std::path::Path) -> anyhow::Result<u64> {
    use std::os::unix::fs::MetadataExt as _;
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            total += du(&entry.path())?;
        } else if meta.is_file() {
            total += meta.blocks() * 512;
        }
    }
    Ok(total)
}
