//! The variants serve the same contract: sessionward and its tower-sessions twins answer the
//! bare routes and the app-shaped routes alike (in memory, and on SQLite in a temporary file,
//! which also shows that sqlx 0.8 and 0.9 share one SQLite in this binary).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use sessionward_bench::servers::{self, Shape};
use tower::ServiceExt as _;

const UA: &str = "contract-test/1";

async fn send(app: &Router, req: Request<Body>) -> (Response<()>, String) {
    let res = app.clone().oneshot(req).await.expect("infallible");
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    (
        Response::from_parts(parts, ()),
        String::from_utf8(bytes.to_vec()).expect("utf-8"),
    )
}

fn req(method: &str, path: &str, cookie: Option<&str>, body: Option<&str>) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("user-agent", UA);
    if let Some(c) = cookie {
        b = b.header("cookie", c);
    }
    if body.is_some() {
        b = b.header("content-type", "application/json");
    }
    b.body(body.map_or_else(Body::empty, |s| Body::from(s.to_owned())))
        .expect("request")
}

fn cookie_of(res: &Response<()>) -> String {
    res.headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned()
}

/// The bare routes: sign in, read the user back, write, and a route that ignores the session.
async fn bare_contract(name: &str, app: Router) {
    let (res, _) = send(&app, req("POST", "/login", None, None)).await;
    assert!(res.status().is_success(), "{name} login: {}", res.status());
    let cookie = cookie_of(&res);
    let (res, body) = send(&app, req("GET", "/read", Some(&cookie), None)).await;
    assert_eq!(res.status(), StatusCode::OK, "{name} read");
    assert!(
        body.starts_with("user-") && body.ends_with(" user"),
        "{name} read: {body}"
    );
    let (res, _) = send(&app, req("POST", "/write", Some(&cookie), None)).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT, "{name} write");
    let (res, body) = send(&app, req("GET", "/plain", Some(&cookie), None)).await;
    assert_eq!(
        (res.status(), body.as_str()),
        (StatusCode::OK, "ok"),
        "{name}"
    );
    let (res, _) = send(&app, req("GET", "/read", None, None)).await;
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "{name} read, no cookie"
    );
}

/// The app-shaped routes: JSON sign-in and `me`, the auth check, the preference write and its
/// input checks, the cross-origin guard, the security headers, `/healthz`.
async fn app_contract(name: &str, app: Router) {
    let (res, body) = send(&app, req("POST", "/api/login", None, None)).await;
    assert_eq!(res.status(), StatusCode::OK, "{name} login");
    let login: serde_json::Value = serde_json::from_str(&body).expect("json");
    let user = login["username"].as_str().expect("username").to_owned();
    assert!(user.starts_with("user-"), "{name}: {user}");
    assert_eq!(login["roles"], serde_json::json!(["user"]), "{name}");
    let cookie = cookie_of(&res);

    let (res, body) = send(&app, req("GET", "/api/me", Some(&cookie), None)).await;
    assert_eq!(res.status(), StatusCode::OK, "{name} me");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).expect("json"),
        serde_json::json!({ "username": user, "roles": ["user"] }),
        "{name} me"
    );
    for (h, v) in [
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
    ] {
        assert_eq!(
            res.headers().get(h).map(|v| v.as_bytes()),
            Some(v.as_bytes())
        );
    }

    let (res, _) = send(&app, req("GET", "/api/me", None, None)).await;
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "{name} me, no cookie"
    );

    let put = |path: &str, body: &str| req("PUT", path, Some(&cookie), Some(body));
    let (res, _) = send(&app, put("/api/prefs/theme", r#"{"value":"dark"}"#)).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT, "{name} pref");
    let (res, _) = send(&app, put("/api/prefs/bad.key", r#"{"value":"dark"}"#)).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{name} bad key");
    let (res, _) = send(&app, put("/api/prefs/theme", r#"{"other":1}"#)).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{name} no value");
    let (res, _) = send(
        &app,
        req("PUT", "/api/prefs/theme", None, Some(r#"{"value":1}"#)),
    )
    .await;
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "{name} pref, no cookie"
    );

    let mut cross = put("/api/prefs/theme", r#"{"value":"dark"}"#);
    cross
        .headers_mut()
        .insert("sec-fetch-site", "cross-site".parse().expect("value"));
    let (res, _) = send(&app, cross).await;
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "{name} cross-site write"
    );

    let (res, body) = send(&app, req("GET", "/healthz", None, None)).await;
    assert_eq!(
        (res.status(), body.as_str()),
        (StatusCode::OK, "ok"),
        "{name}"
    );
}

#[tokio::test]
async fn memory_variants_serve_the_same_contract() {
    for shape in [Shape::Bare, Shape::App] {
        let sw =
            servers::sessionward_shaped(Arc::new(sessionward_memory::MemoryStore::new()), shape)
                .expect("sessionward");
        let ts = servers::tower_sessions_memory(shape);
        match shape {
            Shape::Bare => {
                bare_contract("sw-mem", sw).await;
                bare_contract("ts-mem", ts).await;
            }
            Shape::App => {
                app_contract("sw-mem", sw).await;
                app_contract("ts-mem", ts).await;
            }
        }
    }
}

#[tokio::test]
async fn sqlite_variants_serve_the_same_contract() {
    let dir = std::env::temp_dir().join(format!("sessionward-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for (i, shape) in [Shape::Bare, Shape::App].into_iter().enumerate() {
        let url = |v: &str| format!("sqlite://{}", dir.join(format!("{v}-{i}.db")).display());
        let sw = servers::sessionward_shaped(
            servers::sessionward_sqlite(&url("sw"))
                .await
                .expect("sw-sqlite"),
            shape,
        )
        .expect("sessionward");
        let ts = servers::tower_sessions_sqlite(&url("ts"), shape)
            .await
            .expect("ts-sqlite");
        match shape {
            Shape::Bare => {
                bare_contract("sw-sqlite", sw).await;
                bare_contract("ts-sqlite", ts).await;
            }
            Shape::App => {
                app_contract("sw-sqlite", sw).await;
                app_contract("ts-sqlite", ts).await;
            }
        }
    }
    std::fs::remove_dir_all(&dir).expect("remove temp dir");
}

#[tokio::test]
async fn bare_variant_answers_the_same_routes() {
    let app = servers::bare_app();
    let (res, _) = send(&app, req("GET", "/api/me", None, None)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers().get("x-frame-options").map(|v| v.as_bytes()),
        Some(&b"DENY"[..])
    );
    let put = |path: &str, body: &str| req("PUT", path, None, Some(body));
    let (res, _) = send(&app, put("/api/prefs/theme", r#"{"value":1}"#)).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let (res, _) = send(&app, put("/api/prefs/bad.key", r#"{"value":1}"#)).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let (res, _) = send(&app, put("/api/prefs/theme", "[]")).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let (res, _) = send(&app, req("POST", "/login", None, None)).await;
    assert_eq!(
        res.status(),
        StatusCode::NOT_FOUND,
        "the app shape has no bare routes"
    );
    let bare = servers::bare();
    for (m, p) in [
        ("GET", "/plain"),
        ("GET", "/read"),
        ("POST", "/write"),
        ("POST", "/login"),
    ] {
        let (res, _) = send(&bare, req(m, p, None, None)).await;
        assert!(res.status().is_success(), "{m} {p}: {}", res.status());
    }
}

/// The floor's `/login` sends the headers a sessionward sign-in sends, byte for byte in
/// length and attributes (only the token differs), and its other routes are bare axum's.
#[tokio::test]
async fn floor_sends_the_headers_of_a_sessionward_sign_in() {
    let sw = servers::sessionward_shaped(
        Arc::new(sessionward_memory::MemoryStore::new()),
        Shape::Bare,
    )
    .expect("sessionward");
    let floor = servers::floor();
    let (sw_res, sw_body) = send(&sw, req("POST", "/login", None, None)).await;
    let (floor_res, floor_body) = send(&floor, req("POST", "/login", None, None)).await;
    assert_eq!(floor_res.status(), sw_res.status());
    assert_eq!((floor_body.as_str(), sw_body.as_str()), ("", ""));
    let header = |res: &Response<()>, name: &str| -> Vec<String> {
        res.headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().expect("ascii").to_owned())
            .collect()
    };
    let (sw_cookie, floor_cookie) = (
        header(&sw_res, "set-cookie"),
        header(&floor_res, "set-cookie"),
    );
    assert_eq!((sw_cookie.len(), floor_cookie.len()), (1, 1));
    assert_eq!(floor_cookie[0].len(), sw_cookie[0].len());
    let (name_sw, attrs_sw) = sw_cookie[0].split_once(';').expect("attributes");
    let (name_floor, attrs_floor) = floor_cookie[0].split_once(';').expect("attributes");
    assert_eq!(attrs_floor, attrs_sw);
    assert_eq!(
        name_floor.split_once('=').map(|(n, v)| (n, v.len())),
        name_sw.split_once('=').map(|(n, v)| (n, v.len()))
    );
    assert_eq!(
        header(&floor_res, "cache-control"),
        header(&sw_res, "cache-control")
    );
    // Nothing else: the two responses carry the same header names.
    let names = |res: &Response<()>| {
        let mut v: Vec<String> = res.headers().keys().map(|k| k.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(names(&floor_res), names(&sw_res));
    for (m, p) in [("GET", "/plain"), ("GET", "/read"), ("POST", "/write")] {
        let (res, _) = send(&floor, req(m, p, None, None)).await;
        assert!(res.status().is_success(), "{m} {p}: {}", res.status());
    }
}
