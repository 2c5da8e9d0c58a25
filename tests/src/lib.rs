//! Harness for the end-to-end tests: builds and starts the `demo-app` binary on a free port,
//! and speaks HTTP to it with explicit cookie handling; [`webdriver`], [`flow`] and [`nginx`]
//! drive real browsers and a real reverse proxy in front of it.

pub mod flow;
pub mod nginx;
pub mod webdriver;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub use sessionward_conformance::services::services_required;

/// The value of `var`, or `None` with a printed reason (a panic where services are required;
/// run `bash scripts/test.sh` to set services up).
#[must_use]
pub fn service_url(var: &str) -> Option<String> {
    sessionward_conformance::services::require_env("e2e", var)
}

/// The cargo target directory this test binary was built into.
fn target_dir() -> PathBuf {
    // <target>/debug/deps/<test binary>
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors()
        .nth(3)
        .map_or_else(|| PathBuf::from("target"), PathBuf::from)
}

fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors()
        .nth(2)
        .map_or_else(|| PathBuf::from("target/debug"), PathBuf::from)
}

/// Where screenshots and other artefacts of the tests go.
#[must_use]
pub fn artefact_dir() -> PathBuf {
    let dir = target_dir().join("e2e-artefacts");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Builds `demo-app` (once per test binary) and returns the path of its binary.
///
/// # Panics
/// If the build fails.
pub fn demo_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["build", "-q", "-p", "demo-app", "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(target_dir());
        if profile_dir().file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build -p demo-app");
        assert!(status.success(), "cargo build -p demo-app failed");
        profile_dir().join(format!("demo-app{}", std::env::consts::EXE_SUFFIX))
    })
    .clone()
}

/// Kills (SIGKILL) the process group led by `pid` (from `Child::id`, `None` once reaped): the
/// process and everything it started in that group (a driver's browsers, nginx). Children
/// are started with `process_group(0)`.
pub fn kill_process_group(pid: Option<u32>) {
    if let Some(pid) = pid {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
    }
}

/// A free TCP port on 127.0.0.1.
///
/// # Panics
/// If no port can be bound.
#[must_use]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running demo-app; killed when dropped.
#[derive(Debug)]
pub struct DemoApp {
    child: Child,
    /// `http://127.0.0.1:PORT`, or `https://` when it serves TLS (`--self-signed`).
    pub base: String,
    /// The port it listens on.
    pub port: u16,
}

impl DemoApp {
    /// Starts `demo-app --listen 127.0.0.1:<free port> <args>` and waits (at most 60 s) for
    /// its `listening on http://` (or `https://`) line.
    ///
    /// # Panics
    /// If it does not start.
    pub async fn start(args: &[&str]) -> Self {
        Self::start_on(free_port(), args).await
    }

    /// Like [`DemoApp::start`], on a given port (to restart an app where it was).
    ///
    /// # Panics
    /// If it does not start.
    pub async fn start_on(port: u16, args: &[&str]) -> Self {
        let bin = demo_binary();
        let mut child = Command::new(&bin)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("listening on http://") {
                    return Some("http");
                }
                if line.contains("listening on https://") {
                    return Some("https");
                }
            }
            None
        })
        .await;
        let Ok(Some(scheme)) = ready else {
            panic!("demo-app {args:?} did not print `listening on http(s)://` within 60 s");
        };
        // Keep draining stdout so the app never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            child,
            base: format!("{scheme}://127.0.0.1:{port}"),
            port,
        }
    }

    /// Stops the app (SIGKILL) and waits for it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }

    /// A client for this app.
    #[must_use]
    pub fn client(&self) -> Client {
        Client {
            base: self.base.clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
        }
    }
}

/// What a request carries for authentication.
#[derive(Clone, Copy, Debug)]
pub enum Auth<'a> {
    /// Nothing.
    None,
    /// `Cookie: __Host-id=<value>`.
    Cookie(&'a str),
    /// `Authorization: Bearer <value>`.
    Bearer(&'a str),
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body text.
    pub text: String,
}

impl Reply {
    /// The body as JSON (`Null` if it is not JSON).
    #[must_use]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// Every `Set-Cookie` header.
    #[must_use]
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }

    /// The session cookie value this response sets (`None` if none, or if it clears it).
    #[must_use]
    pub fn session_cookie(&self) -> Option<String> {
        self.set_cookies().iter().find_map(|c| {
            let v = c.strip_prefix("__Host-id=")?.split(';').next()?;
            (!v.is_empty()).then(|| v.to_owned())
        })
    }

    /// Whether this response clears the session cookie.
    #[must_use]
    pub fn clears_cookie(&self) -> bool {
        self.set_cookies()
            .iter()
            .any(|c| c.starts_with("__Host-id=;") && c.contains("Max-Age=0"))
    }
}

fn with_auth(req: reqwest::RequestBuilder, auth: Auth<'_>) -> reqwest::RequestBuilder {
    match auth {
        Auth::None => req,
        Auth::Cookie(c) => req.header("cookie", format!("__Host-id={c}")),
        Auth::Bearer(t) => req.header("authorization", format!("Bearer {t}")),
    }
}

async fn read(req: reqwest::RequestBuilder) -> Reply {
    let res = req.send().await.expect("request sent");
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap_or_default();
    Reply {
        status,
        headers,
        text,
    }
}

/// An HTTP client for one app, with no cookie jar: the tests set cookies explicitly.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// A client for `base` (such as `https://127.0.0.1:PORT` of a proxy in front of an app)
    /// that trusts the PEM certificate `root_pem` besides the usual roots.
    ///
    /// # Panics
    /// If the certificate cannot be read.
    #[must_use]
    pub fn for_base(base: &str, root_pem: Option<&str>) -> Self {
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30));
        if let Some(pem) = root_pem {
            let cert = reqwest::Certificate::from_pem(pem.as_bytes()).expect("a PEM certificate");
            b = b.add_root_certificate(cert);
        }
        Self {
            base: base.to_owned(),
            http: b.build().expect("http client"),
        }
    }

    /// Sends a request; `body` is sent as JSON when given.
    ///
    /// # Panics
    /// If the request cannot be sent.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<Value>,
        extra: &[(&str, &str)],
    ) -> Reply {
        let mut headers = extra.to_vec();
        if body.is_some()
            && !extra
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            headers.push(("content-type", "application/json"));
        }
        let body = body.map(|b| b.to_string());
        self.send_raw(method, path, auth, body, &headers).await
    }

    async fn send_raw(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<String>,
        extra: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        req = with_auth(req, auth);
        for (k, v) in extra {
            req = req.header(*k, HeaderValue::from_str(v).expect("header value"));
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        read(req).await
    }

    /// POST with a form body (`application/x-www-form-urlencoded`, already encoded), as an
    /// HTML form sends it.
    ///
    /// # Panics
    /// If the request cannot be sent.
    pub async fn post_form(
        &self,
        path: &str,
        auth: Auth<'_>,
        form: &str,
        extra: &[(&str, &str)],
    ) -> Reply {
        let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
        headers.extend_from_slice(extra);
        self.send_raw(Method::POST, path, auth, Some(form.to_owned()), &headers)
            .await
    }

    /// GET.
    pub async fn get(&self, path: &str, auth: Auth<'_>) -> Reply {
        self.send(Method::GET, path, auth, None, &[]).await
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, auth: Auth<'_>, body: Value) -> Reply {
        self.send(Method::POST, path, auth, Some(body), &[]).await
    }

    /// Signs in through `POST /api/login`; returns the session cookie value.
    ///
    /// # Panics
    /// If sign-in fails.
    ///
    /// A sign-in that starts within the layer's authorization clock margin (1 s) after a
    /// change of the user's authorization (sessions ended, roles or password changed) is
    /// refused with 409 `authorization_changed` by design, and a client signs in again: so
    /// does this, for at most 3 s.
    pub async fn login(&self, user: &str) -> String {
        let body = serde_json::json!({ "username": user, "password": format!("{user}-password") });
        let mut r = self.post("/api/login", Auth::None, body.clone()).await;
        // A sign-in right after a change of the user's authorization (a demotion, signing out
        // everywhere) is refused for up to `Retry-After` seconds (SEC-16); a client makes it
        // again after that, as the demo's contract says.
        if r.status == StatusCode::CONFLICT && r.text.contains("authorization_changed") {
            let wait = r
                .headers
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .expect("a refused sign-in says when to retry");
            assert!(wait <= 10, "Retry-After {wait} s");
            tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
            r = self.post("/api/login", Auth::None, body).await;
        }
        assert_eq!(r.status, StatusCode::OK, "login {user}: {}", r.text);
        r.session_cookie().expect("login sets the session cookie")
    }
}
