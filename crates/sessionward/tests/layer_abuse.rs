//! Abuse limits in the layer: the client address (peer, or a trusted proxy's header), the
//! guessing throttle (SEC-34), and a sign-out that clears the cookie when the store fails
//! (SEC-26).

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use common::{Reply, TestApp, TestStore};
use sessionward::{
    ClientAddr, ForwardedHeader, GuessThrottle, IpRange, Session, SessionConfig,
    SessionConfigBuilder, SessionLayer, TestClock, Timestamp,
};
use sessionward_core::SessionToken;

async fn client(session: Session, client: Option<ClientAddr>) -> String {
    assert_eq!(
        session.client_addr(),
        client,
        "the extractor and the session agree"
    );
    client.map_or_else(|| "none".to_owned(), |c| c.to_string())
}

async fn client_required(client: ClientAddr) -> String {
    client.to_string()
}

/// The layer tests' app plus `/client` and `/client-required`.
fn app(configure: impl FnOnce(SessionConfigBuilder) -> SessionConfigBuilder) -> TestApp {
    let clock = TestClock::new(Timestamp::from_unix(1_800_000_000));
    let config = configure(SessionConfig::builder().clock(Arc::new(clock.clone())))
        .build()
        .expect("valid test config");
    let store = TestStore::new();
    let layer = SessionLayer::with_config(store.forwarding(), config);
    let router = common::routes()
        .route("/client", get(client))
        .route("/client-required", get(client_required))
        .layer(layer.clone());
    TestApp {
        router,
        store,
        clock,
        layer,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("an IP address")
}

/// A request from the peer `peer`, as axum's `into_make_service_with_connect_info` gives it.
fn from(peer: &str, method: &str, path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut req = common::req(method, path, cookie);
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(ip(peer), 40_000)));
    req
}

fn with_header(mut req: Request<Body>, name: &'static str, value: &str) -> Request<Body> {
    req.headers_mut()
        .append(name, value.parse().expect("a header value"));
    req
}

fn random_id() -> String {
    SessionToken::generate().expect("rng").expose()
}

/// Signs in from `peer` and returns the cookie.
async fn login_from(app: &TestApp, peer: &str, user: &str) -> String {
    let r = app
        .send(from(
            peer,
            "POST",
            &format!("/login?user={user}&roles=user"),
            None,
        ))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    r.session_cookie().expect("a cookie")
}

fn retry_after(r: &Reply) -> u64 {
    r.headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds")
}

#[tokio::test]
async fn client_addr_is_the_peer_unless_a_trusted_proxy_forwards_it() {
    // Default: the peer, whatever the headers say.
    let plain = app(|b| b);
    let r = plain
        .send(with_header(
            from("192.0.2.7", "GET", "/client", None),
            "x-forwarded-for",
            "1.2.3.4",
        ))
        .await;
    assert_eq!(r.body, "192.0.2.7");
    // IPv4-mapped peers count as IPv4.
    let r = plain
        .send(from("::ffff:192.0.2.8", "GET", "/client", None))
        .await;
    assert_eq!(r.body, "192.0.2.8");
    // No peer address: none, and the required extractor names the fix.
    assert_eq!(plain.get("/client", None).await.body, "none");
    let r = plain.get("/client-required", None).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        r.body.contains("into_make_service_with_connect_info"),
        "{}",
        r.body
    );

    let proxy: IpRange = "10.0.0.0/8".parse().expect("a range");
    let proxied = app(|b| b.trusted_proxies([proxy], 1));
    let xff =
        |peer, value| with_header(from(peer, "GET", "/client", None), "x-forwarded-for", value);
    // From the trusted proxy: the entry it appended.
    let r = proxied.send(xff("10.1.1.1", "6.6.6.6, 198.51.100.4")).await;
    assert_eq!(r.body, "198.51.100.4");
    // From anyone else: the peer.
    let r = proxied.send(xff("192.0.2.7", "198.51.100.4")).await;
    assert_eq!(r.body, "192.0.2.7");
    // Malformed from the proxy: the peer, never a failed request.
    for junk in ["unknown", "", "1.2.3.4.5", "198.51.100.4 junk", "\u{1}"] {
        let mut req = from("10.1.1.1", "GET", "/client", None);
        if let Ok(v) = junk.parse() {
            req.headers_mut().insert("x-forwarded-for", v);
        }
        let r = proxied.send(req).await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (StatusCode::OK, "10.1.1.1"),
            "{junk:?}"
        );
    }
    // Two hops, RFC 7239 `Forwarded`.
    let two = app(|b| {
        b.trusted_proxies([proxy], 2)
            .forwarded_header(ForwardedHeader::Forwarded)
    });
    let r = two
        .send(with_header(
            from("10.1.1.1", "GET", "/client", None),
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8::7]:443\";proto=https, for=10.2.2.2",
        ))
        .await;
    assert_eq!(r.body, "2001:db8::7");
}

#[tokio::test]
async fn trusted_proxy_configuration_is_validated() {
    let proxy: IpRange = "127.0.0.1".parse().expect("a range");
    for hops in [0, 17] {
        let c = SessionConfig::builder()
            .trusted_proxies([proxy], hops)
            .build();
        assert!(
            matches!(c, Err(sessionward::ConfigError::InvalidProxyHops(h)) if h == hops),
            "{hops}"
        );
    }
    assert!(
        SessionConfig::builder()
            .trusted_proxies([proxy], 16)
            .build()
            .is_ok()
    );
    assert!("127.0.0.1/40".parse::<IpRange>().is_err());
    let bad = SessionConfig::builder()
        .guess_throttle(GuessThrottle::new().threshold(0))
        .build();
    assert!(matches!(
        bad,
        Err(sessionward::ConfigError::InvalidGuessThrottle(_))
    ));
}

/// Acceptance 3: 1,000 unknown IDs from one client get 429 after the threshold, before any
/// store access; another client with a valid session is served, and so is a user with a
/// valid session behind the guesser's own address.
#[tokio::test]
async fn guessing_is_throttled_per_client_and_never_blocks_a_valid_session() {
    let throttle = GuessThrottle::new(); // 50 in 60 s, blocked 300 s
    let app = app(|b| b.guess_throttle(throttle.clone()));
    let other = login_from(&app, "198.51.100.20", "bob").await;
    // Signed in at the guesser's address before the guessing started (a NAT).
    let neighbour = login_from(&app, "203.0.113.9", "carol").await;
    assert_eq!(
        app.send(from("203.0.113.9", "GET", "/me", Some(&neighbour)))
            .await
            .status,
        StatusCode::OK
    );
    app.store.reset_calls();

    let mut statuses = Vec::new();
    let mut first_retry = None;
    for _ in 0..1000 {
        let r = app
            .send(from("203.0.113.9", "GET", "/me", Some(&random_id())))
            .await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            first_retry.get_or_insert_with(|| retry_after(&r));
            assert!(r.no_store());
            assert!(r.set_cookies().is_empty(), "a 429 never touches the cookie");
            assert!(r.body.contains("too_many_session_guesses"), "{}", r.body);
        }
        statuses.push(r.status);
    }
    let unauthorized = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(unauthorized, 50, "the threshold");
    assert!(
        statuses[..50]
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED)
    );
    assert!(
        statuses[50..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS)
    );
    assert_eq!(first_retry, Some(300));
    // The 950 refused requests never reached the store.
    assert_eq!(app.store.calls().get("load").copied(), Some(50));
    assert!(throttle.is_blocked(ip("203.0.113.9"), sessionward::Clock::now(&app.clock)));

    // Another client with a valid session: served.
    let r = app
        .send(from("198.51.100.20", "GET", "/me", Some(&other)))
        .await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "bob user"));
    // A valid session behind the blocked address: served.
    let r = app
        .send(from("203.0.113.9", "GET", "/me", Some(&neighbour)))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // The blocked address without an ID: public pages and a fresh sign-in work, and the new
    // session is served at once.
    let r = app.send(from("203.0.113.9", "GET", "/public", None)).await;
    assert_eq!(r.status, StatusCode::OK);
    let fresh = login_from(&app, "203.0.113.9", "dave").await;
    let r = app
        .send(from("203.0.113.9", "GET", "/me", Some(&fresh)))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Malformed IDs are refused too while blocked.
    let r = app
        .send(from("203.0.113.9", "GET", "/me", Some("garbage")))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);

    // Retry-After counts down on the injected clock, and the block ends.
    app.advance(200);
    let r = app
        .send(from("203.0.113.9", "GET", "/me", Some(&random_id())))
        .await;
    assert_eq!(retry_after(&r), 100);
    app.advance(100);
    let r = app
        .send(from("203.0.113.9", "GET", "/me", Some(&random_id())))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn malformed_ids_count_and_a_forged_forwarded_for_does_not_move_the_key() {
    let throttle = GuessThrottle::new().threshold(5);
    let app = app(|b| b.guess_throttle(throttle));
    // From an untrusted peer, a new X-Forwarded-For on every request changes nothing: the
    // throttle keys on the peer (catalogue item 14).
    let mut statuses = Vec::new();
    for i in 0..10 {
        let req = with_header(
            from("192.0.2.50", "GET", "/me", Some("not-a-session-id")),
            "x-forwarded-for",
            &format!("10.9.{i}.1"),
        );
        statuses.push(app.send(req).await.status);
    }
    assert_eq!(&statuses[..5], &[StatusCode::UNAUTHORIZED; 5]);
    assert_eq!(&statuses[5..], &[StatusCode::TOO_MANY_REQUESTS; 5]);
    assert_eq!(
        app.store.total_calls(),
        0,
        "malformed IDs never reach the store"
    );
    // An IPv6 client is counted per /64: moving within it does not help.
    for i in 0..5 {
        let peer = format!("2001:db8:5:6::{i:x}");
        app.send(from(&peer, "GET", "/me", Some("x"))).await;
    }
    let r = app
        .send(from("2001:db8:5:6:ffff::1", "GET", "/me", Some("x")))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let r = app
        .send(from("2001:db8:5:7::1", "GET", "/me", Some("x")))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Without a known client address the throttle does not count (and cannot key).
    for _ in 0..10 {
        assert_eq!(
            app.get("/me", Some("x")).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
}

/// Acceptance 3, memory: 100,000 distinct clients leave the table within its capacity.
#[tokio::test]
async fn throttle_memory_stays_under_its_capacity() {
    let throttle = GuessThrottle::new().capacity(4096);
    let app = app(|b| b.guess_throttle(throttle.clone()));
    let mut most = 0;
    for i in 0u32..100_000 {
        let peer = if i % 2 == 0 {
            IpAddr::from((0x0a00_0000 + i).to_be_bytes()).to_string()
        } else {
            format!("2001:db8:{:x}:{:x}::1", i >> 16, i & 0xffff)
        };
        let r = app.send(from(&peer, "GET", "/me", Some("malformed"))).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        if i % 1000 == 999 {
            most = most.max(throttle.tracked_clients());
        }
    }
    assert!(most <= 4096, "{most} clients tracked, capacity 4096");
    assert!(most >= 4000, "the table is used: {most}");
}

/// SEC-26 with a failing store: the sign-out still clears the cookie and sends
/// Clear-Site-Data, and says 503 with the usual body.
#[tokio::test]
async fn logout_clears_the_cookie_even_when_the_store_fails() {
    for clear_site_data in [false, true] {
        let app = app(|b| b.clear_site_data_on_logout(clear_site_data));
        let cookie = app.login("alice", "user").await;
        app.store.fail(true);
        let r = app.post("/logout", Some(&cookie)).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.body, r#"{"error":"session_store_unavailable"}"#);
        assert!(r.clears_cookie(), "{:?}", r.set_cookies());
        assert!(r.no_store());
        assert_eq!(
            r.headers.get("clear-site-data").is_some(),
            clear_site_data,
            "Clear-Site-Data as configured"
        );
        assert!(app.store.calls().get("delete").copied().unwrap_or(0) >= 1);
        // Other store failures still answer 503 without touching the cookie.
        let r = app.get("/me", Some(&cookie)).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(r.set_cookies().is_empty());
        app.store.fail(false);
    }
}

/// A logout over an ambiguous request tries every presented session even when one delete
/// fails.
#[tokio::test]
async fn a_failed_logout_still_clears_the_cookie_of_an_ambiguous_request() {
    let app = app(|b| b);
    let a = app.login("alice", "user").await;
    let b = app.login("bob", "user").await;
    app.store.fail(true);
    let r = app
        .send(
            Request::post("/logout")
                .header(header::COOKIE, format!("__Host-id={a}; __Host-id={b}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.clears_cookie());
    assert_eq!(app.store.calls().get("delete").copied(), Some(2));
}
