//! Bearer transport and the cross-origin check of cookie requests.
//! Through an axum `Router` and `tower::ServiceExt::oneshot`; time is a test clock: nothing
//! here sleeps for a timeout.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{TestApp, assert_token_shape};
use sessionward::Transport;
use sessionward_core::SessionToken;

#[tokio::test]
async fn bearer_transport() {
    let app = TestApp::with(|b| b.transport(Transport::CookieAndBearer));
    let r = app.post("/token?user=alice&roles=user", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.set_cookies().is_empty(),
        "a bearer login must not set a cookie"
    );
    let token = r.body.clone();
    assert_token_shape(&token);
    assert!(r.no_store());
    let me = app
        .send(
            Request::get("/me")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body, "alice user");
    // Logging out a bearer session deletes it server-side.
    let out = app
        .send(
            Request::post("/logout")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let me = app
        .send(
            Request::get("/me")
                .header(header::AUTHORIZATION, format!("bearer {token}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    // Bearer-only: cookies are ignored.
    let app = TestApp::with(|b| b.transport(Transport::Bearer));
    let r = app.post("/token?user=alice", None).await;
    let me = app.get("/me", Some(&r.body)).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn tokens_do_not_cross_transports() {
    // A browser (cookie) request never gets its token in a body.
    let app = TestApp::with(|b| b.transport(Transport::CookieAndBearer));
    let anon = app
        .post("/cart?item=a", None)
        .await
        .session_cookie()
        .expect("cookie");
    let r = app.post("/token?user=alice", Some(&anon)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body, "",
        "issued_token() handed a cookie session's token to the page"
    );
    assert!(r.session_cookie().is_some());
    // Bearer-only: never a cookie, even if the handler does not take the token.
    let app = TestApp::with(|b| b.transport(Transport::Bearer));
    let r = app.post("/login?user=alice", None).await;
    assert!(r.set_cookies().is_empty(), "{:?}", r.set_cookies());
}

#[tokio::test]
async fn a_bearer_client_never_gets_a_cookie() {
    let app = TestApp::with(|b| b.transport(Transport::CookieAndBearer));
    let bearer = |path: &str, token: &str| {
        Request::put(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .expect("request")
    };
    // A dead bearer token's write goes to a new session, but not into a cookie.
    let dead = SessionToken::generate().expect("rng").expose();
    let r = app.send(bearer("/prefs/x", &dead)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.set_cookies().is_empty(), "{:?}", r.set_cookies());
    // A live bearer session's write: no cookie either.
    let t = app.post("/token?user=alice", None).await.body;
    let r = app.send(bearer("/prefs/y", &t)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.set_cookies().is_empty());
}
#[tokio::test]
async fn cross_site_unsafe_requests_with_the_session_cookie_are_refused_by_default() {
    let app = TestApp::new();
    let v = app
        .post("/cart?item=a", None)
        .await
        .session_cookie()
        .expect("cookie");
    let cross = |path: &str, header_name: &'static str, value: &'static str| {
        Request::post(path)
            .header(header::COOKIE, format!("__Host-id={v}"))
            .header(header::HOST, "shop.example")
            .header(header_name, value)
            .body(Body::empty())
            .expect("request")
    };
    app.store.reset_calls();
    for (name, value) in [
        ("sec-fetch-site", "cross-site"),
        ("origin", "https://evil.example"),
    ] {
        let r = app.send(cross("/cart?item=evil", name, value)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(r.body, r#"{"error":"cross_origin_request_blocked"}"#);
        let r = app.send(cross("/logout", name, value)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(app.store.total_calls(), 0);
    assert_eq!(app.get("/cart", Some(&v)).await.body, "a");
    // Same-origin and non-browser requests pass; so does a cross-site request without the
    // cookie (there is no session to abuse).
    let ok = app
        .send(cross("/cart?item=b", "origin", "https://shop.example"))
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let r = app
        .send(
            Request::post("/cart?item=c")
                .header("sec-fetch-site", "cross-site")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Opt-out.
    let app = TestApp::with(|b| b.cross_origin_check(None));
    let v = app
        .post("/cart?item=a", None)
        .await
        .session_cookie()
        .expect("cookie");
    let r = app
        .send(
            Request::post("/cart?item=b")
                .header(header::COOKIE, format!("__Host-id={v}"))
                .header("sec-fetch-site", "cross-site")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}
