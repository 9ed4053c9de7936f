// One transaction: its record, its place in the DAG, and its proof checked in this browser.

import { get, find, q, ApiError } from "./api.js";
import { h, fill, fields, panel, txLink, holderLink, headerLink, badge, iso } from "./dom.js";
import { showProof, debugView } from "./cards.js";

/** Seconds between asking again for a proof that is not there yet, or has fewer levels. */
const RETRY_MS = 2000;

export function txView(main, id, ready) {
  const stop = new AbortController();
  const timers = [];
  const record = h("div", { id: "tx-record" }, h("p", { class: "muted" }, "Loading…"));
  const dag = h("div", { id: "tx-dag" });
  const proof = h("div", { id: "proof" }, h("p", { class: "muted" }, "Loading the proof…"));
  fill(
    main,
    h("h1", {}, "Transaction ", h("span", { class: "mono" }, id)),
    h("div", { class: "grid" }, panel("Record", {}, record), panel("DAG", {}, dag)),
    h("h2", {}, "Proof"),
    h("p", { class: "muted" }, "From the transaction's header up the federation: each card is checked by this page with the browser's SHA-256."),
    proof,
  );

  (async () => {
    const tx = await find(`v1/tx/${q(id)}`, stop.signal);
    if (!tx) {
      fill(record, h("p", {}, "No transaction with this id on this node."));
      fill(dag);
      fill(proof);
      ready();
      return;
    }
    fill(record, recordFields(tx));
    const children = await find(`v1/tx/${q(id)}/children`, stop.signal);
    fill(dag, dagFields(tx, children));
    // Until a header covers it there is no proof: the record is read again (and shown, with
    // its new status) until it is sealed, rather than asking for a proof that is not there.
    let current = tx;
    while (!current.header_id) {
      fill(proof, h("p", { id: "proof-pending", class: "muted" }, `Not sealed yet (${current.status}): the proof exists once a header covers the transaction. Waiting for it…`));
      ready();
      await new Promise((wake) => timers.push(setTimeout(wake, RETRY_MS)));
      if (stop.signal.aborted) return;
      current = (await find(`v1/tx/${q(id)}`, stop.signal)) ?? current;
      fill(record, recordFields(current));
    }
    await loadProof(proof, id, stop.signal, timers, ready);
  })().catch((e) => {
    if (stop.signal.aborted) return;
    fill(record, h("p", { class: "error" }, "Could not read the transaction: " + e.message));
    ready();
  });

  return () => {
    stop.abort();
    timers.forEach(clearTimeout);
  };
}

function recordFields(tx) {
  const payload = tx.payload_b64 || "";
  const size = Math.floor((payload.length * 3) / 4) - (payload.endsWith("==") ? 2 : payload.endsWith("=") ? 1 : 0);
  return fields([
    ["Status", h("span", { id: "tx-status" }, badge(tx.status))],
    ["Holder", holderLink(tx.holder_id)],
    ["Timestamp", `${tx.timestamp} (${iso(tx.timestamp)})`],
    ["Received", iso(tx.received_at)],
    ["PoH seq", String(tx.poh_seq)],
    ["PoH hash", h("span", { class: "mono" }, tx.poh_hash)],
    ["Header", tx.header_id ? headerLink(tx.header_id, tx.header_id) : h("span", { class: "muted" }, "not sealed yet")],
    ["Payload", h("span", {}, `${size} bytes`, size ? h("div", { class: "mono muted" }, payload.length > 120 ? payload.slice(0, 120) + "…" : payload) : null)],
    ["Signed", tx.public_key_b64 ? "yes (ML-DSA-87; checked by the node when stored)" : "no"],
  ]);
}

function dagFields(tx, children) {
  const list = (ids, empty) => (ids.length ? h("ul", { class: "links" }, ids.map((p) => h("li", {}, txLink(p)))) : h("span", { class: "muted" }, empty));
  const named = tx.parent_ids || [];
  const linked = (tx.dag_parents || []).filter((p) => !named.includes(p));
  return fields([
    ["Parents (signed)", h("div", { id: "tx-parents" }, list(named, "none"))],
    ["Linked to tips", h("div", { id: "tx-dag-parents" }, list(linked, "none"))],
    ["Children", h("div", { id: "tx-children" }, children ? list(children.children, "none yet") : h("span", { class: "muted" }, "unknown"))],
  ]);
}

/**
 * The proof, asked again while the transaction is not sealed, and while the level above has
 * not yet ordered its header (so a page left open climbs with it).
 */
async function loadProof(el, id, signal, timers, ready) {
  let shown = 0;
  let fetched = null;
  const results = h("div", { id: "proof-result" });
  const check = async (proof) => {
    await showProof(results, proof);
  };
  const refresh = h("button", { type: "button", id: "proof-refresh" }, "Fetch the proof again");
  const again = async () => {
    try {
      const proof = await get(`v1/tx/${q(id)}/proof`, signal);
      const levels = proof.links ? proof.links.length : 0;
      if (!fetched || levels !== shown) {
        fetched = proof;
        shown = levels;
        fill(el, results, h("div", { class: "row" }, refresh, h("span", { class: "muted", id: "proof-levels" }, `${levels} level${levels === 1 ? "" : "s"} so far`)), debugView(proof, id, check));
        await check(proof);
      }
      ready();
      if (levels < 3) timers.push(setTimeout(again, RETRY_MS * 2));
    } catch (e) {
      if (signal.aborted) return;
      if (e instanceof ApiError && e.status === 404) {
        fill(el, h("p", { id: "proof-pending", class: "muted" }, "Not sealed yet: the proof exists once a header covers the transaction. Asking again…"));
        ready();
        timers.push(setTimeout(again, RETRY_MS));
        return;
      }
      fill(el, h("p", { class: "error" }, "Could not fetch the proof: " + e.message));
      ready();
    }
  };
  refresh.addEventListener("click", () => {
    shown = -1;
    again();
  });
  await again();
}
