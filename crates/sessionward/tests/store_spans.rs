//! Every store call the layer makes runs inside a `sessionward.store` span carrying the
//! operation, the store's name and the outcome. In a test binary of its own: tracing caches
//! per-callsite interest process-wide.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use common::TestApp;
use tracing_subscriber::fmt::format::FmtSpan;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A DEBUG subscriber writing closed spans into `capture`, for this thread.
fn capture_spans(capture: &Capture) -> tracing::subscriber::DefaultGuard {
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_default(subscriber)
}

#[tokio::test]
async fn store_calls_run_in_spans_with_operation_store_and_outcome() {
    let capture = Capture::default();
    let _guard = capture_spans(&capture);

    let app = TestApp::new();
    let user = app
        .post("/login?user=alice&roles=user", None)
        .await
        .session_cookie()
        .expect("cookie");
    assert_eq!(app.get("/me", Some(&user)).await.status, StatusCode::OK);
    let unknown = sessionward_core::SessionToken::generate()
        .expect("rng")
        .expose();
    assert_eq!(
        app.get("/me", Some(&unknown)).await.status,
        StatusCode::UNAUTHORIZED
    );

    let log = String::from_utf8(capture.0.lock().expect("lock").clone()).expect("utf-8");
    let closed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("sessionward.store{") && l.contains("close"))
        .collect();
    for (operation, outcome) in [("create", "ok"), ("load", "ok"), ("load", "absent")] {
        let wanted =
            format!("operation=\"{operation}\" store=\"ForwardingStore\" outcome=\"{outcome}\"");
        assert!(
            closed.iter().any(|l| l.contains(&wanted)),
            "no closed span with {wanted} in:\n{log}"
        );
    }
    assert!(
        !log.contains(&user) && !log.contains(&unknown),
        "a token in the log"
    );
}

/// The same spans when the store answers through its `ImmediateStore` face (`MemoryStore`
/// used directly: the layer makes its calls without futures).
#[tokio::test]
async fn immediate_store_calls_run_in_spans_too() {
    let capture = Capture::default();
    let _guard = capture_spans(&capture);
    let store = sessionward_memory::MemoryStore::new();
    let app = common::routes().layer(sessionward::SessionLayer::new(store));
    let login = common::send_to(&app, common::req("POST", "/login?user=bo&roles=user", None)).await;
    let user = login.session_cookie().expect("cookie");
    let me = common::send_to(&app, common::req("GET", "/me", Some(&user))).await;
    assert_eq!(me.status, StatusCode::OK);
    let unknown = sessionward_core::SessionToken::generate()
        .expect("rng")
        .expose();
    let absent = common::send_to(&app, common::req("GET", "/me", Some(&unknown))).await;
    assert_eq!(absent.status, StatusCode::UNAUTHORIZED);

    let log = String::from_utf8(capture.0.lock().expect("lock").clone()).expect("utf-8");
    for (operation, outcome) in [("create", "ok"), ("load", "ok"), ("load", "absent")] {
        let wanted =
            format!("operation=\"{operation}\" store=\"MemoryStore\" outcome=\"{outcome}\"");
        assert!(
            log.lines().any(|l| l.contains("sessionward.store{")
                && l.contains("close")
                && l.contains(&wanted)),
            "no closed span with {wanted} in:\n{log}"
        );
    }
    assert!(
        !log.contains(&user) && !log.contains(&unknown),
        "a token in the log"
    );
}
