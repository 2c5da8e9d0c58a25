//! Timeouts on the server clock, the touch interval, presets and configuration errors.
//! Through an axum `Router` and `tower::ServiceExt::oneshot`; time is a test clock: nothing
//! here sleeps for a timeout.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::TestApp;
use sessionward::SessionConfig;

#[tokio::test]
async fn touch_is_coalesced_by_the_touch_interval() {
    let app = TestApp::new(); // idle 30 min: touch interval 60 s
    let v = app.login("alice", "user").await;
    app.store.reset_calls();
    app.advance(30);
    app.get("/me", Some(&v)).await;
    assert_eq!(app.store.calls().get("touch"), None);
    app.advance(31);
    app.get("/me", Some(&v)).await;
    assert_eq!(app.store.calls().get("touch"), Some(&1));
    app.advance(5);
    app.get("/me", Some(&v)).await;
    app.get("/me", Some(&v)).await;
    assert_eq!(app.store.calls().get("touch"), Some(&1));
    assert_eq!(app.store.calls().get("load"), Some(&4));
}

#[tokio::test]
async fn idle_timeout_on_the_server_clock() {
    let app = TestApp::with(|b| {
        b.idle_timeout(Duration::from_secs(120))
            .absolute_timeout(Duration::from_secs(3600))
    });
    let v = app.login("alice", "user").await;
    for _ in 0..5 {
        app.advance(100);
        let r = app
            .send(
                Request::get("/me")
                    .header(header::COOKIE, format!("__Host-id={v}"))
                    .header(header::DATE, "Thu, 01 Jan 2099 00:00:00 GMT")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "activity keeps the session alive");
    }
    app.advance(121);
    let r = app.get("/me", Some(&v)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.clears_cookie());
}

#[tokio::test]
async fn absolute_timeout_is_not_extended_by_activity_or_rotation() {
    let app = TestApp::with(|b| {
        b.idle_timeout(Duration::from_secs(120))
            .absolute_timeout(Duration::from_secs(600))
    });
    let mut v = app.login("alice", "user").await;
    for i in 0..5 {
        app.advance(100);
        assert_eq!(app.get("/me", Some(&v)).await.status, StatusCode::OK);
        if i == 2 {
            v = app
                .post("/elevate", Some(&v))
                .await
                .session_cookie()
                .expect("rotated");
        }
    }
    app.advance(100); // 600 s after sign-in
    assert_eq!(
        app.get("/me", Some(&v)).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Signing in again starts a new absolute lifetime.
    let v = app.login("alice", "user").await;
    app.advance(100);
    assert_eq!(app.get("/me", Some(&v)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn presets_set_both_timeouts() {
    use sessionward::Preset;
    for (p, idle, absolute) in [
        (Preset::Aal2, 1800, 43_200),
        (Preset::Aal3, 900, 43_200),
        (Preset::HighValue, 300, 14_400),
    ] {
        let c = SessionConfig::builder().preset(p).build().expect("valid");
        assert_eq!(
            (c.idle_timeout().as_secs(), c.absolute_timeout().as_secs()),
            (idle, absolute)
        );
    }
    let app = TestApp::with(|b| b.preset(sessionward::Preset::HighValue));
    let v = app.login("alice", "user").await;
    app.advance(301);
    assert_eq!(
        app.get("/me", Some(&v)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn config_errors_at_build_time() {
    use sessionward::{ConfigError, SameSite};
    let b = SessionConfig::builder;
    assert_eq!(
        b().domain("example.com").build().err(),
        Some(ConfigError::HostPrefixWithDomain)
    );
    assert_eq!(
        b().path("/app").build().err(),
        Some(ConfigError::HostPrefixPath)
    );
    assert_eq!(
        b().dev_insecure().build().err(),
        Some(ConfigError::PrefixWithoutSecure)
    );
    assert_eq!(
        b().cookie_name("__Secure-id").dev_insecure().build().err(),
        Some(ConfigError::PrefixWithoutSecure)
    );
    // Browsers read the prefixes case-insensitively: so does the builder.
    assert_eq!(
        b().cookie_name("__host-id")
            .domain("example.com")
            .build()
            .err(),
        Some(ConfigError::HostPrefixWithDomain)
    );
    assert_eq!(
        b().cookie_name("__HOST-id").path("/app").build().err(),
        Some(ConfigError::HostPrefixPath)
    );
    assert_eq!(
        b().cookie_name("__secure-id").dev_insecure().build().err(),
        Some(ConfigError::PrefixWithoutSecure)
    );
    assert_eq!(
        b().cookie_name("sid")
            .same_site(SameSite::None)
            .dev_insecure()
            .build()
            .err(),
        Some(ConfigError::SameSiteNoneWithoutSecure)
    );
    assert!(matches!(
        b().idle_timeout(Duration::from_secs(3600))
            .absolute_timeout(Duration::from_secs(3600))
            .build(),
        Err(ConfigError::AbsoluteNotAfterIdle { .. })
    ));
    assert_eq!(
        b().idle_timeout(Duration::ZERO).build().err(),
        Some(ConfigError::ZeroTimeout("idle"))
    );
    assert_eq!(
        b().absolute_timeout(Duration::ZERO).build().err(),
        Some(ConfigError::ZeroTimeout("absolute"))
    );
    assert!(matches!(
        b().cookie_name("bad name").build(),
        Err(ConfigError::InvalidCookieName(_))
    ));
    assert!(matches!(
        b().cookie_name("sid").path("/x;y").build(),
        Err(ConfigError::InvalidPath(_))
    ));
    assert_eq!(
        b().touch_interval(Duration::from_secs(3600)).build().err(),
        Some(ConfigError::TouchIntervalTooLong)
    );
    // Valid opt-ins.
    assert!(
        b().same_site(SameSite::Lax)
            .persistent_cookies(true)
            .build()
            .is_ok()
    );
    assert!(
        b().cookie_name("sid")
            .path("/app")
            .domain("example.com")
            .build()
            .is_ok()
    );
    assert!(b().cookie_name("sid").dev_insecure().build().is_ok());
    let d = SessionConfig::default();
    assert_eq!(
        (d.idle_timeout(), d.absolute_timeout(), d.cookie_name()),
        (
            Duration::from_secs(1800),
            Duration::from_secs(43_200),
            "__Host-id"
        )
    );
}
