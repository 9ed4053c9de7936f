// One header: its fields, its id checked in this browser, and the header before it.

import { find, q } from "./api.js";
import { h, fill, fields, headerLink, iso } from "./dom.js";
import { headerId, fingerprint } from "./proof.js";

const ZERO = "0".repeat(64);

export function headerView(main, id, ready) {
  const stop = new AbortController();
  const body = h("div", { id: "header-record" }, h("p", { class: "muted" }, "Loading…"));
  fill(main, h("h1", {}, "Header ", h("span", { class: "mono" }, id)), body);
  (async () => {
    const hd = await find(`v1/headers/${q(id)}`, stop.signal);
    if (!hd) {
      fill(body, h("p", {}, "No header with this id on this node: it knows its own headers and those of its children it accepted."));
      return;
    }
    const computed = await headerId(hd);
    const ok = computed === hd.header_id;
    const print = await fingerprint(hd.public_key_b64);
    fill(
      body,
      h(
        "p",
        { id: "header-check", class: "summary", "data-state": ok ? "ok" : "fail" },
        ok ? "✓ SHA-256 of the header bytes (SPEC §6), computed here, is its header_id." : `✗ The header bytes hash to ${typeof computed === "string" ? computed : computed.error}, not to its header_id.`,
      ),
      fields([
        ["Chain", `${hd.chain_id} (${hd.level})`],
        ["Height", String(hd.height)],
        ["Previous", hd.prev_header_hash === ZERO ? h("span", { class: "muted" }, "none: the first header") : headerLink(hd.prev_header_hash, hd.prev_header_hash)],
        ["PoH entries", `${hd.poh_start} to ${hd.poh_end - 1} (${hd.poh_hashes.toLocaleString()} hashes)`],
        ["PoH end hash", h("span", { class: "mono" }, hd.poh_end_hash)],
        ["Items", String(hd.item_count)],
        ["Items root", h("span", { class: "mono" }, hd.items_root)],
        ["Sealed", `${hd.timestamp} (${iso(hd.timestamp)})`],
        ["Key fingerprint", h("span", { class: "mono" }, print ?? "?")],
        ["Recorded here at seq", hd.recorded_at_seq === undefined ? h("span", { class: "muted" }, "— (this node’s own header)") : String(hd.recorded_at_seq)],
        ["Signature", "ML-DSA-87, not checked in this browser (poh verify checks it)"],
      ]),
    );
  })()
    .catch((e) => {
      if (!stop.signal.aborted) fill(body, h("p", { class: "error" }, "Could not read the header: " + e.message));
    })
    .finally(ready);
  return () => stop.abort();
}
