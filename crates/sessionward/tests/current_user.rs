//! `CurrentUser<U>` over the application's `LoadUser`: loaded once per request, 401 (and the
//! session ended) for a user that no longer exists, 503 when the backend fails.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::routing::get;
use common::{Reply, TestApp, req};
use http_body_util::BodyExt as _;
use sessionward::{CurrentUser, LoadUser, UserId};
use tower::ServiceExt as _;

#[derive(Clone, Default)]
struct Directory {
    users: Arc<Mutex<HashMap<String, String>>>,
    loads: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
}

#[derive(Clone, Debug)]
struct Account {
    name: String,
    email: String,
}

#[derive(Debug, thiserror::Error)]
#[error("directory down")]
struct DirectoryDown;

impl LoadUser<Directory> for Account {
    type Error = DirectoryDown;

    async fn load_user(id: &UserId, dir: &Directory) -> Result<Option<Self>, DirectoryDown> {
        dir.loads.fetch_add(1, Ordering::SeqCst);
        if dir.failing.load(Ordering::SeqCst) {
            return Err(DirectoryDown);
        }
        let users = dir.users.lock().expect("lock");
        Ok(users.get(id.as_str()).map(|email| Account {
            name: id.to_string(),
            email: email.clone(),
        }))
    }
}

/// Three extractions of the user in one request.
async fn profile(
    State(_): State<Directory>,
    a: CurrentUser<Account>,
    b: CurrentUser<Account>,
    c: Option<CurrentUser<Account>>,
) -> String {
    assert_eq!(a.email, b.email);
    format!("{} <{}> {}", a.name, a.email, c.is_some())
}

async fn maybe(user: Option<CurrentUser<Account>>) -> String {
    user.map_or_else(|| "nobody".to_owned(), |u| u.user.name)
}

fn app() -> (TestApp, Router, Directory) {
    let app = TestApp::with(|b| b.sign_in_page("/signin"));
    let dir = Directory::default();
    dir.users
        .lock()
        .expect("lock")
        .insert("alice".into(), "alice@example.com".into());
    let router = common::routes()
        .merge(
            Router::new()
                .route("/profile", get(profile))
                .route("/maybe", get(maybe))
                .with_state(dir.clone()),
        )
        .layer(app.layer.clone());
    (app, router, dir)
}

async fn send(router: &Router, r: axum::http::Request<axum::body::Body>) -> Reply {
    let res = router.clone().oneshot(r).await.expect("infallible");
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

#[tokio::test]
async fn the_user_is_loaded_once_per_request() {
    let (app, router, dir) = app();
    let cookie = app.login("alice", "user").await;
    let r = send(&router, req("GET", "/profile", Some(&cookie))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, "alice <alice@example.com> true");
    assert_eq!(dir.loads.load(Ordering::SeqCst), 1);
    send(&router, req("GET", "/profile", Some(&cookie))).await;
    assert_eq!(
        dir.loads.load(Ordering::SeqCst),
        2,
        "once per request, not cached across"
    );
}

#[tokio::test]
async fn signed_out_is_401_or_none_and_the_backend_is_not_asked() {
    let (_app, router, dir) = app();
    let r = send(&router, req("GET", "/profile", None)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body, r#"{"error":"unauthenticated"}"#);
    assert!(r.headers.contains_key(header::WWW_AUTHENTICATE));
    let r = send(&router, req("GET", "/maybe", None)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "nobody"));
    // A browser is sent to the sign-in page, as by RequireAuth.
    let mut nav = req("GET", "/profile", None);
    nav.headers_mut()
        .insert(header::ACCEPT, "text/html".parse().expect("header"));
    let r = send(&router, nav).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers["location"], "/signin?next=/profile");
    assert_eq!(dir.loads.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_unknown_user_is_401_and_their_session_ends() {
    let (app, router, dir) = app();
    let cookie = app.login("alice", "user").await;
    dir.users.lock().expect("lock").clear();
    let r = send(&router, req("GET", "/profile", Some(&cookie))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.clears_cookie(), "{:?}", r.headers);
    // The session is gone from the store: the account coming back does not revive it.
    dir.users
        .lock()
        .expect("lock")
        .insert("alice".into(), "alice@example.com".into());
    let r = app.get("/me", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Option<CurrentUser>: None, and the session ends the same way.
    let cookie = app.login("bob", "user").await;
    let r = send(&router, req("GET", "/maybe", Some(&cookie))).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "nobody"));
    assert!(r.clears_cookie());
    assert_eq!(
        app.get("/me", Some(&cookie)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_failing_backend_is_503_never_a_pass() {
    let (app, router, dir) = app();
    let cookie = app.login("alice", "user").await;
    dir.failing.store(true, Ordering::SeqCst);
    for path in ["/profile", "/maybe"] {
        let r = send(&router, req("GET", path, Some(&cookie))).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(r.body, r#"{"error":"user_backend_unavailable"}"#);
    }
    // The session survives a backend outage.
    dir.failing.store(false, Ordering::SeqCst);
    let r = send(&router, req("GET", "/profile", Some(&cookie))).await;
    assert_eq!(r.status, StatusCode::OK);
    // A failing session store is 503 too, before the backend is asked.
    let before = dir.loads.load(Ordering::SeqCst);
    app.store.fail(true);
    let r = send(&router, req("GET", "/profile", Some(&cookie))).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(dir.loads.load(Ordering::SeqCst), before);
}
