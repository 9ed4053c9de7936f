// Transactions as the node stores them, and headers as it seals them, from `/v1/events`.
// The lists keep the last few hundred rows, newest first, in boxes of fixed height; new rows
// are written into the rows already drawn (one more is added at the bottom while the list
// grows), so no row ever moves and the page does not shift while events stream in. Pausing
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

  const txs = new Rows(txBody, KEEP_TXS, (item) => (item.tx ? txRow(item.tx, item.status) : expiredRow(item.run)));
  const headers = new Rows(headerBody, KEEP_HEADERS, headerRow);

  // Events are drawn once per frame, however many arrive in it.
  const flush = () => {
    frame = 0;
    const newTxs = [];
    const newHeaders = [];
    for (const event of queue.splice(0)) {
      if (event.type === "header") newHeaders.push(event.data);
      else newTxs.push(event.type === "tx" ? { tx: event.data, status: event.data.status } : { run: event.data });
    }
    txs.add(newTxs);
    headers.add(newHeaders);
    counter.textContent = `${seen.toLocaleString()} since opened`;
  };
  const push = (event) => {
    queue.push(event);
    // A hidden tab draws no frames: a full list's worth is drawn at once instead of waiting.
    if (queue.length >= KEEP_TXS) flush();
    else if (!frame) frame = requestAnimationFrame(flush);
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
      if (header.item_count > 0) markSealed(txs);
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
      if (lastSeq !== null) markSealed(txs);
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

/**
 * The last `keep` items, newest first, drawn into rows that stay where they are: drawing
 * writes each item into the row at its index, and only adds rows at the bottom.
 */
class Rows {
  constructor(body, keep, draw) {
    this.body = body;
    this.keep = keep;
    this.draw = draw;
    this.items = [];
    // Whether a search for newly sealed rows runs, and whether another header came during it.
    this.sealing = false;
    this.sealAgain = false;
  }
  add(items) {
    if (!items.length) return;
    this.items = items.reverse().concat(this.items).slice(0, this.keep);
    this.redraw();
  }
  redraw() {
    this.items.forEach((item, i) => {
      const row = this.body.rows[i];
      const want = this.draw(item);
      if (!row) {
        this.body.append(want);
        return;
      }
      row.className = want.className;
      for (const key of Object.keys(row.dataset)) delete row.dataset[key];
      Object.assign(row.dataset, want.dataset);
      // The cells are kept, their contents replaced: a cell never moves.
      Array.from(want.cells).forEach((cell, k) => {
        const old = row.cells[k];
        if (!old) row.append(cell);
        else {
          old.className = cell.className;
          old.colSpan = cell.colSpan;
          old.replaceChildren(...cell.childNodes);
        }
      });
      while (row.cells.length > want.cells.length) row.lastElementChild.remove();
    });
  }
}

function txRow(tx, status) {
  return h(
    "tr",
    { class: "tx-row", "data-seq": tx.poh_seq, "data-tx-id": tx.tx_id, "data-status": status },
    h("td", { class: "num" }, String(tx.poh_seq)),
    h("td", {}, txLink(tx.tx_id)),
    h("td", { class: "hide-narrow" }, holderLink(tx.holder_id)),
    h("td", { class: "status" }, badge(status)),
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

/**
 * A header covers the oldest items not yet sealed, so among the rows still `ORDERED` the
 * sealed ones are the oldest: a binary search over them asks the node about a few rows, not
 * every one. (`PENDING` rows wait for a parent and are left to say so.)
 */
async function markSealed(rows) {
  // One search at a time: a header that comes during one asks for one more pass after it.
  if (rows.sealing) {
    rows.sealAgain = true;
    return;
  }
  rows.sealing = true;
  try {
    do {
      rows.sealAgain = false;
      await sealedSoFar(rows);
    } while (rows.sealAgain);
  } finally {
    rows.sealing = false;
  }
}

async function sealedSoFar(rows) {
  const open = rows.items.filter((item) => item.tx && item.status === "ORDERED").reverse();
  let lo = 0;
  let hi = open.length; // open[0..lo) are sealed, open[hi..) are not
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    let tx = null;
    try {
      tx = await find(`v1/tx/${q(open[mid].tx.tx_id)}`);
    } catch {
      return;
    }
    if (tx && tx.status === "SEALED") lo = mid + 1;
    else hi = mid;
  }
  if (lo === 0) return;
  for (const item of open.slice(0, lo)) item.status = "SEALED";
  rows.redraw();
}
