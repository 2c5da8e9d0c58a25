//! Drives one route of one variant in-process, for a profiler: instruction counts with
//! `valgrind --tool=callgrind`, comparable between variants and repeatable.
//!
//! Run with: `cargo build --release -p sessionward-bench --example profile_read` and then
//! `valgrind --tool=callgrind target/release/examples/profile_read sw-mem read 20000`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let variant = args.first().map_or("sw-mem", String::as_str);
    let path = format!("/{}", args.get(1).map_or("read", String::as_str));
    let n: usize = args.get(2).map_or(Ok(20_000), |s| s.parse())?;
    let app = match variant {
        "bare" => sessionward_bench::servers::bare(),
        "sw-mem" => sessionward_bench::servers::sessionward(Arc::new(
            sessionward_memory::MemoryStore::new(),
        )),
        _ => sessionward_bench::servers::tower_sessions_memory(),
    };
    // Sign in once; every request then carries the cookie.
    let res = app
        .clone()
        .oneshot(Request::post("/login").body(Body::empty())?)
        .await?;
    let cookie = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("__Host-id=none")
        .to_owned();
    let method = if path == "/write" { "POST" } else { "GET" };
    let mut ok = 0;
    for _ in 0..n {
        let req = Request::builder()
            .method(method)
            .uri(&path)
            .header("cookie", &cookie)
            .body(Body::empty())?;
        let res = app.clone().oneshot(req).await?;
        if res.status().is_success() {
            ok += 1;
        }
        let _ = res.into_body().collect().await?;
    }
    eprintln!("{variant} {path}: {ok}/{n} ok");
    Ok(())
}
