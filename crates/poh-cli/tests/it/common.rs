//! Helpers of the CLI's integration tests: running `poh`, and `poh serve` processes on ports
//! the system picks.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use poh_core::{Entry, Hash, Tx, genesis, verify::verify_serial};
use serde_json::{Value, json};

/// `poh ARGS`, with no peers file or config from the environment.
pub fn poh(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_poh"))
        .args(args)
        .env_remove("POH_PEERS_FILE")
        .output()
        .expect("run poh")
}

/// Bytes as text, for messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// PoH settings light enough for several nodes at once.
pub const HASHES_PER_TICK: u64 = 500;

/// A `poh serve` child and its HTTP base URL, read from its start-up log line.
pub struct Served {
    pub child: Child,
    pub base: String,
    pub grpc: String,
    pub udp: String,
    pub quic: String,
    /// Every line it has logged so far.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Served {
    /// Whether a line it logged contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }
}

/// A test that fails while its node runs must not leave the process behind.
impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn serve(data_dir: &Path) -> Served {
    serve_with(Command::new(env!("CARGO_BIN_EXE_poh")), data_dir, &[])
}

/// `poh serve` with more flags (TLS, authentication…).
pub fn serve_flags(data_dir: &Path, flags: &[&str]) -> Served {
    serve_with(Command::new(env!("CARGO_BIN_EXE_poh")), data_dir, flags)
}

/// `command serve FLAGS` on ports the system picks, until its start-up line names them.
/// The PoH rate is the tests' small one unless `flags` set their own.
pub fn serve_with(mut command: Command, data_dir: &Path, flags: &[&str]) -> Served {
    let hashes_per_tick = HASHES_PER_TICK.to_string();
    let own_rate = flags.contains(&"--hashes-per-tick");
    // Nodes on hosts of their own (`hosts.rs`) listen on fixed ports of their own address.
    let own_ports = flags.contains(&"--grpc-port");
    let rate: &[&str] = if own_rate {
        &[]
    } else {
        &[
            "--hashes-per-tick",
            &hashes_per_tick,
            "--ticks-per-second",
            "50",
        ]
    };
    let any_port: &[&str] = if own_ports {
        &[]
    } else {
        &[
            "--grpc-port",
            "0",
            "--http-port",
            "0",
            "--udp-port",
            "0",
            "--quic-port",
            "0",
        ]
    };
    let mut child = command
        .arg("serve")
        .args(flags)
        .args(any_port)
        .args(rate)
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "info")
        .env_remove("POH_CONFIG")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    // The log is read on a thread (and drained for the child's whole life, so it never
    // blocks on a full pipe); the start-up line must come within a deadline.
    let (found, base) = std::sync::mpsc::channel();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            kept.lock().unwrap().push(line.clone());
            let field = |name: &str| {
                line.split(&format!(" {name}="))
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .map(str::to_string)
            };
            if let (Some(grpc), Some(http), Some(udp), Some(quic)) =
                (field("grpc"), field("http"), field("udp"), field("quic"))
            {
                let _ = found.send((grpc, format!("http://{http}"), udp, quic));
            }
        }
    });
    match base.recv_timeout(Duration::from_secs(60)) {
        Ok((grpc, base, udp, quic)) => Served {
            child,
            base,
            grpc,
            udp,
            quic,
            log,
        },
        Err(e) => {
            let _ = child.kill();
            let status = child.wait();
            // Disconnected: the reader has seen the log to its end.
            let log = log.lock().unwrap();
            let tail = log[log.len().saturating_sub(5)..].join("\n");
            match e {
                std::sync::mpsc::RecvTimeoutError::Timeout => {
                    panic!("poh serve did not log its addresses within 60 s:\n{tail}")
                }
                std::sync::mpsc::RecvTimeoutError::Disconnected => {
                    panic!("poh serve exited ({status:?}) before logging its addresses:\n{tail}")
                }
            }
        }
    }
}

pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args(["-s", name])
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// SIGTERM, and a clean exit.
pub fn stop(mut node: Served) {
    signal(&node.child, "TERM");
    assert!(node.child.wait().unwrap().success());
}

/// `poh bench ...` with `--json`: the report as a map, and its keys sorted.
pub fn bench_json(args: &[&str]) -> (serde_json::Map<String, serde_json::Value>, Vec<String>) {
    let out = poh(args);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    let report: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&out.stdout).unwrap();
    let mut keys: Vec<String> = report.keys().cloned().collect();
    keys.sort_unstable();
    (report, keys)
}

/// A PoH log of `entries` entries, written by `poh generate-log`.
pub fn generate(path: &Path, entries: &str) {
    let out = poh(&[
        "generate-log",
        "--out",
        path.to_str().unwrap(),
        "--entries",
        entries,
        "--hashes-per-tick",
        "200",
        "--chain-id",
        "municipality/test",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// How long any one awaited state may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `check` until it answers, for at most [`PATIENCE`].
pub fn wait_for<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    wait_within(PATIENCE, what, check)
}

/// Polls `check` until it answers, for at most `patience`.
pub fn wait_within<T>(patience: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "not within {patience:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Blocking HTTP calls on a small runtime of the test's own.
pub struct Http {
    pub runtime: tokio::runtime::Runtime,
    pub client: reqwest::Client,
}

impl Http {
    pub fn new() -> Self {
        Self {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }

    /// `GET url`: the status and the JSON body.
    pub fn get(&self, url: &str) -> (u16, Value) {
        self.runtime.block_on(async {
            let r = self
                .client
                .get(url)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {url}: {e}"));
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        })
    }

    /// `GET url`, which must answer 200.
    pub fn get_ok(&self, url: &str) -> Value {
        let (status, body) = self.get(url);
        assert_eq!(status, 200, "GET {url}: {body}");
        body
    }

    /// `GET url?query` as JSON; `None` while the server is not answering.
    pub fn try_get(&self, url: &str, query: &[(&str, &str)]) -> Option<Value> {
        let url = reqwest::Url::parse_with_params(url, query).ok()?;
        self.runtime.block_on(async {
            let answer = self.client.get(url).send().await.ok()?;
            answer.json().await.ok()
        })
    }

    /// One series (`name{labels}`) of the node's `/metrics` at `base`; `None` when absent.
    pub fn metric(&self, base: &str, series: &str) -> Option<f64> {
        let text = self.runtime.block_on(async {
            let answer = self
                .client
                .get(format!("{base}/metrics"))
                .send()
                .await
                .ok()?;
            answer.text().await.ok()
        })?;
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))?
            .parse()
            .ok()
    }

    /// `POST url` with a JSON body: the status, or `None` when nothing answered.
    pub fn post(&self, url: &str, body: &Value) -> Option<u16> {
        self.runtime.block_on(async {
            let r = self.client.post(url).json(body).send().await.ok()?;
            Some(r.status().as_u16())
        })
    }
}

/// A process's peak resident set (VmHWM), in MiB.
pub fn peak_rss_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        / 1024
}

/// The node's `/metrics` page.
pub async fn scrape(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// `poh keygen --out DIR/NAME.key`; the key's path.
pub fn keygen(dir: &Path, name: &str) -> String {
    let key = dir.join(format!("{name}.key"));
    let out = poh(&["keygen", "--out", key.to_str().unwrap()]);
    assert!(out.status.success(), "keygen: {}", text(&out.stderr));
    key.to_str().unwrap().to_string()
}

/// `poh fingerprint` of a node's QUIC development certificate.
pub fn quic_pin(data_dir: &std::path::Path) -> String {
    let cert = data_dir.join("quic-dev-cert.pem");
    let out = poh(&["fingerprint", cert.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// splitmix64: a reproducible random number from `seed`.
pub fn random(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The transaction with this id as sent (its payload and timestamp differ per id), in JSON
/// and as the node digests it.
pub fn transaction(id: &str, holder: &str, n: u64) -> (Value, Hash) {
    let payload = format!("{id}:{}", "x".repeat(usize::try_from(n % 200).unwrap()));
    transaction_of(
        id,
        holder,
        1_700_000_000.0 + n as f64 / 7.0,
        payload.as_bytes(),
    )
}

/// An unsigned transaction with no parents, in JSON and as the node digests it.
pub fn transaction_of(id: &str, holder: &str, timestamp: f64, payload: &[u8]) -> (Value, Hash) {
    let tx = Tx {
        tx_id: id.to_string(),
        holder_id: holder.to_string(),
        timestamp,
        payload: payload.to_vec(),
        ..Tx::default()
    };
    let json = json!({"tx_id": id, "holder_id": holder, "timestamp": timestamp,
                      "payload_b64": B64.encode(payload)});
    (json, tx.digest())
}

/// The digest of a transaction as `GET /v1/tx/{id}` answers it.
pub fn stored_digest(v: &Value) -> Hash {
    let b64 = |field: &str| B64.decode(v[field].as_str().unwrap()).unwrap();
    Tx {
        tx_id: v["tx_id"].as_str().unwrap().to_string(),
        holder_id: v["holder_id"].as_str().unwrap().to_string(),
        timestamp: v["timestamp"].as_f64().unwrap(),
        payload: b64("payload_b64"),
        parent_ids: v["parent_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect(),
        public_key: b64("public_key_b64"),
        signature: b64("signature_b64"),
    }
    .digest()
}

/// Federation (SPEC §6) reads of a node.
impl Http {
    /// Every header of the node at `base`, by height.
    pub fn headers(&self, base: &str) -> Vec<Value> {
        let mut all: Vec<Value> = Vec::new();
        loop {
            let page = self.get_ok(&format!("{base}/v1/headers?from={}&limit=1000", all.len()));
            let batch = page["headers"].as_array().unwrap().clone();
            if batch.is_empty() {
                break;
            }
            all.extend(batch);
        }
        for (height, header) in all.iter().enumerate() {
            assert_eq!(header["height"], height as u64, "{header}");
        }
        all
    }

    /// Height of the node's last header (None before its first).
    pub fn last_height(&self, base: &str) -> Option<u64> {
        self.get_ok(&format!("{base}/v1/federation"))["height"].as_u64()
    }

    /// The height of `child`'s last header accepted by the node at `base`.
    pub fn accepted_height(&self, base: &str, child: &str) -> Option<u64> {
        let federation = self.get_ok(&format!("{base}/v1/federation"));
        let children = federation["children"].as_array().unwrap();
        let entry = children
            .iter()
            .find(|c| c["chain_id"] == child)
            .unwrap_or_else(|| panic!("{child} is not listed as a child: {federation}"));
        entry["height"].as_u64()
    }

    /// The node's PoH entries (checked from its genesis) and its items: every entry's mixins
    /// in order, so that `items[poh_seq]` is what was recorded at `poh_seq`; also, for each
    /// item, the index of the entry that holds it.
    pub fn poh(&self, base: &str, chain_id: &str) -> Poh {
        let mut entries: Vec<Entry> = Vec::new();
        loop {
            let page = self.get_ok(&format!(
                "{base}/v1/poh/entries?from={}&limit=10000",
                entries.len()
            ));
            if entries.is_empty() {
                assert_eq!(
                    page["start_hash"].as_str().unwrap(),
                    genesis(chain_id).to_hex(),
                    "entry 0 starts at {chain_id}'s genesis"
                );
            }
            let batch = page["entries"].as_array().unwrap();
            if batch.is_empty() {
                break;
            }
            let hex = |v: &Value| v.as_str().unwrap().parse::<Hash>().unwrap();
            entries.extend(batch.iter().map(|e| Entry {
                num_hashes: e["num_hashes"].as_u64().unwrap(),
                hash: hex(&e["hash"]),
                mixins: e["mixins"].as_array().unwrap().iter().map(hex).collect(),
            }));
        }
        verify_serial(&genesis(chain_id), &entries, HASHES_PER_TICK)
            .unwrap_or_else(|e| panic!("{chain_id}'s PoH does not verify: {e}"));
        let mut items = Vec::new();
        let mut entry_of = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            for mixin in &entry.mixins {
                items.push(mixin.to_hex());
                entry_of.push(i as u64);
            }
        }
        Poh { items, entry_of }
    }
}

/// A node's PoH as `Http::poh` reads it.
pub struct Poh {
    pub items: Vec<String>,
    pub entry_of: Vec<u64>,
}

/// The flags every federation node of these tests shares.
pub fn node_flags<'a>(chain_id: &'a str, level: &'a str, key: &'a str) -> Vec<&'a str> {
    vec![
        "--chain-id",
        chain_id,
        "--level",
        level,
        "--node-key",
        key,
        "--min-batch-interval",
        "0.05",
        "--max-batch-interval",
        "0.3",
        "--no-udp",
        "--no-quic",
    ]
}

/// Whether this process runs as root (from /proc, no libc).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

/// A tmpfs mounted on a temporary directory for the test's life.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts `mib` MiB, or `None` (saying why) where the test cannot mount: not as root.
    pub fn mount(mib: u64) -> Option<Self> {
        if !is_root() {
            eprintln!("skipped: mounting a tmpfs needs root (CI runs as root)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "mount a tmpfs as root: {out:?}");
        Some(Self { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Grows (or shrinks) the mount in place.
    pub fn resize(&self, mib: u64) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={mib}m")])
            .arg(self.dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "remount: {out:?}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
