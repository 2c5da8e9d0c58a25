//! The smallest correct sessionward app: sign in, who am I, sign out, one admin route.
//!
//! Run with: `cargo run -p minimal`, then
//! `curl -i -X POST localhost:3001/login -H 'content-type: application/json' -d '{"username":"admin","password":"admin-password"}'`
use axum::{
    Json, Router,
    http::StatusCode,
    routing::{get, post},
};
use serde::Deserialize;
use sessionward::{
    CrossOriginGuard, MemoryStore, RequireAuth, RequireRole, Session, SessionError, SessionLayer,
    role,
};

role!(Admin = "admin");

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

/// Your credential check goes here (examples/demo-app shows argon2id hashing).
fn verify(c: &Credentials) -> Option<&'static [&'static str]> {
    match (c.username.as_str(), c.password.as_str()) {
        ("alice", "alice-password") => Some(&["user"]),
        ("admin", "admin-password") => Some(&["user", "admin"]),
        _ => None,
    }
}

async fn login(session: Session, Json(c): Json<Credentials>) -> Result<StatusCode, SessionError> {
    let Some(roles) = verify(&c) else {
        return Ok(StatusCode::UNAUTHORIZED);
    };
    session.login(c.username, roles).await?; // a new session ID, the old one is dead
    Ok(StatusCode::NO_CONTENT)
}

async fn me(auth: RequireAuth) -> String {
    format!("{} ({})", auth.user, auth.roles.to_vec().join(", "))
}

async fn admin(_: RequireRole<Admin>) -> &'static str {
    "admins only"
}

async fn logout(session: Session) -> StatusCode {
    session.logout(); // deletes the server-side record and clears the cookie
    StatusCode::NO_CONTENT
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let app = Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/admin", get(admin))
        .route("/logout", post(logout))
        .layer(CrossOriginGuard::new())
        .layer(SessionLayer::new(MemoryStore::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3001").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
