//! What an indexed database must hold: every transaction the node stored, once, each column
//! as `GET /v1/tx/{id}` answers it; the node's headers as `GET /v1/headers` serves them; and
//! what the transactions sent imply of holders and parents.

use std::collections::HashMap;

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use serde_json::Value;

use super::send::{HOLDERS, has_late, holder, id, late, parents};
use crate::common::Http;

pub const CHAIN: &str = "local";

/// A blocking view of the test's database.
pub struct Sql {
    pub runtime: tokio::runtime::Runtime,
    pub client: tokio_postgres::Client,
}

impl Sql {
    pub fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Vec<tokio_postgres::Row> {
        self.runtime
            .block_on(self.client.query(sql, params))
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
    }

    /// Rows indexed, and how many of them have their header (PENDING ones too).
    pub fn counts(&self) -> (i64, i64) {
        let row = &self.query(
            "SELECT count(*), count(header_id) FROM poh_transactions WHERE chain_id = $1",
            &[&CHAIN],
        )[0];
        (row.get(0), row.get(1))
    }
}

/// The ids transactions `0..sent` may have been sent with, late parents included.
fn all_ids(sent: u64) -> Vec<String> {
    let late = (0..sent).filter(|&i| has_late(i)).map(late);
    (0..sent).map(id).chain(late).collect()
}

/// The node's answer for every id of `0..sent` (and their late parents) it stored (datagrams may be lost).
pub fn stored(http: &Http, base: &str, sent: u64) -> HashMap<String, Value> {
    use futures_util::StreamExt as _;
    let answers = http.runtime.block_on(
        futures_util::stream::iter(all_ids(sent))
            .map(|tx_id| async move {
                let url = format!("{base}/v1/tx/{tx_id}");
                let r = http.client.get(&url).send().await.unwrap();
                let status = r.status().as_u16();
                (
                    tx_id,
                    status,
                    r.json::<Value>().await.unwrap_or(Value::Null),
                )
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>(),
    );
    let mut out = HashMap::new();
    for (tx_id, status, body) in answers {
        match status {
            200 => {
                out.insert(tx_id, body);
            }
            404 => {}
            other => panic!("GET /v1/tx/{tx_id}: {other} {body}"),
        }
    }
    out
}

/// Waits until the node has sealed everything it stored and the database holds all of it,
/// sealed: the node's stored transactions then.
pub fn wait_complete(
    http: &Http,
    base: &str,
    sql: &Sql,
    sent: u64,
    indexer: &dyn Fn() -> String,
) -> HashMap<String, Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let mut last = (0, 0, 0);
    loop {
        let seq = http.get_ok(&format!("{base}/v1/poh"))["seq"]
            .as_i64()
            .unwrap();
        let (rows, sealed) = sql.counts();
        if (seq, rows, sealed) != last {
            last = (seq, rows, sealed);
            eprintln!("node seq {seq}: {rows} rows, {sealed} sealed");
        }
        if rows == seq && sealed == rows {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not within 90 s: the node sealed, and the database holds, every stored \
             transaction (seq {seq}: {rows} rows, {sealed} sealed); the indexer's last \
             lines:\n{}",
            indexer()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let node = stored(http, base, sent);
    assert_eq!(
        sql.counts().0,
        node.len() as i64,
        "rows against stored transactions"
    );
    node
}

/// Every row against the node's answer, every header against the node's, and the queries
/// by holder and by parent.
pub fn check_all(http: &Http, base: &str, sql: &Sql, node: &HashMap<String, Value>) {
    let rows = sql.query(
        "SELECT tx_id, holder_id, timestamp, payload, parent_ids, public_key, signature, \
         poh_seq, poh_hash, status, header_id, received_at FROM poh_transactions \
         WHERE chain_id = $1",
        &[&CHAIN],
    );
    assert_eq!(rows.len(), node.len());
    let mut signed = 0;
    for row in &rows {
        let tx_id: String = row.get(0);
        let v = node
            .get(&tx_id)
            .unwrap_or_else(|| panic!("{tx_id} is not stored"));
        let bytes = |field: &str| B64.decode(v[field].as_str().unwrap()).unwrap();
        let optional = |field: &str| Some(bytes(field)).filter(|b| !b.is_empty());
        let parents: Vec<String> = serde_json::from_value(v["parent_ids"].clone()).unwrap();
        let public_key: Option<Vec<u8>> = row.get(5);
        signed += usize::from(public_key.is_some());
        let got = (
            row.get::<_, String>(1),
            row.get::<_, f64>(2).to_bits(),
            row.get::<_, Vec<u8>>(3),
            row.get::<_, Vec<String>>(4),
            public_key,
            row.get::<_, Option<Vec<u8>>>(6),
            row.get::<_, i64>(7),
        );
        let want = (
            v["holder_id"].as_str().unwrap().to_string(),
            v["timestamp"].as_f64().unwrap().to_bits(),
            bytes("payload_b64"),
            parents,
            optional("public_key_b64"),
            optional("signature_b64"),
            v["poh_seq"].as_i64().unwrap(),
        );
        assert_eq!(got, want, "{tx_id}");
        let got = (
            hex::encode(row.get::<_, Vec<u8>>(8)),
            row.get::<_, String>(9),
            row.get::<_, Option<String>>(10),
            row.get::<_, f64>(11).to_bits(),
        );
        let want = (
            v["poh_hash"].as_str().unwrap().to_string(),
            v["status"].as_str().unwrap().to_string(),
            v["header_id"].as_str().map(str::to_string),
            v["received_at"].as_f64().unwrap().to_bits(),
        );
        assert_eq!(got, want, "{tx_id}");
    }
    assert!(signed > 0, "no signed transaction was indexed");
    check_headers(http, base, sql);
    check_queries(http, base, sql, node);
}

/// `poh_headers` against `GET /v1/headers`: the same headers, the JSON as served.
fn check_headers(http: &Http, base: &str, sql: &Sql) {
    let rows = sql.query(
        "SELECT height, header_id, level, poh_start, poh_end, item_count, timestamp, \
         header_json::text FROM poh_headers WHERE chain_id = $1 ORDER BY height",
        &[&CHAIN],
    );
    let served = http.headers(base);
    assert!(
        !rows.is_empty() && rows.len() <= served.len(),
        "{} headers",
        rows.len()
    );
    for (row, h) in rows.iter().zip(&served) {
        let json: Value = serde_json::from_str(row.get::<_, &str>(7)).unwrap();
        assert_eq!(&json, h);
        let got = (
            row.get::<_, i64>(0),
            row.get::<_, String>(1),
            row.get::<_, String>(2),
            row.get::<_, i64>(3),
            row.get::<_, i64>(4),
            row.get::<_, i64>(5),
            row.get::<_, f64>(6).to_bits(),
        );
        let want = (
            h["height"].as_i64().unwrap(),
            h["header_id"].as_str().unwrap().to_string(),
            h["level"].as_str().unwrap().to_string(),
            h["poh_start"].as_i64().unwrap(),
            h["poh_end"].as_i64().unwrap(),
            h["item_count"].as_i64().unwrap(),
            h["timestamp"].as_f64().unwrap().to_bits(),
        );
        assert_eq!(got, want);
    }
}

/// Every `tx_id` of `holder`, in seq order, as the node's own `GET /v1/tx?holder_id=` pages
/// them.
fn listed(http: &Http, base: &str, holder: &str) -> Vec<(u64, String)> {
    let (mut out, mut from) = (Vec::new(), 0);
    loop {
        let page = http.get_ok(&format!(
            "{base}/v1/tx?holder_id={holder}&from_seq={from}&limit=1000"
        ));
        for tx in page["transactions"].as_array().unwrap() {
            out.push((
                tx["poh_seq"].as_u64().unwrap(),
                tx["tx_id"].as_str().unwrap().into(),
            ));
        }
        match page["next_seq"].as_u64() {
            Some(next) => from = next,
            None => return out,
        }
    }
}

/// By holder (the holder index) and by parent (the GIN index): what was sent implies the
/// answers, and the node's own queries (`GET /v1/tx?holder_id=`, `GET /v1/tx/{id}/children`)
/// give the same.
fn check_queries(http: &Http, base: &str, sql: &Sql, node: &HashMap<String, Value>) {
    let index_of = |tx_id: &str| tx_id.strip_prefix("ix")?.parse::<u64>().ok();
    let mut by_holder: HashMap<String, Vec<(u64, String)>> = HashMap::new();
    let mut children: HashMap<String, Vec<String>> = HashMap::new();
    for (tx_id, v) in node {
        let name = v["holder_id"].as_str().unwrap().to_string();
        if let Some(i) = index_of(tx_id) {
            assert_eq!(name, holder(i), "{tx_id}");
            for p in parents(i) {
                children.entry(p).or_default().push(tx_id.clone());
            }
        }
        let seq = v["poh_seq"].as_u64().unwrap();
        by_holder
            .entry(name)
            .or_default()
            .push((seq, tx_id.clone()));
    }
    let holders = (0..HOLDERS).map(holder).chain(["late".to_string()]);
    for name in holders {
        let mut want = by_holder.remove(&name).unwrap_or_default();
        want.sort();
        let got: Vec<(u64, String)> = sql
            .query(
                "SELECT poh_seq, tx_id FROM poh_transactions \
                 WHERE chain_id = $1 AND holder_id = $2 ORDER BY poh_seq",
                &[&CHAIN, &name],
            )
            .iter()
            .map(|r| (r.get::<_, i64>(0) as u64, r.get(1)))
            .collect();
        assert_eq!(got, want, "{name}");
        assert_eq!(listed(http, base, &name), got, "the node's list of {name}");
    }
    assert!(
        by_holder.is_empty(),
        "holders not asked for: {:?}",
        by_holder.keys()
    );
    let by_parent = "SELECT tx_id FROM poh_transactions WHERE parent_ids @> ARRAY[$1] \
                     ORDER BY tx_id";
    // Every parent that is no ix id, one in seven of the others, and some without children.
    let asked = children
        .keys()
        .filter(|p| index_of(p).is_none_or(|i| i % 7 == 0))
        .chain(
            node.keys()
                .filter(|t| index_of(t).is_some_and(|i| i % 13 == 0)),
        )
        .cloned()
        .collect::<std::collections::BTreeSet<String>>();
    for parent in &asked {
        let mut want = children.get(parent).cloned().unwrap_or_default();
        want.sort();
        let got: Vec<String> = sql
            .query(by_parent, &[parent])
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(got, want, "children of {parent}");
        // A parent never stored is unknown to the node (404); else its children as SQL has them.
        let (status, answer) = http.get(&format!("{base}/v1/tx/{parent}/children"));
        if node.contains_key(parent) {
            assert_eq!(status, 200, "{parent}: {answer}");
            let mut own: Vec<String> = serde_json::from_value(answer["children"].clone()).unwrap();
            own.sort();
            assert_eq!(own, got, "the node's children of {parent}");
        } else {
            assert_eq!(status, 404, "{parent}: {answer}");
        }
    }
    assert!(asked.iter().any(|p| p.starts_with("never-")));
    sql.runtime
        .block_on(sql.client.batch_execute("SET enable_seqscan = off"))
        .unwrap();
    let plan: Vec<String> = sql
        .query(&format!("EXPLAIN {by_parent}"), &[&"ix0"])
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        plan.iter()
            .any(|l| l.contains("poh_transactions_parent_ids_idx")),
        "{plan:#?}"
    );
}
