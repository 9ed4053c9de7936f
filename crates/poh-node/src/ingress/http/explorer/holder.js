// One holder's transactions, a page at a time (`GET /v1/tx?holder_id=`), oldest first.

import { get, q } from "./api.js";
import { h, fill, txLink, badge, iso } from "./dom.js";

const PAGE = 50;

export function holderView(main, holder, ready) {
  const stop = new AbortController();
  const body = h("tbody", { id: "holder-txs" });
  const where = h("span", { class: "muted", id: "holder-page" });
  const first = h("button", { type: "button", id: "holder-first" }, "First page");
  const more = h("button", { type: "button", id: "holder-more" }, "Next page");
  fill(
    main,
    h("h1", {}, "Holder ", h("span", { class: "mono" }, holder === "" ? "(none)" : holder)),
    h(
      "section",
      { class: "panel" },
      h("div", { class: "stream" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", { class: "w-seq num" }, "seq"), h("th", {}, "tx id"), h("th", { class: "w-status" }, "status"), h("th", { class: "hide-narrow" }, "received"))), body)),
    ),
    h("div", { class: "pager" }, first, more, where),
  );
  // The seqs each page started at, so "first page" and the count shown need no second query.
  let from = 0;
  let next = null;
  let pages = 0;
  const load = async (at) => {
    more.disabled = first.disabled = true;
    try {
      const page = await get(`v1/tx?holder_id=${q(holder)}&from_seq=${at}&limit=${PAGE}`, stop.signal);
      from = at;
      next = page.next_seq;
      pages = at === 0 ? 1 : pages + 1;
      fill(
        body,
        page.transactions.length
          ? page.transactions.map((tx) =>
              h("tr", { class: "tx-row", "data-tx-id": tx.tx_id, "data-seq": tx.poh_seq }, h("td", { class: "num" }, String(tx.poh_seq)), h("td", {}, txLink(tx.tx_id)), h("td", {}, badge(tx.status)), h("td", { class: "hide-narrow" }, iso(tx.received_at))),
            )
          : h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No transaction of this holder on this node.")),
      );
      where.textContent = `page ${pages}, from seq ${from}${next === null ? ", the last" : ""}`;
    } catch (e) {
      if (stop.signal.aborted) return;
      fill(body, h("tr", {}, h("td", { colspan: 4, class: "error" }, "Could not read the holder's transactions: " + e.message)));
    }
    more.disabled = next === null;
    first.disabled = from === 0;
    ready();
  };
  more.addEventListener("click", () => next !== null && load(next));
  first.addEventListener("click", () => load(0));
  load(0);
  return () => stop.abort();
}
