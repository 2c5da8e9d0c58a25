//! What the `sessionward.store` spans cost: a signed-in `GET /read` (one store load) driven
//! in-process through the bare sessionward-on-memory server, with no subscriber, with a
//! subscriber that filters the spans out (INFO), and with one that records them (DEBUG, span
//! close events formatted into a sink).
//!
//! Run with: `cargo bench -p sessionward-bench --bench store_spans`.
// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use sessionward_bench::servers::{self, Shape};
use tower::ServiceExt as _;
use tracing_subscriber::fmt::format::FmtSpan;

const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) sessionward-bench/1";

async fn signed_in() -> (Router, String) {
    let store = Arc::new(sessionward_memory::MemoryStore::new());
    let app = servers::sessionward_shaped(store, Shape::Bare).expect("server");
    let res = app
        .clone()
        .oneshot(
            Request::post("/login")
                .header("user-agent", USER_AGENT)
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("sign-in");
    let cookie = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned();
    (app, cookie)
}

async fn read(app: &Router, cookie: &str) {
    let req = Request::get("/read")
        .header("cookie", cookie)
        .header("user-agent", USER_AGENT)
        .body(Body::empty())
        .expect("request");
    let res = app.clone().oneshot(req).await.expect("response");
    assert!(res.status().is_success());
}

fn spans(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (app, cookie) = rt.block_on(signed_in());
    c.bench_function("store_spans/read/no_subscriber", |b| {
        b.iter(|| rt.block_on(read(&app, &cookie)));
    });
    for (name, level) in [
        ("store_spans/read/subscriber_info", tracing::Level::INFO),
        ("store_spans/read/subscriber_debug", tracing::Level::DEBUG),
    ] {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_span_events(FmtSpan::CLOSE)
            .with_ansi(false)
            .with_writer(std::io::sink)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        c.bench_function(name, |b| {
            b.iter(|| rt.block_on(read(&app, &cookie)));
        });
    }
}

criterion_group!(benches, spans);
criterion_main!(benches);
