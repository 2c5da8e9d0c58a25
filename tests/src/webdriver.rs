//! Classic WebDriver over HTTP, for the engines that ship a driver: Chromium (`chromedriver`)
//! and WebKitGTK (`WebKitWebDriver`, which needs an X display: it gets its own `Xvfb`).
//!
//! Every process runs in a process group of its own and the whole group is killed (by PID)
//! when the [`Driver`] is dropped, so a failing test leaves no browser behind.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

use sessionward_conformance::services;

use crate::{artefact_dir, free_port, kill_process_group};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const WEBKIT_DRIVER: &str = "/usr/bin/WebKitWebDriver";
const MINIBROWSER: &str = "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser";
const XVFB: &str = "/usr/bin/Xvfb";

/// Which browser engine a [`Driver`] drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// Headless Chromium through chromedriver.
    Chromium,
    /// WebKitGTK's MiniBrowser through WebKitWebDriver, on an Xvfb display.
    WebKit,
}

/// Whether every file exists; if not, skips (`false`) or panics where services are required.
fn installed(files: &[&str], packages: &str) -> bool {
    if files.iter().all(|f| Path::new(f).exists()) {
        return true;
    }
    let reason =
        format!("{files:?} missing (bash scripts/setup.sh, or apt-get install {packages})");
    services::skip::<()>("browser", &reason).is_some()
}

/// Starts `Xvfb` on a display it picks itself (`-displayfd`); returns it and the display.
async fn start_xvfb() -> (Child, String) {
    let mut child = Command::new(XVFB)
        .args([
            "-displayfd",
            "1",
            "-nolisten",
            "tcp",
            "-screen",
            "0",
            "1100x900x24",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("start Xvfb");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let display = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .ok()
        .and_then(Result::ok)
        .flatten()
        .expect("Xvfb printed no display number within 20 s");
    (child, format!(":{}", display.trim()))
}

/// A running WebDriver server (and, for WebKit, its X server).
pub struct Driver {
    engine: Engine,
    child: Child,
    xvfb: Option<Child>,
    base: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("engine", &self.engine)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        kill_process_group(self.child.id());
        if let Some(x) = &self.xvfb {
            kill_process_group(x.id());
        }
    }
}

impl Driver {
    /// Starts the driver for `engine`; `None` (a printed reason) if it is not installed.
    ///
    /// # Panics
    /// If it is not installed while `SESSIONWARD_REQUIRE_SERVICES=1`, or does not start
    /// within 30 s.
    pub async fn start(engine: Engine) -> Option<Self> {
        let port = free_port();
        let (child, xvfb) = match engine {
            Engine::Chromium => {
                if !installed(&[CHROMIUM, CHROMEDRIVER], "chromium chromium-driver") {
                    return None;
                }
                let child = Command::new(CHROMEDRIVER)
                    .arg(format!("--port={port}"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .process_group(0)
                    .kill_on_drop(true)
                    .spawn()
                    .expect("start chromedriver");
                (child, None)
            }
            Engine::WebKit => {
                if !installed(
                    &[WEBKIT_DRIVER, MINIBROWSER, XVFB],
                    "webkit2gtk-driver xvfb",
                ) {
                    return None;
                }
                let (xvfb, display) = start_xvfb().await;
                let child = Command::new(WEBKIT_DRIVER)
                    .arg(format!("--port={port}"))
                    .env("DISPLAY", display)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .process_group(0)
                    .kill_on_drop(true)
                    .spawn()
                    .expect("start WebKitWebDriver");
                (child, Some(xvfb))
            }
        };
        let d = Self {
            engine,
            child,
            xvfb,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = d.http.get(format!("{}/status", d.base)).send().await
                && r.status().is_success()
            {
                return Some(d);
            }
            assert!(
                Instant::now() < deadline,
                "{engine:?} driver did not start within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The engine this driver drives.
    #[must_use]
    pub fn engine(&self) -> Engine {
        self.engine
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("webdriver request");
        let status = res.status();
        let v: Value = res.json().await.expect("webdriver json");
        assert!(status.is_success(), "webdriver {path}: {status} {v}");
        v["value"].clone()
    }

    fn capabilities(&self, accept_insecure_certs: bool) -> Value {
        match self.engine {
            Engine::Chromium => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos());
                let profile = std::env::temp_dir().join(format!(
                    "sessionward-chromium-{}-{nanos}",
                    std::process::id()
                ));
                let mut args = vec![
                    "--headless".to_owned(),
                    "--no-sandbox".to_owned(),
                    "--disable-gpu".to_owned(),
                    "--disable-quic".to_owned(),
                    "--disable-background-networking".to_owned(),
                    "--disable-component-update".to_owned(),
                    "--disable-sync".to_owned(),
                    "--no-first-run".to_owned(),
                    "--disable-breakpad".to_owned(),
                    "--disable-crash-reporter".to_owned(),
                    "--window-size=1100,900".to_owned(),
                    format!("--user-data-dir={}", profile.display()),
                ];
                if accept_insecure_certs {
                    args.push("--ignore-certificate-errors".to_owned());
                }
                json!({
                    "browserName": "chrome",
                    "acceptInsecureCerts": accept_insecure_certs,
                    "goog:chromeOptions": { "binary": CHROMIUM, "args": args }
                })
            }
            Engine::WebKit => json!({
                "browserName": "MiniBrowser",
                "acceptInsecureCerts": accept_insecure_certs,
                "webkitgtk:browserOptions": { "binary": MINIBROWSER, "args": ["--automation"] }
            }),
        }
    }
}

/// One WebDriver session (one browser window) on a [`Driver`].
#[derive(Debug)]
pub struct Browser<'d> {
    driver: &'d Driver,
    session: String,
}

impl Browser<'_> {
    /// Opens a session; with `accept_insecure_certs` the browser accepts any TLS certificate
    /// (the tests' throw-away ones).
    ///
    /// # Panics
    /// If the browser does not start in three attempts.
    pub async fn open(driver: &Driver, accept_insecure_certs: bool) -> Browser<'_> {
        let caps = json!({
            "capabilities": { "alwaysMatch": driver.capabilities(accept_insecure_certs) }
        });
        // A loaded machine can make a browser start time out: try a few times.
        for attempt in 1..=3 {
            let res = driver
                .http
                .post(format!("{}/session", driver.base))
                .json(&caps)
                .send()
                .await
                .expect("webdriver request");
            let status = res.status();
            let v: Value = res.json().await.expect("webdriver json");
            if status.is_success() {
                let session = v["value"]["sessionId"]
                    .as_str()
                    .expect("session id")
                    .to_owned();
                return Browser { driver, session };
            }
            eprintln!(
                "starting {:?} failed (attempt {attempt}): {status} {v}",
                driver.engine
            );
            assert!(attempt < 3, "{:?} did not start: {v}", driver.engine);
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        unreachable!("the loop returns or panics")
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.driver
            .call(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    /// Navigates to `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// The element matching `css`, if there is one now.
    pub async fn find(&self, css: &str) -> Option<String> {
        let res = self
            .driver
            .http
            .post(format!(
                "{}/session/{}/element",
                self.driver.base, self.session
            ))
            .json(&json!({ "using": "css selector", "value": css }))
            .send()
            .await
            .ok()?;
        if !res.status().is_success() {
            return None;
        }
        let v: Value = res.json().await.ok()?;
        v["value"]
            .as_object()?
            .values()
            .next()?
            .as_str()
            .map(str::to_owned)
    }

    /// Waits (at most 20 s) for an element matching `css`.
    ///
    /// # Panics
    /// If none appears.
    pub async fn wait_for(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(e) = self.find(css).await {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "{css} did not appear; page:\n{}",
                self.source().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (at most 20 s) for the first of `css` to appear; returns its index.
    ///
    /// # Panics
    /// If none appears.
    pub async fn wait_for_any(&self, css: &[&str]) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            for (i, c) in css.iter().enumerate() {
                if self.find(c).await.is_some() {
                    return i;
                }
            }
            assert!(Instant::now() < deadline, "none of {css:?} appeared");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs an element command, finding the element again if the page changed under it
    /// (a stale element while a navigation completes), for up to 20 s.
    async fn on_element(
        &self,
        css: &str,
        method: reqwest::Method,
        action: &str,
        body: Option<Value>,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let e = self.wait_for(css).await;
            let url = format!(
                "{}/session/{}/element/{e}/{action}",
                self.driver.base, self.session
            );
            let mut req = self.driver.http.request(method.clone(), url);
            if let Some(b) = &body {
                req = req.json(b);
            }
            if let Ok(res) = req.send().await {
                let ok = res.status().is_success();
                if let Ok(v) = res.json::<Value>().await
                    && ok
                {
                    return v["value"].clone();
                }
            }
            assert!(Instant::now() < deadline, "{action} on {css} kept failing");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types `text` into the element matching `css`.
    pub async fn type_into(&self, css: &str, text: &str) {
        let body = json!({ "text": text });
        self.on_element(css, reqwest::Method::POST, "value", Some(body))
            .await;
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        self.on_element(css, reqwest::Method::POST, "click", Some(json!({})))
            .await;
    }

    /// The visible text of the element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        self.on_element(css, reqwest::Method::GET, "text", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The page's HTML.
    pub async fn source(&self) -> String {
        self.cmd(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Runs `script` (a function body) in the page and returns its result.
    pub async fn execute(&self, script: &str) -> Value {
        let body = json!({ "script": script, "args": [] });
        self.cmd(reqwest::Method::POST, "/execute/sync", Some(body))
            .await
    }

    /// Waits (at most 20 s) until `script` (a function body) returns `true`, ignoring errors
    /// while a navigation replaces the page.
    ///
    /// # Panics
    /// If it never does.
    pub async fn wait_until(&self, script: &str) {
        let url = format!("{}/session/{}/execute/sync", self.driver.base, self.session);
        let body = json!({ "script": script, "args": [] });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(res) = self.driver.http.post(&url).json(&body).send().await
                && let Ok(v) = res.json::<Value>().await
                && v["value"] == Value::Bool(true)
            {
                return;
            }
            assert!(Instant::now() < deadline, "`{script}` never became true");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The cookies the browser holds for the current page, as WebDriver reports them.
    pub async fn cookies(&self) -> Vec<Value> {
        self.cmd(reqwest::Method::GET, "/cookie", None)
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Saves a screenshot as `<target>/e2e-artefacts/<name>`.
    ///
    /// # Panics
    /// If the browser does not return a PNG.
    pub async fn screenshot(&self, name: &str) {
        let v = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("base64 png");
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let path = artefact_dir().join(name);
        std::fs::write(&path, png).expect("write screenshot");
        eprintln!("screenshot: {}", path.display());
    }

    /// Ends the session (closes the browser).
    pub async fn close(self) {
        self.cmd(reqwest::Method::DELETE, "", None).await;
    }
}
