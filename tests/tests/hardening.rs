//! The demo app as a deployable template (issue 13): server timeouts and the connection cap,
//! sign-in throttling, the bound on password hashing, and step-up for sensitive actions.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sessionward_e2e::{Auth, DemoApp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn creds(user: &str, password: &str) -> Value {
    json!({ "username": user, "password": password })
}

/// Reads until the server closes the connection; the time that took, or `None` if it stayed
/// open for `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    let read_to_eof = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read_to_eof)
        .await
        .ok()
        .map(|()| start.elapsed())
}

#[tokio::test]
async fn a_half_open_request_is_closed_after_the_header_timeout() {
    let app = DemoApp::start(&["--header-read-timeout", "1", "--keep-alive-timeout", "30"]).await;
    let mut s = TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .expect("write");
    let took = closed_within(&mut s, Duration::from_secs(10))
        .await
        .expect("the unfinished request head was not closed within 10 s");
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    assert!(
        took >= Duration::from_millis(800),
        "closed early, after {took:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let app = DemoApp::start(&["--header-read-timeout", "10", "--keep-alive-timeout", "1"]).await;
    let mut s = TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.expect("response");
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("connection: close"));
    let took = closed_within(&mut s, Duration::from_secs(8))
        .await
        .expect("the idle keep-alive connection was not closed within 8 s");
    assert!(took < Duration::from_secs(4), "closed after {took:?}");
    app.stop().await;
}

#[tokio::test]
async fn idle_connections_cannot_starve_a_new_client() {
    // Long timeouts: only the cap's eviction of the longest-idle connection can let a new
    // client in while the flood holds every slot.
    let app = DemoApp::start(&[
        "--max-connections",
        "50",
        "--header-read-timeout",
        "60",
        "--keep-alive-timeout",
        "60",
    ])
    .await;
    let mut flood = Vec::new();
    for _ in 0..60 {
        flood.push(
            TcpStream::connect(("127.0.0.1", app.port))
                .await
                .expect("connect"),
        );
    }
    // Half of them started a request head and never finished it.
    for s in flood.iter_mut().step_by(2) {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("write");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = app.client();
    let start = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(5), c.get("/healthz", Auth::None))
        .await
        .expect("/healthz did not answer within 5 s under an idle-connection flood");
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text, "ok");
    assert!(start.elapsed() < Duration::from_secs(5));
    // A signed-in client is served too.
    let v = c.login("alice").await;
    assert_eq!(
        c.get("/api/me", Auth::Cookie(&v)).await.status,
        StatusCode::OK
    );
    drop(flood);
    app.stop().await;
}

#[tokio::test]
async fn wrong_passwords_are_throttled_but_not_the_real_user_elsewhere() {
    let app = DemoApp::start(&["--trusted-proxy", "127.0.0.1"]).await;
    let c = app.client();
    let attacker = [("x-forwarded-for", "198.51.100.7")];
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..60 {
        let r = c
            .send(
                reqwest::Method::POST,
                "/api/login",
                Auth::None,
                Some(creds("alice", &format!("guess-{i}"))),
                &attacker,
            )
            .await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(r.json(), json!({ "error": "too_many_attempts" }));
            retry_after = r.headers.get("retry-after").cloned();
        } else {
            assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        }
        statuses.push(r.status);
    }
    let throttled = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(
        throttled >= 50,
        "only {throttled} of 60 wrong passwords were throttled"
    );
    assert_eq!(statuses[59], StatusCode::TOO_MANY_REQUESTS);
    let secs: u64 = retry_after
        .and_then(|v| v.to_str().ok().and_then(|s| s.parse().ok()))
        .expect("Retry-After in whole seconds");
    assert!(secs >= 1);
    // The right password from the attacker's address waits too…
    let r = c
        .send(
            reqwest::Method::POST,
            "/api/login",
            Auth::None,
            Some(creds("alice", "alice-password")),
            &attacker,
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // …but alice, from her own address, signs in at once.
    let r = c
        .send(
            reqwest::Method::POST,
            "/api/login",
            Auth::None,
            Some(creds("alice", "alice-password")),
            &[("x-forwarded-for", "203.0.113.20")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The HTML form says so in words.
    let r = c
        .post_form(
            "/login",
            Auth::None,
            "username=alice&password=another-guess",
            &[
                ("x-forwarded-for", "198.51.100.7"),
                ("sec-fetch-site", "same-origin"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.contains_key("retry-after"));
    assert!(r.text.contains("Too many failed sign-ins"), "{}", r.text);
    app.stop().await;
}

#[tokio::test]
async fn forwarded_for_is_not_trusted_by_default() {
    let app = DemoApp::start(&[]).await;
    let c = app.client();
    // Without --trusted-proxy, a new X-Forwarded-For each time does not escape the throttle.
    let mut last = StatusCode::OK;
    for i in 0..12 {
        let xff = format!("192.0.2.{i}");
        last = c
            .send(
                reqwest::Method::POST,
                "/api/login",
                Auth::None,
                Some(creds("bob", "wrong")),
                &[("x-forwarded-for", xff.as_str())],
            )
            .await
            .status;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    app.stop().await;
}

#[tokio::test]
async fn a_burst_of_sign_ins_past_the_hashing_bound_gets_a_quick_503() {
    let app = DemoApp::start(&["--hash-concurrency", "1", "--trusted-proxy", "127.0.0.1"]).await;
    let c = app.client();
    let mut tasks = Vec::new();
    for i in 0..24 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let xff = format!("10.1.0.{i}");
            let start = Instant::now();
            let r = c
                .send(
                    reqwest::Method::POST,
                    "/api/login",
                    Auth::None,
                    Some(creds(&format!("nobody-{i}"), "x")),
                    &[("x-forwarded-for", xff.as_str())],
                )
                .await;
            (r, start.elapsed())
        }));
    }
    let mut busy = 0;
    let mut refused = 0;
    for t in tasks {
        let (r, took) = t.await.expect("task");
        match r.status {
            StatusCode::SERVICE_UNAVAILABLE => {
                busy += 1;
                assert_eq!(r.json(), json!({ "error": "busy" }));
                assert_eq!(r.headers["retry-after"], "1");
                assert!(took < Duration::from_secs(5), "a 503 took {took:?}");
            }
            StatusCode::UNAUTHORIZED => refused += 1,
            s => panic!("unexpected {s}: {}", r.text),
        }
    }
    assert!(busy > 0, "no 503 in a burst of 24 with one hashing permit");
    assert!(refused > 0, "no sign-in was checked at all");
    // The HTML form answers a readable 503 too: hold the permit with a burst, then post.
    let mut burst = Vec::new();
    for i in 0..16 {
        let c = c.clone();
        burst.push(tokio::spawn(async move {
            let xff = format!("10.2.0.{i}");
            c.post_form(
                "/login",
                Auth::None,
                &format!("username=nobody-{i}&password=x"),
                &[
                    ("x-forwarded-for", xff.as_str()),
                    ("sec-fetch-site", "same-origin"),
                ],
            )
            .await
        }));
    }
    let mut html_busy = false;
    for t in burst {
        let r = t.await.expect("task");
        if r.status == StatusCode::SERVICE_UNAVAILABLE {
            html_busy = true;
            assert!(r.text.contains("The server is busy"), "{}", r.text);
        }
    }
    assert!(
        html_busy,
        "no HTML 503 in a burst of 16 with one hashing permit"
    );
    // After the burst, sign-in works.
    c.login("bob").await;
    app.stop().await;
}

#[tokio::test]
async fn role_changes_and_signing_out_everywhere_need_a_fresh_sign_in() {
    // Times are whole seconds: with a 1 s window, a request 2.1 s after sign-in is outside it.
    let app = DemoApp::start(&["--fresh-auth-window", "1"]).await;
    let c = app.client();
    let v = c.login("admin").await;
    let path = "/api/admin/users/bob/roles";
    let r = c
        .post(
            path,
            Auth::Cookie(&v),
            json!({ "roles": ["user", "editor"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "fresh: {}", r.text);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = c
        .post(path, Auth::Cookie(&v), json!({ "roles": ["user"] }))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json(), json!({ "error": "reauthentication_required" }));
    let r = c.post("/api/logout-all", Auth::Cookie(&v), json!({})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json(), json!({ "error": "reauthentication_required" }));
    // Still signed in: only the sensitive actions ask again.
    assert_eq!(
        c.get("/api/me", Auth::Cookie(&v)).await.status,
        StatusCode::OK
    );
    // Not signed in at all is still plain 401 unauthenticated.
    let r = c
        .post(
            "/api/admin/users/bob/roles",
            Auth::None,
            json!({ "roles": [] }),
        )
        .await;
    assert_eq!(r.json(), json!({ "error": "unauthenticated" }));

    // The HTML flow asks for the password, then does the action it was asked for.
    let same = [("sec-fetch-site", "same-origin")];
    let r = c
        .post_form(
            "/admin/users/bob/roles",
            Auth::Cookie(&v),
            "roles=user%2Cviewer",
            &same,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains(r#"id="step-up-form""#), "{}", r.text);
    assert!(r.text.contains(r#"action="/admin/users/bob/roles""#));
    assert!(r.text.contains(r#"name="roles" value="user,viewer""#));
    let r = c
        .post_form(
            "/admin/users/bob/roles",
            Auth::Cookie(&v),
            "roles=user%2Cviewer&password=wrong",
            &same,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.text.contains("Wrong password."));
    let r = c
        .post_form(
            "/admin/users/bob/roles",
            Auth::Cookie(&v),
            "roles=user%2Cviewer&password=admin-password",
            &same,
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(r.headers["location"], "/admin");
    let fresh = r
        .session_cookie()
        .expect("signing in again rotates the session");
    let bob = c.login("bob").await;
    let me = c.get("/api/me", Auth::Cookie(&bob)).await.json();
    assert_eq!(me["roles"], json!(["user", "viewer"]));
    // Signing in again through the API makes the API action work again.
    let r = c
        .post(
            "/api/login",
            Auth::Cookie(&fresh),
            creds("admin", "admin-password"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let v2 = r.session_cookie().expect("cookie");
    let r = c
        .post(
            "/api/admin/users/bob/roles",
            Auth::Cookie(&v2),
            json!({ "roles": ["user"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    // Sign out everywhere in HTML: stale, the password, then done.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = c
        .post_form("/logout-all", Auth::Cookie(&v2), "", &same)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains(r#"action="/logout-all""#));
    let r = c
        .post_form(
            "/logout-all",
            Auth::Cookie(&v2),
            "password=admin-password",
            &same,
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.clears_cookie());
    assert_eq!(
        c.get("/api/me", Auth::Cookie(&v2)).await.status,
        StatusCode::UNAUTHORIZED
    );
    app.stop().await;
}

/// SEC-34 over HTTP: the library's guessing throttle in the demo (`--guess-throttle`), keyed
/// by the client address that the demo's `--trusted-proxy` configures in the library; a valid
/// session is served, from elsewhere and from the guesser's own address.
#[tokio::test]
async fn guessing_session_ids_is_throttled_per_client_but_valid_sessions_are_served() {
    let app = DemoApp::start(&["--guess-throttle", "5", "--trusted-proxy", "127.0.0.1"]).await;
    let c = app.client();
    let alice = c.login("alice").await;
    let guesser = [("x-forwarded-for", "198.51.100.9")];
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..20 {
        // Well-formed (43 base64url characters, canonical), so the first ones reach the store.
        let id = format!("{i:0>42}A");
        let r = c
            .send(
                reqwest::Method::GET,
                "/api/me",
                Auth::Cookie(&id),
                None,
                &guesser,
            )
            .await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            retry_after = r
                .headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
        }
        statuses.push(r.status);
    }
    assert_eq!(
        &statuses[..5],
        &[StatusCode::UNAUTHORIZED; 5],
        "{statuses:?}"
    );
    assert!(
        statuses[5..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    assert!(retry_after.is_some_and(|s| s.parse::<u64>().is_ok_and(|s| (1..=300).contains(&s))));
    // Another client's valid session.
    assert_eq!(
        c.get("/api/me", Auth::Cookie(&alice)).await.status,
        StatusCode::OK
    );
    // The same valid session from the blocked address (seen valid by the layer).
    let r = c
        .send(
            reqwest::Method::GET,
            "/api/me",
            Auth::Cookie(&alice),
            None,
            &guesser,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Without --trusted-proxy the header would not matter: a different forwarded address from
    // the guesser's peer is only believed because 127.0.0.1 is trusted.
    let other = [("x-forwarded-for", "198.51.100.10")];
    let r = c
        .send(
            reqwest::Method::GET,
            "/api/me",
            Auth::Cookie("x"),
            None,
            &other,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}
