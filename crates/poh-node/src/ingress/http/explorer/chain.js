// This node's chain and the federation around it: its last headers, its parent and children
// (their last heights, and each one's lag: how old its last header accepted here is, from the
// node's `poh_child_last_header_timestamp_seconds`), and a chart of the last hour: items per
// header, and seconds between headers.

import { get, text } from "./api.js";
import { h, fill, panel, headerLink, clock, short } from "./dom.js";
import { fingerprint } from "./proof.js";

const REFRESH_MS = 5000;
const TABLE = 20;
const HOUR = 3600;
/** Most headers read for the chart (an hour of headers sealed every 0.4 s). */
const CHART_MAX = 10000;
const PAGE = 1000;

const NS = "http://www.w3.org/2000/svg";
const svg = (tag, attrs = {}) => {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
};

export function chainView(main, ready) {
  const federation = h("div", { id: "federation" }, h("p", { class: "muted" }, "Loading…"));
  const table = h("tbody", { id: "chain-headers" });
  const chart = h("div", { id: "chart" });
  const note = h("p", { id: "chart-note", class: "muted" });
  fill(
    main,
    h("h1", {}, "Chain"),
    h(
      "div",
      { class: "grid" },
      panel(
        "Last headers",
        {},
        h("div", { class: "stream short" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", { class: "w-height num" }, "height"), h("th", {}, "header"), h("th", { class: "w-small num" }, "items"), h("th", { class: "w-gap num hide-narrow", title: "seconds since the header before" }, "interval"), h("th", { class: "w-time" }, "sealed"))), table)),
      ),
      panel("Federation", {}, federation),
    ),
    panel("The last hour", { id: "chart-panel" }, h("div", { class: "legend" }, h("span", { class: "k1" }, "items per header"), h("span", { class: "k2" }, "seconds between headers")), chart, note),
  );

  const cache = new Map(); // height → header, for the chart
  const moved = new Map(); // child chain → [height, when the page saw it change]
  let timer = null;
  let stopped = false;

  const tick = async () => {
    try {
      const fed = await get("v1/federation");
      const sealed = fed.children.length ? await childTimes() : null;
      await showFederation(federation, fed, moved, sealed);
      const height = fed.height;
      if (height === null) {
        fill(table, h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No header sealed yet.")));
        fill(chart);
      } else {
        await loadHeaders(cache, height);
        showTable(table, cache, height);
        drawChart(chart, note, cache, height);
      }
    } catch (e) {
      fill(federation, h("p", { class: "error" }, "Could not read the chain: " + e.message));
    }
    ready();
    if (!stopped) timer = setTimeout(tick, REFRESH_MS);
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/**
 * When each child sealed its last header accepted here, from the node's metrics; null when
 * the page may not read them (`protect_health` with other credentials).
 */
async function childTimes() {
  try {
    const metrics = await text("metrics");
    const times = new Map();
    const line = /^poh_child_last_header_timestamp_seconds\{child="((?:[^"\\]|\\.)*)"\} (\S+)$/gm;
    for (const [, child, value] of metrics.matchAll(line)) times.set(child.replace(/\\(.)/g, "$1"), Number(value));
    return times;
  } catch {
    return null;
  }
}

async function showFederation(el, fed, moved, sealed) {
  const now = Date.now() / 1000;
  const rows = [];
  for (const child of fed.children) {
    const seen = moved.get(child.chain_id);
    if (!seen || seen[0] !== child.height) moved.set(child.chain_id, [child.height, seen ? now : null]);
    // Without the metrics, how long since the page saw the height change.
    const since = sealed ? sealed.get(child.chain_id) ?? null : moved.get(child.chain_id)[1];
    const print = await fingerprint(child.public_key_b64);
    rows.push(
      h(
        "tr",
        { "data-child": child.chain_id },
        h("td", { title: child.chain_id }, child.chain_id),
        h("td", { class: "num" }, child.height === null ? "none" : String(child.height)),
        h("td", { class: "num lag" }, since === null ? h("span", { class: "muted" }, "—") : `${Math.max(0, now - since).toFixed(1)} s`),
        h("td", { class: "mono hide-narrow", title: print ?? "" }, print ? short(print) : "?"),
      ),
    );
  }
  fill(
    el,
    h(
      "dl",
      { class: "fields" },
      h("dt", {}, "This chain"),
      h("dd", {}, `${fed.chain_id} (${fed.level})`),
      h("dt", {}, "Height"),
      h("dd", { id: "federation-height" }, fed.height === null ? "no header yet" : String(fed.height)),
      h("dt", {}, "Parent"),
      h("dd", {}, fed.parent ?? h("span", { class: "muted" }, "none: this is the top of its federation")),
    ),
    h("h2", {}, `Children (${fed.children.length})`),
    fed.children.length
      ? h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "chain"), h("th", { class: "w-height num" }, "height"), h("th", { class: "w-gap num", title: "how old its last header accepted here is" }, "lag"), h("th", { class: "hide-narrow" }, "key fingerprint"))), h("tbody", {}, rows))
      : h("p", { class: "muted" }, "None: this node accepts no child's headers."),
    fed.children.length
      ? h("p", { class: "muted" }, sealed ? "A child's height is that of its last header accepted here; its lag, how long ago it sealed that header." : "A child's height is that of its last header accepted here; its lag, how long since this page saw that height change (the node's metrics are not readable with these credentials).")
      : null,
  );
}

/** Reads the headers of the last hour not read yet, newest first, a page at a time. */
async function loadHeaders(cache, height) {
  const cutoff = Date.now() / 1000 - HOUR;
  let known = -1;
  for (const k of cache.keys()) known = Math.max(known, k);
  const floor = known + 1;
  let top = height;
  while (top >= floor && height - top < CHART_MAX) {
    const from = Math.max(floor, top - PAGE + 1);
    const page = await get(`v1/headers?from=${from}&limit=${top - from + 1}`);
    for (const hd of page.headers) cache.set(hd.height, hd);
    const oldest = page.headers[0];
    if (!oldest || oldest.timestamp < cutoff) break;
    top = from - 1;
  }
  for (const [k, hd] of cache) if (hd.timestamp < cutoff - 60 && k <= height - TABLE) cache.delete(k);
}

function showTable(body, cache, height) {
  const rows = [];
  for (let k = height; k >= 0 && k > height - TABLE; k--) {
    const hd = cache.get(k);
    if (!hd) break;
    const prev = cache.get(k - 1);
    rows.push(
      h(
        "tr",
        { class: "header-row", "data-height": hd.height },
        h("td", { class: "num" }, String(hd.height)),
        h("td", {}, headerLink(hd.header_id)),
        h("td", { class: "num" }, String(hd.item_count)),
        h("td", { class: "num hide-narrow" }, prev ? (hd.timestamp - prev.timestamp).toFixed(2) : "—"),
        h("td", {}, clock(hd.timestamp)),
      ),
    );
  }
  fill(body, rows);
}

function drawChart(el, note, cache, height) {
  const now = Date.now() / 1000;
  const points = [];
  for (let k = height; cache.has(k); k--) {
    const hd = cache.get(k);
    if (hd.timestamp < now - HOUR) break;
    const prev = cache.get(k - 1);
    points.push({ t: hd.timestamp, items: hd.item_count, gap: prev ? hd.timestamp - prev.timestamp : null });
  }
  points.reverse();
  // Drawn at the size it is shown, so its text is never stretched.
  const W = Math.max(280, Math.round(el.clientWidth || 1000));
  const H = 220;
  const pad = { l: 44, r: 44, t: 10, b: 22 };
  const x = (t) => pad.l + ((t - (now - HOUR)) / HOUR) * (W - pad.l - pad.r);
  const maxItems = Math.max(1, ...points.map((p) => p.items));
  const maxGap = Math.max(1, ...points.map((p) => p.gap ?? 0));
  const yItems = (v) => H - pad.b - (v / maxItems) * (H - pad.t - pad.b);
  const yGap = (v) => H - pad.b - (v / maxGap) * (H - pad.t - pad.b);
  const root = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", "aria-label": `Items per header and seconds between headers, last hour: ${points.length} headers` });
  root.append(svg("line", { class: "axis", x1: pad.l, x2: W - pad.r, y1: H - pad.b, y2: H - pad.b }));
  // One path each, however many headers: the chart costs the same to draw at any rate.
  const bars = points.map((p) => `M${x(p.t).toFixed(1)} ${H - pad.b}V${yItems(p.items).toFixed(1)}h1.5V${H - pad.b}z`).join("");
  root.append(svg("path", { class: "bars", d: bars }));
  const gaps = points.filter((p) => p.gap !== null).map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)} ${yGap(p.gap).toFixed(1)}`).join("");
  if (gaps) root.append(svg("path", { class: "gaps", d: gaps }));
  const label = (text, attrs) => {
    const t = svg("text", attrs);
    t.textContent = text;
    root.append(t);
  };
  label(`${maxItems}`, { x: 4, y: pad.t + 10 });
  label("0", { x: 4, y: H - pad.b });
  label(`${maxGap.toFixed(1)} s`, { x: W - pad.r + 4, y: pad.t + 10 });
  label("−60 min", { x: pad.l, y: H - 6 });
  label("now", { x: W - pad.r - 24, y: H - 6 });
  fill(el, root);
  note.textContent = points.length ? `${points.length} headers in the last hour; at most ${maxItems} items in one, at most ${maxGap.toFixed(1)} s between two.` : "No header in the last hour.";
}
