//! The sign-in requirement's answer to each kind of client (SEC-42): browser navigations are
//! sent to the sign-in page with `next`, htmx requests get `HX-Redirect`, API clients the 401
//! with `WWW-Authenticate`; a 403 never redirects.

mod common;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use common::{Reply, TestApp};
use http_body_util::BodyExt as _;
use sessionward::{SessionConfigBuilder, Transport, require_auth, require_role};
use tower::ServiceExt as _;

/// The common test app plus route-layer protected pages, with `configure` applied.
fn app(configure: impl FnOnce(SessionConfigBuilder) -> SessionConfigBuilder) -> (TestApp, Router) {
    let app = TestApp::with(configure);
    let pages = Router::new()
        .route("/pages/account", get(|| async { "account" }))
        .route("/signin", get(|| async { "the sign-in form" }))
        .route_layer(require_auth());
    let admin_pages = Router::new()
        .route("/pages/admin", get(|| async { "admin" }))
        .route_layer(require_role("admin"));
    let router = common::routes()
        .merge(pages)
        .merge(admin_pages)
        .layer(app.layer.clone());
    (app, router)
}

fn with_sign_in(b: SessionConfigBuilder) -> SessionConfigBuilder {
    b.sign_in_page("/signin")
}

async fn send(router: &Router, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut b = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let res = router
        .clone()
        .oneshot(b.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn header<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
    r.headers.get(name).map(|v| v.to_str().expect("ascii"))
}

fn challenges(r: &Reply) -> Vec<String> {
    r.headers
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect()
}

const HTML: (&str, &str) = ("accept", "text/html,application/xhtml+xml,*/*;q=0.8");
const NAVIGATE: (&str, &str) = ("sec-fetch-mode", "navigate");
const HTMX: (&str, &str) = ("hx-request", "true");

#[tokio::test]
async fn a_browser_navigation_is_sent_to_the_sign_in_page_with_next() {
    let (_app, router) = app(with_sign_in);
    // Extractor (RequireAuth), route layer (require_auth), role extractor and role layer,
    // step-up extractor: signed out, each one redirects.
    for (path, next) in [
        ("/me", "/me"),
        ("/me?tab=security&x=1", "/me%3Ftab%3Dsecurity%26x%3D1"),
        ("/pages/account", "/pages/account"),
        ("/admin", "/admin"),
        ("/pages/admin", "/pages/admin"),
        ("/fresh", "/fresh"),
        ("/sessions", "/sessions"),
    ] {
        for h in [HTML, NAVIGATE] {
            let r = send(&router, "GET", path, &[h]).await;
            assert_eq!(r.status, StatusCode::SEE_OTHER, "{path} {h:?}");
            assert_eq!(
                header(&r, "location"),
                Some(format!("/signin?next={next}").as_str()),
                "{path}"
            );
            assert!(r.no_store(), "{path}");
            assert!(r.body.is_empty());
        }
    }
    // HEAD too; an unsafe method is sent to the page without a `next` it could not repeat.
    let r = send(&router, "HEAD", "/pages/account", &[HTML]).await;
    assert_eq!(header(&r, "location"), Some("/signin?next=/pages/account"));
    let r = send(&router, "POST", "/logout-others", &[NAVIGATE]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(header(&r, "location"), Some("/signin"));
}

#[tokio::test]
async fn next_is_only_a_safe_path() {
    let router = Router::new()
        .route("/{*rest}", get(|| async { "protected" }))
        .route_layer(require_auth())
        .layer(TestApp::with(with_sign_in).layer);
    for path in ["/%2F/evil.example", "/x/%5Cevil", "/a%09b", "/a//b"] {
        let r = send(&router, "GET", path, &[HTML]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(header(&r, "location"), Some("/signin"), "{path}");
    }
}

#[tokio::test]
async fn the_sign_in_page_is_never_redirected_to_itself() {
    let (_app, router) = app(with_sign_in);
    let r = send(&router, "GET", "/signin", &[HTML]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(header(&r, "location").is_none());
}

#[tokio::test]
async fn htmx_gets_401_with_hx_redirect_to_the_page_it_came_from() {
    let (_app, router) = app(with_sign_in);
    let r = send(
        &router,
        "GET",
        "/me",
        &[
            HTMX,
            ("hx-current-url", "https://app.example/cart?item=7#top"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&r, "hx-redirect"),
        Some("/signin?next=/cart%3Fitem%3D7")
    );
    assert_eq!(challenges(&r), [r#"Cookie form-action="/signin""#]);
    assert_eq!(r.body, r#"{"error":"unauthenticated"}"#);
    // HX-Request wins over Accept: text/html; a page the app could not have served is no
    // `next`; no HX-Current-URL at all neither.
    for current in [
        Some("https://app.example//evil.example"),
        Some("not a url"),
        Some("https://app.example/%2F/evil"),
        None,
    ] {
        let mut h = vec![HTMX, HTML];
        if let Some(c) = current {
            h.push(("hx-current-url", c));
        }
        let r = send(&router, "POST", "/logout-others", &h).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{current:?}");
        assert_eq!(header(&r, "hx-redirect"), Some("/signin"), "{current:?}");
    }
    // `HX-Request: false` is not htmx.
    let r = send(&router, "GET", "/me", &[("hx-request", "false")]).await;
    assert!(header(&r, "hx-redirect").is_none());
}

#[tokio::test]
async fn an_api_client_gets_401_with_a_challenge_for_its_transport() {
    for (transport, expected) in [
        (Transport::Cookie, vec![r#"Cookie form-action="/signin""#]),
        (Transport::Bearer, vec!["Bearer"]),
        (
            Transport::CookieAndBearer,
            vec!["Bearer", r#"Cookie form-action="/signin""#],
        ),
    ] {
        let (_app, router) = app(|b| with_sign_in(b).transport(transport));
        for path in ["/me", "/pages/account", "/admin", "/sessions"] {
            let r = send(&router, "GET", path, &[("accept", "application/json")]).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
            assert_eq!(challenges(&r), expected, "{path} {transport:?}");
            assert!(header(&r, "location").is_none() && header(&r, "hx-redirect").is_none());
            assert_eq!(r.body, r#"{"error":"unauthenticated"}"#);
            assert_eq!(header(&r, "content-type"), Some("application/json"));
        }
    }
    // Step-up: RFC 9470's error code for a bearer client.
    let (app, router) = app(|b| with_sign_in(b).transport(Transport::Bearer));
    let r = app.post("/token?user=alice&roles=user", None).await;
    let token = r.body;
    app.advance(61);
    let auth = format!("Bearer {token}");
    let r = send(&router, "GET", "/fresh", &[("authorization", &auth)]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenges(&r),
        [r#"Bearer error="insufficient_user_authentication""#]
    );
}

#[tokio::test]
async fn without_a_sign_in_page_every_client_gets_the_401_and_a_challenge() {
    let (_app, router) = app(|b| b);
    for h in [HTML, NAVIGATE, HTMX, ("accept", "*/*")] {
        let r = send(&router, "GET", "/pages/account", &[h]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{h:?}");
        assert_eq!(challenges(&r), ["Cookie"]);
        assert!(header(&r, "location").is_none() && header(&r, "hx-redirect").is_none());
    }
}

#[tokio::test]
async fn a_signed_in_user_without_the_role_gets_403_never_a_redirect() {
    let (app, router) = app(with_sign_in);
    let cookie = app.login("alice", "user").await;
    let cookie = format!("__Host-id={cookie}");
    for path in ["/admin", "/pages/admin"] {
        for h in [HTML, NAVIGATE, HTMX] {
            let r = send(&router, "GET", path, &[h, ("cookie", &cookie)]).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{path} {h:?}");
            assert!(header(&r, "location").is_none());
            assert!(header(&r, "hx-redirect").is_none());
            assert!(challenges(&r).is_empty());
        }
    }
    // Signed in, the protected page is served.
    let r = send(
        &router,
        "GET",
        "/pages/account",
        &[HTML, ("cookie", &cookie)],
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "account"));
}

#[tokio::test]
async fn a_store_failure_is_503_never_a_redirect() {
    let (app, router) = app(with_sign_in);
    let cookie = format!("__Host-id={}", app.login("alice", "user").await);
    app.store.fail(true);
    for path in ["/me", "/pages/account"] {
        let r = send(&router, "GET", path, &[HTML, ("cookie", &cookie)]).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(header(&r, "location").is_none());
    }
}

#[tokio::test]
async fn an_expired_step_up_sends_the_browser_to_sign_in_again() {
    let (app, router) = app(with_sign_in);
    let cookie = format!("__Host-id={}", app.login("alice", "user").await);
    let r = send(&router, "GET", "/fresh", &[HTML, ("cookie", &cookie)]).await;
    assert_eq!(r.status, StatusCode::OK);
    app.advance(61);
    let r = send(&router, "GET", "/fresh", &[HTML, ("cookie", &cookie)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(header(&r, "location"), Some("/signin?next=/fresh"));
}
