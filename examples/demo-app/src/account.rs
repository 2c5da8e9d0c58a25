//! The account page (`GET /account`): change the password, which ends the user's other
//! sessions. Its form works as a plain HTML form (`POST /account/password`) and, with the
//! page's script, as an htmx-style request to `POST /api/password` (`HX-Request: true`), so it
//! shows the library's htmx path: signed out, the API answers 401 with `HX-Redirect` to the
//! sign-in page and the script follows it.
//!
//! The script is not htmx itself: it is the 30 lines of htmx's behaviour this page uses
//! (`data-hx-post`, `data-hx-target`, the `HX-Request`, `HX-Current-URL` and `HX-Redirect`
//! headers), so the template stays free of vendored JavaScript and a build step.

use axum::extract::{Form, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sessionward::{RequireAuth, SessionError};

use crate::AppState;
use crate::api::{
    PasswordChange, PasswordChanged, change_password, retry_after_secs, with_retry_after,
};
use crate::client::ClientAddr;
use crate::html::{esc, page};

/// The script of the htmx-enhanced form, served from `/assets/hx.js` (the CSP allows scripts
/// from the app's own origin only).
const HX_SCRIPT: &str = r##"// A dependency-free subset of htmx: forms with data-hx-post send their fields as JSON
// with HX-Request, follow HX-Redirect, and show the outcome in data-hx-target.
document.addEventListener("submit", async (event) => {
  const form = event.target.closest("form[data-hx-post]");
  if (!form) return;
  event.preventDefault();
  const target = document.querySelector(form.dataset.hxTarget || "#result");
  const res = await fetch(form.dataset.hxPost, {
    method: "POST",
    credentials: "same-origin",
    headers: {
      "Content-Type": "application/json",
      "HX-Request": "true",
      "HX-Current-URL": location.href,
    },
    body: JSON.stringify(Object.fromEntries(new FormData(form))),
  });
  const redirect = res.headers.get("HX-Redirect");
  if (redirect) {
    location.href = redirect;
    return;
  }
  let message = res.status === 204 ? "Password changed. Your other sessions were signed out." : "";
  if (!message) {
    const body = await res.json().catch(() => ({}));
    message = "Not changed: " + (body.error || res.status);
  }
  if (target) target.textContent = message;
  if (res.ok) form.reset();
});
"##;

/// `GET /assets/hx.js`.
pub(crate) async fn hx_script() -> Response {
    let mut res = HX_SCRIPT.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

fn account_body(user: &str, message: Option<(&str, &str)>) -> String {
    let message = message.map_or_else(String::new, |(class, m)| {
        format!(r#"<p class="{class}" id="message">{}</p>"#, esc(m))
    });
    format!(
        r##"<h1>Account of <span id="username">{user}</span></h1>
{message}
<h2>Change your password</h2>
<p class="muted">Changing it signs you out on every other device; this one stays signed in.</p>
<form method="post" action="/account/password" id="password-form" data-hx-post="/api/password" data-hx-target="#result">
<label for="current">Current password</label>
<input type="password" id="current" name="current" autocomplete="current-password" required maxlength="1024">
<label for="new">New password (at least 8 characters)</label>
<input type="password" id="new" name="new" autocomplete="new-password" required minlength="8" maxlength="1024">
<div><button type="submit" id="change-password">Change password</button></div>
</form>
<p id="result" role="status"></p>
<p><a href="/">Back to your sessions</a></p>
<script src="/assets/hx.js" defer></script>"##,
        user = esc(user),
    )
}

/// `GET /account`: signed out, the session layer sends a browser to `/login?next=/account`.
pub(crate) async fn account_page(auth: RequireAuth) -> Response {
    page("Your account", &account_body(auth.user.as_str(), None)).into_response()
}

/// `POST /account/password`: the form without the script.
pub(crate) async fn change_password_form(
    State(state): State<AppState>,
    auth: RequireAuth,
    client: ClientAddr,
    Form(change): Form<PasswordChange>,
) -> Result<Response, SessionError> {
    let user = auth.user.as_str().to_owned();
    let (status, class, message, retry) =
        match change_password(&state, &auth, &change, client).await? {
            PasswordChanged::Ok(n) => (
                StatusCode::OK,
                "ok",
                format!("Password changed. {n} other session(s) signed out."),
                None,
            ),
            PasswordChanged::WrongCurrent => (
                StatusCode::FORBIDDEN,
                "error",
                "Your current password is not right; nothing was changed.".to_owned(),
                None,
            ),
            PasswordChanged::InvalidNew => (
                StatusCode::BAD_REQUEST,
                "error",
                "The new password must be 8 to 1024 characters long.".to_owned(),
                None,
            ),
            PasswordChanged::Throttled(wait) => (
                StatusCode::TOO_MANY_REQUESTS,
                "error",
                "Too many wrong passwords. Please wait and try again.".to_owned(),
                Some(retry_after_secs(wait)),
            ),
            PasswordChanged::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "error",
                "The server is busy. Please try again in a moment.".to_owned(),
                Some(1),
            ),
        };
    let res = (
        status,
        page(
            "Your account",
            &account_body(&user, Some((class, &message))),
        ),
    )
        .into_response();
    Ok(match retry {
        Some(secs) => with_retry_after(res, secs),
        None => res,
    })
}
