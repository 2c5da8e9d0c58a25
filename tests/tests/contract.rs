//! Every line of the demo-app's HTTP contract, driven over HTTP against the binary, on the
//! memory, PostgreSQL, MySQL/MariaDB, SQLite and Redis stores, and on a Redis Cluster through
//! each of its seed nodes.

#[path = "contract/accounts.rs"]
mod accounts;
// The Redis Cluster starter of sessionward-redis's tests, shared as one source file (it lives
// there so that the packaged sessionward-redis tests carry it).
#[path = "../../crates/sessionward-redis/tests/common/cluster.rs"]
mod redis_cluster;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sessionward_e2e::{Auth, Client, DemoApp, service_url};

const ATTRS: &str = "; Path=/; Secure; HttpOnly; SameSite=Strict";

fn creds(user: &str, password: &str) -> Value {
    json!({ "username": user, "password": password })
}

async fn healthz(c: &Client) {
    let v = c.login("alice").await;
    for auth in [Auth::None, Auth::Cookie(&v), Auth::Cookie("garbage")] {
        let r = c.get("/healthz", auth).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.set_cookies().is_empty(), "/healthz touched the session");
        assert!(r.headers.get("cache-control").is_none());
    }
}

async fn login(c: &Client) {
    let r = c
        .post("/api/login", Auth::None, creds("alice", "alice-password"))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({ "username": "alice", "roles": ["user"] }));
    let v = r.session_cookie().expect("session cookie");
    assert_eq!(v.len(), 43);
    assert_eq!(r.set_cookies(), vec![format!("__Host-id={v}{ATTRS}")]);
    assert_eq!(
        r.headers.get("cache-control").map(|h| h.as_bytes()),
        Some(&b"no-store"[..])
    );
    for (user, password) in [("alice", "wrong"), ("nobody", "alice-password"), ("", "")] {
        let r = c
            .post("/api/login", Auth::None, creds(user, password))
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{user}");
        assert_eq!(r.json(), json!({ "error": "invalid_credentials" }));
        assert!(r.set_cookies().is_empty(), "a failed login set a cookie");
    }
    let r = c
        .send(
            Method::POST,
            "/api/login",
            Auth::None,
            None,
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["error"].is_string());
}

async fn token(c: &Client) {
    let r = c
        .post("/api/token", Auth::None, creds("bob", "bob-password"))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.set_cookies().is_empty(),
        "the token endpoint set a cookie"
    );
    let body = r.json();
    assert_eq!(
        (body["username"].clone(), body["roles"].clone()),
        (json!("bob"), json!(["user"]))
    );
    let t = body["token"].as_str().expect("token").to_owned();
    assert_eq!(t.len(), 43);
    let me = c.get("/api/me", Auth::Bearer(&t)).await;
    assert_eq!(
        (me.status, me.json()),
        (
            StatusCode::OK,
            json!({ "username": "bob", "roles": ["user"] })
        )
    );
    assert_eq!(
        c.get("/api/sessions", Auth::Bearer(&t)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        c.get("/api/admin", Auth::Bearer(&t)).await.status,
        StatusCode::FORBIDDEN
    );
    let cart = c
        .post("/api/cart", Auth::Bearer(&t), json!({ "item": "pen" }))
        .await;
    assert_eq!(cart.json(), json!({ "items": ["pen"] }));
    assert_eq!(
        c.get("/api/cart", Auth::Bearer(&t)).await.json(),
        json!({ "items": ["pen"] })
    );
    let bad = c.post("/api/token", Auth::None, creds("bob", "nope")).await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    let out = c.post("/api/logout", Auth::Bearer(&t), json!({})).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert_eq!(
        c.get("/api/me", Auth::Bearer(&t)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn me(c: &Client) {
    let v = c.login("alice").await;
    let r = c.get("/api/me", Auth::Cookie(&v)).await;
    assert_eq!(
        (r.status, r.json()),
        (
            StatusCode::OK,
            json!({ "username": "alice", "roles": ["user"] })
        )
    );
    for auth in [Auth::None, Auth::Cookie("x"), Auth::Cookie(&"A".repeat(43))] {
        let r = c.get("/api/me", auth).await;
        assert_eq!(
            (r.status, r.json()),
            (
                StatusCode::UNAUTHORIZED,
                json!({ "error": "unauthenticated" })
            )
        );
    }
}

async fn admin(c: &Client) {
    let a = c.login("admin").await;
    let r = c.get("/api/admin", Auth::Cookie(&a)).await;
    assert_eq!(r.status, StatusCode::OK);
    let u = c.login("alice").await;
    let r = c.get("/api/admin", Auth::Cookie(&u)).await;
    assert_eq!(
        (r.status, r.json()),
        (StatusCode::FORBIDDEN, json!({ "error": "forbidden" }))
    );
    assert_eq!(
        c.get("/api/admin", Auth::None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn logout(c: &Client) {
    let v = c.login("alice").await;
    let r = c.post("/api/logout", Auth::Cookie(&v), json!({})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        r.set_cookies(),
        vec![format!("__Host-id=; Max-Age=0{ATTRS}")]
    );
    assert_eq!(
        c.get("/api/me", Auth::Cookie(&v)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn logout_all(c: &Client) {
    let a1 = c.login("bob").await;
    let a2 = c.login("bob").await;
    let other = c.login("alice").await;
    let r = c
        .post("/api/logout-all", Auth::Cookie(&a1), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.clears_cookie());
    for v in [&a1, &a2] {
        assert_eq!(
            c.get("/api/me", Auth::Cookie(v)).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        c.get("/api/me", Auth::Cookie(&other)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        c.post("/api/logout-all", Auth::None, json!({}))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

async fn sessions(c: &Client) {
    // A user of this test only: alice's sessions from other tests may be listed too.
    let first = c.login("bob").await;
    let r = c
        .send(
            Method::POST,
            "/api/login",
            Auth::None,
            Some(creds("bob", "bob-password")),
            &[("user-agent", "e2e-phone/1.0")],
        )
        .await;
    let second = r.session_cookie().expect("cookie");
    let r = c.get("/api/sessions", Auth::Cookie(&second)).await;
    assert_eq!(r.status, StatusCode::OK);
    let list = r.json();
    let list = list.as_array().expect("array");
    assert!(list.len() >= 2);
    for s in list {
        let keys: Vec<&str> = s
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            ["created_at", "current", "id", "last_seen_at", "user_agent"]
        );
        let id = s["id"].as_str().expect("id");
        assert!(
            id != first && id != second && id.len() == 22,
            "the id is not an opaque handle"
        );
    }
    let current: Vec<&Value> = list
        .iter()
        .filter(|s| s["current"] == json!(true))
        .collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["user_agent"], json!("e2e-phone/1.0"));
    assert!(
        !r.text.contains(&first) && !r.text.contains(&second),
        "a token in the list"
    );
    assert_eq!(
        c.get("/api/sessions", Auth::None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn end_session(c: &Client) {
    let mine = c.login("bob").await;
    let target = c.login("bob").await;
    let intruder = c.login("alice").await;
    let list = c.get("/api/sessions", Auth::Cookie(&target)).await.json();
    let id = list
        .as_array()
        .expect("array")
        .iter()
        .find(|s| s["current"] == json!(true))
        .and_then(|s| s["id"].as_str())
        .expect("current session id")
        .to_owned();
    let r = c
        .send(
            Method::DELETE,
            &format!("/api/sessions/{id}"),
            Auth::Cookie(&intruder),
            None,
            &[],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "another user's handle must be 404"
    );
    assert_eq!(
        c.get("/api/me", Auth::Cookie(&target)).await.status,
        StatusCode::OK
    );
    let r = c
        .send(
            Method::DELETE,
            &format!("/api/sessions/{id}"),
            Auth::Cookie(&mine),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        c.get("/api/me", Auth::Cookie(&target)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        c.get("/api/me", Auth::Cookie(&mine)).await.status,
        StatusCode::OK
    );
    let r = c
        .send(
            Method::DELETE,
            "/api/sessions/not-a-handle",
            Auth::Cookie(&mine),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

async fn admin_roles(c: &Client) {
    let admin = c.login("admin").await;
    let bob = c.login("bob").await;
    assert_eq!(
        c.get("/api/admin", Auth::Cookie(&bob)).await.status,
        StatusCode::FORBIDDEN
    );
    let set = |roles: Value, auth: String| async move {
        c.post(
            "/api/admin/users/bob/roles",
            Auth::Cookie(&auth),
            json!({ "roles": roles }),
        )
        .await
    };
    let r = set(json!(["user", "admin"]), admin.clone()).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // Bob's existing session carries the new role from his next request on.
    assert_eq!(
        c.get("/api/admin", Auth::Cookie(&bob)).await.status,
        StatusCode::OK
    );
    let r = set(json!(["user"]), admin.clone()).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        c.get("/api/admin", Auth::Cookie(&bob)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        c.get("/api/me", Auth::Cookie(&bob)).await.json()["roles"],
        json!(["user"])
    );
    // Only admins, and only valid input.
    assert_eq!(
        set(json!(["admin"]), bob.clone()).await.status,
        StatusCode::FORBIDDEN
    );
    let r = c
        .post(
            "/api/admin/users/bob/roles",
            Auth::None,
            json!({ "roles": ["admin"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = c
        .post(
            "/api/admin/users/nobody/roles",
            Auth::Cookie(&admin),
            json!({ "roles": ["user"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        set(json!(["Bad Role!"]), admin.clone()).await.status,
        StatusCode::BAD_REQUEST
    );
}

async fn cart(c: &Client) {
    let r = c
        .post("/api/cart", Auth::None, json!({ "item": "book" }))
        .await;
    assert_eq!(
        (r.status, r.json()),
        (StatusCode::OK, json!({ "items": ["book"] }))
    );
    let v = r.session_cookie().expect("an anonymous session");
    let r = c
        .post("/api/cart", Auth::Cookie(&v), json!({ "item": "pen" }))
        .await;
    assert_eq!(r.json(), json!({ "items": ["book", "pen"] }));
    assert!(
        r.set_cookies().is_empty(),
        "an existing session got a new cookie"
    );
    assert_eq!(
        c.get("/api/cart", Auth::Cookie(&v)).await.json(),
        json!({ "items": ["book", "pen"] })
    );
    let r = c.get("/api/cart", Auth::None).await;
    assert_eq!(
        (r.status, r.json()),
        (StatusCode::OK, json!({ "items": [] }))
    );
    assert!(
        r.set_cookies().is_empty(),
        "reading an empty cart created a session"
    );
    // Signing in keeps the cart, under a new ID.
    let r = c
        .post(
            "/api/login",
            Auth::Cookie(&v),
            creds("alice", "alice-password"),
        )
        .await;
    let signed = r.session_cookie().expect("rotated");
    assert_ne!(signed, v);
    assert_eq!(
        c.get("/api/cart", Auth::Cookie(&signed)).await.json(),
        json!({ "items": ["book", "pen"] })
    );
    assert_eq!(
        c.get("/api/cart", Auth::Cookie(&v)).await.json(),
        json!({ "items": [] })
    );
    let r = c.post("/api/cart", Auth::None, json!({ "item": "" })).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

async fn prefs(c: &Client) {
    let v = c.login("alice").await;
    let r = c
        .send(
            Method::PUT,
            "/api/prefs/theme",
            Auth::Cookie(&v),
            Some(json!({ "value": "dark" })),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let c = c.clone();
        let v = v.clone();
        tasks.push(tokio::spawn(async move {
            c.send(
                Method::PUT,
                &format!("/api/prefs/k{i}"),
                Auth::Cookie(&v),
                Some(json!({ "value": i })),
                &[],
            )
            .await
            .status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), StatusCode::NO_CONTENT);
    }
    let all = c.get("/api/prefs", Auth::Cookie(&v)).await;
    assert_eq!(all.status, StatusCode::OK);
    let all = all.json();
    assert_eq!(all["theme"], json!("dark"));
    for i in 0..20 {
        assert_eq!(all[format!("k{i}")], json!(i), "concurrent PUT k{i} lost");
    }
    let r = c
        .send(
            Method::PUT,
            "/api/prefs/theme",
            Auth::None,
            Some(json!({ "value": "x" })),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        c.get("/api/prefs", Auth::None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn cross_site(c: &Client) {
    let v = c.login("alice").await;
    let host = c.get("/healthz", Auth::None).await;
    assert_eq!(host.status, StatusCode::OK);
    for extra in [
        &[("sec-fetch-site", "cross-site")][..],
        &[("origin", "https://evil.example")][..],
    ] {
        for (method, path) in [
            (Method::POST, "/api/cart"),
            (Method::PUT, "/api/prefs/x"),
            (Method::DELETE, "/api/sessions/x"),
            (Method::POST, "/api/logout"),
        ] {
            let r = c
                .send(
                    method.clone(),
                    path,
                    Auth::Cookie(&v),
                    Some(json!({ "item": "x", "value": 1 })),
                    extra,
                )
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {path} {extra:?}");
        }
    }
    assert_eq!(
        c.get("/api/me", Auth::Cookie(&v)).await.status,
        StatusCode::OK,
        "logout went through cross-site"
    );
    let r = c
        .send(
            Method::POST,
            "/api/cart",
            Auth::Cookie(&v),
            Some(json!({ "item": "x" })),
            &[("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

async fn html(c: &Client) {
    let r = c.get("/", Auth::None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/html")
    );
    assert!(r.text.contains(r#"<form method="post" action="/login""#));
    let v = c.login("admin").await;
    let r = c.get("/", Auth::Cookie(&v)).await;
    assert!(r.text.contains(r#"<span id="username">admin</span>"#));
    assert!(r.text.contains("this device") && r.text.contains(r#"id="sign-out""#));
    assert!(!r.text.contains(&v), "the token appears in the page");
    // The admin page: the users and their roles, for administrators only.
    let r = c.get("/admin", Auth::Cookie(&v)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains(r#"action="/admin/users/bob/roles""#));
    let alice = c.login("alice").await;
    assert_eq!(
        c.get("/admin", Auth::Cookie(&alice)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        c.get("/admin", Auth::None).await.status,
        StatusCode::SEE_OTHER
    );
    let r = c.get("/nowhere", Auth::None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.text.contains("Not found"));
    let r = c.get("/api/nowhere", Auth::None).await;
    assert_eq!(
        (r.status, r.json()),
        (StatusCode::NOT_FOUND, json!({ "error": "not_found" }))
    );
}

/// Runs every contract check against one running app.
async fn contract(app: &DemoApp) {
    contract_of_the_store(app).await;
    let c = app.client();
    cross_site(&c).await;
    html(&c).await;
    accounts::account_redirect(&c).await;
    accounts::api_challenges(&c).await;
    accounts::remember_me(&c).await;
    accounts::password_change(&c).await;
}

/// The contract checks whose outcome depends on the store: sign-in (cookie and bearer),
/// session use, role checks, the session list, logout and logout everywhere, role changes,
/// saved data.
async fn contract_of_the_store(app: &DemoApp) {
    let c = app.client();
    healthz(&c).await;
    login(&c).await;
    token(&c).await;
    me(&c).await;
    admin(&c).await;
    logout(&c).await;
    logout_all(&c).await;
    sessions(&c).await;
    end_session(&c).await;
    admin_roles(&c).await;
    cart(&c).await;
    prefs(&c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_on_memory_store() {
    let app = DemoApp::start(&[]).await;
    contract(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_on_postgres_store() {
    let Some(url) = service_url("DATABASE_URL") else {
        return;
    };
    let app = DemoApp::start(&["--store", "postgres", "--database-url", &url]).await;
    contract(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_on_redis_store() {
    let Some(url) = service_url("REDIS_URL") else {
        return;
    };
    let app = DemoApp::start(&["--store", "redis", "--redis-url", &url]).await;
    contract(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_on_mysql_store() {
    let Some(url) = service_url("MYSQL_URL") else {
        return;
    };
    let app = DemoApp::start(&["--store", "mysql", "--database-url", &url]).await;
    contract(&app).await;
}

/// A fresh SQLite file for one test, removed (with its WAL files) when dropped.
struct SqliteFile(std::path::PathBuf);

impl SqliteFile {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let file = format!("sessionward-e2e-{name}-{}-{nanos}.db", std::process::id());
        Self(std::env::temp_dir().join(file))
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.0.display())
    }
}

impl Drop for SqliteFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_on_sqlite_store() {
    let file = SqliteFile::new("contract");
    let url = file.url();
    let app = DemoApp::start(&["--store", "sqlite", "--database-url", &url]).await;
    contract(&app).await;
}

/// Sign in on one instance, sign out on the other: the first rejects the cookie at once.
async fn two_instances(args: &[&str]) {
    let a = DemoApp::start(args).await;
    let b = DemoApp::start(args).await;
    shared_sessions(&a, &b).await;
}

/// A session made on `a` is served by `b` and its changes seen by `a`; a logout on `b` holds
/// on `a`, and so do an admin's role changes.
async fn shared_sessions(a: &DemoApp, b: &DemoApp) {
    let (ca, cb) = (a.client(), b.client());
    let v = ca.login("alice").await;
    assert_eq!(
        cb.get("/api/me", Auth::Cookie(&v)).await.status,
        StatusCode::OK,
        "session not shared"
    );
    let r = cb
        .post("/api/cart", Auth::Cookie(&v), json!({ "item": "shared" }))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        ca.get("/api/cart", Auth::Cookie(&v)).await.json(),
        json!({ "items": ["shared"] })
    );
    assert_eq!(
        cb.post("/api/logout", Auth::Cookie(&v), json!({}))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        ca.get("/api/me", Auth::Cookie(&v)).await.status,
        StatusCode::UNAUTHORIZED
    );
    // An admin's role change on one instance holds on the other.
    let bob = ca.login("bob").await;
    let admin = cb.login("admin").await;
    cb.post(
        "/api/admin/users/bob/roles",
        Auth::Cookie(&admin),
        json!({ "roles": ["user", "admin"] }),
    )
    .await;
    assert_eq!(
        ca.get("/api/admin", Auth::Cookie(&bob)).await.status,
        StatusCode::OK
    );
    cb.post(
        "/api/admin/users/bob/roles",
        Auth::Cookie(&admin),
        json!({ "roles": ["user"] }),
    )
    .await;
    assert_eq!(
        ca.get("/api/admin", Auth::Cookie(&bob)).await.status,
        StatusCode::FORBIDDEN
    );
}

/// Acceptance 1 of the cluster issue: the demo signs in and serves sessions through any seed
/// node of a three-primary cluster. A cluster of the test's own (three primaries, three
/// replicas); one demo per primary, each given only that node as its seed
/// (`--store redis-cluster --redis-url redis://127.0.0.1:PORT`); the whole contract through
/// the first, its store-dependent part (sign-in, session use, roles, logout...) through the
/// others, then sessions made through one demo served by the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_on_redis_cluster_through_each_seed() {
    let Some(cluster) = redis_cluster::RedisCluster::start("contract_on_redis_cluster") else {
        return;
    };
    let primaries = cluster.primaries();
    assert_eq!(primaries.len(), 3, "three primaries");
    let mut apps = Vec::new();
    for port in primaries {
        let seed = format!("redis://127.0.0.1:{port}");
        apps.push(DemoApp::start(&["--store", "redis-cluster", "--redis-url", &seed]).await);
    }
    contract(&apps[0]).await;
    for app in &apps[1..] {
        // The contract just run through the previous demo changed these users' authorization
        // (roles, signing out everywhere) on the same cluster moments ago: a sign-in right
        // after that is refused with 409 and `Retry-After` (SEC-16). Sign each in as a client
        // does (`Client::login` waits the `Retry-After` it is given and tries again), so that
        // the contract's own sign-ins, which expect 200 at once, start after that window.
        let c = app.client();
        for user in ["alice", "bob", "admin"] {
            c.login(user).await;
        }
        contract_of_the_store(app).await;
    }
    for (a, b) in [(0, 1), (1, 2), (2, 0)] {
        shared_sessions(&apps[a], &apps[b]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_postgres() {
    let Some(url) = service_url("DATABASE_URL") else {
        return;
    };
    two_instances(&["--store", "postgres", "--database-url", &url]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_redis() {
    let Some(url) = service_url("REDIS_URL") else {
        return;
    };
    two_instances(&["--store", "redis", "--redis-url", &url]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_mysql() {
    let Some(url) = service_url("MYSQL_URL") else {
        return;
    };
    two_instances(&["--store", "mysql", "--database-url", &url]).await;
}

async fn restart_keeps_sessions(args: &[&str]) {
    let app = DemoApp::start(args).await;
    let port = app.port;
    let v = app.client().login("alice").await;
    app.stop().await;
    let app = DemoApp::start_on(port, args).await;
    let r = app.client().get("/api/me", Auth::Cookie(&v)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the session did not survive a restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_postgres_keeps_sessions() {
    let Some(url) = service_url("DATABASE_URL") else {
        return;
    };
    restart_keeps_sessions(&["--store", "postgres", "--database-url", &url]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_redis_keeps_sessions() {
    let Some(url) = service_url("REDIS_URL") else {
        return;
    };
    restart_keeps_sessions(&["--store", "redis", "--redis-url", &url]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_mysql_keeps_sessions() {
    let Some(url) = service_url("MYSQL_URL") else {
        return;
    };
    restart_keeps_sessions(&["--store", "mysql", "--database-url", &url]).await;
}

/// The embedded persistent store: the app is killed (no clean shutdown) and started again on
/// the same file, and every session comes back as it was, cookie and bearer, data included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_sqlite_keeps_every_session() {
    let file = SqliteFile::new("restart");
    let url = file.url();
    let args = ["--store", "sqlite", "--database-url", url.as_str()];
    let app = DemoApp::start(&args).await;
    let port = app.port;
    let c = app.client();
    let mut cookies = Vec::new();
    for user in ["alice", "bob", "admin", "alice"] {
        let v = c.login(user).await;
        let cart = c
            .post("/api/cart", Auth::Cookie(&v), json!({ "item": user }))
            .await;
        assert_eq!(cart.status, StatusCode::OK);
        cookies.push((user, v));
    }
    let bearer = c
        .post("/api/token", Auth::None, creds("bob", "bob-password"))
        .await
        .json()["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let ended = c.login("bob").await;
    assert_eq!(
        c.post("/api/logout", Auth::Cookie(&ended), json!({}))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    app.stop().await;

    let app = DemoApp::start_on(port, &args).await;
    let c = app.client();
    for (user, v) in &cookies {
        let me = c.get("/api/me", Auth::Cookie(v)).await;
        assert_eq!(
            me.status,
            StatusCode::OK,
            "{user}'s session did not survive"
        );
        assert_eq!(me.json()["username"], json!(user));
        assert_eq!(
            c.get("/api/cart", Auth::Cookie(v)).await.json(),
            json!({ "items": [user] })
        );
    }
    let me = c.get("/api/me", Auth::Bearer(&bearer)).await;
    assert_eq!(
        me.status,
        StatusCode::OK,
        "the bearer session did not survive"
    );
    assert_eq!(
        c.get("/api/me", Auth::Cookie(&ended)).await.status,
        StatusCode::UNAUTHORIZED,
        "a session signed out before the restart came back"
    );
    let list = c.get("/api/sessions", Auth::Cookie(&cookies[0].1)).await;
    assert_eq!(list.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_flags() {
    // Real seconds, but only a few: the flags reach the library.
    // Times are whole seconds: with a 3 s idle timeout, a request 1.1 s after sign-in is at
    // most 2 whole seconds later (alive), and 4.1 s of silence after it at least 4 (expired).
    let app = DemoApp::start(&["--idle-timeout", "3", "--absolute-timeout", "6"]).await;
    let c = app.client();
    let v = c.login("alice").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        c.get("/api/me", Auth::Cookie(&v)).await.status,
        StatusCode::OK
    );
    tokio::time::sleep(std::time::Duration::from_millis(4100)).await;
    assert_eq!(
        c.get("/api/me", Auth::Cookie(&v)).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Invalid timeouts are refused at start-up with a message, not a panic.
    let out = tokio::process::Command::new(sessionward_e2e::demo_binary())
        .args([
            "--idle-timeout",
            "60",
            "--absolute-timeout",
            "30",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .await
        .expect("run demo-app");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("absolute timeout"));
}
