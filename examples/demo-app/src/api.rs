//! The JSON API under `/api`. Errors are `{"error": "..."}` with the status of the contract.

use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use sessionward::{
    AuthRejection, RequireAuth, RequireFreshAuth, RequireRole, Session, SessionError,
    SessionHandle, Sessions,
};

use crate::client::ClientAddr;
use crate::{Admin, AppState};

/// A JSON error response.
pub(crate) fn error(status: StatusCode, code: &str) -> Response {
    (status, Json(json!({ "error": code }))).into_response()
}

/// `Json<T>` whose rejections are the API's JSON errors (400 or 415), never a text page.
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected_application_json",
            )),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"))
            }
            Err(_) => Err(error(StatusCode::BAD_REQUEST, "invalid_json_body")),
        }
    }
}

/// The API's routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", post(login))
        .route("/token", post(token))
        .route("/me", get(me))
        .route("/admin", get(admin))
        .route("/logout", post(logout))
        .route("/logout-all", post(logout_all))
        .route("/sessions", get(sessions))
        .route("/sessions/{id}", delete(end_session))
        .route("/admin/users/{username}/roles", post(set_roles))
        .route("/cart", post(add_to_cart).get(cart))
        .route("/prefs", get(prefs))
        .route("/prefs/{key}", put(put_pref))
        .route("/password", post(password))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found") })
}

#[derive(Deserialize)]
pub(crate) struct Credentials {
    pub(crate) username: String,
    pub(crate) password: String,
    /// "Remember me": a persistent cookie (Max-Age = the session's remaining lifetime)
    /// instead of a browser-session cookie. Absent: as the session was (a step-up sign-in
    /// keeps the choice), else a browser-session cookie.
    #[serde(default)]
    pub(crate) remember: Option<bool>,
}

/// What a sign-in attempt came to.
#[derive(Debug)]
pub(crate) enum SignIn {
    /// Signed in, with these roles.
    Ok(Vec<String>),
    /// Unknown username or wrong password: 401.
    Invalid,
    /// Too many recent failures: 429, try again after this long (no hash was computed).
    Throttled(Duration),
    /// Every hashing permit is taken: 503.
    Busy,
}

/// The longest fresh-sign-in window `--fresh-auth-window` accepts: the bound given to the
/// library's [`RequireFreshAuth`], which [`Fresh`] then narrows to the configured window.
pub(crate) const MAX_FRESH_SECS: u64 = 3600;

/// Checks credentials and signs in (or signs in again, for step-up). Throttled first, so a
/// throttled attempt costs no hash; bad credentials leave the session as it was. Failed and
/// throttled attempts are logged with the client address, never the password.
pub(crate) async fn sign_in(
    state: &AppState,
    session: &Session,
    creds: &Credentials,
    ClientAddr(client): ClientAddr,
) -> Result<SignIn, SessionError> {
    let user = creds.username.as_str();
    if user.len() > 64 || creds.password.len() > 1024 {
        tracing::info!(event = "login.failed", %client, "sign-in refused: oversized credentials");
        return Ok(SignIn::Invalid);
    }
    if let Some(wait) = state.throttle.check(user, client, Instant::now()) {
        tracing::warn!(
            event = "login.throttled", %client, user = ?user, retry_after_secs = wait.as_secs(),
            "sign-in throttled"
        );
        return Ok(SignIn::Throttled(wait));
    }
    let Ok(verified) = state.users.verify(user, &creds.password).await else {
        tracing::warn!(event = "login.busy", %client, "sign-in refused: hashing at capacity");
        return Ok(SignIn::Busy);
    };
    let Some(roles) = verified else {
        state.throttle.failed(user, client, Instant::now());
        tracing::info!(event = "login.failed", %client, user = ?user, "sign-in refused");
        return Ok(SignIn::Invalid);
    };
    state.throttle.succeeded(user, client);
    session.login(user, &roles).await?;
    if let Some(remember) = creds.remember {
        session.remember(remember).await?;
    }
    tracing::info!(event = "login.succeeded", %client, user = %user, "signed in");
    Ok(SignIn::Ok(roles))
}

/// A password change: the current password and the new one.
#[derive(Deserialize)]
pub(crate) struct PasswordChange {
    pub(crate) current: String,
    pub(crate) new: String,
}

/// What a password change came to.
#[derive(Debug)]
pub(crate) enum PasswordChanged {
    /// Changed; this many other sessions of the user ended.
    Ok(u64),
    /// The current password is wrong: 403, nothing changed.
    WrongCurrent,
    /// The new password is shorter than 8 or longer than 1024 bytes: 400.
    InvalidNew,
    /// Too many wrong attempts: 429.
    Throttled(Duration),
    /// Every hashing permit is taken: 503.
    Busy,
}

/// Changes the signed-in user's password after checking the current one (throttled like a
/// sign-in: a stolen session cannot guess it quickly), then ends every other session of the
/// user (SEC-27); this one stays.
pub(crate) async fn change_password(
    state: &AppState,
    auth: &RequireAuth,
    change: &PasswordChange,
    ClientAddr(client): ClientAddr,
) -> Result<PasswordChanged, SessionError> {
    let user = auth.user.as_str();
    if change.new.len() < 8 || change.new.len() > 1024 || change.current.len() > 1024 {
        return Ok(PasswordChanged::InvalidNew);
    }
    if let Some(wait) = state.throttle.check(user, client, Instant::now()) {
        return Ok(PasswordChanged::Throttled(wait));
    }
    let Ok(verified) = state.users.verify(user, &change.current).await else {
        return Ok(PasswordChanged::Busy);
    };
    if verified.is_none() {
        state.throttle.failed(user, client, Instant::now());
        tracing::info!(event = "password.refused", %client, user = %user, "wrong current password");
        return Ok(PasswordChanged::WrongCurrent);
    }
    match state.users.set_password(user, &change.new).await {
        Ok(true) => {}
        Ok(false) => return Err(SessionError::NotSignedIn),
        Err(_) => return Ok(PasswordChanged::Busy),
    }
    let ended = auth.session.credential_changed().await?;
    tracing::info!(event = "password.changed", user = %user, other_sessions_ended = ended, "password changed");
    Ok(PasswordChanged::Ok(ended))
}

async fn password(
    State(state): State<AppState>,
    auth: RequireAuth,
    client: ClientAddr,
    JsonBody(change): JsonBody<PasswordChange>,
) -> Result<Response, SessionError> {
    Ok(
        match change_password(&state, &auth, &change, client).await? {
            PasswordChanged::Ok(_) => StatusCode::NO_CONTENT.into_response(),
            PasswordChanged::WrongCurrent => error(StatusCode::FORBIDDEN, "wrong_password"),
            PasswordChanged::InvalidNew => error(StatusCode::BAD_REQUEST, "invalid_new_password"),
            PasswordChanged::Throttled(wait) => with_retry_after(
                error(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
                retry_after_secs(wait),
            ),
            PasswordChanged::Busy => {
                with_retry_after(error(StatusCode::SERVICE_UNAVAILABLE, "busy"), 1)
            }
        },
    )
}

/// Whole seconds to wait, rounded up, at least 1.
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// Adds `Retry-After: secs` to `res`.
pub(crate) fn with_retry_after(mut res: Response, secs: u64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

/// The roles of a successful sign-in, or the JSON response of one that did not succeed.
fn accepted(outcome: SignIn) -> Result<Vec<String>, Box<Response>> {
    match outcome {
        SignIn::Ok(roles) => Ok(roles),
        SignIn::Invalid => Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        ))),
        SignIn::Throttled(wait) => Err(Box::new(with_retry_after(
            error(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            retry_after_secs(wait),
        ))),
        SignIn::Busy => Err(Box::new(with_retry_after(
            error(StatusCode::SERVICE_UNAVAILABLE, "busy"),
            1,
        ))),
    }
}

async fn login(
    State(state): State<AppState>,
    session: Session,
    client: ClientAddr,
    JsonBody(creds): JsonBody<Credentials>,
) -> Result<Response, SessionError> {
    let roles = match accepted(sign_in(&state, &session, &creds, client).await?) {
        Ok(roles) => roles,
        Err(res) => return Ok(*res),
    };
    Ok(Json(json!({ "username": creds.username, "roles": roles })).into_response())
}

async fn token(
    State(state): State<AppState>,
    session: Session,
    client: ClientAddr,
    JsonBody(creds): JsonBody<Credentials>,
) -> Result<Response, SessionError> {
    let roles = match accepted(sign_in(&state, &session, &creds, client).await?) {
        Ok(roles) => roles,
        Err(res) => return Ok(*res),
    };
    // Taking the token makes the layer send no cookie: this client carries a bearer token.
    // A browser that already holds a session cookie gets no token: its session stays in the
    // HttpOnly cookie, out of reach of page scripts (and the sign-in above still rotated it).
    let Some(token) = session.issued_token() else {
        return Ok(error(
            StatusCode::BAD_REQUEST,
            "token_not_issued_with_session_cookie",
        ));
    };
    Ok(Json(json!({ "token": token, "username": creds.username, "roles": roles })).into_response())
}

/// A user who signed in within `--fresh-auth-window`: the library's [`RequireFreshAuth`]
/// (bounded by [`MAX_FRESH_SECS`]) narrowed to the configured window. Otherwise 401
/// `reauthentication_required` (401 `unauthenticated` if not signed in).
#[derive(Debug)]
pub(crate) struct Fresh(pub(crate) RequireFreshAuth<MAX_FRESH_SECS>);

impl FromRequestParts<AppState> for Fresh {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let auth = RequireFreshAuth::<MAX_FRESH_SECS>::from_request_parts(parts, state).await?;
        let age = state.clock.now().saturating_since(auth.authenticated_at);
        if age > state.fresh_window {
            return Err(AuthRejection::ReauthenticationRequired);
        }
        Ok(Self(auth))
    }
}

async fn me(auth: RequireAuth) -> Json<Value> {
    Json(json!({ "username": auth.user.as_str(), "roles": auth.roles.to_vec() }))
}

async fn admin(admin: RequireRole<Admin>) -> Json<Value> {
    Json(json!({ "message": format!("hello, {}: you hold the admin role", admin.user) }))
}

async fn logout(session: Session) -> StatusCode {
    session.logout();
    StatusCode::NO_CONTENT
}

/// Signs the user out on every device: needs a fresh sign-in ([`Fresh`]).
async fn logout_all(Fresh(auth): Fresh, sessions: Sessions) -> Result<StatusCode, SessionError> {
    sessions.revoke_user(&auth.user).await?;
    auth.session.logout();
    Ok(StatusCode::NO_CONTENT)
}

async fn sessions(auth: RequireAuth) -> Result<Json<Value>, SessionError> {
    let list = auth.session.list_sessions().await?;
    Ok(Json(Value::Array(
        list.into_iter()
            .map(|s| {
                json!({
                    "id": s.handle.to_string(),
                    "created_at": s.created_at.to_rfc3339(),
                    "last_seen_at": s.last_seen_at.to_rfc3339(),
                    "user_agent": s.user_agent,
                    "current": s.current,
                })
            })
            .collect(),
    )))
}

/// Ends one of the user's sessions; the current one too (then the cookie is cleared).
pub(crate) async fn end_own_session(auth: &RequireAuth, id: &str) -> Result<bool, SessionError> {
    let Some(handle) = SessionHandle::parse(id) else {
        return Ok(false);
    };
    let current = auth.session.handle().await? == Some(handle);
    let ended = auth.session.end_session(&handle).await?;
    if ended && current {
        auth.session.logout();
    }
    Ok(ended)
}

async fn end_session(auth: RequireAuth, Path(id): Path<String>) -> Result<Response, SessionError> {
    Ok(if end_own_session(&auth, &id).await? {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(StatusCode::NOT_FOUND, "session_not_found")
    })
}

#[derive(Deserialize)]
struct RolesBody {
    roles: Vec<String>,
}

/// Role names: 1-32 characters of `a-z`, `0-9`, `-` and `_`.
pub(crate) fn valid_role(r: &str) -> bool {
    (1..=32).contains(&r.len())
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Changes a user's roles in the directory and in every session they hold, at once.
pub(crate) async fn change_roles(
    state: &AppState,
    sessions: &Sessions,
    username: &str,
    roles: Vec<String>,
) -> Result<Response, SessionError> {
    if roles.len() > 16 || !roles.iter().all(|r| valid_role(r)) {
        return Ok(error(StatusCode::BAD_REQUEST, "invalid_roles"));
    }
    if !state.users.set_roles(username, roles.clone()) {
        return Ok(error(StatusCode::NOT_FOUND, "user_not_found"));
    }
    sessions.set_roles(&username.into(), &roles).await?;
    tracing::info!(event = "roles.changed", user = %username, roles = ?roles, "roles changed");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Changes a user's roles: needs the admin role and a fresh sign-in ([`Fresh`]).
async fn set_roles(
    _admin: RequireRole<Admin>,
    _fresh: Fresh,
    State(state): State<AppState>,
    sessions: Sessions,
    Path(username): Path<String>,
    JsonBody(body): JsonBody<RolesBody>,
) -> Result<Response, SessionError> {
    change_roles(&state, &sessions, &username, body.roles).await
}

#[derive(Deserialize)]
struct Item {
    item: String,
}

const MAX_CART: usize = 100;

async fn add_to_cart(
    session: Session,
    JsonBody(body): JsonBody<Item>,
) -> Result<Response, SessionError> {
    if body.item.is_empty() || body.item.len() > 100 {
        return Ok(error(StatusCode::BAD_REQUEST, "invalid_item"));
    }
    let mut items: Vec<String> = session.get("cart").await?.unwrap_or_default();
    if items.len() >= MAX_CART {
        return Ok(error(StatusCode::BAD_REQUEST, "cart_full"));
    }
    items.push(body.item);
    session.insert("cart", &items).await?;
    Ok(Json(json!({ "items": items })).into_response())
}

async fn cart(session: Session) -> Result<Json<Value>, SessionError> {
    let items: Vec<String> = session.get("cart").await?.unwrap_or_default();
    Ok(Json(json!({ "items": items })))
}

#[derive(Deserialize)]
struct PrefValue {
    value: Value,
}

const PREF_PREFIX: &str = "pref:";

fn valid_pref_key(k: &str) -> bool {
    (1..=64).contains(&k.len())
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn put_pref(
    auth: RequireAuth,
    Path(key): Path<String>,
    JsonBody(body): JsonBody<PrefValue>,
) -> Result<Response, SessionError> {
    if !valid_pref_key(&key) {
        return Ok(error(StatusCode::BAD_REQUEST, "invalid_pref_key"));
    }
    // One session data key per preference: concurrent writes of different keys all survive.
    auth.session
        .insert(&format!("{PREF_PREFIX}{key}"), &body.value)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn prefs(auth: RequireAuth) -> Result<Json<Value>, SessionError> {
    let prefs: Map<String, Value> = auth
        .session
        .entries()
        .await?
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix(PREF_PREFIX).map(|k| (k.to_owned(), v)))
        .collect();
    Ok(Json(Value::Object(prefs)))
}
