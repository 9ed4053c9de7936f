//! Load for the fault scenarios, and its history: threads submit new transactions
//! (`POST /v1/tx`) round robin to a set of nodes and record every acknowledgement they got
//! (the id, the digest of what was sent, the node, `poh_seq`, `poh_hash`), and how many of
//! the other answers came from which node. The acknowledged ones are written as the expect
//! file of `poh audit --expect` (JSON lines `{"tx_id","digest"}`, SPEC §9).

use std::{
    collections::BTreeMap,
    io::Write as _,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use poh_core::Hash;
use serde_json::{Value, json};

use crate::common::{Http, transaction_of, wait_within};

/// The holder of every transaction of the load.
pub const HOLDER: &str = "load";
/// Transactions one thread sends at most, and for how long at most.
const MAX_PER_THREAD: u64 = 20_000;
const MAX_TIME: Duration = Duration::from_secs(150);
/// How long a node that did not take a transaction is left out.
const REST: Duration = Duration::from_secs(1);

/// One acknowledgement.
#[derive(Clone, Debug)]
pub struct Acked {
    pub tx_id: String,
    pub digest: Hash,
    /// The HTTP base URL of the node that gave it.
    pub node: String,
    pub poh_seq: u64,
    pub poh_hash: String,
}

/// What a load got.
#[derive(Default)]
pub struct History {
    acked: Mutex<Vec<Acked>>,
    /// Answers that were not acknowledgements, by node and answer (`507`, `no answer`, …).
    refused: Mutex<BTreeMap<(String, String), u64>>,
}

impl History {
    /// How many acknowledgements so far.
    pub fn len(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Every acknowledgement so far.
    pub fn acked(&self) -> Vec<Acked> {
        self.acked.lock().unwrap().clone()
    }

    /// How many times `node` answered `what`.
    pub fn refused(&self, node: &str, what: &str) -> u64 {
        let refused = self.refused.lock().unwrap();
        refused
            .get(&(node.to_string(), what.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// Writes the expect file of `poh audit` (and of `audit_clean`).
    pub fn write_expect(&self, path: &Path) {
        let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
        for a in self.acked.lock().unwrap().iter() {
            let line = json!({"tx_id": a.tx_id, "digest": a.digest.to_hex()});
            writeln!(file, "{line}").unwrap();
        }
        file.flush().unwrap();
    }

    /// Waits until `more` acknowledgements are added to what there is now.
    pub fn wait_more(&self, more: usize, what: &str) {
        let target = self.len() + more;
        let what = format!("{more} more acknowledgements ({what})");
        wait_within(Duration::from_secs(45), &what, || {
            (self.len() >= target).then_some(())
        });
    }

    /// A one-line summary: acknowledgements by node, and the other answers.
    pub fn summary(&self) -> String {
        let mut by_node: BTreeMap<String, usize> = BTreeMap::new();
        for a in self.acked.lock().unwrap().iter() {
            *by_node.entry(a.node.clone()).or_default() += 1;
        }
        format!(
            "acknowledged {by_node:?}; other answers {:?}",
            self.refused.lock().unwrap()
        )
    }

    /// Records an answer; whether it acknowledged.
    fn record(
        &self,
        node: &str,
        id: &str,
        digest: Hash,
        answer: Result<(u16, Value), String>,
    ) -> bool {
        match answer {
            Ok((200 | 201, body)) => {
                assert_eq!(body["tx_id"], id, "{body}");
                self.acked.lock().unwrap().push(Acked {
                    tx_id: id.to_string(),
                    digest,
                    node: node.to_string(),
                    poh_seq: body["poh_seq"].as_u64().unwrap(),
                    poh_hash: body["poh_hash"].as_str().unwrap().to_string(),
                });
                true
            }
            other => {
                let what = match other {
                    Ok((status, _)) => status.to_string(),
                    Err(_) => "no answer".to_string(),
                };
                *self
                    .refused
                    .lock()
                    .unwrap()
                    .entry((node.to_string(), what))
                    .or_default() += 1;
                false
            }
        }
    }
}

/// Load generator threads; stopped by [`Load::stop`] (or when dropped).
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    /// `threads` threads sending transactions named `{prefix}-{thread}-{n}` with `payload`
    /// bytes of payload round robin to `targets` (HTTP base URLs), `pace` apart, into
    /// `history`. Each waits at most 1 s to connect and 3 s for an answer, and leaves a node
    /// that did not take one out for [`REST`].
    pub fn start(
        prefix: &str,
        targets: &[String],
        (threads, payload, pace): (usize, usize, Duration),
        history: &Arc<History>,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..threads)
            .map(|t| {
                let (stop, history) = (stop.clone(), history.clone());
                let (prefix, targets) = (prefix.to_string(), targets.to_vec());
                std::thread::spawn(move || {
                    let http = Http {
                        runtime: tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .unwrap(),
                        client: reqwest::Client::builder()
                            .connect_timeout(Duration::from_secs(1))
                            .timeout(Duration::from_secs(3))
                            .build()
                            .unwrap(),
                    };
                    let deadline = Instant::now() + MAX_TIME;
                    // A node that did not take the last one is left out for a while.
                    let mut resting = vec![Instant::now(); targets.len()];
                    for n in 0..MAX_PER_THREAD {
                        if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                            return;
                        }
                        let now = Instant::now();
                        let k = (n as usize + t) % targets.len();
                        let Some(k) = (k..k + targets.len())
                            .map(|k| k % targets.len())
                            .find(|&k| resting[k] <= now)
                        else {
                            std::thread::sleep(pace.max(Duration::from_millis(10)));
                            continue;
                        };
                        let node = &targets[k];
                        let id = format!("{prefix}-{t}-{n}");
                        let mut bytes = id.clone().into_bytes();
                        bytes.resize(payload.max(bytes.len()), b'.');
                        let (tx, digest) = transaction_of(&id, HOLDER, 1.7e9 + n as f64, &bytes);
                        let answer = http.runtime.block_on(async {
                            let url = format!("{node}/v1/tx");
                            let r = http.client.post(url).json(&tx).send().await;
                            let r = r.map_err(|e| e.to_string())?;
                            let status = r.status().as_u16();
                            Ok((status, r.json().await.unwrap_or(Value::Null)))
                        });
                        if !history.record(node, &id, digest, answer) {
                            resting[k] = Instant::now() + REST;
                        }
                        std::thread::sleep(pace);
                    }
                })
            })
            .collect();
        Self { stop, threads }
    }

    /// Stops the threads once their requests in flight are answered.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            thread.join().expect("a load thread failed");
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
