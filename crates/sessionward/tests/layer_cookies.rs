//! The session cookie: attributes, IDs the server never adopts, malformed and ambiguous values,
//! caching and `Clear-Site-Data`.
//! Through an axum `Router` and `tower::ServiceExt::oneshot`; time is a test clock: nothing
//! here sleeps for a timeout.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{ATTRS, TestApp, assert_token_shape};
use sessionward::SessionStore;
use sessionward_core::Clock as _;
use sessionward_core::SessionToken;

#[tokio::test]
async fn cookie_attributes_on_set_rotate_and_clear() {
    let app = TestApp::new();
    let login = app.post("/login?user=alice&roles=user", None).await;
    let set = login.set_cookies();
    assert_eq!(set.len(), 1);
    let v = login.session_cookie().expect("cookie");
    assert_token_shape(&v);
    assert_eq!(set[0], format!("__Host-id={v}{ATTRS}"));
    assert!(
        !set[0].contains("Max-Age") && !set[0].contains("Expires") && !set[0].contains("Domain")
    );
    assert!(login.no_store());

    let elevate = app.post("/elevate", Some(&v)).await;
    assert_eq!(elevate.status, StatusCode::NO_CONTENT);
    let v2 = elevate.session_cookie().expect("rotated cookie");
    assert_ne!(v2, v);
    assert_eq!(elevate.set_cookies()[0], format!("__Host-id={v2}{ATTRS}"));
    assert!(elevate.no_store());

    let logout = app.post("/logout", Some(&v2)).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    assert_eq!(
        logout.set_cookies(),
        vec![format!("__Host-id=; Max-Age=0{ATTRS}")]
    );
    assert!(logout.no_store());
}

#[tokio::test]
async fn secure_does_not_depend_on_forwarded_proto() {
    let app = TestApp::new();
    let r = app
        .send(
            Request::post("/login?user=alice")
                .header("x-forwarded-proto", "http")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert!(r.set_cookies()[0].contains("; Secure"));
}

#[tokio::test]
async fn persistent_cookie_max_age_never_beyond_absolute_expiry() {
    let app = TestApp::with(|b| b.persistent_cookies(true));
    let r = app.post("/login?user=alice", None).await;
    let c = &r.set_cookies()[0];
    assert!(c.contains("; Max-Age=43200"), "{c}");
    // Remember me, chosen at sign-in: the record's lifetime and the cookie's grow together.
    let r = app.post("/login-remember?days=30", None).await;
    let c = &r.set_cookies()[0];
    assert!(c.contains(&format!("; Max-Age={}", 30 * 86_400)), "{c}");
    let v = r.session_cookie().expect("cookie");
    app.advance(100);
    assert_eq!(app.get("/me", Some(&v)).await.status, StatusCode::OK);
    // Later, without a sign-in, a lifetime can only shrink (SEC-22).
    let v = app.login("alice", "user").await;
    app.advance(100);
    let r = app.post("/remember?days=30", Some(&v)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let c = &r.set_cookies()[0];
    assert!(c.contains(&format!("; Max-Age={}", 43_200 - 100)), "{c}");
    let r = app.post("/remember?days=0", Some(&v)).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.body, r#"{"error":"invalid_session_lifetime"}"#);
    let r = app.post("/remember?days=401", Some(&v)).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn strict_mode_never_adopts_a_forged_id() {
    let app = TestApp::new();
    let forged = SessionToken::generate().expect("rng").expose();
    // A write with an unknown ID gets a new, server-generated one.
    let r = app.post("/cart?item=book", Some(&forged)).await;
    assert_eq!(r.status, StatusCode::OK);
    let issued = r.session_cookie().expect("new session");
    assert_ne!(issued, forged);
    assert!(
        app.store
            .inner
            .load(
                &SessionToken::parse(&forged).expect("t").key(),
                app.clock.now()
            )
            .await
            .expect("load")
            .is_none()
    );
    // The forged ID on a protected route: 401 and the dead cookie is cleared.
    let r = app.get("/me", Some(&forged)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.clears_cookie());
    // And login with a planted valid anonymous ID rotates it away.
    let planted = issued;
    let r = app.post("/login?user=alice", Some(&planted)).await;
    let after = r.session_cookie().expect("rotated");
    assert_ne!(after, planted);
    assert_eq!(
        app.get("/me", Some(&planted)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.get("/me", Some(&after)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn duplicate_cookies_same_value_ok_different_values_ambiguous() {
    let app = TestApp::new();
    let v = app.login("alice", "user").await;
    let other = app.login("bob", "user").await;
    let send = |cookies: Vec<String>| {
        let mut b = Request::get("/me");
        for c in cookies {
            b = b.header(header::COOKIE, c);
        }
        app.send(b.body(Body::empty()).expect("request"))
    };
    // Split across two Cookie fields, or repeated with the same value: fine.
    let r = send(vec!["theme=dark".into(), format!("__Host-id={v}")]).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(vec![format!("__Host-id={v}; __Host-id={v}")]).await;
    assert_eq!(r.status, StatusCode::OK);
    // Two different values: no session, whichever comes first.
    app.store.reset_calls();
    for cookies in [
        vec![format!("__Host-id={v}; __Host-id={other}")],
        vec![format!("__Host-id={other}"), format!("__Host-id={v}")],
    ] {
        let r = send(cookies).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        app.store.total_calls(),
        0,
        "ambiguous IDs reached the store"
    );
    // Names match byte for byte.
    let r = send(vec![format!("__host-id={v}")]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn id_is_read_only_from_the_cookie() {
    let app = TestApp::new();
    let v = app.login("alice", "user").await;
    // A path parameter is not a route here at all.
    let r = app
        .send(
            Request::get(format!("/me;jsessionid={v}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    for r in [
        Request::get(format!("/me?id={v}")).body(Body::empty()),
        Request::get("/me")
            .header("x-session-id", &v)
            .body(Body::empty()),
        Request::get("/me")
            .header(header::AUTHORIZATION, format!("Bearer {v}"))
            .body(Body::empty()),
        Request::get("/me")
            .header(header::COOKIE, format!("id={v}"))
            .body(Body::empty()),
    ] {
        let r = app.send(r.expect("request")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn bad_input_catalogue_is_401_with_no_store_call() {
    let app = TestApp::new();
    let valid = app.login("alice", "user").await;
    let mut alias = valid.clone().into_bytes();
    // Flip a spare bit of the last character: a non-canonical alias of a live ID.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let i = alphabet
        .iter()
        .position(|&c| c == alias[42])
        .expect("in alphabet");
    alias[42] = alphabet[i ^ 1];
    let alias = String::from_utf8(alias).expect("ascii");
    let cookies: Vec<String> = vec![
        String::new(),
        ";;;".into(),
        "=".into(),
        "__Host-id".into(),
        "__Host-id=".into(),
        "__Host-id==x".into(),
        "__Host-id=a".into(),
        format!("__Host-id={}", "A".repeat(22)),
        format!("__Host-id={}", &valid[..42]),
        format!("__Host-id={valid}A"),
        format!("__Host-id={}", "A".repeat(4096)),
        format!("__Host-id={}", "A".repeat(64 * 1024)),
        format!("__Host-id=+{}", &valid[1..]),
        format!("__Host-id={}/", &valid[..42]),
        format!("__Host-id={valid}="),
        format!("__Host-id=%41{}", &valid[3..]),
        format!("__Host-id=\"{valid}\""),
        format!("__Host-id=\t{}", &valid[..41]),
        format!("__Host-id={alias}"),
        "__Host-id=' OR '1'='1".into(),
        "__Host-id=x'--".into(),
        "__Host-id=$1".into(),
        format!("__host-id={valid}"),
        format!("__HOST-ID={valid}"),
        format!("__Secure-id={valid}"),
        format!("id={valid}"),
        "a=b; ".repeat(10_000),
    ];
    app.store.reset_calls();
    for c in &cookies {
        for path in ["/me", "/admin"] {
            let r = app
                .send(
                    Request::get(path)
                        .header(header::COOKIE, c.as_str())
                        .body(Body::empty())
                        .expect("request"),
                )
                .await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path} {:.60}", c);
            assert_eq!(r.body, r#"{"error":"unauthenticated"}"#);
            assert!(!r.body.contains(c.as_str()) || c.is_empty());
        }
        let r = app
            .send(
                Request::get("/public")
                    .header(header::COOKIE, c.as_str())
                    .body(Body::empty())
                    .expect("request"),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    assert_eq!(
        app.store.total_calls(),
        0,
        "malformed IDs reached the store: {:?}",
        app.store.calls()
    );
    // Non-UTF-8 bytes in the header: no panic, no session.
    let r = app
        .send(
            Request::get("/me")
                .header(
                    header::COOKIE,
                    http::HeaderValue::from_bytes(b"__Host-id=\xc3\xa9\xff").expect("obs-text"),
                )
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn clear_site_data_on_logout_is_opt_in() {
    let app = TestApp::new();
    let v = app.login("alice", "user").await;
    assert!(
        app.post("/logout", Some(&v))
            .await
            .headers
            .get("clear-site-data")
            .is_none()
    );
    let app = TestApp::with(|b| b.clear_site_data_on_logout(true));
    let v = app.login("alice", "user").await;
    let r = app.post("/logout", Some(&v)).await;
    assert_eq!(
        r.headers
            .get("clear-site-data")
            .map(|h| h.to_str().expect("ascii")),
        Some("\"cookies\", \"storage\"")
    );
}

#[tokio::test]
async fn signed_in_responses_are_not_cached() {
    let app = TestApp::new();
    let v = app.login("alice", "user").await;
    let r = app.get("/me", Some(&v)).await;
    assert!(r.set_cookies().is_empty());
    assert!(r.no_store());
    assert!(!app.get("/public", None).await.no_store());
}

#[tokio::test]
async fn one_set_cookie_when_login_and_privilege_change_share_a_request() {
    let app = TestApp::new();
    let anon = app
        .post("/cart?item=a", None)
        .await
        .session_cookie()
        .expect("cookie");
    let r = app.post("/login-and-elevate", Some(&anon)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.set_cookies().len(), 1, "{:?}", r.set_cookies());
    let v = r.session_cookie().expect("cookie");
    assert!(format!("__Host-id={v}").len() <= 4096);
    assert_eq!(app.get("/admin", Some(&v)).await.status, StatusCode::OK);
    assert_eq!(app.get("/cart", Some(&v)).await.body, "a");
    assert_eq!(app.store.inner.len(), 1);
}

#[tokio::test]
async fn switching_user_sends_no_clear_site_data() {
    let app = TestApp::with(|b| b.clear_site_data_on_logout(true));
    let v = app.login("alice", "user").await;
    let r = app.post("/switch-user", Some(&v)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(
        r.headers.get("clear-site-data").is_none(),
        "login response would wipe its own cookie"
    );
    let bob = r.session_cookie().expect("cookie");
    assert_eq!(app.get("/me", Some(&bob)).await.body, "bob user");
    assert_eq!(
        app.get("/me", Some(&v)).await.status,
        StatusCode::UNAUTHORIZED
    );
}
