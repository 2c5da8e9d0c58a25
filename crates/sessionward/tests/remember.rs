//! Per-session persistence ("remember me", `Session::remember`) and the credential change
//! (`Session::credential_changed`, SEC-27).

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::post;
use common::{Reply, TestApp, req};
use http_body_util::BodyExt as _;
use serde::Deserialize;
use sessionward::{Session, SessionConfigBuilder, SessionError, SessionLayer};
use tokio::sync::Notify;
use tower::ServiceExt as _;

#[derive(Deserialize)]
struct RememberQuery {
    #[serde(default)]
    remember: Option<bool>,
    #[serde(default)]
    days: Option<u64>,
}

async fn sign_in(
    session: Session,
    Query(q): Query<RememberQuery>,
) -> Result<StatusCode, SessionError> {
    // The choice may come before or after the sign-in.
    if let Some(r) = q.remember {
        session.remember(r).await?;
    }
    session.login("alice", ["user"]).await?;
    if let Some(days) = q.days {
        session
            .set_lifetime(Duration::from_secs(days * 86_400), None)
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn remember(
    session: Session,
    Query(q): Query<RememberQuery>,
) -> Result<StatusCode, SessionError> {
    session.remember(q.remember.unwrap_or(true)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn credential_changed(session: Session) -> Result<String, SessionError> {
    Ok(session.credential_changed().await?.to_string())
}

/// Two gates: the handler says it started, then waits to be let through before signing in.
#[derive(Clone, Default)]
struct Gates {
    entered: Arc<Notify>,
    proceed: Arc<Notify>,
}

async fn slow_sign_in(
    session: Session,
    State(g): State<Gates>,
) -> Result<StatusCode, SessionError> {
    // ... the old password was verified here ...
    g.entered.notify_one();
    g.proceed.notified().await;
    session.login("alice", ["user"]).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn router(layer: SessionLayer, gates: Gates) -> Router {
    common::routes()
        .merge(
            Router::new()
                .route("/sign-in", post(sign_in))
                .route("/remember-me", post(remember))
                .route("/credential-changed", post(credential_changed))
                .route("/slow-sign-in", post(slow_sign_in))
                .with_state(gates),
        )
        .layer(layer)
}

fn app(configure: impl FnOnce(SessionConfigBuilder) -> SessionConfigBuilder) -> (TestApp, Router) {
    let app = TestApp::with(configure);
    let r = router(app.layer.clone(), Gates::default());
    (app, r)
}

async fn send(router: &Router, method: &str, path: &str, cookie: Option<&str>) -> Reply {
    let res = router
        .clone()
        .oneshot(req(method, path, cookie))
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

/// The session cookie's value and its `Max-Age`, if the response sets one; asserts that no
/// cookie carries `Expires`.
fn issued(r: &Reply) -> (String, Option<u64>) {
    let all = r.set_cookies();
    assert_eq!(all.len(), 1, "{all:?}");
    let c = &all[0];
    assert!(!c.contains("Expires"), "{c}");
    let value = r.session_cookie().expect("a session cookie");
    let max_age = c
        .split("; ")
        .find_map(|a| a.strip_prefix("Max-Age="))
        .map(|s| s.parse().expect("a number"));
    (value, max_age)
}

const ABSOLUTE: u64 = 12 * 3600;

#[tokio::test]
async fn a_remembered_session_keeps_max_age_equal_to_its_remaining_lifetime_across_rotations() {
    let (app, router) = app(|b| b);
    let r = send(&router, "POST", "/sign-in?remember=true", None).await;
    let (cookie, max_age) = issued(&r);
    assert_eq!(max_age, Some(ABSOLUTE));
    // A privilege change rotates the ID; the new cookie counts the remaining lifetime.
    app.advance(100);
    let r = send(&router, "POST", "/elevate", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let (cookie, max_age) = issued(&r);
    assert_eq!(max_age, Some(ABSOLUTE - 100));
    app.advance(50);
    let r = send(&router, "POST", "/elevate", Some(&cookie)).await;
    let (cookie, max_age) = issued(&r);
    assert_eq!(max_age, Some(ABSOLUTE - 150));
    // The record keeps the choice: another server on the same store rotates it the same way.
    let other_config = SessionConfigBuilder::default()
        .clock(Arc::new(app.clock.clone()))
        .build()
        .expect("valid");
    let other = router_on(&app, other_config);
    app.advance(10);
    let r = send(&other, "POST", "/elevate", Some(&cookie)).await;
    let (_, max_age) = issued(&r);
    assert_eq!(max_age, Some(ABSOLUTE - 160));
    // A lifetime of its own ("remember me for 30 days") is what Max-Age counts.
    let r = send(&router, "POST", "/sign-in?remember=true&days=30", None).await;
    assert_eq!(issued(&r).1, Some(30 * 86_400));
}

fn router_on(app: &TestApp, config: sessionward::SessionConfig) -> Router {
    router(
        SessionLayer::with_config(app.store.forwarding(), config),
        Gates::default(),
    )
}

#[tokio::test]
async fn a_browser_session_never_has_max_age_or_expires() {
    // Even where the layer's default is persistent cookies.
    let (app, router) = app(|b| b.persistent_cookies(true));
    let r = send(&router, "POST", "/sign-in?remember=false", None).await;
    let (cookie, max_age) = issued(&r);
    assert_eq!(max_age, None);
    app.advance(100);
    let r = send(&router, "POST", "/elevate", Some(&cookie)).await;
    let (cookie, max_age) = issued(&r);
    assert_eq!(max_age, None, "the choice survives the rotation");
    let r = send(&router, "POST", "/remember?days=30", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(
        r.set_cookies().is_empty(),
        "no persistent re-issue for a browser session"
    );
    // Without a choice, the layer's default.
    let r = send(&router, "POST", "/sign-in", None).await;
    assert_eq!(issued(&r).1, Some(ABSOLUTE));
    let (_app, router) = self::app(|b| b);
    let r = send(&router, "POST", "/sign-in", None).await;
    assert_eq!(issued(&r).1, None);
}

#[tokio::test]
async fn changing_the_choice_later_rotates_the_id() {
    let (app, router) = app(|b| b);
    let r = send(&router, "POST", "/sign-in", None).await;
    let (old, max_age) = issued(&r);
    assert_eq!(max_age, None);
    app.advance(60);
    let r = send(&router, "POST", "/remember-me?remember=true", Some(&old)).await;
    let (new, max_age) = issued(&r);
    assert_ne!(new, old);
    assert_eq!(max_age, Some(ABSOLUTE - 60));
    assert_eq!(
        app.get("/me", Some(&old)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.get("/me", Some(&new)).await.status, StatusCode::OK);
    // The same choice again changes nothing.
    let r = send(&router, "POST", "/remember-me?remember=true", Some(&new)).await;
    assert!(r.set_cookies().is_empty());
    // Not signed in: no effect.
    let r = send(&router, "POST", "/remember-me?remember=true", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.set_cookies().is_empty());
}

#[tokio::test]
async fn a_credential_change_ends_every_other_session_and_keeps_this_one() {
    let (app, router) = app(|b| b);
    let a1 = app.login("alice", "user").await;
    let a2 = app.login("alice", "user").await;
    let a3 = app.login("alice", "user").await;
    let bob = app.login("bob", "user").await;
    let r = send(&router, "POST", "/credential-changed", Some(&a1)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "2"));
    for gone in [&a2, &a3] {
        assert_eq!(
            app.get("/me", Some(gone)).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let r = app.get("/me", Some(&a1)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "alice user"));
    assert_eq!(app.get("/me", Some(&bob)).await.status, StatusCode::OK);
    // Signed out: 401.
    let r = send(&router, "POST", "/credential-changed", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // A sign-in after the change works.
    app.advance(1);
    assert!(!app.login("alice", "user").await.is_empty());
}

#[tokio::test]
async fn a_sign_in_racing_a_credential_change_cannot_keep_the_old_credential_alive() {
    let app = TestApp::new();
    let gates = Gates::default();
    let router = router(app.layer.clone(), gates.clone());
    let a1 = app.login("alice", "user").await;
    // A sign-in verifies the old password and is still in flight...
    let racing = tokio::spawn({
        let router = router.clone();
        async move { send(&router, "POST", "/slow-sign-in", None).await }
    });
    gates.entered.notified().await;
    // ... when the password changes, from another session.
    app.advance(1);
    let r = send(&router, "POST", "/credential-changed", Some(&a1)).await;
    assert_eq!(r.status, StatusCode::OK);
    gates.proceed.notify_one();
    let r = racing.await.expect("joined");
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.body, r#"{"error":"authorization_changed"}"#);
    assert!(r.session_cookie().is_none());
    // Alice has exactly the session that changed the password.
    let r = send(&router, "GET", "/sessions", Some(&a1)).await;
    assert_eq!(r.body.matches(',').count(), 0, "{}", r.body);
    assert!(r.body.ends_with('*'));
}
