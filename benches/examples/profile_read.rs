//! Drives one route of one variant in-process, for a profiler: instruction counts with
//! `valgrind --tool=callgrind`, comparable between variants and repeatable.
//!
//! Run with: `cargo build --release -p sessionward-bench --example profile_read` and then
//! `valgrind --tool=callgrind target/release/examples/profile_read sw-mem read 20000`.
//! Variants: `bare`, `sw-mem`, `ts-mem`. Routes: `read`, `write`, `plain`, `login` (the bare
//! routes), `app-read` (`GET /api/me`), `app-write` (`PUT /api/prefs/theme`), `app-login`
//! (`POST /api/login`) and `healthz` (the app-shaped stack, see `sessionward_bench::servers`).
//! The sign-in routes (`login`, `app-login`) are sent without a cookie, as the harness's
//! `login` workload sends them: each request creates a new signed-in session.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt as _;
use sessionward_bench::servers::{self, Shape};
use tower::ServiceExt as _;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let variant = args.first().map_or("sw-mem", String::as_str);
    let route = args.get(1).map_or("read", String::as_str);
    let n: usize = args.get(2).map_or(Ok(20_000), |s| s.parse())?;
    let (method, path, shape, body) = match route {
        "app-read" => ("GET", "/api/me", Shape::App, None),
        "app-write" => (
            "PUT",
            "/api/prefs/theme",
            Shape::App,
            Some(r#"{"value":"dark"}"#),
        ),
        "app-login" => ("POST", "/api/login", Shape::App, None),
        "healthz" => ("GET", "/healthz", Shape::App, None),
        "login" => ("POST", "/login", Shape::Bare, None),
        "write" => ("POST", "/write", Shape::Bare, None),
        "plain" => ("GET", "/plain", Shape::Bare, None),
        _ => ("GET", "/read", Shape::Bare, None),
    };
    let app = match (variant, shape) {
        ("bare", Shape::Bare) => servers::bare(),
        ("bare", Shape::App) => servers::bare_app(),
        ("sw-mem", _) => {
            servers::sessionward_shaped(Arc::new(sessionward_memory::MemoryStore::new()), shape)?
        }
        _ => servers::tower_sessions_memory(shape),
    }
    // What `axum::serve` does with a `Router` before serving it (the harness's servers):
    // handlers become routes once, instead of on every call.
    .with_state(());
    let login = if shape == Shape::App {
        "/api/login"
    } else {
        "/login"
    };
    let user_agent = "Mozilla/5.0 (X11; Linux x86_64) sessionward-bench/1";
    // Sign in once; every request then carries the cookie.
    let res = app
        .clone()
        .oneshot(
            Request::post(login)
                .header("user-agent", user_agent)
                .body(Body::empty())?,
        )
        .await?;
    let cookie = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("__Host-id=none")
        .to_owned();
    let sign_in = route.ends_with("login");
    let mut ok = 0;
    for _ in 0..n {
        let mut req = Request::builder().method(method).uri(path);
        if !sign_in {
            req = req.header("cookie", &cookie);
        }
        req = req
            .header("user-agent", user_agent)
            .header("sec-fetch-site", "same-origin");
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(body.map_or_else(Body::empty, Body::from))?;
        let res = app.clone().oneshot(req).await?;
        if res.status().is_success() {
            ok += 1;
        }
        let _ = res.into_body().collect().await?;
    }
    eprintln!("{variant} {path}: {ok}/{n} ok");
    Ok(())
}
