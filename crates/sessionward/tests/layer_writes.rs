//! Store round trips and failures: lazy loads, blind writes, the data cap, 5xx and 503.
//! Through an axum `Router` and `tower::ServiceExt::oneshot`; time is a test clock: nothing
//! here sleeps for a timeout.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{TestApp, req};
use sessionward::{SessionConfig, SessionStore};
use sessionward_core::Clock as _;
use sessionward_core::SessionToken;

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
        .oneshot(req("POST", "/login?user=ann&roles=user", None))
        .await
        .expect("ok");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app
        .oneshot(req("POST", "/login?user=ben&roles=user", None))
        .await
        .expect("ok");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().get(header::SET_COOKIE).is_none());
}

/// Issue 12: a flood of anonymous sessions far past their budget is bounded and never
/// refuses a sign-in, not even one that signs in a flooded-in anonymous session.
#[tokio::test]
async fn an_anonymous_flood_never_refuses_a_sign_in() {
    let clock = sessionward::TestClock::new(sessionward::Timestamp::from_unix(1_800_000_000));
    let store = sessionward::MemoryStore::builder()
        .max_sessions(2)
        .max_anonymous_sessions(20)
        .sweep(sessionward_memory::SweepConfig::disabled())
        .build();
    let config = SessionConfig::builder()
        .clock(Arc::new(clock.clone()))
        .anonymous_idle_timeout(std::time::Duration::from_secs(300))
        .build()
        .expect("config");
    let app = common::routes().layer(sessionward::SessionLayer::with_config(
        store.clone(),
        config,
    ));
    let mut last = None;
    for _ in 0..500 {
        let r = common::send_to(&app, req("POST", "/cart?item=a", None)).await;
        assert_eq!(r.status, StatusCode::OK);
        last = Some(r.session_cookie().expect("a new session"));
        assert!(store.anonymous_len() <= 20, "{}", store.anonymous_len());
    }
    assert_eq!(store.len(), 20);
    // The newest flooded session signs in, and so does a visitor without a session.
    let login = "/login?user=ann&roles=user";
    let r = common::send_to(&app, req("POST", login, last.as_deref())).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = common::send_to(&app, req("POST", "/login?user=ben&roles=user", None)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(store.anonymous_len(), 19);
    assert_eq!(store.len(), 21);
    // Anonymous sessions get the shorter idle timeout; the signed-in ones keep theirs.
    let anon = common::send_to(&app, req("POST", "/cart?item=a", None)).await;
    let anon = anon.session_cookie().expect("a new session");
    let ben = r.session_cookie().expect("signed in");
    clock.advance(std::time::Duration::from_secs(301));
    let r = common::send_to(&app, req("GET", "/cart", Some(&anon))).await;
    assert_eq!(r.body, "", "an idle anonymous session outlived its timeout");
    assert!(r.clears_cookie());
    let r = common::send_to(&app, req("GET", "/me", Some(&ben))).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "ben user"));
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
async fn a_loaded_sessions_write_is_measured_against_the_cap_before_the_store_sees_it() {
    let app = TestApp::with(|b| b.max_data_bytes(100));
    let v = app.login("alice", "user").await;
    let key = SessionToken::parse(&v).expect("token").key();
    let put = |k: &str, len: usize| {
        Request::put(format!("/loaded-prefs/{k}?len={len}"))
            .header(header::COOKIE, format!("__Host-id={v}"))
            .body(Body::empty())
            .expect("request")
    };
    let data = || async {
        app.store
            .inner
            .load(&key, app.clock.now())
            .await
            .expect("load")
            .expect("live")
            .data
    };
    // `{"pref.a":"x…x"}` is 13 bytes and the value: 87 x is exactly the cap, 88 one over.
    assert_eq!(
        app.send(put("a", 88)).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert!(data().await.is_empty());
    assert_eq!(app.send(put("a", 87)).await.status, StatusCode::NO_CONTENT);
    assert_eq!(data().await.len_bytes(), 100);
    // Replacing the value measures the new one in place of the old.
    assert_eq!(app.send(put("a", 10)).await.status, StatusCode::NO_CONTENT);
    assert_eq!(
        data().await.as_json(),
        format!(r#"{{"pref.a":"{}"}}"#, "x".repeat(10))
    );
    // A second key: `,"pref.b":""` adds 12 bytes and the value, on top of 23.
    assert_eq!(
        app.send(put("b", 66)).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(data().await.len_bytes(), 23);
    assert_eq!(app.send(put("b", 65)).await.status, StatusCode::NO_CONTENT);
    assert_eq!(data().await.len_bytes(), 100);
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
