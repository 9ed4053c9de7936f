//! The JSON shapes of SPEC §6: a header, `GET /v1/headers`, and `GET /v1/federation`.
//! Both directions, so the CLI and a verifier read back exactly what the node wrote.

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use poh_core::{
    Hash, Header, Level, Tx,
    proof::{Anchor, ProofLink},
};
use poh_proto::bounded::{MAX_AUDIT_PATH, MAX_PROOF_LINKS};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::wire::json::TxIn;

/// A header in JSON (SPEC §6).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HeaderJson {
    /// Hex of `header_hash`.
    pub header_id: String,
    /// The sealing chain.
    pub chain_id: String,
    /// `municipality`, `continental` or `global`.
    #[schema(value_type = String)]
    pub level: Level,
    /// 0 for the first header, then +1.
    pub height: u64,
    /// Hex of the previous header's hash (zeros at height 0).
    pub prev_header_hash: String,
    /// First entry covered.
    pub poh_start: u64,
    /// One past the last entry covered.
    pub poh_end: u64,
    /// Hex of the hash of entry `poh_end - 1`.
    pub poh_end_hash: String,
    /// Sum of `num_hashes` over the covered entries.
    pub poh_hashes: u64,
    /// Hex of the RFC 6962 root of the covered items.
    pub items_root: String,
    /// Items covered.
    pub item_count: u64,
    /// Unix seconds when sealed.
    pub timestamp: f64,
    /// Base64 of the sealer's ML-DSA-87 public key.
    pub public_key_b64: String,
    /// Base64 of the ML-DSA-87 signature over the header bytes.
    pub signature_b64: String,
    /// For a child header served by its parent: the parent's `poh_seq` that recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_at_seq: Option<u64>,
}

impl HeaderJson {
    /// The JSON of `header`, with where its parent recorded it when known.
    pub fn new(header: &Header, recorded_at_seq: Option<u64>) -> Self {
        Self {
            header_id: header.id(),
            chain_id: header.chain_id.clone(),
            level: header.level,
            height: header.height,
            prev_header_hash: header.prev_header_hash.to_hex(),
            poh_start: header.poh_start,
            poh_end: header.poh_end,
            poh_end_hash: header.poh_end_hash.to_hex(),
            poh_hashes: header.poh_hashes,
            items_root: header.items_root.to_hex(),
            item_count: header.item_count,
            timestamp: header.timestamp,
            public_key_b64: B64.encode(&header.public_key),
            signature_b64: B64.encode(&header.signature),
            recorded_at_seq,
        }
    }

    /// The header, checked against its `header_id`.
    pub fn to_header(&self) -> Result<Header, String> {
        let hash = |field: &str, hex: &str| {
            hex.parse::<Hash>()
                .map_err(|_| format!("{field} is not 64 hex characters"))
        };
        let b64 = |field: &str, text: &str| {
            B64.decode(text)
                .map_err(|_| format!("{field} is not standard base64"))
        };
        let header = Header {
            chain_id: self.chain_id.clone(),
            level: self.level,
            height: self.height,
            prev_header_hash: hash("prev_header_hash", &self.prev_header_hash)?,
            poh_start: self.poh_start,
            poh_end: self.poh_end,
            poh_end_hash: hash("poh_end_hash", &self.poh_end_hash)?,
            poh_hashes: self.poh_hashes,
            items_root: hash("items_root", &self.items_root)?,
            item_count: self.item_count,
            timestamp: self.timestamp,
            public_key: b64("public_key_b64", &self.public_key_b64)?,
            signature: b64("signature_b64", &self.signature_b64)?,
        };
        if header.id() != self.header_id {
            return Err(format!(
                "header_id {} is not the hash of the header's fields ({})",
                self.header_id,
                header.id()
            ));
        }
        Ok(header)
    }
}

/// One step of an inclusion proof: `item` is leaf `index` of `header`'s items.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LinkJson {
    /// Hex of the item: the transaction's digest, or the header hash of the link below.
    pub item: String,
    /// Its index among the header's items.
    pub index: u64,
    /// Hex of each hash of its RFC 6962 audit path to `items_root`.
    pub audit_path: Vec<String>,
    /// The signed header.
    pub header: HeaderJson,
}

/// `GET /v1/tx/{tx_id}/proof`: everything needed to check, offline, that a transaction is
/// ordered — the transaction, its digest, and the links from its header up.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ProofJson {
    /// The transaction's id.
    pub tx_id: String,
    /// The transaction, as `POST /v1/tx` takes it.
    pub tx: TxIn,
    /// Hex of its digest (SHA-256 of the signing bytes): the first link's item.
    pub item: String,
    /// From the transaction's header up, one per level known.
    pub links: Vec<LinkJson>,
}

impl ProofJson {
    /// The proof of `tx` by `links`.
    pub fn new(tx: &Tx, links: &[ProofLink]) -> Result<Self, String> {
        let tx_json: TxIn =
            serde_json::from_slice(&crate::tx_to_json(tx)).map_err(|e| e.to_string())?;
        Ok(Self {
            tx_id: tx.tx_id.clone(),
            tx: tx_json,
            item: tx.digest().to_hex(),
            links: links
                .iter()
                .map(|l| LinkJson {
                    item: l.item.to_hex(),
                    index: l.index,
                    audit_path: l.audit_path.iter().map(Hash::to_hex).collect(),
                    header: HeaderJson::new(&l.header, None),
                })
                .collect(),
        })
    }

    /// Checks the whole proof offline: the transaction's digest is the item, and every link
    /// verifies (see `poh_core::proof`). The links, for showing, and which of them a
    /// `trusted` key signed: an unanchored proof is only self-consistent, which the caller
    /// must refuse unless told that is enough.
    pub fn verify(&self, trusted: &[Vec<u8>]) -> Result<(Vec<ProofLink>, Anchor), String> {
        let tx = self.tx.clone().into_tx().map_err(|e| format!("tx: {e}"))?;
        let item: Hash = self
            .item
            .parse()
            .map_err(|_| "item is not 64 hex characters")?;
        if tx.digest() != item {
            return Err(format!(
                "item {item} is not the transaction's digest {}",
                tx.digest()
            ));
        }
        // A proof climbs a few levels, and no tree needs a longer path than 64: anything
        // larger is refused before a hash or signature is checked.
        if self.links.len() > MAX_PROOF_LINKS {
            return Err(format!(
                "a proof has at most {MAX_PROOF_LINKS} links; this one has {}",
                self.links.len()
            ));
        }
        let links = self
            .links
            .iter()
            .enumerate()
            .map(|(k, l)| {
                let bad = |what: &str| format!("link {k}: {what}");
                if l.audit_path.len() > MAX_AUDIT_PATH {
                    return Err(bad(&format!(
                        "an audit path has at most {MAX_AUDIT_PATH} hashes"
                    )));
                }
                Ok(ProofLink {
                    item: l
                        .item
                        .parse()
                        .map_err(|_| bad("item is not 64 hex characters"))?,
                    index: l.index,
                    audit_path: l
                        .audit_path
                        .iter()
                        .map(|h| h.parse().map_err(|_| bad("an audit path hash is not hex")))
                        .collect::<Result<_, _>>()?,
                    header: l.header.to_header().map_err(|e| bad(&e))?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let anchor =
            poh_core::proof::verify_links(&item, &links, trusted).map_err(|e| e.to_string())?;
        Ok((links, anchor))
    }
}

/// `GET /v1/headers`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HeadersOut {
    /// The headers, by height.
    pub headers: Vec<HeaderJson>,
}

/// A child chain in `GET /v1/federation`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChildOut {
    /// The child's chain.
    pub chain_id: String,
    /// Base64 of its public key.
    pub public_key_b64: String,
    /// The height of its last accepted header, or `null`.
    pub height: Option<u64>,
}

/// `GET /v1/federation`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FederationOut {
    /// This chain.
    pub chain_id: String,
    /// `municipality`, `continental` or `global`.
    #[schema(value_type = String)]
    pub level: Level,
    /// The height of this node's last header, or `null` before the first.
    pub height: Option<u64>,
    /// The parent's address, or `null`.
    pub parent: Option<String>,
    /// The chains whose headers this node accepts.
    pub children: Vec<ChildOut>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            chain_id: "continental/asia".into(),
            level: Level::Continental,
            height: 3,
            prev_header_hash: poh_core::sha256(b"p"),
            poh_start: 10,
            poh_end: 20,
            poh_end_hash: poh_core::sha256(b"e"),
            poh_hashes: 123,
            items_root: poh_core::sha256(b"i"),
            item_count: 2,
            timestamp: 0.1 + 0.2,
            public_key: vec![1; 5],
            signature: vec![2; 7],
        }
    }

    #[test]
    fn a_header_reads_back_from_its_json_and_a_changed_field_is_caught() {
        let header = header();
        let json = serde_json::to_value(HeaderJson::new(&header, None)).unwrap();
        assert_eq!(json["level"], "continental");
        assert!(json.get("recorded_at_seq").is_none());
        let back: HeaderJson = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back.to_header().unwrap(), header);
        let mut changed = json;
        changed["poh_end"] = 21.into();
        let changed: HeaderJson = serde_json::from_value(changed).unwrap();
        assert!(changed.to_header().unwrap_err().contains("header_id"));
    }

    /// Counts are checked before anything in a link is parsed or hashed.
    #[test]
    fn a_proof_with_too_many_links_or_too_long_a_path_is_refused_unread() {
        let tx = poh_core::Tx {
            tx_id: "t".into(),
            holder_id: String::new(),
            timestamp: 1.0,
            payload: Vec::new(),
            parent_ids: Vec::new(),
            public_key: Vec::new(),
            signature: Vec::new(),
        };
        let link = |path: usize| LinkJson {
            item: String::new(),
            index: 0,
            audit_path: vec![String::new(); path],
            header: HeaderJson::new(&header(), None),
        };
        let mut proof = ProofJson::new(&tx, &[]).unwrap();
        proof.links = vec![link(0); MAX_PROOF_LINKS + 1];
        assert!(proof.verify(&[]).unwrap_err().contains("at most 8 links"));
        proof.links = vec![link(MAX_AUDIT_PATH + 1)];
        assert!(proof.verify(&[]).unwrap_err().contains("at most 64 hashes"));
    }
}
