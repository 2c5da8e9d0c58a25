//! The layer's behaviour, through an axum `Router` and `tower::ServiceExt::oneshot`.
//! Time is a test clock: nothing here sleeps for a timeout.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{TestApp, req};
use sessionward::{SessionConfig, SessionStore, Transport};
use sessionward_core::Clock as _;
use sessionward_core::SessionToken;

const ATTRS: &str = "; Path=/; Secure; HttpOnly; SameSite=Strict";

fn assert_token_shape(v: &str) {
    assert_eq!(v.len(), 43, "{v}");
    assert!(
        v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{v}"
    );
}

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
async fn uniform_401_for_every_kind_of_missing_session() {
    let app = TestApp::with(|b| {
        b.idle_timeout(Duration::from_secs(60))
            .absolute_timeout(Duration::from_secs(600))
    });
    let revoked = app.login("alice", "user").await;
    app.layer
        .sessions()
        .revoke_user(&"alice".into())
        .await
        .expect("revoke");
    let logged_out = app.login("bob", "user").await;
    app.post("/logout", Some(&logged_out)).await;
    let expired = app.login("carol", "user").await;
    app.advance(61);
    let unknown = SessionToken::generate().expect("rng").expose();
    let mut bodies = Vec::new();
    for cookie in [
        None,
        Some("garbage"),
        Some(unknown.as_str()),
        Some(expired.as_str()),
        Some(revoked.as_str()),
        Some(logged_out.as_str()),
    ] {
        for path in ["/me", "/admin"] {
            let r = app.get(path, cookie).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path} {cookie:?}");
            bodies.push(r.body);
        }
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    assert_eq!(bodies[0], r#"{"error":"unauthenticated"}"#);
}

#[tokio::test]
async fn roles_come_only_from_the_server_record() {
    let app = TestApp::new();
    let v = app.login("alice", "user").await;
    assert_eq!(
        app.get("/admin", Some(&v)).await.status,
        StatusCode::FORBIDDEN
    );
    for r in [
        Request::get("/admin?role=admin")
            .header(header::COOKIE, format!("__Host-id={v}"))
            .body(Body::empty()),
        Request::get("/admin")
            .header(header::COOKIE, format!("__Host-id={v}"))
            .header("x-role", "admin")
            .body(Body::empty()),
        Request::get("/admin")
            .header(header::COOKIE, format!("__Host-id={v}"))
            .header("x-original-url", "/admin")
            .header("x-forwarded-for", "127.0.0.1")
            .body(Body::empty()),
    ] {
        assert_eq!(
            app.send(r.expect("request")).await.status,
            StatusCode::FORBIDDEN
        );
    }
    let a = app.login("root", "user,admin").await;
    let r = app.get("/admin", Some(&a)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "admin root"));
}

#[tokio::test]
async fn failing_store_is_503_never_a_pass() {
    let app = TestApp::new();
    let admin = app.login("root", "user,admin").await;
    app.store.fail(true);
    for path in ["/me", "/admin", "/fresh", "/cart", "/sessions"] {
        let r = app.get(path, Some(&admin)).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(r.body, r#"{"error":"session_store_unavailable"}"#);
    }
    // Without a cookie there is nothing to load: a clean 401, not a 503.
    assert_eq!(app.get("/me", None).await.status, StatusCode::UNAUTHORIZED);
    // A route that does not use the session is unaffected.
    assert_eq!(
        app.get("/public", Some(&admin)).await.status,
        StatusCode::OK
    );
    // A write whose save fails is a 503, and sets no cookie.
    let r = app.post("/cart?item=x", None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.set_cookies().is_empty());
    let r = app.post("/login?user=alice", None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.set_cookies().is_empty());
    app.store.fail(false);
    assert_eq!(app.get("/admin", Some(&admin)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn full_store_is_503() {
    let clock = sessionward::TestClock::new(sessionward::Timestamp::from_unix(1_800_000_000));
    let store = sessionward::MemoryStore::builder()
        .max_sessions(1)
        .sweep(sessionward_memory::SweepConfig::disabled())
        .build();
    let config = SessionConfig::builder()
        .clock(Arc::new(clock))
        .build()
        .expect("config");
    let app = common::routes().layer(sessionward::SessionLayer::with_config(store, config));
    use tower::ServiceExt as _;
    let r = app
        .clone()
        .oneshot(req("POST", "/cart?item=a", None))
        .await
        .expect("ok");
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .oneshot(req("POST", "/cart?item=b", None))
        .await
        .expect("ok");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().get(header::SET_COOKIE).is_none());
}

#[tokio::test]
async fn handler_5xx_persists_nothing() {
    let app = TestApp::new();
    let r = app.post("/fail-after-write", None).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.set_cookies().is_empty());
    assert!(app.store.inner.is_empty());
    let v = app
        .post("/cart?item=book", None)
        .await
        .session_cookie()
        .expect("cookie");
    let r = app.post("/fail-after-write", Some(&v)).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(app.get("/cart", Some(&v)).await.body, "book");
}

#[tokio::test]
async fn lazy_load_and_one_round_trip_per_read() {
    let app = TestApp::new();
    let v = app.login("alice", "user").await;
    app.store.reset_calls();
    let r = app.get("/public", Some(&v)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.set_cookies().is_empty());
    assert_eq!(
        app.store.total_calls(),
        0,
        "a session-less route touched the store"
    );
    let r = app.get("/me", Some(&v)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.set_cookies().is_empty());
    assert_eq!(
        app.store.calls().into_iter().collect::<Vec<_>>(),
        vec![("load", 1)]
    );
    // Reading twice in one request still loads once.
    app.store.reset_calls();
    app.post("/elevate", Some(&v)).await; // reads roles, then rotates
    assert_eq!(app.store.calls().get("load"), Some(&1));
    // Anonymous reads create nothing.
    let before = app.store.inner.len();
    for _ in 0..20 {
        let r = app.get("/cart", None).await;
        assert!(r.set_cookies().is_empty());
    }
    assert_eq!(app.store.inner.len(), before);
}

#[tokio::test]
async fn touch_is_coalesced_by_the_touch_interval() {
    let app = TestApp::new(); // idle 30 min: touch interval 60 s
    let v = app.login("alice", "user").await;
    app.store.reset_calls();
    app.advance(30);
    app.get("/me", Some(&v)).await;
    assert_eq!(app.store.calls().get("touch"), None);
    app.advance(31);
    app.get("/me", Some(&v)).await;
    assert_eq!(app.store.calls().get("touch"), Some(&1));
    app.advance(5);
    app.get("/me", Some(&v)).await;
    app.get("/me", Some(&v)).await;
    assert_eq!(app.store.calls().get("touch"), Some(&1));
    assert_eq!(app.store.calls().get("load"), Some(&4));
}

#[tokio::test]
async fn idle_timeout_on_the_server_clock() {
    let app = TestApp::with(|b| {
        b.idle_timeout(Duration::from_secs(120))
            .absolute_timeout(Duration::from_secs(3600))
    });
    let v = app.login("alice", "user").await;
    for _ in 0..5 {
        app.advance(100);
        let r = app
            .send(
                Request::get("/me")
                    .header(header::COOKIE, format!("__Host-id={v}"))
                    .header(header::DATE, "Thu, 01 Jan 2099 00:00:00 GMT")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "activity keeps the session alive");
    }
    app.advance(121);
    let r = app.get("/me", Some(&v)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.clears_cookie());
}

#[tokio::test]
async fn absolute_timeout_is_not_extended_by_activity_or_rotation() {
    let app = TestApp::with(|b| {
        b.idle_timeout(Duration::from_secs(120))
            .absolute_timeout(Duration::from_secs(600))
    });
    let mut v = app.login("alice", "user").await;
    for i in 0..5 {
        app.advance(100);
        assert_eq!(app.get("/me", Some(&v)).await.status, StatusCode::OK);
        if i == 2 {
            v = app
                .post("/elevate", Some(&v))
                .await
                .session_cookie()
                .expect("rotated");
        }
    }
    app.advance(100); // 600 s after sign-in
    assert_eq!(
        app.get("/me", Some(&v)).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Signing in again starts a new absolute lifetime.
    let v = app.login("alice", "user").await;
    app.advance(100);
    assert_eq!(app.get("/me", Some(&v)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn login_rotates_the_id_and_keeps_data() {
    let app = TestApp::new();
    let anon = app
        .post("/cart?item=book", None)
        .await
        .session_cookie()
        .expect("anonymous session");
    app.post("/cart?item=pen", Some(&anon)).await;
    let r = app.post("/login?user=alice&roles=user", Some(&anon)).await;
    let v = r.session_cookie().expect("rotated");
    assert_ne!(v, anon);
    assert_eq!(app.get("/cart", Some(&v)).await.body, "book,pen");
    assert_eq!(
        app.get("/me", Some(&anon)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.get("/cart", Some(&anon)).await.body, "");
    assert_eq!(app.store.inner.len(), 1, "the old record is gone");
    // Signing in as another user does not carry the first user's data over.
    let r = app.post("/login?user=mallory", Some(&v)).await;
    let m = r.session_cookie().expect("new session");
    assert_eq!(app.get("/cart", Some(&m)).await.body, "");
    assert_eq!(
        app.get("/me", Some(&v)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn logout_destroys_the_record_and_replay_is_401() {
    let app = TestApp::new();
    let v = app.login("alice", "user").await;
    assert_eq!(app.store.inner.len(), 1);
    let r = app.post("/logout", Some(&v)).await;
    assert!(r.clears_cookie());
    assert!(
        app.store.inner.is_empty(),
        "record not deleted before the response"
    );
    let r = app.get("/me", Some(&v)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Replaying the old cookie on a write never brings the old ID back.
    let r = app.post("/cart?item=x", Some(&v)).await;
    assert_ne!(r.session_cookie().as_deref(), Some(v.as_str()));
}

#[tokio::test]
async fn privilege_change_rotates_and_role_change_applies_next_request() {
    let app = TestApp::new();
    let alice = app.login("alice", "user,admin").await;
    assert_eq!(app.get("/admin", Some(&alice)).await.status, StatusCode::OK);
    let root = app.login("root", "user,admin").await;
    let r = app
        .post("/admin/roles?user=alice&roles=user", Some(&root))
        .await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "1"));
    assert_eq!(
        app.get("/admin", Some(&alice)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.get("/me", Some(&alice)).await.body, "alice user");
    // set_roles on one's own session rotates the ID.
    let r = app.post("/elevate", Some(&alice)).await;
    let rotated = r.session_cookie().expect("rotated");
    assert_eq!(
        app.get("/admin", Some(&rotated)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/me", Some(&alice)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn fresh_auth_window() {
    let app = TestApp::new();
    let v = app.login("alice", "user").await;
    assert_eq!(app.get("/fresh", Some(&v)).await.status, StatusCode::OK);
    app.advance(61);
    let r = app.get("/fresh", Some(&v)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body, r#"{"error":"reauthentication_required"}"#);
    assert_eq!(app.get("/me", Some(&v)).await.status, StatusCode::OK);
    let again = app
        .post("/login?user=alice&roles=user", Some(&v))
        .await
        .session_cookie()
        .expect("cookie");
    assert_eq!(app.get("/fresh", Some(&again)).await.status, StatusCode::OK);
    assert_eq!(
        app.get("/fresh", None).await.body,
        r#"{"error":"unauthenticated"}"#
    );
}

#[tokio::test]
async fn payload_cap_is_413() {
    let app = TestApp::new();
    let r = app.post("/big", None).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.set_cookies().is_empty());
}

#[tokio::test]
async fn concurrent_writes_of_different_keys_all_survive() {
    let app = Arc::new(TestApp::new());
    let v = app.login("alice", "user").await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let app = app.clone();
        let v = v.clone();
        tasks.push(tokio::spawn(async move {
            app.send(
                Request::put(format!("/prefs/k{i}"))
                    .header(header::COOKIE, format!("__Host-id={v}"))
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), StatusCode::NO_CONTENT);
    }
    let key = SessionToken::parse(&v).expect("token").key();
    let record = app
        .store
        .inner
        .load(&key, app.clock.now())
        .await
        .expect("load")
        .expect("live");
    let map = record.data.to_map().expect("map");
    for i in 0..20 {
        assert!(map.contains_key(&format!("pref.k{i}")), "pref.k{i} lost");
    }
}

#[tokio::test]
async fn own_sessions_listed_and_ended_by_handle() {
    let app = TestApp::new();
    let a1 = app.login("alice", "user").await;
    let a2 = app.login("alice", "user").await;
    let b = app.login("bob", "user").await;
    let list = app.get("/sessions", Some(&a1)).await.body;
    let handles: Vec<&str> = list.split(',').collect();
    assert_eq!(handles.len(), 2, "{list}");
    assert!(
        !list.contains(&a1) && !list.contains(&a2),
        "tokens in the session list"
    );
    let a2_handle = app.get("/handle", Some(&a2)).await.body;
    assert!(handles.iter().any(|h| h.trim_end_matches('*') == a2_handle));
    assert!(handles.iter().any(|h| h.ends_with('*')));
    // Bob cannot end Alice's session by its handle.
    let r = app
        .send(req("DELETE", &format!("/sessions/{a2_handle}"), Some(&b)))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get("/me", Some(&a2)).await.status, StatusCode::OK);
    let r = app
        .send(req("DELETE", &format!("/sessions/{a2_handle}"), Some(&a1)))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/me", Some(&a2)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = app
        .send(req("DELETE", "/sessions/not-a-handle", Some(&a1)))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn logout_other_sessions_keeps_this_one() {
    let app = TestApp::new();
    let a1 = app.login("alice", "user").await;
    let a2 = app.login("alice", "user").await;
    let a3 = app.login("alice", "user").await;
    let r = app.post("/logout-others", Some(&a2)).await;
    assert_eq!(r.body, "2");
    assert_eq!(app.get("/me", Some(&a2)).await.status, StatusCode::OK);
    assert_eq!(
        app.get("/me", Some(&a1)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/me", Some(&a3)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn missing_layer_is_a_500_that_names_the_fix() {
    use tower::ServiceExt as _;
    let r = common::routes()
        .oneshot(req("GET", "/me", None))
        .await
        .expect("ok");
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = http_body_util::BodyExt::collect(r.into_body())
        .await
        .expect("body")
        .to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("Perhaps you forgot to add `SessionLayer`"));
}

#[tokio::test]
async fn config_errors_at_build_time() {
    use sessionward::{ConfigError, SameSite};
    let b = SessionConfig::builder;
    assert_eq!(
        b().domain("example.com").build().err(),
        Some(ConfigError::HostPrefixWithDomain)
    );
    assert_eq!(
        b().path("/app").build().err(),
        Some(ConfigError::HostPrefixPath)
    );
    assert_eq!(
        b().dev_insecure().build().err(),
        Some(ConfigError::PrefixWithoutSecure)
    );
    assert_eq!(
        b().cookie_name("__Secure-id").dev_insecure().build().err(),
        Some(ConfigError::PrefixWithoutSecure)
    );
    assert_eq!(
        b().cookie_name("sid")
            .same_site(SameSite::None)
            .dev_insecure()
            .build()
            .err(),
        Some(ConfigError::SameSiteNoneWithoutSecure)
    );
    assert!(matches!(
        b().idle_timeout(Duration::from_secs(3600))
            .absolute_timeout(Duration::from_secs(3600))
            .build(),
        Err(ConfigError::AbsoluteNotAfterIdle { .. })
    ));
    assert_eq!(
        b().idle_timeout(Duration::ZERO).build().err(),
        Some(ConfigError::ZeroTimeout("idle"))
    );
    assert_eq!(
        b().absolute_timeout(Duration::ZERO).build().err(),
        Some(ConfigError::ZeroTimeout("absolute"))
    );
    assert!(matches!(
        b().cookie_name("bad name").build(),
        Err(ConfigError::InvalidCookieName(_))
    ));
    assert!(matches!(
        b().cookie_name("sid").path("/x;y").build(),
        Err(ConfigError::InvalidPath(_))
    ));
    assert_eq!(
        b().touch_interval(Duration::from_secs(3600)).build().err(),
        Some(ConfigError::TouchIntervalTooLong)
    );
    // Valid opt-ins.
    assert!(
        b().same_site(SameSite::Lax)
            .persistent_cookies(true)
            .build()
            .is_ok()
    );
    assert!(
        b().cookie_name("sid")
            .path("/app")
            .domain("example.com")
            .build()
            .is_ok()
    );
    assert!(b().cookie_name("sid").dev_insecure().build().is_ok());
    let d = SessionConfig::default();
    assert_eq!(
        (d.idle_timeout(), d.absolute_timeout(), d.cookie_name()),
        (
            Duration::from_secs(1800),
            Duration::from_secs(43_200),
            "__Host-id"
        )
    );
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
async fn user_agent_change_is_an_anomaly_and_can_end_the_session() {
    let with_ua = |ua: &str, path: &str, method: &str, cookie: Option<&str>| {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header(header::USER_AGENT, ua);
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, format!("__Host-id={c}"));
        }
        b.body(Body::empty()).expect("request")
    };
    // Default: a changed user agent is only reported.
    let app = TestApp::new();
    let v = app
        .send(with_ua("phone/1", "/login?user=alice", "POST", None))
        .await
        .session_cookie()
        .expect("cookie");
    assert_eq!(
        app.send(with_ua("laptop/2", "/me", "GET", Some(&v)))
            .await
            .status,
        StatusCode::OK
    );
    // Bound: the session does not work from another user agent.
    let app = TestApp::with(|b| b.bind_user_agent(true));
    let v = app
        .send(with_ua("phone/1", "/login?user=alice", "POST", None))
        .await
        .session_cookie()
        .expect("cookie");
    assert_eq!(
        app.send(with_ua("phone/1", "/me", "GET", Some(&v)))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.send(with_ua("laptop/2", "/me", "GET", Some(&v)))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn presets_set_both_timeouts() {
    use sessionward::Preset;
    for (p, idle, absolute) in [
        (Preset::Aal2, 1800, 43_200),
        (Preset::Aal3, 900, 43_200),
        (Preset::HighValue, 300, 14_400),
    ] {
        let c = SessionConfig::builder().preset(p).build().expect("valid");
        assert_eq!(
            (c.idle_timeout().as_secs(), c.absolute_timeout().as_secs()),
            (idle, absolute)
        );
    }
    let app = TestApp::with(|b| b.preset(sessionward::Preset::HighValue));
    let v = app.login("alice", "user").await;
    app.advance(301);
    assert_eq!(
        app.get("/me", Some(&v)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_privilege_change_from_a_stale_read_cannot_undo_a_demotion() {
    let app = TestApp::new();
    let v = app.login("alice", "user,admin").await;
    let r = app.post("/elevate-racing", Some(&v)).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.body, r#"{"error":"session_changed"}"#);
    assert!(r.set_cookies().is_empty());
    // The demotion holds; nothing of the stale grant landed.
    assert_eq!(
        app.get("/admin", Some(&v)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.get("/me", Some(&v)).await.body, "alice user");
}

#[tokio::test]
async fn sign_in_racing_a_save_keeps_the_saved_data() {
    // A save lands between this request's load and its rotation: the sign-in rebuilds from
    // the current record instead of overwriting it with what it read.
    let app = TestApp::new();
    let anon = app
        .post("/cart?item=a", None)
        .await
        .session_cookie()
        .expect("cookie");
    let key = SessionToken::parse(&anon).expect("token").key();
    let stale = app
        .store
        .inner
        .load(&key, app.clock.now())
        .await
        .expect("load")
        .expect("live");
    let mut c = sessionward_core::ChangeSet::default();
    c.data.insert("late", serde_json::json!(true));
    app.store
        .inner
        .save(&key, Some(stale.version), &c, app.clock.now())
        .await
        .expect("save");
    let v = app
        .post("/login?user=alice", Some(&anon))
        .await
        .session_cookie()
        .expect("rotated");
    let record = app
        .store
        .inner
        .load(
            &SessionToken::parse(&v).expect("token").key(),
            app.clock.now(),
        )
        .await
        .expect("load")
        .expect("live");
    let map = record.data.to_map().expect("map");
    assert!(
        map.contains_key("late") && map.contains_key("cart"),
        "{map:?}"
    );
}

#[tokio::test]
async fn logout_happens_even_when_the_handler_fails() {
    let app = TestApp::new();
    let v = app.login("alice", "user").await;
    let r = app.post("/logout-then-fail", Some(&v)).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.clears_cookie());
    assert!(app.store.inner.is_empty());
    assert_eq!(
        app.get("/me", Some(&v)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn logout_with_ambiguous_cookies_ends_every_presented_session() {
    let app = TestApp::new();
    let a = app.login("alice", "user").await;
    let planted = app.login("mallory", "user").await;
    let r = app
        .send(
            Request::post("/logout")
                .header(
                    header::COOKIE,
                    format!("__Host-id={a}; __Host-id={planted}"),
                )
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.clears_cookie());
    assert!(
        app.store.inner.is_empty(),
        "a presented session outlived logout"
    );
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

#[tokio::test]
async fn a_write_without_a_read_is_one_store_call() {
    let app = TestApp::new();
    let v = app.login("alice", "user").await;
    app.store.reset_calls();
    let r = app
        .send(
            Request::put("/prefs/theme")
                .header(header::COOKIE, format!("__Host-id={v}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.set_cookies().is_empty());
    assert!(r.no_store());
    assert_eq!(
        app.store.calls().into_iter().collect::<Vec<_>>(),
        vec![("save", 1)]
    );
    let key = SessionToken::parse(&v).expect("token").key();
    let record = app
        .store
        .inner
        .load(&key, app.clock.now())
        .await
        .expect("load")
        .expect("live");
    assert!(record.data.as_json().contains("pref.theme"));
    // A later read in the same request sees the blind write.
    let r = app.post("/write-then-read", Some(&v)).await;
    assert_eq!(r.body, "written ");
}

#[tokio::test]
async fn a_blind_write_to_a_dead_id_goes_to_a_new_session() {
    let app = TestApp::new();
    let forged = SessionToken::generate().expect("rng").expose();
    let r = app
        .send(
            Request::put("/prefs/theme")
                .header(header::COOKIE, format!("__Host-id={forged}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let issued = r.session_cookie().expect("a new session");
    assert_ne!(issued, forged);
    let forged_key = SessionToken::parse(&forged).expect("token").key();
    assert!(
        app.store
            .inner
            .load(&forged_key, app.clock.now())
            .await
            .expect("load")
            .is_none(),
        "the forged ID was adopted"
    );
    let record = app
        .store
        .inner
        .load(
            &SessionToken::parse(&issued).expect("token").key(),
            app.clock.now(),
        )
        .await
        .expect("load")
        .expect("live");
    assert!(
        record.user.is_none(),
        "a dead ID's write became a signed-in session"
    );
    assert!(record.data.as_json().contains("pref.theme"));
    // Logged out, then a blind write with the old cookie: the old ID stays dead.
    let v = app.login("alice", "user").await;
    app.post("/logout", Some(&v)).await;
    let r = app
        .send(
            Request::put("/prefs/x")
                .header(header::COOKIE, format!("__Host-id={v}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_ne!(r.session_cookie().as_deref(), Some(v.as_str()));
    assert_eq!(
        app.get("/me", Some(&v)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn blind_writes_respect_the_data_cap_and_5xx() {
    let app = TestApp::with(|b| b.max_data_bytes(200));
    let v = app.login("alice", "user").await;
    // 20 different keys, each small, together past the cap: the store refuses the save that
    // would cross it, so the record never exceeds it.
    let mut statuses = Vec::new();
    for i in 0..20 {
        let r = app
            .send(
                Request::put(format!("/prefs/key-number-{i}"))
                    .header(header::COOKIE, format!("__Host-id={v}"))
                    .body(Body::empty())
                    .expect("request"),
            )
            .await;
        statuses.push(r.status);
    }
    assert!(
        statuses.contains(&StatusCode::PAYLOAD_TOO_LARGE),
        "{statuses:?}"
    );
    let key = SessionToken::parse(&v).expect("token").key();
    let record = app
        .store
        .inner
        .load(&key, app.clock.now())
        .await
        .expect("load")
        .expect("live");
    assert!(
        record.data.len_bytes() <= 200,
        "{}",
        record.data.len_bytes()
    );
    // A failing handler's blind write persists nothing.
    let before = record.version;
    let r = app.post("/fail-after-write", Some(&v)).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    let after = app
        .store
        .inner
        .load(&key, app.clock.now())
        .await
        .expect("load")
        .expect("live");
    assert_eq!(after.version, before);
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
