// A proof as cards: one for the transaction's digest, one per level up, each with the checks
// this browser made and whether they hold; then what was not checked here and how to check it.

import { h, fill, clock, headerLink } from "./dom.js";
import { verifyProof, fingerprint } from "./proof.js";

/** Checks `proof` and shows the result in `el`. */
export async function showProof(el, proof) {
  // Browsers give WebCrypto only to secure contexts: HTTPS, or this machine (localhost).
  if (!globalThis.crypto || !crypto.subtle) {
    fill(el, h("p", { id: "proof-summary", class: "summary", "data-state": "fail" }, "This browser withholds WebCrypto from pages served over plain HTTP from another machine, so the proof cannot be checked here. Open the explorer over HTTPS (the node's TLS settings), or through a tunnel to localhost (ssh -L 8080:127.0.0.1:8080 NODE), or check the saved proof with poh verify."));
    return { ok: false, cards: [], failing: [] };
  }
  const result = await verifyProof(proof);
  const cards = result.cards.map(card);
  const failing = result.failing.map(title);
  const summary = h(
    "p",
    { id: "proof-summary", class: "summary", "data-state": result.ok ? "ok" : "fail" },
    result.ok
      ? `Every check below holds: this browser computed the digest, ${result.cards.length - 1} header id${result.cards.length === 2 ? "" : "s"} and audit path${result.cards.length === 2 ? "" : "s"} itself.`
      : `Does not check out: ${failing.join("; ")} fail${failing.length === 1 ? "s" : ""}.`,
  );
  fill(el, summary, h("div", { class: "cards" }, cards), await unchecked(proof));
  return result;
}

function title(c) {
  if (c.kind === "digest") return "the transaction's digest";
  const hd = c.link && c.link.header;
  return hd && hd.level ? `level ${c.index + 1} (${hd.level})` : `link ${c.index}`;
}

function card(c) {
  const ok = c.checks.every((x) => x.ok);
  const attrs = { class: "proof-card", "data-card": c.kind === "digest" ? "digest" : "link-" + c.index, "data-state": ok ? "ok" : "fail" };
  const mark = h("span", { class: "mark", "aria-label": ok ? "checked" : "fails" }, ok ? "✓" : "✗");
  const checks = h("ul", { class: "checks" }, c.checks.map((x) => h("li", { "data-ok": String(x.ok) }, x.what)));
  if (c.kind === "digest") {
    return h("article", attrs, h("h3", {}, mark, "The transaction"), checks);
  }
  const hd = (c.link && c.link.header) || {};
  const path = Array.isArray(c.link?.audit_path) ? c.link.audit_path : [];
  return h(
    "article",
    attrs,
    h("h3", {}, mark, `Level ${c.index + 1}: `, h("span", {}, `${hd.level ?? "?"} ${hd.chain_id ?? ""}`), h("span", { class: "muted" }, `header ${hd.height ?? "?"}`)),
    h(
      "p",
      { class: "muted" },
      "Header ",
      typeof hd.header_id === "string" ? headerLink(hd.header_id) : "?",
      `, item ${c.link?.index ?? "?"} of ${hd.item_count ?? "?"}`,
      typeof hd.timestamp === "number" ? [", sealed ", clock(hd.timestamp)] : "",
    ),
    checks,
    h("details", { class: "path" }, h("summary", {}, `Audit path (${path.length} hashes)`), h("ol", { start: 0 }, path.map((p) => h("li", { class: "mono" }, String(p))))),
  );
}

/** What the page did not check, and the command that does. */
async function unchecked(proof) {
  const links = Array.isArray(proof?.links) ? proof.links : [];
  const top = links.length ? links[links.length - 1].header : null;
  const print = top ? await fingerprint(top.public_key_b64) : null;
  return h(
    "section",
    { id: "proof-unchecked", class: "unchecked" },
    h("strong", {}, "Not checked in this browser: "),
    `the ML-DSA-87 signatures of the ${links.length} header${links.length === 1 ? "" : "s"}, and whether the top chain's key is one you trust. Without both, anyone with a key of their own could have made this proof. Save it (under “The proof as JSON” below) and check both with:`,
    h("pre", {}, h("code", {}, "poh verify --proof proof.json --trust TOP_CHAIN_KEY.pub")),
    top
      ? h(
          "p",
          {},
          `The top header is signed by the key of ${top.chain_id} whose SHA-256 fingerprint is `,
          h("code", { id: "proof-fingerprint" }, print ?? "(unreadable)"),
          ". Compare it with what ",
          h("code", {}, "poh fingerprint KEY.pub"),
          " prints for the key file you trust, or with key_fingerprint in the log of that chain’s node when it starts.",
        )
      : null,
  );
}

/** The proof as editable JSON, for checking a changed or saved proof. */
export function debugView(proof, txId, onCheck) {
  const area = h("textarea", { id: "proof-json", spellcheck: "false", "aria-label": "Proof JSON" });
  area.value = JSON.stringify(proof, null, 2);
  const status = h("span", { class: "muted", id: "proof-debug-state", role: "status" });
  const run = () => {
    let parsed;
    try {
      parsed = JSON.parse(area.value);
    } catch (e) {
      status.textContent = "Not JSON: " + e.message;
      return;
    }
    status.textContent = "Checked the JSON above.";
    onCheck(parsed);
  };
  const file = h("input", { type: "file", id: "proof-file", accept: ".json,application/json" });
  file.addEventListener("change", async () => {
    const chosen = file.files && file.files[0];
    if (!chosen) return;
    area.value = await chosen.text();
    run();
  });
  const save = h("a", { href: "#", id: "proof-save" }, "Save as proof.json");
  save.addEventListener("click", (event) => {
    event.preventDefault();
    const blob = new Blob([area.value], { type: "application/json" });
    const a = h("a", { href: URL.createObjectURL(blob), download: `${txId || "proof"}.proof.json` });
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  });
  return h(
    "details",
    { id: "proof-debug" },
    h("summary", {}, "The proof as JSON: save it, or change it and check again"),
    h("p", { class: "muted" }, "Change any value (one hex digit is enough) and check: the card that no longer holds turns red. Or load a proof saved before."),
    area,
    h("div", { class: "row" }, h("button", { type: "button", id: "proof-verify", onclick: run }, "Check this JSON"), h("label", {}, "Load a file: ", file), save, status),
  );
}

