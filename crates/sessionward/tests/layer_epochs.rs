//! SEC-16 through the layer on `MemoryStore`: sign-ins in flight during a demotion or an
//! account disablement never leave a session with the old roles (issue 12). The same race
//! runs on every store in the end-to-end crate (`tests/tests/epochs.rs`).

mod common;
mod race;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use common::{TestApp, req};
use sessionward::{Session, SessionStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_racing_a_demotion_and_a_disablement_keep_no_old_roles() {
    let store = sessionward::MemoryStore::builder()
        .sweep(sessionward_memory::SweepConfig::disabled())
        .build();
    race::sign_ins_racing_a_demotion_and_a_disablement(
        Arc::new(store) as Arc<dyn SessionStore>,
        "memory",
    )
    .await;
}

/// A sign-in decided before an admin's role change is refused with 409
/// `authorization_changed`, sets no cookie and leaves the old session as it was; within the
/// clock margin after the change too (the store counts whole seconds).
#[tokio::test]
async fn a_sign_in_within_the_margin_of_a_change_is_refused() {
    let app = TestApp::new();
    let root = app.login("root", "user,admin").await;
    let before = app.login("alice", "user,admin").await;
    let r = app
        .post("/admin/roles?user=alice&roles=user", Some(&root))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Same second as the change: the sign-in may have read the old roles.
    let r = app.post("/login?user=alice&roles=user,admin", None).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.body, r#"{"error":"authorization_changed"}"#);
    assert!(r.set_cookies().is_empty(), "{:?}", r.set_cookies());
    // It says when a new sign-in will be accepted: the margin (1 s) and one second more.
    assert_eq!(
        r.headers
            .get(axum::http::header::RETRY_AFTER)
            .map(|v| v.as_bytes()),
        Some(&b"2"[..])
    );
    assert_eq!(app.get("/me", Some(&before)).await.body, "alice user");
    // After that, a sign-in is accepted.
    app.advance(2);
    let fresh = app.login("alice", "user").await;
    assert_eq!(app.get("/me", Some(&fresh)).await.body, "alice user");
}

/// "Sign out everywhere else" ends the other sessions, keeps this one, and refuses a
/// sign-in that was in flight; a privilege change later in the same request is not refused.
#[tokio::test]
async fn logout_other_sessions_refuses_in_flight_sign_ins_but_not_its_own_request() {
    let app = TestApp::with(|b| b.authorization_clock_margin(Duration::from_secs(3)));
    let a1 = app.login("alice", "user").await;
    let a2 = app.login("alice", "user").await;
    app.advance(10);
    let r = app.post("/logout-others", Some(&a1)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "1"));
    assert_eq!(
        app.get("/me", Some(&a2)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.get("/me", Some(&a1)).await.body, "alice user");
    // Within the (3 s) margin, another sign-in is refused.
    app.advance(2);
    let r = app.post("/login?user=alice&roles=user", None).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    // The spared session can still change its own privileges (it was stamped current).
    app.advance(2);
    let r = app.post("/elevate", Some(&a1)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let a1 = r.session_cookie().expect("rotated");
    // One request that signs out everywhere else and then changes its own roles: its own
    // change does not make its privilege change stale.
    let router = Router::new()
        .route(
            "/reset",
            post(|session: Session| async move {
                session.logout_other_sessions().await?;
                session.set_roles(["user"]).await?;
                Ok::<_, sessionward::SessionError>(StatusCode::NO_CONTENT)
            }),
        )
        .layer(app.layer.clone());
    app.advance(10);
    let r = common::send_to(&router, req("POST", "/reset", Some(&a1))).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let reset = r.session_cookie().expect("rotated");
    assert_eq!(app.get("/me", Some(&reset)).await.body, "alice user");
}

/// The error carries over to `SessionError` for handlers that look.
#[test]
fn authorization_changed_is_409() {
    let e = sessionward::SessionError::from(sessionward::StoreError::AuthorizationChanged);
    assert!(matches!(e, sessionward::SessionError::AuthorizationChanged));
    assert_eq!(e.status(), StatusCode::CONFLICT);
}

/// The new settings are checked at build time.
#[test]
fn anonymous_idle_timeout_and_clock_margin_are_validated() {
    use sessionward::{ConfigError, MAX_CLOCK_MARGIN, SessionConfig};
    let c = SessionConfig::default();
    assert_eq!(c.anonymous_idle_timeout(), c.idle_timeout());
    assert_eq!(c.authorization_clock_margin(), Duration::from_secs(1));
    let longer = SessionConfig::builder()
        .anonymous_idle_timeout(Duration::from_secs(3600))
        .build();
    assert!(
        matches!(longer, Err(ConfigError::AnonymousIdleTooLong { .. })),
        "{longer:?}"
    );
    let zero = SessionConfig::builder()
        .anonymous_idle_timeout(Duration::ZERO)
        .build();
    assert!(matches!(zero, Err(ConfigError::ZeroTimeout(_))), "{zero:?}");
    // The default touch interval follows the shorter idle timeout; an explicit one must be
    // shorter than it.
    let short = SessionConfig::builder()
        .anonymous_idle_timeout(Duration::from_secs(30))
        .build()
        .expect("valid");
    assert_eq!(short.anonymous_idle_timeout(), Duration::from_secs(30));
    let touch = SessionConfig::builder()
        .anonymous_idle_timeout(Duration::from_secs(30))
        .touch_interval(Duration::from_secs(30))
        .build();
    assert!(
        matches!(touch, Err(ConfigError::TouchIntervalTooLong)),
        "{touch:?}"
    );
    let margin = SessionConfig::builder()
        .authorization_clock_margin(MAX_CLOCK_MARGIN + Duration::from_secs(1))
        .build();
    assert!(
        matches!(margin, Err(ConfigError::ClockMarginTooLong)),
        "{margin:?}"
    );
    SessionConfig::builder()
        .authorization_clock_margin(MAX_CLOCK_MARGIN)
        .build()
        .expect("the maximum is accepted");
}
