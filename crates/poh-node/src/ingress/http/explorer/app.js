// The explorer's shell: one view at a time, chosen by the URL fragment, so every view has an
// address to share and the browser's back button works.
//   #/live             transactions and headers as they come
//   #/chain            this node's headers, the federation, the last hour
//   #/tx/ID            one transaction and its proof
//   #/holder/ID        one holder's transactions
//   #/header/ID        one header

import { get } from "./api.js";
import { liveView } from "./live.js";
import { chainView } from "./chain.js";
import { txView } from "./tx.js";
import { holderView } from "./holder.js";
import { headerView } from "./header.js";

const main = document.getElementById("view");
const errorBox = document.getElementById("error");
let leave = () => {};

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  const name = parts[0] || "live";
  let arg = "";
  try {
    arg = decodeURIComponent(parts.slice(1).join("/"));
  } catch {
    arg = parts.slice(1).join("/");
  }
  return { name, arg };
}

const views = {
  live: (_, ready) => liveView(main, ready),
  chain: (_, ready) => chainView(main, ready),
  tx: (arg, ready) => txView(main, arg, ready),
  holder: (arg, ready) => holderView(main, arg, ready),
  header: (arg, ready) => headerView(main, arg, ready),
};

function show() {
  leave();
  errorBox.hidden = true;
  const { name: asked, arg } = route();
  const name = Object.hasOwn(views, asked) ? asked : "live";
  main.dataset.view = name;
  main.dataset.ready = "false";
  const ready = () => {
    main.dataset.ready = "true";
  };
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.nav === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  leave = views[name](arg, ready) ?? (() => {});
  document.title = `${name === "tx" || name === "holder" || name === "header" ? `${name} ${arg} · ` : ""}poh explorer`;
}

document.getElementById("search").addEventListener("submit", (event) => {
  event.preventDefault();
  const kind = document.getElementById("search-kind").value;
  const text = document.getElementById("search-q").value.trim();
  if (!text && kind !== "holder") return;
  location.hash = `#/${kind}/${encodeURIComponent(text)}`;
  main.focus();
});

// The skip link moves the focus, not the route (the fragment names the view).
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});

// A view change moves focus to the content, so a keyboard user lands where the change is.
window.addEventListener("hashchange", () => {
  show();
  main.focus({ preventScroll: true });
});

window.addEventListener("unhandledrejection", (event) => {
  errorBox.textContent = "Something went wrong: " + (event.reason?.message ?? event.reason);
  errorBox.hidden = false;
});

get("v1/federation")
  .then((fed) => {
    const name = document.getElementById("node-chain");
    name.textContent = `${fed.chain_id} · ${fed.level}`;
  })
  .catch((e) => {
    errorBox.textContent = "This node's API does not answer: " + e.message;
    errorBox.hidden = false;
  });

show();
