//! A real browser: headless Chromium, driven over WebDriver (chromedriver), signs in through
//! the HTML form, sees the signed-in page and its session, signs out and lands on the form.
//! It saves screenshots in `<target>/e2e-artefacts/`. The other engines, https and nginx are
//! in `engines.rs` and `proxy.rs`.

use serde_json::Value;
use sessionward_e2e::DemoApp;
use sessionward_e2e::webdriver::{Browser, Driver, Engine};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_see_sessions_and_sign_out_in_chromium() {
    let Some(driver) = Driver::start(Engine::Chromium).await else {
        return;
    };
    let app = DemoApp::start(&[]).await;
    // Chromium treats `localhost` as a secure context, so the Secure `__Host-` cookie works
    // over plain HTTP there (WebKit does not: see engines.rs).
    let base = format!("http://localhost:{}", app.port);
    let browser = Browser::open(&driver, false).await;

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
