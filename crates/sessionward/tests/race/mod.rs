//! The race of issue 12, through the layer, over any store (SEC-16): sign-ins whose handler
//! read the user's roles (or that the account is enabled) before an administrator demoted the
//! user or disabled the account, and whose response goes out after that change. None of them
//! may leave a session with the old roles: each is answered 409 `authorization_changed`, or
//! with a cookie whose session is dead or has the new roles.
//!
//! Shared by the layer's own test (`layer_epochs.rs`, on `MemoryStore`) and the end-to-end
//! crate's (`tests/tests/epochs.rs`, on every store). Deterministic: the handlers wait on a
//! barrier until the administrator has acted, and time is a [`TestClock`].
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt as _;
use sessionward::{
    Clock as _, RequireAuth, RequireRole, Session, SessionConfig, SessionError, SessionLayer,
    SessionStore, Sessions, SystemClock, TestClock, UserId, role,
};
use tokio::sync::{Barrier, Semaphore};
use tower::ServiceExt as _;

role!(pub RaceAdmin = "admin");

/// How many sign-ins of each user race the change; half of them sign in an anonymous session
/// (a rotation), half start without one (a create).
const SIGN_INS: usize = 8;

/// The application's user database.
#[derive(Default)]
struct Accounts {
    roles: HashMap<String, Vec<String>>,
    disabled: Vec<String>,
}

#[derive(Clone)]
struct App {
    accounts: Arc<Mutex<Accounts>>,
    /// Every held sign-in waits here after reading the account, with the test.
    arrived: Arc<Barrier>,
    /// Then until the test lets it go on.
    release: Arc<Semaphore>,
}

impl App {
    fn accounts(&self) -> std::sync::MutexGuard<'_, Accounts> {
        self.accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(serde::Deserialize)]
struct UserQuery {
    user: String,
    #[serde(default)]
    hold: bool,
}

/// A sign-in: reads the account (roles, enabled), then, if held, waits until the test has
/// demoted or disabled the user, then signs in with what it read.
async fn sign_in(State(app): State<App>, session: Session, Query(q): Query<UserQuery>) -> Response {
    let (roles, disabled) = {
        let accounts = app.accounts();
        (
            accounts.roles.get(&q.user).cloned().unwrap_or_default(),
            accounts.disabled.contains(&q.user),
        )
    };
    if disabled {
        return StatusCode::FORBIDDEN.into_response();
    }
    if q.hold {
        app.arrived.wait().await;
        match app.release.acquire().await {
            Ok(permit) => permit.forget(),
            Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        }
    }
    match session.login(q.user.as_str(), roles).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn visit(session: Session) -> Result<StatusCode, SessionError> {
    session.insert("visited", &true).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(auth: RequireAuth) -> String {
    format!("{} {}", auth.user, auth.roles.to_vec().join(","))
}

async fn admin_only(a: RequireRole<RaceAdmin>) -> String {
    format!("admin {}", a.user)
}

/// The administrator demotes `user`: first in the user database, then every session.
async fn demote(
    _: RequireRole<RaceAdmin>,
    State(app): State<App>,
    sessions: Sessions,
    Query(q): Query<UserQuery>,
) -> Result<String, SessionError> {
    app.accounts()
        .roles
        .insert(q.user.clone(), vec!["user".to_owned()]);
    let n = sessions.set_roles(&UserId::new(&q.user), ["user"]).await?;
    Ok(n.to_string())
}

/// The administrator disables `user`'s account: first in the user database, then every
/// session and every sign-in in flight.
async fn disable(
    _: RequireRole<RaceAdmin>,
    State(app): State<App>,
    sessions: Sessions,
    Query(q): Query<UserQuery>,
) -> Result<String, SessionError> {
    app.accounts().disabled.push(q.user.clone());
    let n = sessions.revoke_user(&UserId::new(&q.user)).await?;
    Ok(n.to_string())
}

/// A reply: status, the session cookie it sets (if any) and the body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub cookie: Option<String>,
    pub body: String,
}

async fn send(router: &Router, method: &str, path: &str, cookie: Option<&str>) -> Reply {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, format!("__Host-id={c}"));
    }
    let res = router
        .clone()
        .oneshot(b.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = res.status();
    let cookie = res
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.strip_prefix("__Host-id=")?.split(';').next())
        .find(|v| !v.is_empty())
        .map(str::to_owned);
    let body = res.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        cookie,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// A name no earlier run used (the SQL and Redis stores outlive a test run).
fn unique(name: &str) -> String {
    let nonce = sessionward::SessionHandle::generate().expect("rng");
    format!("{name}-{nonce}")
}

/// Runs the race on `store` and checks that no session outlives the change. `label` names
/// the store in failure messages.
pub async fn sign_ins_racing_a_demotion_and_a_disablement(
    store: Arc<dyn SessionStore>,
    label: &str,
) {
    let clock = TestClock::new(SystemClock.now());
    let config = SessionConfig::builder()
        .clock(Arc::new(clock.clone()))
        .build()
        .expect("config");
    let layer = SessionLayer::from_shared_store(store, config);
    let (root, bob, carl) = (unique("root"), unique("bob"), unique("carl"));
    let held = 2 * SIGN_INS;
    let app = App {
        accounts: Arc::default(),
        arrived: Arc::new(Barrier::new(held + 1)),
        release: Arc::new(Semaphore::new(0)),
    };
    {
        let mut accounts = app.accounts();
        for user in [&root, &bob, &carl] {
            accounts
                .roles
                .insert(user.clone(), vec!["admin".to_owned(), "user".to_owned()]);
        }
    }
    let router = Router::new()
        .route("/login", post(sign_in))
        .route("/visit", post(visit))
        .route("/me", get(me))
        .route("/admin", get(admin_only))
        .route("/admin/demote", post(demote))
        .route("/admin/disable", post(disable))
        .with_state(app.clone())
        .layer(layer.clone());

    let r = send(&router, "POST", &format!("/login?user={root}"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{label}: {}", r.body);
    let admin = r.cookie.expect("the administrator's cookie");
    // Bob and Carl each have a session from before, which the change must reach too.
    let mut before = Vec::new();
    for user in [&bob, &carl] {
        let r = send(&router, "POST", &format!("/login?user={user}"), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{label}: {}", r.body);
        before.push((user.clone(), r.cookie.expect("cookie")));
    }
    clock.advance(Duration::from_secs(5));

    // The sign-ins arrive and read the accounts (admin roles, enabled).
    let mut tasks = Vec::new();
    for user in [&bob, &carl] {
        for i in 0..SIGN_INS {
            let anonymous = if i % 2 == 1 {
                let r = send(&router, "POST", "/visit", None).await;
                assert_eq!(r.status, StatusCode::NO_CONTENT, "{label}: {}", r.body);
                Some(r.cookie.expect("an anonymous session"))
            } else {
                None
            };
            let router = router.clone();
            let path = format!("/login?user={user}&hold=true");
            let user = user.clone();
            tasks.push(tokio::spawn(async move {
                let r = send(&router, "POST", &path, anonymous.as_deref()).await;
                (user, anonymous, r)
            }));
        }
    }
    app.arrived.wait().await;
    // Meanwhile, a second later, the administrator demotes Bob and disables Carl.
    clock.advance(Duration::from_secs(1));
    let r = send(
        &router,
        "POST",
        &format!("/admin/demote?user={bob}"),
        Some(&admin),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{label}: demote: {}", r.body);
    let r = send(
        &router,
        "POST",
        &format!("/admin/disable?user={carl}"),
        Some(&admin),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{label}: disable: {}", r.body);
    // Then the sign-ins go on with what they read, and answer.
    app.release.add_permits(held);
    let mut cookies = before;
    let (mut refused, mut answered) = (0, 0);
    for task in tasks {
        let (user, anonymous, r) = task.await.expect("sign-in task");
        match r.status {
            StatusCode::NO_CONTENT => {
                answered += 1;
                cookies.push((user, r.cookie.expect("a signed-in cookie")));
            }
            StatusCode::CONFLICT => {
                refused += 1;
                assert_eq!(r.body, r#"{"error":"authorization_changed"}"#, "{label}");
                assert_eq!(r.cookie, None, "{label}: a refused sign-in set a cookie");
                // The anonymous session it would have signed in is still there, anonymous.
                if let Some(anon) = anonymous {
                    let me = send(&router, "GET", "/me", Some(&anon)).await;
                    assert_eq!(me.status, StatusCode::UNAUTHORIZED, "{label}");
                }
            }
            other => panic!("{label}: a racing sign-in answered {other}: {}", r.body),
        }
    }
    eprintln!("{label}: {refused} racing sign-ins refused (409), {answered} answered 204");

    // No session from before the change, nor from the racing sign-ins, reaches the
    // admin-only route; Bob's are dead or demoted, Carl's are dead.
    for (user, cookie) in &cookies {
        let r = send(&router, "GET", "/admin", Some(cookie)).await;
        assert!(
            matches!(r.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN),
            "{label}: a session of {user} reached the admin route after the change: {}",
            r.status
        );
        let r = send(&router, "GET", "/me", Some(cookie)).await;
        if *user == carl {
            assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "{label}: Carl is disabled"
            );
        } else if r.status == StatusCode::OK {
            assert_eq!(r.body, format!("{bob} user"), "{label}");
        } else {
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{label}");
        }
    }
    let sessions = layer.sessions();
    for info in sessions.list(&UserId::new(&bob)).await.expect("list") {
        assert_eq!(
            info.roles,
            ["user"],
            "{label}: a listed session kept the old roles"
        );
    }
    assert!(
        sessions
            .list(&UserId::new(&carl))
            .await
            .expect("list")
            .is_empty(),
        "{label}: a session of the disabled user is listed"
    );

    // A sign-in that starts after the change reads the new roles and is accepted (past the
    // clock margin); the disabled account cannot sign in at all.
    clock.advance(Duration::from_secs(2));
    let r = send(&router, "POST", &format!("/login?user={bob}"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{label}: {}", r.body);
    let fresh = r.cookie.expect("cookie");
    let me = send(&router, "GET", "/me", Some(&fresh)).await;
    assert_eq!(me.body, format!("{bob} user"), "{label}");
    let r = send(&router, "GET", "/admin", Some(&fresh)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{label}");
    let r = send(&router, "POST", &format!("/login?user={carl}"), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{label}");
}
