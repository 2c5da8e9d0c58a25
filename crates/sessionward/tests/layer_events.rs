//! Events that cannot flood: a user agent change is reported once per session, events a client
//! can trigger at will are rate limited (with a count of what was dropped), and events carry
//! the client address. In a test binary of its own, every test capturing its own output (see
//! tests/tracing.rs on tracing's per-callsite interest).

mod common;

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use common::TestApp;
use sessionward::GuessThrottle;
use sessionward_core::SessionToken;
use tracing::subscriber::DefaultGuard;

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

impl Capture {
    /// Captures this thread's events (the tests run on a current-thread runtime).
    fn install() -> (Self, DefaultGuard) {
        let capture = Self::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (capture, tracing::subscriber::set_default(subscriber))
    }

    fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().expect("lock").clone();
        String::from_utf8(bytes)
            .expect("utf-8")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The lines of the event `name`.
    fn events(&self, name: &str) -> Vec<String> {
        let field = format!("event=\"{name}\"");
        self.lines()
            .into_iter()
            .filter(|l| l.contains(&field))
            .collect()
    }
}

fn with_ua(method: &str, path: &str, cookie: Option<&str>, ua: &str) -> Request<Body> {
    let mut req = common::req(method, path, cookie);
    req.headers_mut()
        .insert(header::USER_AGENT, ua.parse().expect("a header value"));
    req
}

fn from(peer: &str, mut req: Request<Body>) -> Request<Body> {
    let ip: IpAddr = peer.parse().expect("an IP address");
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(ip, 40_000)));
    req
}

async fn sign_in_with_ua(app: &TestApp, ua: &str) -> String {
    let r = app
        .send(with_ua("POST", "/login?user=alice&roles=user", None, ua))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    r.session_cookie().expect("a cookie")
}

/// Acceptance 4: a user agent change over 1,000 requests logs one anomaly event.
#[tokio::test]
async fn a_user_agent_change_is_reported_once_per_session() {
    let (capture, _guard) = Capture::install();
    let app = TestApp::new();
    let cookie = sign_in_with_ua(&app, "Firefox/140").await;
    for _ in 0..1000 {
        let r = app
            .send(with_ua("GET", "/me", Some(&cookie), "Firefox/141"))
            .await;
        assert_eq!(r.status, StatusCode::OK, "not bound: still served");
    }
    assert_eq!(capture.events("session.anomaly").len(), 1);
    // Another session's change is its own report.
    let second = sign_in_with_ua(&app, "Chrome/130").await;
    app.send(with_ua("GET", "/me", Some(&second), "Chrome/131"))
        .await;
    assert_eq!(capture.events("session.anomaly").len(), 2);
    assert!(capture.events("events.suppressed").is_empty());
}

#[tokio::test]
async fn with_binding_a_user_agent_change_ends_the_session_and_is_reported_once() {
    let (capture, _guard) = Capture::install();
    let app = TestApp::with(|b| b.bind_user_agent(true));
    let cookie = sign_in_with_ua(&app, "Firefox/140").await;
    for _ in 0..1000 {
        let r = app
            .send(with_ua("GET", "/me", Some(&cookie), "curl/8"))
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let anomalies = capture.events("session.anomaly");
    assert_eq!(anomalies.len(), 1);
    assert!(anomalies[0].contains("bound=true"), "{}", anomalies[0]);
    // The original user agent is still served (as before this change).
    let r = app
        .send(with_ua("GET", "/me", Some(&cookie), "Firefox/140"))
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

/// 1,000 unknown IDs write a bounded number of lines, and what was dropped is counted.
#[tokio::test]
async fn unknown_ids_write_a_bounded_number_of_lines() {
    let (capture, _guard) = Capture::install();
    let app = TestApp::new();
    for _ in 0..1000 {
        let id = SessionToken::generate().expect("rng").expose();
        let r = app
            .send(from("192.0.2.66", common::req("GET", "/me", Some(&id))))
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    for _ in 0..1000 {
        app.send(from("192.0.2.66", common::req("GET", "/me", Some("junk"))))
            .await;
    }
    let unknown = capture.events("session.unknown");
    assert_eq!(unknown.len(), 60, "the default budget: 60 lines a minute");
    assert!(
        unknown.iter().all(|l| l.contains("client=192.0.2.66")),
        "{}",
        unknown[0]
    );
    assert_eq!(capture.events("session.malformed").len(), 60);
    assert!(
        capture.lines().len() <= 130,
        "{} lines",
        capture.lines().len()
    );
    // The budget refills on the injected clock; the next line says how many were dropped.
    app.advance(1);
    let id = SessionToken::generate().expect("rng").expose();
    app.send(from("192.0.2.66", common::req("GET", "/me", Some(&id))))
        .await;
    let summary = capture.events("events.suppressed");
    assert_eq!(summary.len(), 1, "{summary:?}");
    assert!(
        summary[0].contains("kind=\"session.unknown\"") && summary[0].contains("suppressed=940"),
        "{}",
        summary[0]
    );
    assert_eq!(capture.events("session.unknown").len(), 61);
}

#[tokio::test]
async fn the_limit_can_be_raised_or_lifted() {
    let (capture, _guard) = Capture::install();
    let app = TestApp::with(|b| b.event_rate_limit(None));
    for _ in 0..200 {
        app.get("/me", Some("junk")).await;
    }
    assert_eq!(capture.events("session.malformed").len(), 200);
    // Without a client address, the field says so.
    assert!(capture.events("session.malformed")[0].contains("client=-"));
}

#[tokio::test]
async fn anonymous_session_floods_and_cross_site_refusals_are_limited() {
    let (capture, _guard) = Capture::install();
    let app = TestApp::new();
    for _ in 0..300 {
        let r = app.post("/cart?item=x", None).await;
        assert!(r.session_cookie().is_some());
    }
    assert_eq!(capture.events("session.created").len(), 60);
    let cookie = app.login("alice", "user").await;
    for _ in 0..300 {
        let mut req = common::req("POST", "/cart?item=x", Some(&cookie));
        req.headers_mut()
            .insert("sec-fetch-site", "cross-site".parse().expect("value"));
        assert_eq!(app.send(req).await.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(capture.events("request.cross_origin_blocked").len(), 60);
    // A sign-in is never dropped, whatever the anonymous flood did.
    assert_eq!(
        capture
            .events("session.rotated")
            .iter()
            .chain(capture.events("session.created").iter())
            .filter(|l| l.contains("reason="))
            .count(),
        1
    );
}

#[tokio::test]
async fn the_throttle_reports_a_block_once_and_failed_logouts_are_logged() {
    let (capture, _guard) = Capture::install();
    let app = TestApp::with(|b| b.guess_throttle(GuessThrottle::new().threshold(10)));
    for _ in 0..100 {
        app.send(from(
            "198.51.100.1",
            common::req("GET", "/me", Some("junk")),
        ))
        .await;
    }
    let guessing = capture.events("session.guessing");
    assert_eq!(guessing.len(), 1);
    assert!(
        guessing[0].contains("client=198.51.100.1"),
        "{}",
        guessing[0]
    );
    assert_eq!(capture.events("session.throttled").len(), 60);

    let cookie = app.login("alice", "user").await;
    app.store.fail(true);
    let r = app
        .send(from(
            "198.51.100.2",
            common::req("POST", "/logout", Some(&cookie)),
        ))
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let failed = capture.events("session.logout_failed");
    assert_eq!(failed.len(), 1);
    assert!(failed[0].contains("client=198.51.100.2"), "{}", failed[0]);
}
