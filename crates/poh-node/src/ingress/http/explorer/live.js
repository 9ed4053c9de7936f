// Transactions as the node stores them, and headers as it seals them, from `/v1/events`.
// The lists keep the last few hundred rows, newest first, in boxes of fixed height. Pausing
// closes the stream; resuming opens it again from the seq after the last one seen, so nothing
// is lost and nothing comes twice. A dropped connection is resumed by the browser itself with
// `Last-Event-ID`.

import { get, find, url, q } from "./api.js";
import { h, fill, txLink, holderLink, headerLink, badge, clock, panel } from "./dom.js";

/** Rows kept in the transaction list, and in the header list. */
const KEEP_TXS = 250;
const KEEP_HEADERS = 60;
/** Transactions shown from the store when the page opens, before live ones. */
const BACKLOG = 50;

export function liveView(main, ready) {
  const txBody = h("tbody", { id: "live-txs" });
  const headerBody = h("tbody", { id: "live-headers" });
  const state = h("span", { id: "live-state", class: "state", role: "status", "data-state": "connecting" }, "connecting…");
  const pause = h("button", { type: "button", id: "live-pause", "aria-pressed": "false" }, "Pause");
  const counter = h("span", { id: "live-count", class: "muted" }, "");
  const txPanel = h(
    "section",
    { class: "panel" },
    h("header", {}, h("h2", {}, "Transactions"), h("div", { class: "toolbar" }, counter, state, pause)),
    h(
      "div",
      { class: "stream", tabindex: "0", "aria-label": "Transactions, newest first" },
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, h("th", { class: "w-seq num" }, "seq"), h("th", {}, "tx id"), h("th", { class: "hide-narrow" }, "holder"), h("th", { class: "w-status" }, "status"), h("th", { class: "w-time hide-narrow" }, "received"))),
        txBody,
      ),
    ),
  );
  const headerPanel = h(
    "section",
    { class: "panel" },
    h("header", {}, h("h2", {}, "Headers sealed")),
    h(
      "div",
      { class: "stream", tabindex: "0", "aria-label": "Headers sealed, newest first" },
      h("table", {}, h("thead", {}, h("tr", {}, h("th", { class: "w-height num" }, "height"), h("th", {}, "header"), h("th", { class: "w-small num" }, "items"), h("th", { class: "w-time" }, "sealed"))), headerBody),
    ),
  );
  fill(main, h("h1", {}, "Live"), h("div", { class: "grid" }, txPanel, headerPanel));

  let source = null;
  let lastSeq = null; // the last seq seen: where a resume starts after
  let startSeq = null; // where the first stream started, before any event
  let paused = false;
  let seen = 0;
  let retry = null;
  const queue = [];
  let frame = 0;

  const setState = (name, label) => {
    state.dataset.state = name;
    state.textContent = label;
  };

  // Events are drawn once per frame, however many arrive in it.
  const flush = () => {
    frame = 0;
    const txRows = [];
    const headerRows = [];
    for (const event of queue.splice(0)) {
      if (event.type === "header") headerRows.push(headerRow(event.data));
      else txRows.push(event.type === "tx" ? txRow(event.data) : expiredRow(event.data));
    }
    prepend(txBody, txRows, KEEP_TXS);
    prepend(headerBody, headerRows, KEEP_HEADERS);
    counter.textContent = `${seen.toLocaleString()} received`;
  };
  const push = (event) => {
    queue.push(event);
    if (!frame) frame = requestAnimationFrame(flush);
  };

  const open = () => {
    const from = lastSeq === null ? startSeq : lastSeq + 1;
    source = new EventSource(url(`v1/events?from_seq=${q(from)}`));
    setState("connecting", "connecting…");
    source.onopen = () => setState("live", "live");
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        // Refused outright (auth, too many subscriptions): try again in a while.
        setState("reconnecting", "reconnecting…");
        source.close();
        retry = setTimeout(() => !paused && open(), 5000);
      } else {
        setState("reconnecting", "reconnecting…");
      }
    };
    source.addEventListener("tx", (e) => {
      const tx = JSON.parse(e.data);
      lastSeq = tx.poh_seq;
      seen += 1;
      push({ type: "tx", data: tx });
    });
    source.addEventListener("expired", (e) => {
      const run = JSON.parse(e.data);
      lastSeq = run.to_seq;
      push({ type: "expired", data: run });
    });
    source.addEventListener("header", (e) => {
      const header = JSON.parse(e.data);
      push({ type: "header", data: header });
      markSealed(txBody, header);
    });
  };
  const close = () => {
    if (source) source.close();
    source = null;
    clearTimeout(retry);
  };

  pause.addEventListener("click", () => {
    paused = !paused;
    pause.setAttribute("aria-pressed", String(paused));
    pause.textContent = paused ? "Resume" : "Pause";
    if (paused) {
      close();
      setState("paused", lastSeq === null ? "paused" : `paused after ${lastSeq}`);
    } else {
      open();
      if (lastSeq !== null) sealedSince(txBody);
    }
  });

  (async () => {
    try {
      const poh = await get("v1/poh");
      startSeq = Math.max(0, poh.seq - BACKLOG);
    } catch {
      startSeq = 0;
    }
    open();
    ready();
  })();

  return () => {
    close();
    if (frame) cancelAnimationFrame(frame);
  };
}

function prepend(body, rows, keep) {
  if (!rows.length) return;
  body.prepend(...rows.reverse());
  while (body.rows.length > keep) body.lastElementChild.remove();
}

function txRow(tx) {
  return h(
    "tr",
    { class: "tx-row", "data-seq": tx.poh_seq, "data-tx-id": tx.tx_id, "data-status": tx.status },
    h("td", { class: "num" }, String(tx.poh_seq)),
    h("td", {}, txLink(tx.tx_id)),
    h("td", { class: "hide-narrow" }, holderLink(tx.holder_id)),
    h("td", { class: "status" }, badge(tx.status)),
    h("td", { class: "hide-narrow" }, clock(tx.received_at)),
  );
}

function expiredRow(run) {
  return h("tr", { class: "expired" }, h("td", { class: "num" }, String(run.to_seq)), h("td", { colspan: 4 }, `seqs ${run.from_seq}–${run.to_seq} expired (TTL); sealed by ${run.header_ids.length} header${run.header_ids.length === 1 ? "" : "s"}`));
}

function headerRow(hd) {
  return h(
    "tr",
    { class: "header-row", "data-height": hd.height, "data-chain": hd.chain_id },
    h("td", { class: "num" }, String(hd.height)),
    h("td", {}, headerLink(hd.header_id)),
    h("td", { class: "num" }, String(hd.item_count)),
    h("td", {}, clock(hd.timestamp)),
  );
}

const setStatus = (row, status) => {
  row.dataset.status = status;
  row.querySelector("td.status").replaceChildren(badge(status));
};

/**
 * A header covers the oldest items not yet sealed, so among the rows still `ORDERED` the
 * sealed ones are the oldest: a binary search over them asks the node about a few rows, not
 * every one. (`PENDING` rows wait for a parent and are left to say so.)
 */
async function markSealed(body, header) {
  if (header.item_count === 0) return;
  await sealedSince(body);
}

async function sealedSince(body) {
  const rows = Array.from(body.querySelectorAll('tr.tx-row[data-status="ORDERED"]')).reverse();
  let lo = 0;
  let hi = rows.length; // rows[0..lo) are sealed, rows[hi..) are not
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    let tx = null;
    try {
      tx = await find(`v1/tx/${q(rows[mid].dataset.txId)}`);
    } catch {
      return;
    }
    if (tx && tx.status === "SEALED") lo = mid + 1;
    else hi = mid;
  }
  for (const row of rows.slice(0, lo)) if (row.isConnected) setStatus(row, "SEALED");
}
