//! The sign-in / signed-in page / sign-out flow every engine must pass, and what it observed.
//!
//! Chromium and WebKit run it over classic WebDriver ([`crate::webdriver`]); Firefox runs it
//! over WebDriver BiDi through `tests/js/firefox-flow.mjs` (puppeteer-core driving Debian's
//! `firefox-esr`; there is no geckodriver package). Both report an [`Outcome`], which the
//! tests check with [`assert_signs_in_and_out`] or [`assert_sign_in_does_not_stick`].

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::webdriver::Browser;
use sessionward_conformance::services;

use crate::kill_process_group;

/// The page a signed-in person sees (their account and sessions). One constant, so the
/// tests follow when the demo moves it.
pub const SIGNED_IN_PAGE: &str = "/";

/// The session cookie's name.
pub const COOKIE: &str = "__Host-id";

/// A cookie as the browser stored it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieSeen {
    /// Name.
    pub name: String,
    /// Value (the session token: never printed by the assertions).
    pub value: String,
    /// `Secure`.
    pub secure: bool,
    /// `HttpOnly`.
    pub http_only: bool,
    /// `SameSite`, as the browser reports it (`Strict`, `Lax`, `None`), if it reports one.
    pub same_site: Option<String>,
    /// `Path`.
    pub path: String,
    /// Whether it has an expiry (a persistent cookie) rather than ending with the browser.
    pub persistent: bool,
}

impl CookieSeen {
    fn from_webdriver(v: &Value) -> Self {
        Self {
            name: v["name"].as_str().unwrap_or_default().to_owned(),
            value: v["value"].as_str().unwrap_or_default().to_owned(),
            secure: v["secure"].as_bool().unwrap_or(false),
            http_only: v["httpOnly"].as_bool().unwrap_or(false),
            same_site: v["sameSite"].as_str().map(str::to_owned),
            path: v["path"].as_str().unwrap_or_default().to_owned(),
            persistent: v.get("expiry").is_some_and(|e| !e.is_null()),
        }
    }

    fn from_flow_json(v: &Value) -> Self {
        Self {
            name: v["name"].as_str().unwrap_or_default().to_owned(),
            value: v["value"].as_str().unwrap_or_default().to_owned(),
            secure: v["secure"].as_bool().unwrap_or(false),
            http_only: v["http_only"].as_bool().unwrap_or(false),
            same_site: v["same_site"].as_str().map(str::to_owned),
            path: v["path"].as_str().unwrap_or_default().to_owned(),
            persistent: v["persistent"].as_bool().unwrap_or(true),
        }
    }
}

/// What one run of the flow at one base URL observed.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Which engine, at which URL (for messages).
    pub label: String,
    /// Whether [`SIGNED_IN_PAGE`] showed the signed-in page after the form was submitted.
    pub signed_in: bool,
    /// The user name that page showed.
    pub username: Option<String>,
    /// The cookies the browser held then.
    pub cookies_signed_in: Vec<CookieSeen>,
    /// `document.cookie` on that page.
    pub document_cookie: String,
    /// That page's HTML.
    pub page_source: String,
    /// Whether signing out led back to the sign-in form.
    pub signed_out_to_form: bool,
    /// The cookies the browser held after signing out.
    pub cookies_signed_out: Vec<CookieSeen>,
}

/// Checks that the person signed in as alice with a well-formed session cookie that scripts
/// cannot read, and that signing out removed it.
///
/// # Panics
/// If any of that does not hold.
pub fn assert_signs_in_and_out(o: &Outcome) {
    let l = &o.label;
    assert!(
        o.signed_in,
        "{l}: not signed in after the form; page:\n{}",
        o.page_source
    );
    assert_eq!(o.username.as_deref(), Some("alice"), "{l}");
    let names: Vec<&str> = o
        .cookies_signed_in
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, [COOKIE], "{l}: cookies held while signed in");
    let c = &o.cookies_signed_in[0];
    assert_eq!(
        (
            c.secure,
            c.http_only,
            c.same_site.as_deref(),
            c.path.as_str(),
            c.persistent
        ),
        (true, true, Some("Strict"), "/", false),
        "{l}: (Secure, HttpOnly, SameSite, Path, has an expiry) of {COOKIE}"
    );
    assert!(!c.value.is_empty(), "{l}: empty session cookie");
    assert!(
        !o.document_cookie.contains(COOKIE) && !o.document_cookie.contains(&c.value),
        "{l}: document.cookie shows the session cookie"
    );
    assert!(
        !o.page_source.contains(&c.value),
        "{l}: the token appears in the page"
    );
    assert!(
        o.signed_out_to_form,
        "{l}: sign-out did not lead to the sign-in form"
    );
    assert!(
        o.cookies_signed_out.iter().all(|c| c.name != COOKIE),
        "{l}: sign-out left the session cookie"
    );
}

/// Checks the engine refused to keep the session cookie: the form was submitted and the
/// person is back at the sign-in form, holding no session cookie (what WebKitGTK does with
/// a `Secure` cookie from a plain-http URL, localhost included).
///
/// # Panics
/// If the sign-in stuck after all.
pub fn assert_sign_in_does_not_stick(o: &Outcome) {
    let l = &o.label;
    assert!(
        !o.signed_in,
        "{l}: the sign-in stuck (the engine kept the Secure cookie)"
    );
    assert!(
        o.cookies_signed_in.iter().all(|c| c.name != COOKIE),
        "{l}: the engine stored {COOKIE} but did not send it"
    );
    assert!(
        o.page_source.contains("login-form"),
        "{l}: not back at the sign-in form"
    );
}

/// Runs the flow at `base` in a WebDriver browser.
pub async fn webdriver_flow(browser: &Browser<'_>, label: &str, base: &str) -> Outcome {
    browser.goto(&format!("{base}/")).await;
    browser.wait_for("#login-form").await;
    browser.type_into("#username", "alice").await;
    browser.type_into("#password", "alice-password").await;
    // The form posts and is redirected (to the signed-in page, or back to the form when the
    // cookie did not stick): wait for a new document, marked by the old one's flag being
    // gone, before asking for the signed-in page itself.
    browser
        .execute("window.swSubmitted = true; return true;")
        .await;
    browser.click("#sign-in").await;
    browser
        .wait_until("return window.swSubmitted !== true && document.readyState === 'complete';")
        .await;
    browser.goto(&format!("{base}{SIGNED_IN_PAGE}")).await;
    browser.wait_for_any(&["#welcome", "#login-form"]).await;
    let signed_in = browser.find("#welcome").await.is_some();
    let username = if signed_in {
        Some(browser.text("#welcome #username").await)
    } else {
        None
    };
    let cookies_signed_in = browser
        .cookies()
        .await
        .iter()
        .map(CookieSeen::from_webdriver)
        .collect();
    let document_cookie = browser
        .execute("return document.cookie;")
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let page_source = browser.source().await;
    let mut outcome = Outcome {
        label: label.to_owned(),
        signed_in,
        username,
        cookies_signed_in,
        document_cookie,
        page_source,
        signed_out_to_form: false,
        cookies_signed_out: Vec::new(),
    };
    if signed_in {
        browser.click("#sign-out").await;
        browser.wait_for("#login-form").await;
        outcome.signed_out_to_form = true;
        outcome.cookies_signed_out = browser
            .cookies()
            .await
            .iter()
            .map(CookieSeen::from_webdriver)
            .collect();
    }
    outcome
}

const FIREFOX: &str = "/usr/bin/firefox-esr";

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// Runs the flow at each of `bases` in one headless Firefox (which accepts any certificate),
/// bounded to 120 s; `None` (a printed reason) if firefox-esr, node or the npm packages are
/// missing.
///
/// # Panics
/// If something is missing while `SESSIONWARD_REQUIRE_SERVICES=1`, or the run fails.
pub async fn firefox_flow(bases: &[&str]) -> Option<Vec<Outcome>> {
    let script = js_dir().join("firefox-flow.mjs");
    let module = js_dir().join("node_modules/puppeteer-core");
    let have_node = std::process::Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !(Path::new(FIREFOX).exists() && module.exists() && have_node) {
        return services::skip(
            "firefox",
            "firefox-esr, node or tests/js/node_modules missing (bash scripts/setup.sh)",
        );
    }
    let mut child = Command::new("node")
        .arg(&script)
        .arg(SIGNED_IN_PAGE)
        .args(bases)
        .env("FIREFOX_BIN", FIREFOX)
        .env("PUPPETEER_SKIP_DOWNLOAD", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("start node");
    let pid = child.id();
    let mut stdout = child.stdout.take().expect("piped stdout");
    let run = tokio::time::timeout(Duration::from_secs(120), async {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out).await;
        (child.wait().await, out)
    })
    .await;
    // node and the Firefox it started share a process group: end all of it.
    kill_process_group(pid);
    let (status, out) = run.expect("the Firefox flow did not finish within 120 s");
    assert!(
        status.is_ok_and(|s| s.success()),
        "the Firefox flow failed: {out}"
    );
    let outcomes: Vec<Outcome> = out
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("a JSON line from firefox-flow.mjs");
            let cookies = |k: &str| -> Vec<CookieSeen> {
                v[k].as_array()
                    .map(|a| a.iter().map(CookieSeen::from_flow_json).collect())
                    .unwrap_or_default()
            };
            Outcome {
                label: format!("Firefox at {}", v["base"].as_str().unwrap_or_default()),
                signed_in: v["signed_in"].as_bool().unwrap_or(false),
                username: v["username"].as_str().map(str::to_owned),
                cookies_signed_in: cookies("cookies_signed_in"),
                document_cookie: v["document_cookie"].as_str().unwrap_or_default().to_owned(),
                page_source: v["page_source"].as_str().unwrap_or_default().to_owned(),
                signed_out_to_form: v["signed_out_to_form"].as_bool().unwrap_or(false),
                cookies_signed_out: cookies("cookies_signed_out"),
            }
        })
        .collect();
    assert_eq!(outcomes.len(), bases.len(), "one outcome per URL: {out}");
    Some(outcomes)
}
