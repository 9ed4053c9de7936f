//! Hosts of their own for fault tests: one network namespace per node, each with a veth pair
//! whose other end is on a bridge of the test's own in the root namespace, an address from a
//! private /24 chosen per test, and `lo` up. Real `poh serve` processes run inside them
//! (`ip netns exec`), every listener bound to the host's address on the SPEC's default ports;
//! the test reaches them through the bridge, which has `.1` of the /24. Faults: a partition
//! (the host's bridge-side veth down; heal = up), `kill -9` and a restart on the same data dir
//! with the same flags, SIGSTOP/SIGCONT, SIGTERM, and a full disk (a
//! `common::Tmpfs` as data dir).
//! Everything is removed on drop, on a failure too. Needs root and iproute2 (CI has both);
//! elsewhere [`Hosts::new`] says why it skips. `tc … netem` is not on these kernels: loss and
//! delay are checked for at run time (`Hosts::netem`) and only applied where they exist.
//!
//! [`audit_clean`] is the one end-of-scenario check.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use futures_util::StreamExt as _;
use poh_core::proof::Anchor;
use poh_node::wire::headers::ProofJson;
use serde_json::Value;

use crate::common::{Http, Served, is_root, serve_with, signal, stored_digest, text, wait_within};

pub const GRPC_PORT: u16 = 50051;
pub const HTTP_PORT: u16 = 8080;

/// `ip ARGS`, which must succeed.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        text(&out.stderr)
    );
}

/// `ip ARGS` on the way out: failures are only reported.
fn ip_quietly(args: &[&str]) {
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
    netem: bool,
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
            netem: false,
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
        // Loss and delay need the netem qdisc, which these kernels lack: only recorded.
        let port = &hosts.hosts.first()?.port;
        let netem = Command::new("tc")
            .args(["qdisc", "add", "dev", port, "root", "netem", "delay", "1ms"])
            .output();
        hosts.netem = netem.is_ok_and(|o| o.status.success());
        if hosts.netem {
            let _ = Command::new("tc")
                .args(["qdisc", "del", "dev", port, "root"])
                .status();
        } else {
            eprintln!("note: no `tc qdisc … netem` here: loss and delay faults are not injected");
        }
        eprintln!("test hosts on {net}.0/24 (bridge {bridge}): {names:?} from .10 up");
        Some(hosts)
    }

    /// Loss and delay on host `i`'s link (`tc qdisc … netem ARGS`; none: back to none),
    /// where this kernel has netem; whether it was applied.
    pub fn netem(&self, i: usize, args: &[&str]) -> bool {
        if !self.netem {
            return false;
        }
        let port = &self.hosts[i].port;
        let mut tc = Command::new("tc");
        match args {
            [] => tc.args(["qdisc", "del", "dev", port, "root"]),
            _ => tc
                .args(["qdisc", "replace", "dev", port, "root", "netem"])
                .args(args),
        };
        let out = tc.output().unwrap();
        assert!(
            out.status.success(),
            "tc netem {args:?}: {}",
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

/// How long [`audit_clean`] waits for the federation to settle (parents catching up, proofs
/// reaching the top).
const SETTLE: Duration = Duration::from_secs(60);

/// The end of every scenario, on the nodes at `urls` (HTTP) and the transactions of `expect`
/// (JSON lines `{"tx_id","digest"}`): every chain's PoH re-verifies from its genesis; each
/// parent among them catches up with each child among them, and records every header of it
/// exactly once; every expected transaction is stored, with that digest, on each lowest-level
/// node that has it (at least one), and its proof verifies up to the highest chain given,
/// signed by that chain's key. Then `poh audit --node URL… --expect FILE` too, where the
/// binary has it. Fails with every finding.
pub fn audit_clean(urls: &[String], expect: &Path) {
    let http = Http::new();
    let mut findings: Vec<String> = Vec::new();
    let nodes: Vec<Value> = urls
        .iter()
        .map(|u| http.get_ok(&format!("{u}/v1/federation")))
        .collect();
    let rank = |node: &Value| {
        let levels = ["municipality", "continental", "global"];
        levels.iter().position(|l| node["level"] == *l).unwrap()
    };
    let chain = |i: usize| nodes[i]["chain_id"].as_str().unwrap();
    for (p, parent) in nodes.iter().enumerate() {
        let children = parent["children"].as_array().unwrap();
        let ours: Vec<usize> = (0..urls.len())
            .filter(|&c| children.iter().any(|k| k["chain_id"] == chain(c)))
            .collect();
        for &c in &ours {
            let height = http.last_height(&urls[c]);
            let what = format!("{} accepts {} up to height {height:?}", chain(p), chain(c));
            wait_within(SETTLE, &what, || {
                (http.accepted_height(&urls[p], chain(c)) >= height).then_some(())
            });
        }
        // What it accepted, then its PoH, which records that once committed (soon after).
        let accepted: Vec<(usize, Vec<Value>)> = ours
            .iter()
            .map(|&c| {
                let height = http
                    .accepted_height(&urls[p], chain(c))
                    .map_or(0, |h| h + 1);
                let headers = http.headers(&urls[c]);
                (c, headers.into_iter().take(height as usize).collect())
            })
            .collect();
        let deadline = Instant::now() + SETTLE;
        loop {
            let poh = http.poh(&urls[p], chain(p)); // panics unless it verifies from genesis
            let mut count: HashMap<&str, usize> = HashMap::new();
            for item in &poh.items {
                *count.entry(item).or_default() += 1;
            }
            let mut wrong = Vec::new();
            let mut missing = false;
            for (c, headers) in &accepted {
                for header in headers {
                    let id = header["header_id"].as_str().unwrap();
                    let n = count.get(id).copied().unwrap_or(0);
                    missing |= n == 0;
                    if n != 1 {
                        let (h, parent, child) = (&header["height"], chain(p), chain(*c));
                        wrong.push(format!(
                            "{parent} recorded {child}'s header {h} ({id}) {n} times"
                        ));
                    }
                }
            }
            if !missing || Instant::now() > deadline {
                findings.extend(wrong);
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    // The top level's chains, each trusted under the key its node serves.
    let top = nodes.iter().map(rank).max().unwrap();
    let trusted: Vec<Vec<u8>> = (0..urls.len())
        .filter(|&i| rank(&nodes[i]) == top)
        .map(|i| {
            let first = http.get_ok(&format!("{}/v1/headers?from=0&limit=1", urls[i]));
            let key = first["headers"][0]["public_key_b64"].as_str();
            B64.decode(key.expect("a top chain sealed")).unwrap()
        })
        .collect();
    let top = nodes.iter().find(|n| rank(n) == top).unwrap()["level"]
        .as_str()
        .unwrap();
    let leaves: Vec<&str> = (0..urls.len())
        .filter(|&i| rank(&nodes[i]) == 0)
        .map(|i| urls[i].as_str())
        .collect();
    let expected: Vec<(String, String)> = std::fs::read_to_string(expect)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let field = |f: &str| v[f].as_str().unwrap().to_string();
            (field("tx_id"), field("digest"))
        })
        .collect();
    let deadline = Instant::now() + SETTLE;
    let checks = futures_util::stream::iter(&expected)
        .map(|(id, digest)| check_tx(&http.client, &leaves, id, digest, (top, &trusted), deadline))
        .buffer_unordered(16)
        .collect::<Vec<Vec<String>>>();
    findings.extend(http.runtime.block_on(checks).into_iter().flatten());
    assert!(
        findings.is_empty(),
        "{} findings, the first ones:\n{}",
        findings.len(),
        findings[..findings.len().min(30)].join("\n")
    );
    eprintln!(
        "audit: {} transactions proven up to the {top} level, {} chains checked",
        expected.len(),
        urls.len()
    );

    let poh = env!("CARGO_BIN_EXE_poh");
    let help = Command::new(poh).args(["audit", "--help"]).output();
    if !help.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("note: this `poh` has no `audit` yet: only the test's own checks ran");
        return;
    }
    // Its own options, where it has them: the top chain's key (as that node serves it, as
    // above) and time to settle.
    let help = text(&help.unwrap().stdout);
    let mut audit = Command::new(poh);
    audit.arg("audit");
    for url in urls {
        audit.args(["--node", url]);
    }
    for (i, key) in trusted
        .iter()
        .enumerate()
        .filter(|_| help.contains("--trust"))
    {
        let file = expect.with_extension(format!("top-{i}.pub"));
        std::fs::write(&file, hex::encode(key)).unwrap();
        audit.arg("--trust").arg(file);
    }
    if help.contains("--wait-secs") {
        audit.args(["--wait-secs", "30"]);
    }
    let out = audit.arg("--expect").arg(expect).output().unwrap();
    assert!(
        out.status.success(),
        "poh audit: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    let report = text(&out.stdout);
    eprintln!(
        "poh audit: {}",
        report.lines().last().unwrap_or("(no output)")
    );
}

/// [`audit_clean`]'s findings about one transaction: stored with `digest` where it is
/// (`leaves`), and proven up to `top` (a level, and its chains' keys) before `deadline`.
async fn check_tx(
    client: &reqwest::Client,
    leaves: &[&str],
    id: &str,
    digest: &str,
    top: (&str, &[Vec<u8>]),
    deadline: Instant,
) -> Vec<String> {
    let mut findings = Vec::new();
    let mut holder = None;
    for base in leaves {
        let got = async {
            let r = client.get(format!("{base}/v1/tx/{id}")).send().await?;
            Ok::<_, reqwest::Error>((r.status().as_u16(), r.json::<Value>().await?))
        };
        match got.await {
            Ok((200, stored)) => {
                let found = stored_digest(&stored).to_hex();
                if found != digest {
                    findings.push(format!(
                        "{id}: digest {found} on {base}, acknowledged {digest}"
                    ));
                }
                holder.get_or_insert(*base);
            }
            Ok((404, _)) => {}
            other => findings.push(format!("{id}: GET on {base}: {other:?}")),
        }
    }
    let Some(base) = holder else {
        findings.push(format!("{id}: acknowledged, and stored on no node"));
        return findings;
    };
    loop {
        let got = async {
            let r = client
                .get(format!("{base}/v1/tx/{id}/proof"))
                .send()
                .await?;
            Ok::<_, reqwest::Error>((r.status().as_u16(), r.json::<Value>().await?))
        };
        let state = match got.await {
            Ok((200, proof)) => {
                let proof: ProofJson = serde_json::from_value(proof).unwrap();
                match proof.verify(top.1) {
                    Ok(_) if proof.item != digest => {
                        let proven = &proof.item;
                        findings.push(format!(
                            "{id}: proven digest {proven}, acknowledged {digest}"
                        ));
                        return findings;
                    }
                    Err(e) => {
                        findings.push(format!("{id}: its proof does not verify: {e}"));
                        return findings;
                    }
                    Ok((_, Anchor::Trusted { .. })) => return findings,
                    Ok((links, _)) => {
                        let reached = &links.last().unwrap().header.chain_id;
                        format!("proven up to {reached}")
                    }
                }
            }
            other => format!("{other:?}"),
        };
        if Instant::now() > deadline {
            findings.push(format!(
                "{id}: no proof up to the {} level within {SETTLE:?}: {state}",
                top.0
            ));
            return findings;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
