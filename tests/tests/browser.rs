//! A real browser: headless Chromium, driven over WebDriver (chromedriver), signs in through
//! the HTML form, sees the signed-in page and its session, signs out and lands on the form.
//! It saves screenshots in `<target>/e2e-artefacts/`.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use sessionward_e2e::{DemoApp, artefact_dir, free_port};
use tokio::process::{Child, Command};

/// A chromedriver process in a process group of its own, with the Chromium it starts; the
/// whole group is killed when dropped, so a failing test leaves no browser behind.
struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Driver {
    async fn start() -> Option<Self> {
        let (binary, driver) = ("/usr/bin/chromium", "/usr/bin/chromedriver");
        if !Path::new(binary).exists() || !Path::new(driver).exists() {
            return sessionward_conformance::services::skip(
                "browser",
                "chromium or chromedriver missing (apt-get install chromium chromium-driver)",
            );
        }
        let port = free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let d = Self {
            child,
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
                "chromedriver did not start within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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
}

struct Browser<'d> {
    driver: &'d Driver,
    session: String,
}

impl Browser<'_> {
    async fn open(driver: &Driver) -> Browser<'_> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let profile = std::env::temp_dir().join(format!(
            "sessionward-chromium-{}-{nanos}",
            std::process::id()
        ));
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": "/usr/bin/chromium",
                    "args": [
                        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", "--no-first-run", "--disable-breakpad", "--disable-crash-reporter", "--window-size=1100,900",
                        format!("--user-data-dir={}", profile.display()),
                    ]
                }
            }}
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
            eprintln!("starting Chromium failed (attempt {attempt}): {status} {v}");
            assert!(attempt < 3, "Chromium did not start: {v}");
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        unreachable!("the loop returns or panics")
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.driver
            .call(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn find(&self, css: &str) -> Option<String> {
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

    async fn wait_for(&self, css: &str) -> String {
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

    async fn type_into(&self, css: &str, text: &str) {
        let body = json!({ "text": text });
        self.on_element(css, reqwest::Method::POST, "value", Some(body))
            .await;
    }

    async fn click(&self, css: &str) {
        self.on_element(css, reqwest::Method::POST, "click", Some(json!({})))
            .await;
    }

    async fn text(&self, css: &str) -> String {
        self.on_element(css, reqwest::Method::GET, "text", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn source(&self) -> String {
        self.cmd(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn cookies(&self) -> Vec<Value> {
        self.cmd(reqwest::Method::GET, "/cookie", None)
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    async fn screenshot(&self, name: &str) {
        let v = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("base64 png");
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let path = artefact_dir().join(name);
        std::fs::write(&path, png).expect("write screenshot");
        eprintln!("screenshot: {}", path.display());
    }

    async fn close(self) {
        self.cmd(reqwest::Method::DELETE, "", None).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_see_sessions_and_sign_out_in_chromium() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let app = DemoApp::start(&[]).await;
    // `localhost` is a secure context, so the Secure `__Host-` cookie works over plain HTTP.
    let base = format!("http://localhost:{}", app.port);
    let browser = Browser::open(&driver).await;

    browser.goto(&format!("{base}/")).await;
    browser.wait_for("#login-form").await;
    browser.screenshot("1-sign-in.png").await;

    // A wrong password shows the error and sets no cookie.
    browser.type_into("#username", "alice").await;
    browser.type_into("#password", "not-her-password").await;
    browser.click("#sign-in").await;
    assert!(browser.text("#error").await.contains("wrong password"));
    assert!(
        browser.cookies().await.is_empty(),
        "a failed sign-in set a cookie"
    );

    browser.type_into("#username", "alice").await;
    browser.type_into("#password", "alice-password").await;
    browser.click("#sign-in").await;
    // `#welcome` exists only on the signed-in page: wait for the navigation to finish.
    browser.wait_for("#welcome").await;
    assert_eq!(browser.text("#welcome #username").await, "alice");
    let page = browser.source().await;
    assert!(
        page.contains("this device"),
        "the current session is not listed"
    );
    assert_eq!(browser.text("#sessions tbody").await.lines().count(), 1);
    let cookies = browser.cookies().await;
    assert_eq!(cookies.len(), 1);
    let c = &cookies[0];
    assert_eq!(
        (
            c["name"].as_str(),
            c["httpOnly"].as_bool(),
            c["secure"].as_bool(),
            c["sameSite"].as_str()
        ),
        (Some("__Host-id"), Some(true), Some(true), Some("Strict"))
    );
    assert!(
        c.get("expiry").is_none_or(Value::is_null),
        "the session cookie is persistent"
    );
    let token = c["value"].as_str().unwrap_or_default().to_owned();
    assert!(!page.contains(&token), "the token appears in the page");
    browser.screenshot("2-signed-in.png").await;

    browser.click("#sign-out").await;
    browser.wait_for("#login-form").await;
    assert!(
        browser.cookies().await.is_empty(),
        "sign-out left the cookie"
    );
    browser.screenshot("3-signed-out.png").await;

    // The old token is dead on the server too.
    let r = app
        .client()
        .get("/api/me", sessionward_e2e::Auth::Cookie(&token))
        .await;
    assert_eq!(r.status, reqwest::StatusCode::UNAUTHORIZED);
    browser.close().await;
}
