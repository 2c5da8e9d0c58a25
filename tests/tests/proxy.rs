//! The demo behind a real nginx terminating TLS, once for each common way nginx sets the
//! `Host` it forwards (`$proxy_host`, its default; `$host`; `$http_host`). The requests are
//! the ones a current browser sends from the demo's own pages: the sign-in form (its
//! `Referrer-Policy: no-referrer` makes that `Origin: null`), then script requests from the
//! page, which carry the page's real `Origin` and `Sec-Fetch-Site: same-origin`.
//!
//! Each must sign in, accept the same-origin POST, refuse a cross-site POST with 403 and sign
//! out. With `$proxy_host` and `$host` the forwarded `Host` is not the origin the browser
//! used, so a guard that compares `Origin` with `Host` (rather than believing
//! `Sec-Fetch-Site: same-origin`) refuses the same-origin POST: those two tests fail until
//! the cross-origin check of issue 11 lands.

mod tls;

use reqwest::StatusCode;
use serde_json::json;
use sessionward_e2e::nginx::{HostHeader, Nginx};
use sessionward_e2e::{Auth, Client, DemoApp};

async fn same_origin_post_and_sign_out_behind(host: HostHeader) {
    let app = DemoApp::start(&[]).await;
    let (cert, key) = tls::throwaway_cert();
    let Some(nginx) = Nginx::start(app.port, host, &cert, &key).await else {
        return;
    };
    let h = host.variable();
    let c = Client::for_base(&nginx.base, Some(&cert));
    let origin = nginx.base.as_str();
    let same_origin = [("origin", origin), ("sec-fetch-site", "same-origin")];

    // The sign-in form, as the browser submits it from the demo's page.
    let r = c
        .post_form(
            "/login",
            Auth::None,
            "username=alice&password=alice-password",
            &[("origin", "null"), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "Host {h}: sign-in: {}",
        r.text
    );
    let cookie = r.session_cookie().expect("sign-in sets the session cookie");
    let r = c.get("/api/me", Auth::Cookie(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK, "Host {h}: /api/me: {}", r.text);

    // A script on the page posts with the page's real Origin.
    let r = c
        .send(
            reqwest::Method::POST,
            "/api/cart",
            Auth::Cookie(&cookie),
            Some(json!({ "item": "book" })),
            &same_origin,
        )
        .await;
    assert!(
        r.status.is_success(),
        "Host {h}: a same-origin POST with Origin {origin} was refused: {} {}",
        r.status,
        r.text
    );

    // Another site's page posting to the app with the person's cookie is refused.
    let r = c
        .send(
            reqwest::Method::POST,
            "/api/cart",
            Auth::Cookie(&cookie),
            Some(json!({ "item": "forged" })),
            &[
                ("origin", "https://evil.example"),
                ("sec-fetch-site", "cross-site"),
            ],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "Host {h}: a cross-site POST: {}",
        r.text
    );
    let r = c.get("/api/cart", Auth::Cookie(&cookie)).await;
    assert!(
        !r.text.contains("forged"),
        "Host {h}: the cross-site POST changed the cart"
    );

    // Sign-out from the page, again with the real Origin.
    let r = c
        .send(
            reqwest::Method::POST,
            "/api/logout",
            Auth::Cookie(&cookie),
            None,
            &same_origin,
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::NO_CONTENT,
        "Host {h}: sign-out: {}",
        r.text
    );
    assert!(
        r.clears_cookie(),
        "Host {h}: sign-out did not clear the cookie"
    );
    let r = c.get("/api/me", Auth::Cookie(&cookie)).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "Host {h}: the session outlived sign-out"
    );

    drop(nginx);
    app.stop().await;
}

#[tokio::test]
async fn behind_nginx_with_host_proxy_host() {
    same_origin_post_and_sign_out_behind(HostHeader::ProxyHost).await;
}

#[tokio::test]
async fn behind_nginx_with_host_host() {
    same_origin_post_and_sign_out_behind(HostHeader::Host).await;
}

#[tokio::test]
async fn behind_nginx_with_host_http_host() {
    same_origin_post_and_sign_out_behind(HostHeader::HttpHost).await;
}
