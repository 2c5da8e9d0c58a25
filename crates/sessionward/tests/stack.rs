//! The layer in a plain tower stack (no axum), the route layer, the cross-origin guard, and
//! what the tracing events say (never a token).

mod common;

use std::convert::Infallible;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use axum::routing::{get, post};
use common::{TestApp, TestStore};
use sessionward::{CrossOriginGuard, Session, SessionLayer, require_auth, require_role};
use tower::{ServiceBuilder, ServiceExt as _};

async fn visits(req: Request<String>) -> Result<Response<String>, Infallible> {
    let Some(session) = req.extensions().get::<Session>().cloned() else {
        return Ok(Response::new("no session layer".to_owned()));
    };
    let n: u64 = session.get("visits").await.ok().flatten().unwrap_or(0) + 1;
    if session.insert("visits", &n).await.is_err() {
        let mut res = Response::new("store down".to_owned());
        *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        return Ok(res);
    }
    Ok(Response::new(n.to_string()))
}

#[tokio::test]
async fn works_in_a_plain_tower_stack_without_axum() {
    let store = TestStore::new();
    let svc = ServiceBuilder::new()
        .layer(SessionLayer::new(store.forwarding()))
        .service_fn(visits);
    let res = svc
        .clone()
        .oneshot(Request::new(String::new()))
        .await
        .expect("infallible");
    assert_eq!(res.body(), "1");
    let cookie = res
        .headers()
        .get(header::SET_COOKIE)
        .expect("cookie")
        .to_str()
        .expect("ascii")
        .to_owned();
    let value = cookie.split(';').next().expect("pair").to_owned();
    for expected in ["2", "3"] {
        let req = Request::builder()
            .header(header::COOKIE, &value)
            .body(String::new())
            .expect("request");
        let res = svc.clone().oneshot(req).await.expect("infallible");
        assert_eq!(res.body(), expected);
        assert!(
            res.headers().get(header::SET_COOKIE).is_none(),
            "a save re-sent the cookie"
        );
    }
    // A store failure while completing the request replaces the response with a 503.
    store.fail(true);
    let req = Request::builder()
        .header(header::COOKIE, &value)
        .body(String::new())
        .expect("request");
    let res = svc.oneshot(req).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
}

fn guarded_app() -> (Router, TestStore) {
    let store = TestStore::new();
    let app = Router::new()
        .route(
            "/cart",
            post(|s: Session| async move { s.insert("cart", &["x"]).await.map(|()| "ok") }),
        )
        .route("/page", get(|| async { "page" }))
        .layer(
            CrossOriginGuard::new()
                .trust_origin("https://partner.example")
                .expect("a valid origin"),
        )
        .layer(SessionLayer::new(store.forwarding()));
    (app, store)
}

#[tokio::test]
async fn cross_origin_guard_blocks_cross_site_unsafe_methods() {
    let (app, store) = guarded_app();
    let send = |req: Request<Body>| app.clone().oneshot(req);
    let blocked = [
        Request::post("/cart")
            .header("sec-fetch-site", "cross-site")
            .body(Body::empty()),
        Request::post("/cart")
            .header(header::HOST, "shop.example")
            .header(header::ORIGIN, "https://evil.example")
            .body(Body::empty()),
        Request::delete("/cart")
            .header(header::HOST, "shop.example")
            .header(header::ORIGIN, "null")
            .body(Body::empty()),
    ];
    for req in blocked {
        let res = send(req.expect("request")).await.expect("infallible");
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(res.headers().get(header::SET_COOKIE).is_none());
    }
    assert_eq!(store.total_calls(), 0);
    let allowed = [
        Request::post("/cart").body(Body::empty()),
        Request::post("/cart")
            .header(header::HOST, "shop.example")
            .header(header::ORIGIN, "https://shop.example")
            .header("sec-fetch-site", "same-origin")
            .body(Body::empty()),
        Request::post("/cart")
            .header("sec-fetch-site", "cross-site")
            .header(header::ORIGIN, "https://partner.example")
            .body(Body::empty()),
    ];
    for req in allowed {
        let res = send(req.expect("request")).await.expect("infallible");
        assert_eq!(res.status(), StatusCode::OK);
    }
    let res = send(
        Request::get("/page")
            .header("sec-fetch-site", "cross-site")
            .body(Body::empty())
            .expect("request"),
    )
    .await
    .expect("infallible");
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn require_role_route_layer() {
    let app = TestApp::new();
    let admin_routes = Router::new()
        .route("/ops", get(|| async { "ops" }))
        .route_layer(require_role("admin"));
    let member_routes = Router::new()
        .route("/members", get(|| async { "members" }))
        .route_layer(require_auth());
    let router = common::routes()
        .merge(admin_routes)
        .merge(member_routes)
        .layer(app.layer.clone());
    let fetch =
        |path: &str, cookie: Option<&str>| router.clone().oneshot(common::req("GET", path, cookie));
    let user = app.login("alice", "user").await;
    let admin = app.login("root", "user,admin").await;
    assert_eq!(
        fetch("/ops", None).await.expect("ok").status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        fetch("/ops", Some(&user)).await.expect("ok").status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        fetch("/ops", Some(&admin)).await.expect("ok").status(),
        StatusCode::OK
    );
    assert_eq!(
        fetch("/members", None).await.expect("ok").status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        fetch("/members", Some(&user)).await.expect("ok").status(),
        StatusCode::OK
    );
    app.store.fail(true);
    assert_eq!(
        fetch("/ops", Some(&admin)).await.expect("ok").status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        fetch("/members", Some(&user)).await.expect("ok").status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Outside a SessionLayer: a 500 that names the fix.
    let bare = Router::new()
        .route("/ops", get(|| async { "ops" }))
        .route_layer(require_role("admin"));
    let res = bare
        .oneshot(common::req("GET", "/ops", None))
        .await
        .expect("ok");
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
}
