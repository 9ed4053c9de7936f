// The checks of an inclusion proof, done here with the browser's own SHA-256 (WebCrypto), not
// taken on the node's word:
// - the transaction's digest: SHA-256 of its signing bytes (SPEC §2);
// - for each link, the header's id: SHA-256 of its header bytes (SPEC §6);
// - for each link, the RFC 6962 audit path from its item, at its index, to the header's
//   `items_root`;
// - that the first link's item is the digest, and each next link's item is the hash of the
//   header below, one level up.
// Not checked here: the ML-DSA-87 signatures, and whether the top key is one to trust.

const text = new TextEncoder();
const LEVELS = { municipality: 0, continental: 1, global: 2 };

/** A problem with one field, reported on its card. */
class Bad extends Error {}

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function fromHex(value, field) {
  if (typeof value !== "string" || !/^[0-9a-f]{64}$/.test(value)) {
    throw new Bad(`${field} is not 64 lowercase hex characters`);
  }
  return Uint8Array.from(value.match(/../g), (b) => parseInt(b, 16));
}

function fromBase64(value, field) {
  if (typeof value !== "string") throw new Bad(`${field} is not a string`);
  let binary;
  try {
    binary = atob(value);
  } catch {
    throw new Bad(`${field} is not base64`);
  }
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/** Big-endian bytes, as SPEC §2 and §6 lay them out. */
class Writer {
  constructor() {
    this.parts = [];
  }
  raw(bytes) {
    this.parts.push(bytes);
  }
  ascii(s) {
    this.raw(text.encode(s));
  }
  u8(n) {
    this.raw(Uint8Array.of(n));
  }
  u32(n) {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n);
    this.raw(b);
  }
  // Integers above 2^53 cannot come through JSON exactly in a browser: refused, not guessed.
  u64(n, field) {
    if (!Number.isSafeInteger(n) || n < 0) throw new Bad(`${field} is not a whole number this page can hold exactly`);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(n));
    this.raw(b);
  }
  f64(n, field) {
    if (typeof n !== "number") throw new Bad(`${field} is not a number`);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, n);
    this.raw(b);
  }
  bytes(b) {
    this.u32(b.length);
    this.raw(b);
  }
  str(s, field) {
    if (typeof s !== "string") throw new Bad(`${field} is not a string`);
    this.bytes(text.encode(s));
  }
  done() {
    const out = new Uint8Array(this.parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

/** SPEC §2: the bytes a transaction's digest and signature are over. */
export function signingBytes(tx) {
  const w = new Writer();
  w.ascii("poh.tx.v1");
  w.str(tx.tx_id, "tx.tx_id");
  w.str(tx.holder_id, "tx.holder_id");
  w.f64(tx.timestamp, "tx.timestamp");
  const parents = tx.parent_ids ?? [];
  if (!Array.isArray(parents)) throw new Bad("tx.parent_ids is not a list");
  w.u32(parents.length);
  parents.forEach((p, i) => w.str(p, `tx.parent_ids[${i}]`));
  w.bytes(fromBase64(tx.payload_b64, "tx.payload_b64"));
  return w.done();
}

/** SPEC §6: the bytes a header's hash and signature are over. */
export function headerBytes(hd) {
  if (!hd || typeof hd !== "object") throw new Bad("the header is missing");
  const level = LEVELS[hd.level];
  if (level === undefined) throw new Bad(`level ${JSON.stringify(hd.level)} is not municipality, continental or global`);
  const w = new Writer();
  w.ascii("poh.header.v1");
  w.str(hd.chain_id, "chain_id");
  w.u8(level);
  w.u64(hd.height, "height");
  w.raw(fromHex(hd.prev_header_hash, "prev_header_hash"));
  w.u64(hd.poh_start, "poh_start");
  w.u64(hd.poh_end, "poh_end");
  w.raw(fromHex(hd.poh_end_hash, "poh_end_hash"));
  w.u64(hd.poh_hashes, "poh_hashes");
  w.raw(fromHex(hd.items_root, "items_root"));
  w.u64(hd.item_count, "item_count");
  w.f64(hd.timestamp, "timestamp");
  w.bytes(fromBase64(hd.public_key_b64, "public_key_b64"));
  return w.done();
}

const concat = (...parts) => {
  const w = new Writer();
  parts.forEach((p) => w.raw(p));
  return w.done();
};

/**
 * RFC 6962 (RFC 9162 §2.1.3.2): the root that `path` gives for `item` at `index` of `size`
 * leaves, or null when the path cannot belong to such a tree.
 */
export async function rootFromPath(item, index, size, path) {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return null;
  let fn = index;
  let sn = size - 1;
  let r = await sha256(concat(Uint8Array.of(0), item));
  for (const p of path) {
    if (sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      r = await sha256(concat(Uint8Array.of(1), p, r));
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      r = await sha256(concat(Uint8Array.of(1), r, p));
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : null;
}

/** One named check on a card. */
const check = (ok, what) => ({ ok, what });

/**
 * Every check of `proof` (the JSON of `GET /v1/tx/{id}/proof`), by card: the transaction's
 * digest, then one card per link. A card that cannot be read fails with why; the next cards
 * are still checked, so every broken one is shown.
 */
export async function verifyProof(proof) {
  const cards = [];
  let digest = null;
  try {
    if (!proof || typeof proof !== "object") throw new Bad("the proof is not a JSON object");
    if (!proof.tx || typeof proof.tx !== "object") throw new Bad("the proof has no transaction");
    digest = await sha256(signingBytes(proof.tx));
    const hexDigest = toHex(digest);
    cards.push({
      kind: "digest",
      checks: [
        check(proof.tx_id === proof.tx.tx_id, `the proof is for ${JSON.stringify(proof.tx_id)}, its transaction is ${JSON.stringify(proof.tx.tx_id)}`),
        check(proof.item === hexDigest, `SHA-256 of the signing bytes (SPEC §2) is ${hexDigest}; the proof says ${proof.item}`),
      ],
      digest: hexDigest,
    });
  } catch (e) {
    cards.push({ kind: "digest", checks: [check(false, reason(e))] });
  }
  const links = Array.isArray(proof?.links) ? proof.links : [];
  if (links.length === 0) cards.push({ kind: "link", index: 0, checks: [check(false, "the proof has no link")] });
  let below = null; // the hash and level this browser computed for the header below
  for (const [k, link] of links.entries()) {
    const card = { kind: "link", index: k, link, checks: [] };
    cards.push(card);
    let computed = null;
    try {
      const hd = link.header;
      const id = toHex(await sha256(headerBytes(hd)));
      computed = { id, level: LEVELS[hd.level] };
      card.headerId = id;
      card.checks.push(check(id === hd.header_id, `SHA-256 of the header bytes (SPEC §6) is ${id}; the header says ${hd.header_id}`));
      const item = fromHex(link.item, "item");
      if (k === 0) {
        card.checks.push(check(digest !== null && link.item === toHex(digest), "its item is the transaction's digest"));
      } else if (below) {
        card.checks.push(check(link.item === below.id, `its item is the hash of the ${LEVEL_NAMES[below.level]} header below`));
        card.checks.push(check(computed.level === below.level + 1, `a ${hd.level} header orders a ${LEVEL_NAMES[below.level]} one`));
      } else {
        card.checks.push(check(false, "the header below could not be read, so this link cannot be tied to it"));
      }
      if (!Array.isArray(link.audit_path)) throw new Bad("audit_path is not a list");
      if (link.audit_path.length > 64) throw new Bad("an audit path has at most 64 hashes");
      const path = link.audit_path.map((p, i) => fromHex(p, `audit_path[${i}]`));
      const root = await rootFromPath(item, link.index, hd.item_count, path);
      const want = hd.items_root;
      card.checks.push(
        check(
          root !== null && toHex(root) === want,
          root === null
            ? `an audit path of ${path.length} hashes cannot reach leaf ${link.index} of ${hd.item_count}`
            : `the audit path from leaf ${link.index} of ${hd.item_count} gives ${toHex(root)}; items_root is ${want}`,
        ),
      );
    } catch (e) {
      card.checks.push(check(false, reason(e)));
    }
    below = computed;
  }
  const failing = cards.filter((c) => c.checks.some((x) => !x.ok));
  return { ok: failing.length === 0, cards, failing };
}

const LEVEL_NAMES = ["municipality", "continental", "global"];

function reason(e) {
  if (e instanceof Bad) return e.message;
  if (e instanceof TypeError) return "a field is missing or of the wrong type";
  return String(e && e.message ? e.message : e);
}

/** SHA-256 of a base64 public key, in hex: how the node names its key in its logs. */
export async function fingerprint(publicKeyB64) {
  try {
    return toHex(await sha256(fromBase64(publicKeyB64, "public_key_b64")));
  } catch {
    return null;
  }
}

/** A header's id, as this browser computes it. */
export async function headerId(hd) {
  try {
    return toHex(await sha256(headerBytes(hd)));
  } catch (e) {
    return { error: reason(e) };
  }
}
