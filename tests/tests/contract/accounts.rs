//! The contract lines of the accounts issue: `GET /account` and the sign-in redirect with
//! `next`, `WWW-Authenticate` and `HX-Redirect` on the API's 401s, "remember me", and
//! `POST /api/password`. Run on every store by `contract()`.

use reqwest::{Method, StatusCode};
use serde_json::json;
use sessionward_e2e::{Auth, Client, Reply};

const HTML: (&str, &str) = ("accept", "text/html,application/xhtml+xml,*/*;q=0.8");
/// The demo's absolute timeout (12 hours).
const ABSOLUTE: u64 = 12 * 3600;

fn header<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
    r.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The `Max-Age` of the session cookie a response sets; asserts no `Expires`.
fn max_age(r: &Reply) -> Option<u64> {
    let c = r
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("__Host-id="))
        .expect("a session cookie");
    assert!(!c.contains("Expires"), "{c}");
    c.split("; ")
        .find_map(|a| a.strip_prefix("Max-Age="))
        .map(|s| s.parse().expect("a number"))
}

/// Signed out, `/account` sends a browser to the sign-in form with `next=/account`; signing
/// in through the form with that `next` lands on `/account`.
pub(crate) async fn account_redirect(c: &Client) {
    let r = c
        .send(Method::GET, "/account", Auth::None, None, &[HTML])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let location = header(&r, "location").expect("Location").to_owned();
    assert_eq!(location, "/login?next=/account");
    let r = c
        .send(Method::GET, &location, Auth::None, None, &[HTML])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.text
            .contains(r#"<input type="hidden" name="next" value="/account">"#)
    );
    assert!(
        r.text.contains(r#"name="remember""#),
        "no remember-me checkbox"
    );
    let r = c
        .post_form(
            "/login",
            Auth::None,
            "username=alice&password=alice-password&next=%2Faccount",
            &[HTML],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(header(&r, "location"), Some("/account"));
    assert_eq!(
        max_age(&r),
        None,
        "not remembered: a browser-session cookie"
    );
    let v = r.session_cookie().expect("signed in");
    let r = c
        .send(Method::GET, "/account", Auth::Cookie(&v), None, &[HTML])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains(r#"<span id="username">alice</span>"#));
    assert!(r.text.contains(r#"id="password-form""#));
    assert!(r.text.contains(r#"data-hx-post="/api/password""#));
    assert!(!r.text.contains(&v), "the token appears in the page");
    // The form's "remember me" checkbox; a `next` elsewhere is not followed.
    let r = c
        .post_form(
            "/login",
            Auth::None,
            "username=alice&password=alice-password&remember=on&next=%2F%2Fevil.example",
            &[HTML],
        )
        .await;
    assert_eq!(header(&r, "location"), Some("/"));
    let age = max_age(&r).expect("remembered: Max-Age");
    assert!(age > 0 && age <= ABSOLUTE, "{age}");
    // The page's script is served from the app's own origin, as the CSP allows.
    let r = c.get("/assets/hx.js", Auth::None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("HX-Redirect"));
    let r = c.get("/", Auth::None).await;
    let csp = header(&r, "content-security-policy").unwrap_or_default();
    assert!(csp.contains("script-src 'self'"), "{csp}");
}

/// The API's 401s carry `WWW-Authenticate`; with `HX-Request: true` also `HX-Redirect` to
/// the sign-in page.
pub(crate) async fn api_challenges(c: &Client) {
    for (method, path) in [
        (Method::GET, "/api/me"),
        (Method::GET, "/api/sessions"),
        (Method::POST, "/api/password"),
        (Method::POST, "/api/logout-all"),
    ] {
        let body = (method == Method::POST).then(|| json!({ "current": "x", "new": "y" }));
        let r = c
            .send(method.clone(), path, Auth::None, body.clone(), &[])
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
        let challenge = header(&r, "www-authenticate").unwrap_or_default();
        assert!(!challenge.is_empty(), "{path}: no WWW-Authenticate");
        assert!(header(&r, "hx-redirect").is_none());
        let r = c
            .send(
                method,
                path,
                Auth::None,
                body,
                &[
                    ("hx-request", "true"),
                    ("hx-current-url", "https://demo.example/account"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(header(&r, "www-authenticate").is_some());
        assert_eq!(
            header(&r, "hx-redirect"),
            Some("/login?next=/account"),
            "{path}"
        );
    }
}

/// `POST /api/login` with `"remember": true`: Max-Age no longer than the remaining absolute
/// lifetime; without it, no Max-Age or Expires.
pub(crate) async fn remember_me(c: &Client) {
    let r = c
        .post(
            "/api/login",
            Auth::None,
            json!({ "username": "alice", "password": "alice-password", "remember": true }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let age = max_age(&r).expect("remembered: Max-Age");
    assert!(age > 0 && age <= ABSOLUTE, "{age}");
    for body in [
        json!({ "username": "alice", "password": "alice-password" }),
        json!({ "username": "alice", "password": "alice-password", "remember": false }),
    ] {
        let r = c.post("/api/login", Auth::None, body).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(max_age(&r), None);
    }
}

async fn change(c: &Client, v: &str, current: &str, new: &str) -> Reply {
    c.post(
        "/api/password",
        Auth::Cookie(v),
        json!({ "current": current, "new": new }),
    )
    .await
}

/// Signs in through the API. A sign-in that starts within the layer's authorization clock
/// margin (1 s) after a change of the user's authorization (a password change, a role change)
/// is refused 409 `authorization_changed` by design, and the client signs in again: so does
/// this, for at most 3 s.
async fn sign_in_reply(c: &Client, user: &str, password: &str) -> Reply {
    let body = json!({ "username": user, "password": password });
    for _ in 0..12 {
        let r = c.post("/api/login", Auth::None, body.clone()).await;
        if r.status != StatusCode::CONFLICT {
            return r;
        }
        assert_eq!(r.json(), json!({ "error": "authorization_changed" }));
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    panic!("sign-in of {user} refused for 3 s");
}

async fn sign_in(c: &Client, user: &str, password: &str) -> StatusCode {
    sign_in_reply(c, user, password).await.status
}

async fn login(c: &Client, user: &str) -> String {
    let r = sign_in_reply(c, user, &format!("{user}-password")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.session_cookie().expect("a session cookie")
}

/// `POST /api/password`: every other session of the user ends, this one stays; the new
/// password signs in and the old one does not; a wrong `current` is 403 and changes nothing.
pub(crate) async fn password_change(c: &Client) {
    let b1 = login(c, "bob").await;
    let b2 = login(c, "bob").await;
    let alice = login(c, "alice").await;
    let r = change(c, &b1, "not-bobs-password", "bob-new-password").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(
        c.get("/api/me", Auth::Cookie(&b2)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        sign_in(c, "bob", "bob-new-password").await,
        StatusCode::UNAUTHORIZED
    );
    // The account page's form, wrong current password: 403, nothing changed.
    let r = c
        .post_form(
            "/account/password",
            Auth::Cookie(&b1),
            "current=wrong-password&new=bob-new-password",
            &[HTML],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        c.get("/api/me", Auth::Cookie(&b2)).await.status,
        StatusCode::OK
    );

    let r = change(c, &b1, "bob-password", "bob-new-password").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(
        c.get("/api/me", Auth::Cookie(&b2)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        c.get("/api/me", Auth::Cookie(&b1)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        c.get("/api/me", Auth::Cookie(&alice)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        sign_in(c, "bob", "bob-password").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(sign_in(c, "bob", "bob-new-password").await, StatusCode::OK);

    // Back to the demo's password, through the account page's form this time.
    let r = c
        .post_form(
            "/account/password",
            Auth::Cookie(&b1),
            "current=bob-new-password&new=bob-password",
            &[HTML],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        c.get("/api/me", Auth::Cookie(&b1)).await.status,
        StatusCode::OK
    );
    assert_eq!(sign_in(c, "bob", "bob-password").await, StatusCode::OK);
}
