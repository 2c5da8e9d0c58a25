//! Sign-in, sign-out, roles and the user's own sessions.
//! Through an axum `Router` and `tower::ServiceExt::oneshot`; time is a test clock: nothing
//! here sleeps for a timeout.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{TestApp, req};
use sessionward::SessionStore;
use sessionward_core::Clock as _;
use sessionward_core::SessionToken;

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
    // set_roles on one's own session rotates the ID. (Within the clock margin of the
    // demotion it would be refused as possibly stale, SEC-16: let two seconds pass.)
    app.advance(2);
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
