//! The explorer (`GET /explorer`) in a real browser against a real federation of two levels: a
//! municipality (`tokyo`) and the continental node (`asia`) that orders its headers.
//!
//! It checks what a person would: transactions submitted while the page is open appear in the
//! live list, once each, also across a pause; the list stays bounded and nothing on the page
//! moves while rows stream in; the chain view shows the federation; a transaction's page shows
//! its proof with both levels checked by the browser, and a changed proof shows the card that
//! fails; a holder's page lists its transactions; the page works at 1280×800 and at phone width
//! and from the keyboard; and nothing is logged to the console as an error. Screenshots of
//! each view are saved under `target/explorer-screenshots/`.

use std::{path::Path, time::Duration};

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use fantoccini::{Locator, key::Key};
use serde_json::{Value, json};

use crate::{
    browser::Browser,
    common::{Served, keygen, node_flags, poh, serve_flags, stop, text},
};

/// A federation of two levels, in `dir`.
struct Federation {
    asia: Served,
    tokyo: Served,
    /// SHA-256 of asia's public key: the fingerprint the proof's page must show.
    asia_fingerprint: String,
}

fn federation(dir: &Path) -> Federation {
    let [asia_key, tokyo_key] = ["asia", "tokyo"].map(|n| keygen(dir, n));
    let child = format!("municipality/tokyo={tokyo_key}.pub");
    let mut flags = node_flags("continental/asia", "continental", &asia_key);
    flags.extend(["--child", &child]);
    let asia = serve_flags(&dir.join("asia"), &flags);
    let mut flags = node_flags("municipality/tokyo", "municipality", &tokyo_key);
    flags.extend(["--parent", &asia.grpc]);
    let tokyo = serve_flags(&dir.join("tokyo"), &flags);
    // The operator's way to the fingerprint the page shows for a key file.
    let printed = poh(&["fingerprint", &format!("{asia_key}.pub")]);
    assert!(printed.status.success(), "{}", text(&printed.stderr));
    let printed = text(&printed.stdout);
    let asia_fingerprint = printed
        .split_whitespace()
        .next()
        .expect("a fingerprint")
        .to_string();
    let public = std::fs::read_to_string(format!("{asia_key}.pub")).expect("asia's public key");
    let public = hex::decode(public.trim()).expect("a public key file is hex");
    assert_eq!(asia_fingerprint, poh_core::sha256(&public).to_hex());
    Federation {
        asia,
        tokyo,
        asia_fingerprint,
    }
}

/// Stores `txs` on the node at `base` in one batch; every one must be stored.
async fn submit(base: &str, txs: &[Value]) {
    let answers: Vec<Value> = reqwest::Client::new()
        .post(format!("{base}/v1/tx/batch"))
        .json(&txs)
        .send()
        .await
        .expect("POST /v1/tx/batch")
        .json()
        .await
        .expect("a batch answer");
    for (tx, answer) in txs.iter().zip(&answers) {
        assert_eq!(answer["status"], "stored", "{tx}: {answer}");
    }
}

/// A transaction whose timestamp has every digit an f64 can carry, so the page's signing bytes
/// must be exact.
fn tx(id: &str, holder: &str, parents: &[&str]) -> Value {
    json!({
        "tx_id": id,
        "holder_id": holder,
        "timestamp": 1_765_000_000.0 + id.len() as f64 / 3.0 + 0.1,
        "payload_b64": B64.encode(format!("payment {id} ✓")),
        "parent_ids": parents,
    })
}

/// The tx ids in the live list, top (newest) first, with their seqs.
async fn live_rows(browser: &Browser) -> Vec<(String, u64)> {
    let rows = browser
        .eval(
            "return Array.from(document.querySelectorAll('#live-txs tr.tx-row'), \
             r => [r.dataset.txId, Number(r.dataset.seq)]);",
        )
        .await;
    serde_json::from_value(rows).expect("rows as [id, seq]")
}

/// Waits until the live list holds `count` rows whose ids start with `prefix`; all its rows.
async fn rows_named(browser: &Browser, prefix: &str, count: usize) -> Vec<(String, u64)> {
    let what = format!("{count} rows of {prefix}… in the live list");
    browser
        .wait_until(&what, Duration::from_secs(30), || async {
            let rows = live_rows(browser).await;
            let named = rows.iter().filter(|(id, _)| id.starts_with(prefix)).count();
            (named == count).then_some(rows)
        })
        .await
}

async fn wait_ready(browser: &Browser, view: &str) {
    let css = format!("main[data-view='{view}'][data-ready='true']");
    browser.wait_for(&format!("the {view} view"), &css).await;
}

async fn click(browser: &Browser, css: &str) {
    browser
        .client()
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

/// What on the page reaches past the window's right edge (a phone would scroll sideways):
/// empty when nothing does.
async fn overflows(browser: &Browser) -> Vec<String> {
    let wide = browser
        .eval(
            "if (document.documentElement.scrollWidth <= window.innerWidth) return []; \
             return Array.from(document.querySelectorAll('body *')) \
               .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1) \
               .map(e => e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className + ' ' \
                 + Math.round(e.getBoundingClientRect().right));",
        )
        .await;
    serde_json::from_value(wide).expect("a list")
}

/// Text whose contrast with what is behind it is below 4.5:1 (WCAG AA), as `tag: ratio`: the
/// colours the browser computed, each element's background the first opaque one up its
/// ancestors. Disabled controls are exempt, as in WCAG.
async fn low_contrast(browser: &Browser) -> Vec<String> {
    let low = browser
        .eval(
            "const rgb = c => (c.match(/[\\d.]+/g) || []).map(Number); \
             const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255; \
               return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }) \
               .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0); \
             const back = e => { for (; e; e = e.parentElement) { \
               const c = rgb(getComputedStyle(e).backgroundColor); \
               if (c.length === 3 || c[3] === 1) return c; } return [255, 255, 255]; }; \
             return Array.from(document.querySelectorAll('body *')).filter(e => \
               Array.from(e.childNodes).some(n => n.nodeType === 3 && n.textContent.trim()) \
               && e.getClientRects().length && !e.closest('[disabled]')) \
             .map(e => { const a = lum(rgb(getComputedStyle(e).color)), b = lum(back(e)); \
               return [e, (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)]; }) \
             .filter(([, r]) => r < 4.5).map(([e, r]) => e.tagName + ' ' \
               + e.textContent.trim().slice(0, 30) + ': ' + r.toFixed(2));",
        )
        .await;
    serde_json::from_value(low).expect("a list")
}

/// Saves a screenshot of the view as `name`, after checking its text is readable.
async fn look(browser: &Browser, name: &str) {
    let low = low_contrast(browser).await;
    assert!(low.is_empty(), "{name}: text below 4.5:1 contrast: {low:?}");
    browser.screenshot(name).await;
}

#[tokio::test]
async fn the_explorer_shows_a_two_level_federation_live_and_checks_proofs_in_a_real_browser() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let fed = federation(dir.path());
    let tokyo = fed.tokyo.base.clone();
    let browser = Browser::start().await;
    browser.set_size(1280, 800).await;

    live(&browser, &tokyo).await;
    chain(&browser, &fed).await;
    proof(&browser, &fed).await;
    holder(&browser, &tokyo).await;
    phone_and_keyboard(&browser, &tokyo).await;

    browser.assert_no_console_errors().await;
    browser.close().await;
    stop(fed.tokyo);
    stop(fed.asia);
}

/// Transactions submitted while the page is open appear once each, newest first, also across
/// a pause; the list keeps its last rows only; rows turn SEALED; nothing moves on the page.
async fn live(browser: &Browser, tokyo: &str) {
    browser.goto(&format!("{tokyo}/explorer#/live")).await;
    wait_ready(browser, "live").await;
    browser
        .wait_for("the stream open", "#live-state[data-state='live']")
        .await;
    // Layout shifts (the browser's own measure) from here on, while rows stream in.
    browser
        .eval(
            "window.shifts = 0; new PerformanceObserver(list => { for (const e of \
             list.getEntries()) if (!e.hadRecentInput) window.shifts += e.value; }).observe({type: 'layout-shift'}); \
             return null;",
        )
        .await;
    let first: Vec<Value> = (0..12)
        .map(|i| {
            tx(
                &format!("live-{i}"),
                if i % 2 == 0 { "alice" } else { "東京 café" },
                &[],
            )
        })
        .collect();
    submit(tokyo, &first).await;
    let rows = rows_named(browser, "live-", 12).await;
    assert_eq!(rows[0].0, "live-11", "newest first: {rows:?}");

    // Paused, the page holds no stream; resumed, it starts after the last seq it saw.
    click(browser, "#live-pause").await;
    browser
        .wait_for("paused", "#live-state[data-state='paused']")
        .await;
    let during: Vec<Value> = (0..8)
        .map(|i| tx(&format!("paused-{i}"), "alice", &[]))
        .collect();
    submit(tokyo, &during).await;
    assert!(
        !live_rows(browser)
            .await
            .iter()
            .any(|(id, _)| id.starts_with("paused-")),
        "a paused list takes no rows"
    );
    click(browser, "#live-pause").await;
    browser
        .wait_for("resumed", "#live-state[data-state='live']")
        .await;
    let rows = rows_named(browser, "paused-", 8).await;
    let seqs: Vec<u64> = rows.iter().map(|(_, seq)| *seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "once each, newest first: {seqs:?}"
    );

    browser
        .wait_for("a sealed header in the list", "#live-headers tr.header-row")
        .await;
    browser
        .wait_for(
            "the first transactions marked SEALED",
            "#live-txs tr[data-tx-id='live-0'][data-status='SEALED']",
        )
        .await;

    // Many more than the list keeps: it keeps the newest.
    let many: Vec<Value> = (0..400)
        .map(|i| tx(&format!("many-{i}"), "bulk", &[]))
        .collect();
    submit(tokyo, &many).await;
    let rows = browser
        .wait_until(
            "the newest of 400 on top",
            Duration::from_secs(30),
            || async {
                let rows = live_rows(browser).await;
                (rows.first().map(|r| r.0.as_str()) == Some("many-399")).then_some(rows)
            },
        )
        .await;
    assert!(rows.len() <= 250, "the list grew to {} rows", rows.len());
    let shifts = browser
        .eval("return window.shifts;")
        .await
        .as_f64()
        .expect("a number");
    assert!(
        shifts < 0.01,
        "the page moved while rows streamed in: layout shift {shifts}"
    );
    look(browser, "live-1280x800").await;
}

/// The continental node's chain view shows its child, and the child's shows its parent.
async fn chain(browser: &Browser, fed: &Federation) {
    browser
        .goto(&format!("{}/explorer#/chain", fed.asia.base))
        .await;
    wait_ready(browser, "chain").await;
    let child = browser
        .wait_for(
            "the child in the federation",
            "#federation tr[data-child='municipality/tokyo']",
        )
        .await;
    let text = child.text().await.expect("the child's row");
    assert!(text.contains("municipality/tokyo"), "{text}");
    // Its lag: how old its last header accepted by asia is (it seals every 0.3 s at most).
    let lag = browser
        .eval("return document.querySelector('#federation tr[data-child] td.lag').textContent;")
        .await;
    let seconds: f64 = lag
        .as_str()
        .and_then(|l| l.strip_suffix(" s"))
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("a lag in seconds: {lag}"));
    assert!(seconds < 30.0, "{seconds}");
    browser.wait_for("the chart", "#chart svg path.bars").await;
    let headers = browser
        .eval("return document.querySelectorAll('#chain-headers tr.header-row').length;")
        .await;
    assert!(headers.as_u64().expect("a count") > 1, "{headers}");
    look(browser, "chain-continental-1280x800").await;

    browser
        .goto(&format!("{}/explorer#/chain", fed.tokyo.base))
        .await;
    wait_ready(browser, "chain").await;
    let parent = browser
        .eval("return document.getElementById('federation').textContent;")
        .await;
    assert!(
        parent.as_str().expect("text").contains(&fed.asia.grpc),
        "the parent is named: {parent}"
    );
}

/// A transaction's page: its DAG links, and its proof with both levels checked in the browser;
/// a changed proof shows which card fails.
async fn proof(browser: &Browser, fed: &Federation) {
    let tokyo = &fed.tokyo.base;
    submit(tokyo, &[tx("parent-1", "alice", &[])]).await;
    submit(tokyo, &[tx("child-1", "東京 café", &["parent-1"])]).await;

    browser
        .goto(&format!("{tokyo}/explorer#/tx/parent-1"))
        .await;
    let child = browser.wait_for("the child link", "#tx-children a").await;
    assert_eq!(child.text().await.expect("a link"), "child-1");
    child.click().await.expect("follow the child link");
    let parent = browser.wait_for("the parent link", "#tx-parents a").await;
    assert_eq!(parent.text().await.expect("a link"), "parent-1");
    assert!(browser.eval("return location.hash;").await.as_str() == Some("#/tx/child-1"));

    // The page asks again until the continental node has ordered the header.
    browser
        .wait_until("both levels checked", Duration::from_secs(60), || async {
            (card_states(browser).await == "digest=ok link-0=ok link-1=ok").then_some(())
        })
        .await;
    let summary = browser
        .wait_for("the summary", "#proof-summary[data-state='ok']")
        .await;
    assert!(summary.text().await.expect("text").contains("2 header ids"));
    let print = browser
        .wait_for("the fingerprint", "#proof-fingerprint")
        .await;
    assert_eq!(print.text().await.expect("text"), fed.asia_fingerprint);
    let unchecked = browser
        .wait_for("what is not checked", "#proof-unchecked")
        .await;
    let unchecked = unchecked.text().await.expect("text");
    assert!(unchecked.contains("ML-DSA-87") && unchecked.contains("poh verify --proof"));
    look(browser, "tx-proof-1280x800").await;
    // The dark scheme (the system's choice) is as readable.
    browser.color_scheme("dark").await;
    look(browser, "tx-proof-dark-1280x800").await;
    browser.color_scheme("light").await;

    // One hex digit of the continental header's items_root: that card fails, the rest hold.
    tamper(
        browser,
        "p.links[1].header.items_root = flip(p.links[1].header.items_root);",
    )
    .await;
    expect_cards(browser, "digest=ok link-0=ok link-1=fail").await;
    let failing = browser
        .eval("return document.querySelector('.proof-card[data-card=\"link-1\"]').textContent;")
        .await;
    assert!(
        failing.as_str().expect("text").contains("items_root"),
        "{failing}"
    );
    look(browser, "tx-proof-tampered-1280x800").await;

    // One byte of the payload: the digest no longer matches, nor the first link's item.
    tamper(browser, "p.tx.payload_b64 = btoa('payment child-2');").await;
    expect_cards(browser, "digest=fail link-0=fail link-1=ok").await;
    // An audit path hash of the municipality's link.
    tamper(
        browser,
        "p.links[0].audit_path[0] = flip(p.links[0].audit_path[0]);",
    )
    .await;
    expect_cards(browser, "digest=ok link-0=fail link-1=ok").await;
    // A saved proof loaded from a file, changed in its level: a municipality header cannot
    // order another municipality header.
    let saved = browser
        .eval(
            "const p = JSON.parse(window.original); p.links[1].header.level = 'municipality'; \
             return JSON.stringify(p);",
        )
        .await;
    let file = std::env::temp_dir().join(format!("explorer-{}.proof.json", std::process::id()));
    std::fs::write(&file, saved.as_str().expect("JSON text")).expect("the proof file");
    browser
        .client()
        .find(Locator::Css("#proof-file"))
        .await
        .expect("the file input")
        .send_keys(file.to_str().expect("a UTF-8 path"))
        .await
        .expect("choosing the file");
    expect_cards(browser, "digest=ok link-0=ok link-1=fail").await;
    let failing = browser
        .eval(
            "return Array.from(document.querySelectorAll('.proof-card[data-card=\"link-1\"] \
             li[data-ok=\"false\"]'), li => li.textContent);",
        )
        .await;
    let failing: Vec<String> = serde_json::from_value(failing).expect("texts");
    assert_eq!(failing.len(), 2, "{failing:?}");
    assert!(
        failing[0].starts_with("SHA-256 of the header bytes"),
        "{failing:?}"
    );
    assert_eq!(
        failing[1],
        "a municipality header orders a municipality one"
    );
    std::fs::remove_file(&file).expect("removing the proof file");
    // Not JSON at all: said so, and the cards stay as they were.
    browser
        .eval("document.getElementById('proof-json').value = '{'; return null;")
        .await;
    click(browser, "#proof-verify").await;
    let state = browser
        .wait_for("the parse error", "#proof-debug-state")
        .await;
    assert!(state.text().await.expect("text").starts_with("Not JSON"));

    // The transaction's header, from its record: its id checked in the browser too.
    click(browser, "#tx-record dd a[href^='#/header/']").await;
    wait_ready(browser, "header").await;
    browser
        .wait_for("the header's id checked", "#header-check[data-state='ok']")
        .await;
    look(browser, "header-1280x800").await;
}

/// Opens the debug view, applies `change` to the page's own proof (as `p`), and checks it.
async fn tamper(browser: &Browser, change: &str) {
    browser
        .eval(&format!(
            "const area = document.getElementById('proof-json'); \
             document.getElementById('proof-debug').open = true; \
             if (!window.original) window.original = area.value; \
             const p = JSON.parse(window.original); \
             const flip = h => (h[0] === '0' ? '1' : '0') + h.slice(1); \
             {change} \
             area.value = JSON.stringify(p, null, 2); return null;"
        ))
        .await;
    click(browser, "#proof-verify").await;
}

/// Each proof card's name and state, in order: `digest=ok link-0=ok …`.
async fn card_states(browser: &Browser) -> String {
    let states = browser
        .eval(
            "return Array.from(document.querySelectorAll('.proof-card'), \
             c => c.dataset.card + '=' + c.dataset.state).join(' ');",
        )
        .await;
    states.as_str().unwrap_or_default().to_string()
}

async fn expect_cards(browser: &Browser, want: &str) {
    browser
        .wait_until(want, Duration::from_secs(10), || async {
            (card_states(browser).await == want).then_some(())
        })
        .await;
    let summary = browser
        .eval("return document.getElementById('proof-summary').dataset.state;")
        .await;
    let whole = if want.contains("fail") { "fail" } else { "ok" };
    assert_eq!(summary, whole, "{want}");
}

/// A holder's transactions, reached from a transaction's page, with a name that needs escaping.
async fn holder(browser: &Browser, tokyo: &str) {
    browser.goto(&format!("{tokyo}/explorer#/tx/child-1")).await;
    wait_ready(browser, "tx").await;
    click(browser, "#tx-record dd a[href^='#/holder/']").await;
    wait_ready(browser, "holder").await;
    let ids = browser
        .eval("return Array.from(document.querySelectorAll('#holder-txs tr.tx-row'), r => r.dataset.txId);")
        .await;
    let mut want: Vec<String> = (1..12).step_by(2).map(|i| format!("live-{i}")).collect();
    want.push("child-1".into());
    assert_eq!(ids, json!(want), "東京 café's transactions, oldest first");
    look(browser, "holder-1280x800").await;
}

/// At phone width nothing is wider than the screen; from the keyboard alone, Tab reaches the
/// search, and Enter opens what was typed.
async fn phone_and_keyboard(browser: &Browser, tokyo: &str) {
    browser.set_size(390, 844).await;
    for (view, name) in [("live", "live"), ("tx/child-1", "tx"), ("chain", "chain")] {
        browser.goto(&format!("{tokyo}/explorer#/{view}")).await;
        wait_ready(browser, name).await;
        if name == "tx" {
            browser.wait_for("the proof", "#proof-summary").await;
        }
        let wide = overflows(browser).await;
        assert!(wide.is_empty(), "{view} is wider than a phone: {wide:?}");
        // Columns shown are wide enough to read (narrow screens hide some instead).
        let squeezed = browser
            .eval(
                "return Array.from(document.querySelectorAll('td, th')).filter(c => \
                 c.getClientRects().length && c.textContent.trim() && c.clientWidth < 40) \
                 .map(c => c.textContent.trim() + ' ' + c.clientWidth);",
            )
            .await;
        assert_eq!(squeezed, json!([]), "{view}: columns too narrow to read");
        look(browser, &format!("{name}-390x844")).await;
    }

    browser.set_size(1280, 800).await;
    browser.goto(&format!("{tokyo}/explorer#/live")).await;
    // A fresh load, so the focus starts at the top of the page as for a person arriving.
    browser.client().refresh().await.expect("reload");
    wait_ready(browser, "live").await;
    let mut reached = false;
    for _ in 0..12 {
        browser.press(Key::Tab).await;
        let focused = browser.eval("return document.activeElement.id;").await;
        if focused == "search-q" {
            reached = true;
            break;
        }
    }
    assert!(reached, "Tab never reached the search box");
    browser
        .client()
        .active_element()
        .await
        .expect("the focused element")
        .send_keys("parent-1")
        .await
        .expect("typing");
    browser.press(Key::Enter).await;
    wait_ready(browser, "tx").await;
    assert_eq!(browser.eval("return location.hash;").await, "#/tx/parent-1");
    browser.wait_for("the proof", "#proof-summary").await;

    // The first Tab gives the skip link; Enter puts the focus on the content, same view.
    browser.client().refresh().await.expect("reload");
    wait_ready(browser, "tx").await;
    browser.press(Key::Tab).await;
    let skip = browser
        .eval("return document.activeElement.className;")
        .await;
    assert_eq!(skip, "skip");
    browser.press(Key::Enter).await;
    assert_eq!(
        browser.eval("return document.activeElement.id;").await,
        "view"
    );
    assert_eq!(browser.eval("return location.hash;").await, "#/tx/parent-1");
}
