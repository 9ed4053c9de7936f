//! A real browser for tests of the pages a `poh serve` process serves (the explorer at
//! GET /explorer): headless Chromium driven over WebDriver by a `chromedriver` of the test's
//! own.
//!
//! Each [`Browser`] runs its own chromedriver on a port the system picked and its own Chromium
//! profile in a fresh directory, so tests in this binary (which run in parallel) can each have
//! one. Chromedriver and the Chromium it starts are killed when the `Browser` is dropped, so a
//! failing test leaves no browser behind; [`Browser::close`] ends the session cleanly first.
//!
//! Debian's `chromium` and `chromium-driver` packages provide the two binaries (`.ci/run`
//! installs them). A page's console is read through chromedriver's log endpoint, so a test can
//! insist that the page logged no errors ([`Browser::assert_no_console_errors`]); screenshots
//! land in `target/explorer-screenshots/` for a person to look at.
//!
//! ```ignore
//! let browser = Browser::start().await;
//! browser.set_size(390, 844).await;
//! browser.goto(&format!("{}/explorer", node.base)).await;
//! browser.wait_for("the block list", "#blocks li").await;
//! browser.press(Key::Tab).await;
//! browser.screenshot("explorer-phone").await;
//! browser.assert_no_console_errors().await;
//! browser.close().await;
//! ```

use std::{
    future::Future,
    io::Read,
    net::TcpListener,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use fantoccini::{
    Client, ClientBuilder, Locator,
    actions::{InputSource, KeyAction, KeyActions},
    elements::Element,
    key::Key,
    wd::WebDriverCompatibleCommand,
};
use hyper_util::client::legacy::connect::HttpConnector;
use serde::Deserialize;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::common::PATIENCE;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How often the `wait_*` helpers look again.
const POLL: Duration = Duration::from_millis(100);

/// One headless Chromium session and the chromedriver that runs it.
pub struct Browser {
    client: Client,
    /// Leader of its own process group, which Chromium's processes join: killing the group
    /// kills them too, where killing chromedriver alone would leave Chromium running.
    driver: Child,
    /// Chromedriver hands out each console message once; the messages read so far are kept
    /// so that every check sees all of them.
    console: Mutex<Vec<LogEntry>>,
    /// The Chromium profile and chromedriver's log; removed after the processes are killed.
    _dir: TempDir,
}

/// One message of the page's console, as chromedriver reports it.
#[derive(Debug, Clone, Deserialize)]
pub struct LogEntry {
    /// "SEVERE" for `console.error` and uncaught exceptions (and failed loads), "WARNING",
    /// "INFO" for `console.log`, "DEBUG".
    pub level: String,
    /// Where it came from and what it said, e.g. `http://127.0.0.1:41234/ 12:9 "boom"`.
    pub message: String,
}

impl Browser {
    /// Starts chromedriver and opens a headless Chromium session, or panics saying why.
    pub async fn start() -> Self {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: the browser tests drive Debian's chromium through \
                 chromedriver; .ci/run installs them, or by hand: \
                 apt-get install chromium chromium-driver"
            );
        }
        let dir = tempfile::tempdir().expect("a temporary directory for the browser");
        let log_path = dir.path().join("chromedriver.log");
        let profile = dir.path().join("profile");

        // The port is free when picked but another process may take it before chromedriver
        // binds it; then chromedriver exits at once and another port is tried.
        let mut failures = Vec::new();
        let (mut driver, port) = loop {
            let port = free_port();
            let log = std::fs::File::create(&log_path).expect("create chromedriver's log");
            let err = log.try_clone().expect("chromedriver's log for stderr");
            let mut driver = Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err)
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("start {CHROMEDRIVER}: {e}"));
            match ready(&mut driver, port).await {
                Ok(()) => break (driver, port),
                Err(why) => {
                    // Only an exit can be a lost race for the port: one that runs but never
                    // gets ready would do no better on another port.
                    let exited = matches!(driver.try_wait(), Ok(Some(_)));
                    kill_group(&mut driver);
                    failures.push(format!("port {port}: {why}\n{}", read_log(&log_path)));
                    assert!(
                        exited && failures.len() < 3,
                        "chromedriver did not start:\n{}",
                        failures.join("\n")
                    );
                }
            }
        };

        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    // Chromium's sandbox refuses to run as root, which CI is.
                    "--no-sandbox",
                    "--disable-gpu",
                    // /dev/shm may be small in containers; Chromium crashes when it fills.
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    // Chromium's own traffic (QUIC probes, updates, sync) would only wait on a
                    // network CI does not have.
                    "--disable-quic",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
            "goog:loggingPrefs": { "browser": "ALL" },
            // A hung page fails the test within the tests' patience rather than WebDriver's
            // default five minutes.
            "timeouts": {
                "pageLoad": PATIENCE.as_millis() as u64,
                "script": PATIENCE.as_millis() as u64,
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("the capabilities are a JSON object")
        };
        let client = match ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => client,
            Err(e) => {
                kill_group(&mut driver);
                panic!(
                    "chromedriver could not start Chromium: {e}\n{}",
                    read_log(&log_path)
                );
            }
        };
        Browser {
            client,
            driver,
            console: Mutex::new(Vec::new()),
            _dir: dir,
        }
    }

    /// The WebDriver client, for whatever the helpers here do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Makes the page's viewport (`window.innerWidth` × `window.innerHeight`, and so the
    /// screenshots) `width` × `height` CSS pixels.
    ///
    /// WebDriver sizes the window, not the viewport. Headless Chromium 148 gives the viewport
    /// the window's width but 139 px less than its height, for browser controls it pretends to
    /// have (and reports an outer width of at least 500 px while still laying out at the
    /// asked width). So the window is sized once, the viewport measured, and the window grown
    /// by what is missing.
    pub async fn set_size(&self, width: u32, height: u32) {
        let viewport = async || {
            let size = self
                .eval("return [window.innerWidth, window.innerHeight]")
                .await;
            let dimension = |i: usize| {
                size[i]
                    .as_i64()
                    .unwrap_or_else(|| panic!("the viewport's size is not [w, h]: {size}"))
            };
            (dimension(0), dimension(1))
        };
        self.resize(width, height).await;
        let (w, h) = viewport().await;
        let (want_w, want_h) = (i64::from(width), i64::from(height));
        if (w, h) != (want_w, want_h) {
            // The window was asked for `want`; grow it by what the viewport fell short.
            let grow = |want: i64, got: i64| {
                u32::try_from(want + (want - got))
                    .unwrap_or_else(|_| panic!("no window gives a viewport of {width}x{height}"))
            };
            self.resize(grow(want_w, w), grow(want_h, h)).await;
            let got = viewport().await;
            assert_eq!(
                got,
                (want_w, want_h),
                "the viewport is not {width}x{height} even with the window grown for it"
            );
        }
    }

    async fn resize(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .unwrap_or_else(|e| panic!("size the window to {width}x{height}: {e}"));
    }

    /// Loads `url` and waits until its `load` event has fired.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("load {url}: {e}"));
    }

    /// Runs `js` as the body of a function in the page and answers what it returns, so `js`
    /// should say `return …`.
    pub async fn eval(&self, js: &str) -> Value {
        self.client
            .execute(js, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("run in the page: {js}: {e}"))
    }

    /// Saves what the viewport shows as `target/explorer-screenshots/<name>.png`, and answers
    /// the file's path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("take screenshot {name}: {e}"));
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Every console message of this session so far, oldest first.
    pub async fn console(&self) -> Vec<LogEntry> {
        let fresh = self
            .client
            .issue_cmd(ReadLog)
            .await
            .unwrap_or_else(|e| panic!("read the browser's console: {e}"));
        let fresh = Vec::<LogEntry>::deserialize(&fresh).unwrap_or_else(|e| {
            panic!("chromedriver's log is not a list of entries: {e}: {fresh}")
        });
        let mut console = self.console.lock().expect("console messages");
        console.extend(fresh);
        console.clone()
    }

    /// Panics listing every error the page's console has shown: `console.error`, uncaught
    /// exceptions, failed requests. Chromium asks for /favicon.ico unless the page names an
    /// icon, and reports its 404 here too; `<link rel="icon" href="data:,">` asks for none.
    pub async fn assert_no_console_errors(&self) {
        let errors: Vec<String> = self
            .console()
            .await
            .into_iter()
            .filter(|entry| entry.level == "SEVERE")
            .map(|entry| entry.message)
            .collect();
        assert!(
            errors.is_empty(),
            "the page's console shows {} error(s):\n{}",
            errors.len(),
            errors.join("\n")
        );
    }

    /// Waits for an element matching the CSS selector `css` to exist, for at most
    /// [`PATIENCE`]; `what` names it in the failure.
    pub async fn wait_for(&self, what: &str, css: &str) -> Element {
        let client = &self.client;
        self.wait_until(what, PATIENCE, || async move {
            client.find(Locator::Css(css)).await.ok()
        })
        .await
    }

    /// Polls `check` until it answers `Some`, for at most `patience`; `what` names the awaited
    /// state in the failure.
    pub async fn wait_until<T, F>(
        &self,
        what: &str,
        patience: Duration,
        mut check: impl FnMut() -> F,
    ) -> T
    where
        F: Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(found) = check().await {
                return found;
            }
            assert!(Instant::now() < deadline, "not within {patience:?}: {what}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Presses and releases `key` on whatever has the focus, as a person's keyboard would
    /// (`Key::Tab` moves the focus, `Key::Enter` activates a focused button or link). Text is
    /// typed with `send_keys` on an element.
    pub async fn press(&self, key: Key) {
        let value = char::from(key);
        let keyboard = KeyActions::new("keyboard".to_string())
            .then(KeyAction::Down { value })
            .then(KeyAction::Up { value });
        self.client
            .perform_actions(keyboard)
            .await
            .unwrap_or_else(|e| panic!("press {key:?}: {e}"));
    }

    /// Renders pages as if the system's colour scheme were `scheme` (`"light"` or `"dark"`),
    /// as `prefers-color-scheme` sees it.
    pub async fn color_scheme(&self, scheme: &str) {
        let features = json!({ "features": [{ "name": "prefers-color-scheme", "value": scheme }] });
        self.client
            .issue_cmd(Cdp {
                cmd: "Emulation.setEmulatedMedia",
                params: features,
            })
            .await
            .unwrap_or_else(|e| panic!("prefers-color-scheme {scheme}: {e}"));
    }

    /// Ends the session: chromedriver quits Chromium, then is killed itself.
    pub async fn close(self) {
        self.client
            .clone()
            .close()
            .await
            .unwrap_or_else(|e| panic!("end the browser session: {e}"));
    }
}

/// A test that fails mid-way must not leave Chromium running.
impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
    }
}

/// Chromedriver's own command for the console messages Chromium logged since the last time
/// (not part of W3C WebDriver, so fantoccini has none).
#[derive(Debug)]
struct ReadLog;

impl WebDriverCompatibleCommand for ReadLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let session = session_id.expect("a WebDriver session before reading its log");
        base_url.join(&format!("session/{session}/se/log"))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "type": "browser" }).to_string()),
        )
    }
}

/// A DevTools command through chromedriver's `goog/cdp/execute` (not W3C WebDriver either).
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let session = session_id.expect("a WebDriver session before a DevTools command");
        base_url.join(&format!("session/{session}/goog/cdp/execute"))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "cmd": self.cmd, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// Waits until chromedriver on `port` says it is ready for sessions, or why not.
async fn ready(driver: &mut Child, port: u16) -> Result<(), String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("an HTTP client");
    let status = format!("http://127.0.0.1:{port}/status");
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(Some(exit)) = driver.try_wait() {
            return Err(format!("chromedriver exited ({exit})"));
        }
        if let Ok(response) = http.get(&status).send().await
            && let Ok(body) = response.json::<Value>().await
            && body["value"]["ready"] == json!(true)
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("{status} did not answer ready within {PATIENCE:?}"));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Kills chromedriver and the Chromium processes in its process group.
fn kill_group(driver: &mut Child) {
    // The group's id is chromedriver's pid (`process_group(0)`). Only while chromedriver is
    // unreaped is that pid surely still ours: once reaped, it may name another process. (It
    // exits on its own only when it could not start, before any Chromium.)
    if let Ok(None) = driver.try_wait() {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", driver.id())])
            .stderr(Stdio::null())
            .status();
    }
    let _ = driver.kill();
    let _ = driver.wait();
}

/// Chromedriver's log, for failures.
fn read_log(path: &Path) -> String {
    let mut log = String::new();
    match std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut log)) {
        Ok(_) => format!("chromedriver's log:\n{log}"),
        Err(e) => format!("(chromedriver's log {}: {e})", path.display()),
    }
}

/// `target/explorer-screenshots` of this workspace, or of `CARGO_TARGET_DIR` when set.
fn screenshot_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        // A relative CARGO_TARGET_DIR is relative to where cargo ran, usually the workspace.
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    };
    target.join("explorer-screenshots")
}

/// The harness itself, on a page of its own served without a node: the console check must
/// catch an error the page makes, sizes must be viewport sizes, and keys must move the focus.
#[tokio::test]
async fn browser_harness_reports_console_errors_and_takes_screenshots() {
    use futures_util::FutureExt as _;

    // The page makes its errors only when its second button is clicked, so the test knows the
    // console was clean before. The empty icon spares a request for /favicon.ico.
    const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>harness</title><link rel="icon" href="data:,">
<style>body { font: 24px sans-serif } button { font-size: 24px; margin: 1em }</style></head>
<body><h1>Harness page</h1>
<button id="first">First</button><button id="second">Second</button>
<script>
  console.log("ready");
  document.getElementById("second").addEventListener("click", () => {
    console.error("boom");
    throw new Error("unhandled boom");
  });
</script></body></html>"#;
    let page = serve_page(PAGE).await;
    let started = Instant::now();
    let browser = Browser::start().await;
    eprintln!("browser started in {:?}", started.elapsed());

    browser.set_size(1280, 800).await;
    browser.goto(&page).await;
    browser.wait_for("the second button", "#second").await;
    let title = browser.client().title().await.expect("the page's title");
    assert_eq!(title, "harness");
    let viewport = "return [window.innerWidth, window.innerHeight]";
    assert_eq!(browser.eval(viewport).await, json!([1280, 800]));
    let console = browser.console().await;
    assert!(
        console
            .iter()
            .any(|entry| entry.level == "INFO" && entry.message.contains("\"ready\"")),
        "console.log is not captured: {console:?}"
    );
    browser.assert_no_console_errors().await;
    let wide = browser.screenshot("harness-1280x800").await;
    assert_eq!(png_size(&wide), (1280, 800), "{}", wide.display());

    let focused = "return document.activeElement.id";
    browser.press(Key::Tab).await;
    assert_eq!(browser.eval(focused).await, json!("first"));
    browser.press(Key::Tab).await;
    assert_eq!(browser.eval(focused).await, json!("second"));
    browser.press(Key::Enter).await;
    let errors = browser
        .wait_until(
            "both errors of the click in the console",
            PATIENCE,
            || async {
                let severe: Vec<LogEntry> = browser
                    .console()
                    .await
                    .into_iter()
                    .filter(|entry| entry.level == "SEVERE")
                    .collect();
                (severe.len() >= 2).then_some(severe)
            },
        )
        .await;
    assert!(
        errors.iter().any(|e| e.message.contains("\"boom\"")),
        "console.error is not reported: {errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.message.contains("Uncaught Error: unhandled boom")),
        "the uncaught exception is not reported: {errors:?}"
    );
    // Its panic (and backtrace) shows in the test's output: that is the check failing as it
    // must.
    let check = std::panic::AssertUnwindSafe(browser.assert_no_console_errors())
        .catch_unwind()
        .await;
    let failure = check.expect_err("assert_no_console_errors passed a page with errors");
    let failure = failure
        .downcast_ref::<String>()
        .expect("assert_no_console_errors fails with a message");
    assert!(
        failure.contains("\"boom\"") && failure.contains("unhandled boom"),
        "{failure}"
    );

    browser.set_size(390, 844).await;
    assert_eq!(browser.eval(viewport).await, json!([390, 844]));
    let narrow = browser.screenshot("harness-390x844").await;
    assert_eq!(png_size(&narrow), (390, 844), "{}", narrow.display());
    browser.close().await;
}

/// Serves `html` at / of a port on 127.0.0.1 (and 404 elsewhere) for the rest of the test.
async fn serve_page(html: &'static str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port for the test page");
    let address = listener.local_addr().expect("the test page's address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let path = String::from_utf8_lossy(&request)
                    .split_whitespace()
                    .nth(1)
                    .map(str::to_string);
                let (status, body) = match path.as_deref() {
                    Some("/") => ("200 OK", html),
                    _ => ("404 Not Found", "not found"),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    format!("http://{address}/")
}

/// A PNG file's width and height, from its header.
fn png_size(path: &Path) -> (u32, u32) {
    let png = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(
        png.len() > 24 && png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is no PNG",
        path.display()
    );
    let be = |at: usize| u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]);
    (be(16), be(20))
}
