// Building elements and formatting values. Text always goes in as text nodes, never as HTML,
// so nothing a transaction carries can become markup.

/** An element: `h("td", {class: "num"}, "12")`; attributes starting with `on` are listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** A link to one of the explorer's views. */
export function link(route, text, attrs = {}) {
  return h("a", { href: "#/" + route.map(encodeURIComponent).join("/"), ...attrs }, text);
}

export const txLink = (id, attrs) => link(["tx", id], id, { class: "mono", title: id, ...attrs });
export const holderLink = (holder) =>
  holder === "" ? h("span", { class: "muted" }, "(none)") : link(["holder", holder], holder, { title: holder });
export const headerLink = (id, text = short(id)) => link(["header", id], text, { class: "mono", title: id });

/** The first and last characters of a long hex value. */
export function short(hex) {
  return hex.length > 20 ? hex.slice(0, 10) + "…" + hex.slice(-6) : hex;
}

/** Unix seconds as local time of day, and the full date in the title. */
export function clock(seconds) {
  const d = new Date(seconds * 1000);
  return h("time", { datetime: d.toISOString(), title: d.toISOString() }, d.toLocaleTimeString([], { hour12: false }));
}

export function iso(seconds) {
  return new Date(seconds * 1000).toISOString();
}

export function badge(status) {
  return h("span", { class: "badge " + status }, status);
}

/** Replaces everything in `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** `<dl>` of label → value pairs; values may be elements. */
export function fields(pairs, attrs = {}) {
  return h("dl", { class: "fields", ...attrs }, pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

export function panel(title, attrs, ...body) {
  return h("section", { class: "panel", ...attrs }, h("header", {}, h("h2", {}, title)), h("div", { class: "body" }, ...body));
}

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
