//! Every `Set-Cookie` the layer emits, parsed back with the `cookie` crate (the oracle of our
//! hand-written formatting, `src/cookie.rs` and `session/response.rs`), for every combination
//! of the cookie settings; and the opt-in `Partitioned` attribute: its validation and its
//! emission on set, rotate and clear.
//!
//! Parsed back means: the same name, the same value (a token, or empty when clearing), every
//! attribute we configured with the value we configured, and no attribute besides them (the
//! crate ignores names it does not know, so each raw attribute name is checked too). The one
//! normalisation is the crate's, and RFC 6265 §5.2.3's: a leading `.` of `Domain` is dropped.
//!
//! Through an axum `Router` and `tower::ServiceExt::oneshot`, on a test clock.

mod common;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{ATTRS, TestApp};
use proptest::prelude::*;
use sessionward::{ConfigError, SameSite, SessionConfig, SessionConfigBuilder};
use sessionward_core::SessionToken;

/// One combination of the cookie settings.
#[derive(Clone, Debug)]
struct Combo {
    name: String,
    secure: bool,
    same_site: SameSite,
    path: String,
    domain: Option<String>,
    persistent: bool,
    partitioned: bool,
}

impl Combo {
    fn configure(&self, b: SessionConfigBuilder) -> SessionConfigBuilder {
        let mut b = b
            .cookie_name(self.name.clone())
            .same_site(self.same_site)
            .path(self.path.clone())
            .persistent_cookies(self.persistent)
            .partitioned(self.partitioned);
        if let Some(d) = &self.domain {
            b = b.domain(d.clone());
        }
        if !self.secure {
            b = b.dev_insecure();
        }
        b
    }

    /// The errors this combination deserves (empty: it is valid). The builder reports the
    /// first it finds, so any one of them is right.
    fn errors(&self) -> Vec<ConfigError> {
        let host = self.name.starts_with("__Host-");
        let prefixed = host || self.name.starts_with("__Secure-");
        let mut errors = Vec::new();
        if host && self.domain.is_some() {
            errors.push(ConfigError::HostPrefixWithDomain);
        }
        if host && self.path != "/" {
            errors.push(ConfigError::HostPrefixPath);
        }
        if prefixed && !self.secure {
            errors.push(ConfigError::PrefixWithoutSecure);
        }
        if self.same_site == SameSite::None && !self.secure {
            errors.push(ConfigError::SameSiteNoneWithoutSecure);
        }
        if self.partitioned && !self.secure {
            errors.push(ConfigError::PartitionedWithoutSecure);
        }
        if self.partitioned && self.same_site != SameSite::None {
            errors.push(ConfigError::PartitionedWithoutSameSiteNone);
        }
        errors
    }

    fn request(&self, method: &str, path: &str, value: Option<&str>) -> Request<Body> {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(v) = value {
            b = b.header(header::COOKIE, format!("{}={v}", self.name));
        }
        b.body(Body::empty()).expect("request")
    }
}

/// What a `Set-Cookie` is meant to do.
#[derive(Clone, Copy, Debug)]
enum Meant {
    /// Set a token; a persistent cookie with this `Max-Age`.
    Set { max_age: i64 },
    /// Clear the cookie.
    Clear,
}

/// Parses `set_cookie` with the oracle and checks it against `combo`; returns the value.
fn check(set_cookie: &str, combo: &Combo, meant: Meant) -> String {
    let c = cookie::Cookie::parse(set_cookie).expect("the oracle parses it");
    assert_eq!(c.name(), combo.name, "{set_cookie}");
    match meant {
        Meant::Set { .. } => assert!(
            SessionToken::parse(c.value()).is_some(),
            "a token: {set_cookie}"
        ),
        Meant::Clear => assert_eq!(c.value(), "", "{set_cookie}"),
    }
    assert_eq!(c.secure(), combo.secure.then_some(true), "{set_cookie}");
    assert_eq!(c.http_only(), Some(true), "{set_cookie}");
    let same_site = match combo.same_site {
        SameSite::Strict => cookie::SameSite::Strict,
        SameSite::Lax => cookie::SameSite::Lax,
        SameSite::None => cookie::SameSite::None,
        other => unreachable!("a SameSite this test does not know: {other:?}"),
    };
    assert_eq!(c.same_site(), Some(same_site), "{set_cookie}");
    assert_eq!(c.path(), Some(combo.path.as_str()), "{set_cookie}");
    let domain = combo
        .domain
        .as_deref()
        .map(|d| d.strip_prefix('.').unwrap_or(d));
    assert_eq!(c.domain(), domain, "{set_cookie}");
    assert_eq!(
        c.partitioned(),
        combo.partitioned.then_some(true),
        "{set_cookie}"
    );
    assert_eq!(c.expires(), None, "{set_cookie}");
    let max_age = match meant {
        Meant::Set { max_age } => combo.persistent.then_some(max_age),
        Meant::Clear => Some(0),
    };
    assert_eq!(
        c.max_age(),
        max_age.map(cookie::time::Duration::seconds),
        "{set_cookie}"
    );

    // And nothing else: every attribute, by its raw name, exactly once.
    let mut expected: BTreeSet<&str> = ["path", "httponly", "samesite"].into();
    for (on, attr) in [
        (combo.secure, "secure"),
        (combo.domain.is_some(), "domain"),
        (combo.partitioned, "partitioned"),
        (max_age.is_some(), "max-age"),
    ] {
        if on {
            expected.insert(attr);
        }
    }
    let raw: Vec<String> = set_cookie
        .split(';')
        .skip(1)
        .map(|a| {
            a.split('=')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .collect();
    let raw_set: BTreeSet<&str> = raw.iter().map(String::as_str).collect();
    assert_eq!(raw.len(), raw_set.len(), "an attribute twice: {set_cookie}");
    assert_eq!(raw_set, expected, "{set_cookie}");
    c.value().to_owned()
}

/// The one `Set-Cookie` of a response.
fn only_set_cookie(r: &common::Reply) -> String {
    let all = r.set_cookies();
    assert_eq!(all.len(), 1, "{all:?}");
    all[0].clone()
}

/// Drives `combo` (a valid one) through every way the layer sets or clears the cookie, and
/// checks each `Set-Cookie` with the oracle; the value the oracle reads is sent back.
async fn every_set_cookie_parses_back(combo: &Combo) {
    let app = TestApp::with(|b| combo.configure(b));
    let absolute = 12 * 3600;
    let send = |method: &'static str, path: &'static str, value: Option<String>| {
        let req = combo.request(method, path, value.as_deref());
        let app = &app;
        async move { app.send(req).await }
    };

    // Created anonymously by a write.
    let r = send("POST", "/cart?item=book", None).await;
    assert_eq!(r.status, StatusCode::OK, "{combo:?}");
    let anon = check(
        &only_set_cookie(&r),
        combo,
        Meant::Set { max_age: absolute },
    );
    assert_eq!(
        send("GET", "/cart", Some(anon.clone())).await.body,
        "book",
        "{combo:?}"
    );

    // Rotated by a sign-in, and read back.
    let r = send("POST", "/login?user=alice&roles=user", Some(anon)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{combo:?}");
    let v = check(
        &only_set_cookie(&r),
        combo,
        Meant::Set { max_age: absolute },
    );
    let r = send("GET", "/me", Some(v.clone())).await;
    assert_eq!(r.status, StatusCode::OK, "{combo:?}");

    // Rotated by a privilege change.
    let r = send("POST", "/elevate", Some(v)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{combo:?}");
    let v = check(
        &only_set_cookie(&r),
        combo,
        Meant::Set { max_age: absolute },
    );

    // A sign-in with a longer lifetime ("remember me").
    let r = send("POST", "/login-remember?days=30", Some(v)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{combo:?}");
    let v = check(
        &only_set_cookie(&r),
        combo,
        Meant::Set {
            max_age: 30 * 86_400,
        },
    );

    // Cleared by a logout.
    let r = send("POST", "/logout", Some(v.clone())).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{combo:?}");
    check(&only_set_cookie(&r), combo, Meant::Clear);

    // Cleared because the ID presented is dead (the logged-out one) or unknown.
    for dead in [v, SessionToken::generate().expect("rng").expose()] {
        let r = send("GET", "/me", Some(dead)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{combo:?}");
        check(&only_set_cookie(&r), combo, Meant::Clear);
    }
}

fn combos() -> Vec<Combo> {
    let mut all = Vec::new();
    for name in ["__Host-id", "__Secure-id", "sid"] {
        for secure in [true, false] {
            for same_site in [SameSite::Strict, SameSite::Lax, SameSite::None] {
                for path in ["/", "/app"] {
                    for domain in [None, Some("example.com"), Some(".example.com")] {
                        for persistent in [false, true] {
                            for partitioned in [false, true] {
                                all.push(Combo {
                                    name: name.to_owned(),
                                    secure,
                                    same_site,
                                    path: path.to_owned(),
                                    domain: domain.map(str::to_owned),
                                    persistent,
                                    partitioned,
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    all
}

/// Every combination of the cookie settings: the invalid ones are refused with a right
/// error, and every `Set-Cookie` of the valid ones parses back to what was configured.
#[tokio::test]
async fn every_configuration_emits_cookies_the_oracle_reads_back() {
    let mut valid = 0;
    for combo in combos() {
        let errors = combo.errors();
        match combo.configure(SessionConfig::builder()).build() {
            Ok(_) => {
                assert!(errors.is_empty(), "{combo:?} built despite {errors:?}");
                every_set_cookie_parses_back(&combo).await;
                valid += 1;
            }
            Err(e) => assert!(
                errors.contains(&e),
                "{combo:?}: {e:?}, not one of {errors:?}"
            ),
        }
    }
    // Of the 432: __Host- allows neither a Domain nor another Path, prefixes and SameSite=None
    // need Secure, Partitioned needs Secure and SameSite=None.
    assert_eq!(valid, 128);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any name, path and domain the builder accepts comes back from the oracle as given.
    #[test]
    fn any_accepted_name_path_and_domain_parse_back(
        name in "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}",
        path in "/[!-:<-~]{0,12}",
        domain in proptest::option::of("[!-:<-~]{1,12}"),
        secure in any::<bool>(),
        same_site in prop::sample::select(vec![SameSite::Strict, SameSite::Lax, SameSite::None]),
        persistent in any::<bool>(),
        partitioned in any::<bool>(),
    ) {
        let combo = Combo { name, secure, same_site, path, domain, persistent, partitioned };
        let built = combo.configure(SessionConfig::builder()).build();
        prop_assert_eq!(built.is_ok(), combo.errors().is_empty(), "{:?}", built);
        prop_assume!(built.is_ok());
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(every_set_cookie_parses_back(&combo));
    }
}

#[test]
fn partitioned_is_validated() {
    let b = || SessionConfig::builder().partitioned(true);
    // With the default SameSite=Strict, and with Lax: the cookie would never reach the iframe.
    assert_eq!(
        b().build().err(),
        Some(ConfigError::PartitionedWithoutSameSiteNone)
    );
    assert_eq!(
        b().same_site(SameSite::Lax).build().err(),
        Some(ConfigError::PartitionedWithoutSameSiteNone)
    );
    // Without Secure.
    assert_eq!(
        b().cookie_name("sid").dev_insecure().build().err(),
        Some(ConfigError::PartitionedWithoutSecure)
    );
    assert!(matches!(
        b().cookie_name("sid")
            .dev_insecure()
            .same_site(SameSite::None)
            .build(),
        Err(ConfigError::SameSiteNoneWithoutSecure | ConfigError::PartitionedWithoutSecure)
    ));
    // Secure and SameSite=None: fine, with the prefixes or without.
    for name in ["__Host-id", "__Secure-id", "sid"] {
        assert!(
            b().cookie_name(name)
                .same_site(SameSite::None)
                .build()
                .is_ok()
        );
    }
    // Off by default, and off is never an error.
    assert!(SessionConfig::builder().partitioned(false).build().is_ok());
}

#[tokio::test]
async fn partitioned_is_on_every_set_cookie_of_the_session_cookie() {
    let app = TestApp::with(|b| b.same_site(SameSite::None).partitioned(true));
    let attrs = "; Path=/; Secure; HttpOnly; SameSite=None; Partitioned";
    let r = app.post("/login?user=alice", None).await;
    let v = r.session_cookie().expect("cookie");
    assert_eq!(r.set_cookies(), vec![format!("__Host-id={v}{attrs}")]);
    let r = app.post("/elevate", Some(&v)).await;
    let v2 = r.session_cookie().expect("rotated");
    assert_eq!(r.set_cookies(), vec![format!("__Host-id={v2}{attrs}")]);
    let r = app.post("/logout", Some(&v2)).await;
    assert_eq!(
        r.set_cookies(),
        vec![format!("__Host-id=; Max-Age=0{attrs}")]
    );
    // The clearing cookie of a dead ID too.
    let r = app.get("/me", Some(&v2)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.set_cookies(),
        vec![format!("__Host-id=; Max-Age=0{attrs}")]
    );
    // Persistent: Max-Age follows the attributes.
    let app = TestApp::with(|b| {
        b.same_site(SameSite::None)
            .partitioned(true)
            .persistent_cookies(true)
    });
    let r = app.post("/login?user=alice", None).await;
    let v = r.session_cookie().expect("cookie");
    assert_eq!(
        r.set_cookies(),
        vec![format!("__Host-id={v}{attrs}; Max-Age=43200")]
    );
    // And the default cookie has no Partitioned.
    let app = TestApp::new();
    let r = app.post("/login?user=alice", None).await;
    let v = r.session_cookie().expect("cookie");
    assert_eq!(r.set_cookies(), vec![format!("__Host-id={v}{ATTRS}")]);
}
