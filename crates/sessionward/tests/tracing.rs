//! What the tracing events say over a whole sign-in, use and sign-out: every lifecycle event,
//! and never a token. In a test binary of its own: tracing caches per-callsite interest
//! process-wide, so a test on another thread without the capturing subscriber could make
//! this one miss events.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::TestApp;

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

#[tokio::test]
async fn tracing_covers_the_lifecycle_and_never_shows_a_token() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = TestApp::with(|b| b.transport(sessionward::Transport::CookieAndBearer));
    let mut tokens = Vec::new();
    let anon = app
        .post("/cart?item=book", None)
        .await
        .session_cookie()
        .expect("cookie");
    tokens.push(anon.clone());
    let user = app
        .post("/login?user=alice&roles=user", Some(&anon))
        .await
        .session_cookie()
        .expect("cookie");
    tokens.push(user.clone());
    assert_eq!(app.get("/me", Some(&user)).await.status, StatusCode::OK);
    let elevated = app
        .post("/elevate", Some(&user))
        .await
        .session_cookie()
        .expect("cookie");
    tokens.push(elevated.clone());
    let bearer = app.post("/token?user=bob", None).await.body;
    tokens.push(bearer);
    app.post("/logout", Some(&elevated)).await;
    assert_eq!(
        app.get("/me", Some(&elevated)).await.status,
        StatusCode::UNAUTHORIZED
    );
    app.get("/me", Some("not-a-token")).await;
    let send = app.send(
        Request::get("/me")
            .header(
                header::COOKIE,
                format!("__Host-id={anon}; __Host-id={user}"),
            )
            .body(Body::empty())
            .expect("request"),
    );
    send.await;

    let log = String::from_utf8(capture.0.lock().expect("lock").clone()).expect("utf-8");
    for event in [
        "session.created",
        "session.rotated",
        "session.destroyed",
        "session.unknown",
        "session.malformed",
        "session.ambiguous",
    ] {
        assert!(log.contains(event), "no {event} event in:\n{log}");
    }
    for t in &tokens {
        assert_eq!(t.len(), 43);
        assert!(
            !log.contains(t.as_str()),
            "a token appears in the trace output"
        );
        // Not even a long piece of one.
        assert!(
            !log.contains(&t[..16]),
            "a token prefix appears in the trace output"
        );
    }
}
