//! Server-rendered HTML pages: sign-in form, the signed-in page with the user's sessions, and
//! the admin page. Plain forms, no scripts, no front-end build step.

use std::fmt::Write as _;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use sessionward::{AuthRejection, RequireAuth, Session, SessionError, Sessions, safe_next};

use crate::AppState;
use crate::api::{
    Credentials, Fresh, SignIn, change_roles, end_own_session, retry_after_secs, sign_in,
    with_retry_after,
};
use crate::client::ClientAddr;

/// Escapes text for HTML element content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · sessionward demo</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; color: #1d1d1f; }}
h1 {{ font-size: 1.5rem; }}
table {{ border-collapse: collapse; width: 100%; margin: 1rem 0; }}
th, td {{ text-align: left; padding: .4rem .5rem; border-bottom: 1px solid #ddd; font-size: .9rem; }}
form.inline {{ display: inline; }}
label {{ display: block; margin: .5rem 0 .2rem; }}
input[type=text], input[type=password] {{ padding: .4rem; width: 16rem; }}
button {{ padding: .4rem .8rem; margin: .5rem .3rem .5rem 0; cursor: pointer; }}
.error {{ color: #b00020; }}
.muted {{ color: #666; }}
.tag {{ background: #eef; padding: .1rem .4rem; border-radius: .3rem; margin-right: .2rem; }}
</style>
</head>
<body>
{body}
</body>
</html>"#,
        title = esc(title),
    ))
}

/// The HTML routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/account", get(crate::account::account_page))
        .route(
            "/account/password",
            post(crate::account::change_password_form),
        )
        .route("/assets/hx.js", get(crate::account::hx_script))
        .route("/logout", post(logout))
        .route("/logout-all", post(logout_all))
        .route("/sessions/{id}/end", post(end_session))
        .route("/admin", get(admin_page))
        .route("/admin/users/{username}/roles", post(admin_set_roles))
}

/// The sign-in form; `next` (already [`safe_next`]-checked) is where it goes after success.
pub(crate) fn sign_in_form(error: Option<&str>, next: Option<&str>) -> String {
    let error = error.map_or_else(String::new, |e| {
        format!(r#"<p class="error" id="error">{}</p>"#, esc(e))
    });
    let next = next.map_or_else(String::new, |n| {
        format!(r#"<input type="hidden" name="next" value="{}">"#, esc(n))
    });
    format!(
        r#"<h1>Sign in</h1>
{error}
<form method="post" action="/login" id="login-form">
<label for="username">Username</label>
<input type="text" id="username" name="username" autocomplete="username" required maxlength="64">
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required maxlength="1024">
<label><input type="checkbox" id="remember" name="remember" value="on"> Remember me on this device</label>
{next}
<div><button type="submit" id="sign-in">Sign in</button></div>
</form>
<p class="muted">Demo users: alice / alice-password, bob / bob-password, admin / admin-password.</p>"#
    )
}

async fn home(auth: Option<RequireAuth>) -> Result<Response, SessionError> {
    let Some(auth) = auth else {
        return Ok(page("Sign in", &sign_in_form(None, None)).into_response());
    };
    let sessions = auth.session.list_sessions().await?;
    let mut rows = String::new();
    for s in &sessions {
        let _ = write!(
            rows,
            r#"<tr class="session"><td>{created}</td><td>{seen}</td><td>{ua}</td><td>{this}</td>
<td><form class="inline" method="post" action="/sessions/{id}/end"><button type="submit">End</button></form></td></tr>"#,
            created = esc(&s.created_at.to_rfc3339()),
            seen = esc(&s.last_seen_at.to_rfc3339()),
            ua = esc(s.user_agent.as_deref().unwrap_or("unknown")),
            this = if s.current {
                "<strong>this device</strong>"
            } else {
                ""
            },
            id = esc(&s.handle.to_string()),
        );
    }
    let roles: String = auth
        .roles
        .iter()
        .map(|r| format!(r#"<span class="tag">{}</span>"#, esc(r)))
        .collect();
    let admin_link = if auth.roles.contains("admin") {
        r#"<p><a href="/admin">Manage users' roles</a></p>"#
    } else {
        ""
    };
    let body = format!(
        r#"<h1 id="welcome">Signed in as <span id="username">{user}</span></h1>
<p>Roles: {roles}</p>
{admin_link}
<p><a href="/account" id="account-link">Account: change your password</a></p>
<h2>Your sessions</h2>
<table id="sessions"><thead><tr><th>Created</th><th>Last seen</th><th>Device</th><th></th><th></th></tr></thead>
<tbody>{rows}</tbody></table>
<form class="inline" method="post" action="/logout"><button type="submit" id="sign-out">Sign out</button></form>
<form class="inline" method="post" action="/logout-all"><button type="submit" id="sign-out-everywhere">Sign out everywhere</button></form>"#,
        user = esc(auth.user.as_str()),
    );
    Ok(page("Your account", &body).into_response())
}

/// The page of a refused sign-in: its status and message (`None` for success).
fn refused(outcome: &SignIn) -> Option<(StatusCode, String, Option<u64>)> {
    match outcome {
        SignIn::Ok(_) => None,
        SignIn::Invalid => Some((
            StatusCode::UNAUTHORIZED,
            "Unknown username or wrong password.".to_owned(),
            None,
        )),
        SignIn::Throttled(wait) => {
            let secs = retry_after_secs(*wait);
            Some((
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many failed sign-ins. Please wait {secs} second{} and try again.",
                    if secs == 1 { "" } else { "s" }
                ),
                Some(secs),
            ))
        }
        SignIn::Busy => Some((
            StatusCode::SERVICE_UNAVAILABLE,
            "The server is busy. Please try again in a moment.".to_owned(),
            Some(1),
        )),
    }
}

/// `res` with `Retry-After` when there is a wait to tell.
fn with_retry(res: Response, retry: Option<u64>) -> Response {
    match retry {
        Some(secs) => with_retry_after(res, secs),
        None => res,
    }
}

/// The sign-in form's fields.
#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    /// The "remember me" checkbox: present when ticked.
    remember: Option<String>,
    /// Where to go after signing in; only a same-origin path is followed.
    next: Option<String>,
}

/// `GET /login?next=..`: the sign-in form (where the session layer sends signed-out browsers);
/// a signed-in user goes straight on to `next`.
#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn login_page(auth: Option<RequireAuth>, Query(q): Query<NextQuery>) -> Response {
    let next = q.next.as_deref().and_then(safe_next);
    if auth.is_some() {
        return Redirect::to(next.unwrap_or("/")).into_response();
    }
    page("Sign in", &sign_in_form(None, next)).into_response()
}

async fn login(
    State(state): State<AppState>,
    session: Session,
    client: ClientAddr,
    Form(form): Form<LoginForm>,
) -> Result<Response, SessionError> {
    let creds = Credentials {
        username: form.username,
        password: form.password,
        remember: Some(form.remember.is_some()),
    };
    let next = form.next.as_deref().and_then(safe_next);
    let outcome = sign_in(&state, &session, &creds, client).await?;
    let Some((status, message, retry)) = refused(&outcome) else {
        return Ok(Redirect::to(next.unwrap_or("/")).into_response());
    };
    let res = (status, page("Sign in", &sign_in_form(Some(&message), next))).into_response();
    Ok(with_retry(res, retry))
}

async fn logout(session: Session) -> Redirect {
    session.logout();
    Redirect::to("/")
}

/// A form that may carry the password of a step-up sign-in.
#[derive(Deserialize)]
struct StepUpForm {
    password: Option<String>,
}

/// The page that asks for the password again before `action`, re-posting `hidden` fields.
fn step_up_page(action: &str, hidden: &[(&str, &str)], error: Option<&str>) -> Html<String> {
    let error = error.map_or_else(String::new, |e| {
        format!(r#"<p class="error" id="error">{}</p>"#, esc(e))
    });
    let hidden: String = hidden
        .iter()
        .map(|(k, v)| {
            format!(
                r#"<input type="hidden" name="{}" value="{}">"#,
                esc(k),
                esc(v)
            )
        })
        .collect();
    page(
        "Confirm it's you",
        &format!(
            r#"<h1>Confirm it's you</h1>
<p>This action needs a recent sign-in. Enter your password to continue.</p>
{error}
<form method="post" action="{action}" id="step-up-form">
{hidden}
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required maxlength="1024">
<div><button type="submit" id="confirm">Continue</button></div>
</form>
<p><a href="/">Cancel</a></p>"#,
            action = esc(action),
        ),
    )
}

/// Step-up for an HTML action: `Ok(Some(auth))` to go ahead; `Ok(None)` if not signed in;
/// `Err(page)` to answer with (the password form, or why the password was refused).
///
/// Fresh enough: go ahead. Otherwise, with a password in the form: sign in again (throttled
/// and bounded like any sign-in), then go ahead; without one: ask for it, posting back to
/// the same action with the same fields, so the action follows the sign-in.
async fn step_up(
    state: &AppState,
    fresh: Result<Fresh, AuthRejection>,
    auth: Option<RequireAuth>,
    client: ClientAddr,
    password: Option<String>,
    action: &str,
    hidden: &[(&str, &str)],
) -> Result<Result<Option<RequireAuth>, Response>, SessionError> {
    match fresh {
        Ok(_) => return Ok(Ok(auth)),
        Err(AuthRejection::ReauthenticationRequired) => {}
        Err(AuthRejection::Unauthenticated) => return Ok(Ok(None)),
        // The store failed (503): never a pass, never a password form.
        Err(other) => return Ok(Err(other.into_response())),
    }
    let Some(auth) = auth else {
        return Ok(Ok(None));
    };
    let Some(password) = password.filter(|p| !p.is_empty()) else {
        return Ok(Err(step_up_page(action, hidden, None).into_response()));
    };
    let creds = Credentials {
        username: auth.user.as_str().to_owned(),
        password,
        remember: None,
    };
    let outcome = sign_in(state, &auth.session, &creds, client).await?;
    if let Some((status, message, retry)) = refused(&outcome) {
        let message = if status == StatusCode::UNAUTHORIZED {
            "Wrong password.".to_owned()
        } else {
            message
        };
        let res = (status, step_up_page(action, hidden, Some(&message))).into_response();
        return Ok(Err(with_retry(res, retry)));
    }
    Ok(Ok(Some(auth)))
}

/// Signs out everywhere: needs a fresh sign-in (see [`step_up`]).
async fn logout_all(
    State(state): State<AppState>,
    fresh: Result<Fresh, AuthRejection>,
    auth: Option<RequireAuth>,
    client: ClientAddr,
    sessions: Sessions,
    Form(form): Form<StepUpForm>,
) -> Result<Response, SessionError> {
    let auth = match step_up(
        &state,
        fresh,
        auth,
        client,
        form.password,
        "/logout-all",
        &[],
    )
    .await?
    {
        Ok(Some(auth)) => auth,
        Ok(None) => return Ok(Redirect::to("/").into_response()),
        Err(page) => return Ok(page),
    };
    sessions.revoke_user(&auth.user).await?;
    auth.session.logout();
    Ok(Redirect::to("/").into_response())
}

async fn end_session(
    auth: Option<RequireAuth>,
    Path(id): Path<String>,
) -> Result<Redirect, SessionError> {
    if let Some(auth) = auth {
        end_own_session(&auth, &id).await?;
    }
    Ok(Redirect::to("/"))
}

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        page("Forbidden", r#"<h1>Forbidden</h1><p>This page is for administrators.</p><p><a href="/">Back</a></p>"#),
    )
        .into_response()
}

async fn admin_page(State(state): State<AppState>, auth: Option<RequireAuth>) -> Response {
    let Some(auth) = auth else {
        return Redirect::to("/").into_response();
    };
    if !auth.roles.contains("admin") {
        return forbidden();
    }
    let mut rows = String::new();
    for (name, roles) in state.users.list() {
        let _ = write!(
            rows,
            r#"<tr><td>{n}</td><td>
<form class="inline" method="post" action="/admin/users/{n}/roles">
<input type="text" name="roles" value="{r}" aria-label="roles of {n}"> <button type="submit">Save</button></form></td></tr>"#,
            n = esc(&name),
            r = esc(&roles.join(",")),
        );
    }
    let body = format!(
        r#"<h1>Users' roles</h1>
<p class="muted">Comma-separated. A change applies to the user's existing sessions from their next request.</p>
<table><thead><tr><th>User</th><th>Roles</th></tr></thead><tbody>{rows}</tbody></table>
<p><a href="/">Back</a></p>"#
    );
    page("Admin", &body).into_response()
}

#[derive(Deserialize)]
struct RolesForm {
    roles: String,
    password: Option<String>,
}

/// Changes a user's roles: needs the admin role and a fresh sign-in (see [`step_up`]).
async fn admin_set_roles(
    State(state): State<AppState>,
    fresh: Result<Fresh, AuthRejection>,
    auth: Option<RequireAuth>,
    client: ClientAddr,
    sessions: Sessions,
    Path(username): Path<String>,
    Form(form): Form<RolesForm>,
) -> Result<Response, SessionError> {
    match &auth {
        None => return Ok(Redirect::to("/").into_response()),
        Some(a) if !a.roles.contains("admin") => return Ok(forbidden()),
        Some(_) => {}
    }
    let action = format!("/admin/users/{username}/roles");
    let hidden = [("roles", form.roles.as_str())];
    let auth = match step_up(&state, fresh, auth, client, form.password, &action, &hidden).await? {
        Ok(Some(auth)) => auth,
        Ok(None) => return Ok(Redirect::to("/").into_response()),
        Err(page) => return Ok(page),
    };
    // The sign-in again took the roles from the directory: still an admin?
    if !auth.session.roles().await?.contains("admin") {
        return Ok(forbidden());
    }
    let roles: Vec<String> = form
        .roles
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect();
    let res = change_roles(&state, &sessions, &username, roles).await?;
    if res.status().is_success() {
        return Ok(Redirect::to("/admin").into_response());
    }
    Ok((
        res.status(),
        page("Admin", r#"<h1>Not saved</h1><p class="error">Unknown user or invalid roles (a-z, 0-9, - and _).</p><p><a href="/admin">Back</a></p>"#),
    )
        .into_response())
}

/// The HTML 404 page.
pub(crate) async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        page(
            "Not found",
            r#"<h1>Not found</h1><p><a href="/">Home</a></p>"#,
        ),
    )
        .into_response()
}
