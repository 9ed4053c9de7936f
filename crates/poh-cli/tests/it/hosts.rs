//! Hosts of their own for fault tests: one network namespace per node, each with a veth pair
//! whose other end is on a bridge of the test's own in the root namespace, an address from a
//! private /24 chosen per test, and `lo` up. Real `poh serve` processes run inside them
//! (`ip netns exec`), every listener bound to the host's address on the SPEC's default ports;
//! the test reaches them through the bridge, which has `.1` of the /24. Faults: a partition
//! (the host's bridge-side veth down; heal = up), `kill -9` and a restart on the same data dir
//! with the same flags, SIGSTOP/SIGCONT, SIGTERM, and a full disk (a
//! `common::Tmpfs` as data dir).
//! Everything is removed on drop, on a failure too. Needs root and iproute2 (CI has both);
//! elsewhere [`Hosts::new`] says why it skips. Loss is an nftables rule in the host's
//! namespace that drops a share of its packets at random ([`Hosts::loss`]; Debian's nftables,
//! which CI installs). Delay would need `tc … netem`, which these kernels do not have.
//!
//! [`audit_clean`] is the one end-of-scenario check.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use crate::common::{Served, is_root, serve_with, signal, text, wait_within};

pub const GRPC_PORT: u16 = 50051;
pub const HTTP_PORT: u16 = 8080;

/// `ip ARGS`, which must succeed.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        text(&out.stderr)
    );
}

/// `ip ARGS` on the way out: failures are only reported.
pub fn ip_quietly(args: &[&str]) {
    match Command::new("ip").args(args).output() {
        Ok(out) if out.status.success() => {}
        other => eprintln!("cleanup: ip {}: {other:?}", args.join(" ")),
    }
}

/// Removes the namespaces and bridges of test processes that died without dropping their
/// [`Hosts`] (killed): named `poh-ph{PID}x…` and `ph{PID}x…b`, PID in hex.
fn remove_stale() {
    let dead = |name: &str| {
        let pid = name
            .strip_prefix("ph")
            .and_then(|rest| rest.split_once('x'));
        let pid = pid.and_then(|(pid, _)| u32::from_str_radix(pid, 16).ok());
        pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
    };
    let list = |args: &[&str]| text(&Command::new("ip").args(args).output().unwrap().stdout);
    for line in list(&["netns", "list"]).lines() {
        let ns = line.split_whitespace().next().unwrap_or_default();
        if ns.strip_prefix("poh-").is_some_and(dead) {
            ip_quietly(&["netns", "del", ns]);
        }
    }
    for line in list(&["-o", "link", "show", "type", "bridge"]).lines() {
        let bridge = line.split(": ").nth(1).unwrap_or_default();
        if dead(bridge) {
            ip_quietly(&["link", "del", bridge]);
        }
    }
}

/// One host: its namespace, address, and the node it runs.
struct Host {
    name: String,
    ns: String,
    /// The veth end on the bridge, in the root namespace.
    port: String,
    ip: String,
    data: PathBuf,
    flags: Vec<String>,
    node: Option<Served>,
    /// What its earlier runs logged.
    log: Vec<String>,
}

impl Host {
    fn node(&self) -> &Served {
        self.node
            .as_ref()
            .unwrap_or_else(|| panic!("{} runs no node", self.name))
    }

    /// Takes the node out, keeping what it logged.
    fn take(&mut self) -> Served {
        let node = self
            .node
            .take()
            .unwrap_or_else(|| panic!("{} runs no node", self.name));
        self.log.extend(node.log.lock().unwrap().drain(..));
        node
    }
}

/// Test hosts; see the module's documentation.
pub struct Hosts {
    bridge: String,
    /// `10.X.Y`: the /24 of this test.
    net: String,
    hosts: Vec<Host>,
    /// Whether `nft` is here, for [`Hosts::loss`].
    nft: bool,
    dir: tempfile::TempDir,
}

impl Hosts {
    /// `names.len()` hosts, named `names`, each with a namespace and an address; no node runs
    /// yet. `None` (saying why) where they cannot be made: not root, or no `ip netns`.
    pub fn new(names: &[&str]) -> Option<Self> {
        if !is_root() {
            eprintln!("skipped: test hosts (network namespaces) need root; CI runs as root");
            return None;
        }
        let netns = Command::new("ip").args(["netns", "list"]).output();
        if !netns.is_ok_and(|o| o.status.success()) {
            eprintln!("skipped: `ip netns` is missing (install iproute2; CI has it)");
            return None;
        }
        static STALE: std::sync::Once = std::sync::Once::new();
        STALE.call_once(remove_stale);
        // Unique per test of this process (cargo runs them on parallel threads) and, with the
        // pid, per process: interface names (≤ 15 bytes), namespaces and the /24.
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let pid = std::process::id();
        let taken = text(
            &Command::new("ip")
                .args(["-4", "-o", "addr"])
                .output()
                .unwrap()
                .stdout,
        );
        let (tag, net) = loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            assert!(n < 256, "no free /24 for test hosts");
            let k = pid.wrapping_mul(31).wrapping_add(n * 97) % (128 * 256);
            let net = format!("10.{}.{}", 64 + k / 256, k % 256);
            if !taken.contains(&format!(" {net}.")) {
                break (format!("ph{pid:x}x{n}"), net);
            }
        };
        let mut hosts = Self {
            bridge: format!("{tag}b"),
            net,
            hosts: Vec::new(),
            nft: false,
            dir: tempfile::tempdir().unwrap(),
        };
        let (bridge, net) = (hosts.bridge.clone(), hosts.net.clone());
        ip(&["link", "add", &bridge, "type", "bridge"]);
        ip(&["addr", "add", &format!("{net}.1/24"), "dev", &bridge]);
        ip(&["link", "set", &bridge, "up"]);
        for (i, name) in names.iter().enumerate() {
            let ns = format!("poh-{tag}-{name}");
            let (port, peer) = (format!("{tag}h{i}"), format!("{tag}n{i}"));
            let host_ip = format!("{net}.{}", 10 + i);
            ip(&["netns", "add", &ns]);
            hosts.hosts.push(Host {
                name: name.to_string(),
                ns: ns.clone(),
                port: port.clone(),
                ip: host_ip.clone(),
                data: hosts.dir.path().join(name),
                flags: Vec::new(),
                node: None,
                log: Vec::new(),
            });
            ip(&["link", "add", &port, "type", "veth", "peer", "name", &peer]);
            ip(&["link", "set", &peer, "netns", &ns]);
            ip(&["-n", &ns, "link", "set", &peer, "name", "eth0"]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{host_ip}/24"),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&["link", "set", &port, "master", &bridge]);
            ip(&["link", "set", &port, "up"]);
        }
        hosts.nft = Command::new("nft")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !hosts.nft {
            eprintln!("note: no `nft` here: loss is not injected");
        }
        eprintln!("test hosts on {net}.0/24 (bridge {bridge}): {names:?} from .10 up");
        Some(hosts)
    }

    /// Drops `percent` of the packets host `i` sends and receives, at random (0: none
    /// again), where `nft` is here; whether it was applied.
    pub fn loss(&self, i: usize, percent: u32) -> bool {
        if !self.nft {
            return false;
        }
        let ns = &self.hosts[i].ns;
        let rules = match percent {
            0 => "delete table inet poh_loss\n".to_string(),
            p => format!(
                "table inet poh_loss {{\n\
                 chain input {{ type filter hook input priority 0; numgen random mod 100 < {p} drop; }}\n\
                 chain output {{ type filter hook output priority 0; numgen random mod 100 < {p} drop; }}\n\
                 }}\n"
            ),
        };
        let file = self.dir().join(format!("loss-{i}.nft"));
        std::fs::write(&file, rules).unwrap();
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "nft", "-f"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nft loss {percent}%: {}",
            text(&out.stderr)
        );
        true
    }

    /// A directory of the test's (keys, peers files, the expect file).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Host `i`'s name.
    pub fn name(&self, i: usize) -> &str {
        &self.hosts[i].name
    }

    /// The HTTP base URL of host `i`'s node.
    pub fn base(&self, i: usize) -> String {
        format!("http://{}:{HTTP_PORT}", self.hosts[i].ip)
    }

    /// The gRPC address of host `i`'s node.
    pub fn grpc(&self, i: usize) -> String {
        format!("{}:{GRPC_PORT}", self.hosts[i].ip)
    }

    /// Every host's HTTP base URL.
    pub fn bases(&self) -> Vec<String> {
        (0..self.hosts.len()).map(|i| self.base(i)).collect()
    }

    /// Runs `poh serve FLAGS` on host `i`, on `data` (default: a directory of the test's),
    /// bound to its address; kept to restart it the same way.
    pub fn start(&mut self, i: usize, data: Option<PathBuf>, flags: &[&str]) {
        let host = &mut self.hosts[i];
        if let Some(data) = data {
            host.data = data;
        }
        host.flags = flags.iter().map(|f| f.to_string()).collect();
        self.restart(i);
    }

    /// Starts host `i`'s node again, on the same data dir with the same flags.
    pub fn restart(&mut self, i: usize) {
        let host = &mut self.hosts[i];
        assert!(host.node.is_none(), "{} still runs its node", host.name);
        let (grpc, http) = (GRPC_PORT.to_string(), HTTP_PORT.to_string());
        let mut flags: Vec<&str> = host.flags.iter().map(String::as_str).collect();
        flags.extend([
            "--bind",
            &host.ip,
            "--grpc-port",
            &grpc,
            "--http-port",
            &http,
        ]);
        flags.extend(["--udp-port", "9000", "--quic-port", "4433"]);
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &host.ns, env!("CARGO_BIN_EXE_poh")]);
        host.node = Some(serve_with(command, &host.data, &flags));
    }

    /// Cuts host `i` off the network (its bridge port down): from every other host and the
    /// test.
    pub fn partition(&self, i: usize) {
        ip(&["link", "set", &self.hosts[i].port, "down"]);
    }

    /// Ends a [`Self::partition`].
    pub fn heal(&self, i: usize) {
        ip(&["link", "set", &self.hosts[i].port, "up"]);
    }

    /// `kill -9` of host `i`'s node.
    pub fn kill(&mut self, i: usize) {
        let mut node = self.hosts[i].take();
        signal(&node.child, "KILL");
        node.child.wait().unwrap();
    }

    /// SIGSTOP of host `i`'s node.
    pub fn pause(&self, i: usize) {
        signal(&self.hosts[i].node().child, "STOP");
    }

    /// SIGCONT of host `i`'s node.
    pub fn resume(&self, i: usize) {
        signal(&self.hosts[i].node().child, "CONT");
    }

    /// SIGTERM to host `i`'s node: whether it exited 0, and how long it took (it is killed
    /// after 10 s).
    pub fn terminate(&mut self, i: usize) -> (bool, Duration) {
        let mut node = self.hosts[i].take();
        let sent = Instant::now();
        signal(&node.child, "TERM");
        let status = wait_within(Duration::from_secs(10), "the node exits on SIGTERM", || {
            node.child.try_wait().unwrap()
        });
        (status.success(), sent.elapsed())
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        for host in &mut self.hosts {
            if host.node.is_some() {
                drop(host.take()); // SIGKILL, a stopped one too
            }
            if failed {
                let tail = &host.log[host.log.len().saturating_sub(30)..];
                eprintln!(
                    "==== {} ({}): last {} lines",
                    host.name,
                    host.ip,
                    tail.len()
                );
                for line in tail {
                    eprintln!("{line}");
                }
            }
            ip_quietly(&["link", "del", &host.port]); // and its peer with it
            ip_quietly(&["netns", "del", &host.ns]);
        }
        ip_quietly(&["link", "del", &self.bridge]);
    }
}

/// How long [`audit_clean`] lets the federation settle: parents catching up after a fault,
/// sealing climbing a level per batch interval.
const SETTLE_SECS: &str = "60";

/// The end of every scenario: `poh audit` on the nodes at `urls` (HTTP) with the
/// transactions of `expect` (JSON lines `{"tx_id","digest"}`), the top chains trusted under the
/// key files `trust` the test made, must be clean: every chain re-verifies from genesis, every
/// child header is recorded exactly once by its parent, and every acknowledged transaction is
/// stored with its digest and sealed up to the top.
pub fn audit_clean(urls: &[String], expect: &Path, trust: &[PathBuf]) {
    let mut audit = Command::new(env!("CARGO_BIN_EXE_poh"));
    audit.args(["audit", "--wait-secs", SETTLE_SECS, "--expect"]);
    audit.arg(expect);
    for url in urls {
        audit.args(["--node", url]);
    }
    for key in trust {
        audit.arg("--trust").arg(key);
    }
    let out = audit.output().unwrap();
    let report = text(&out.stdout);
    assert!(
        out.status.success(),
        "poh audit: {}\nstdout:\n{report}\nstderr:\n{}",
        out.status,
        text(&out.stderr)
    );
    eprintln!(
        "poh audit: {}",
        report.lines().last().unwrap_or("(no output)")
    );
}
