//! sessionward's demo app: the production-shaped template.
//!
//! Run with: `cargo run --release -p demo-app`, then open <http://localhost:3000>.
//! Over https (needed in WebKit browsers, Safari included, which drop `Secure` cookies from
//! any http URL, localhost too): `cargo run --release -p demo-app -- --self-signed`, then open
//! <https://localhost:3000> and accept the certificate. `--tls-cert PATH --tls-key PATH` serve
//! a real certificate (PEM files).
//!
//! `--store postgres --database-url URL` (or `DATABASE_URL`), `--store mysql --database-url
//! mysql://...`, `--store redis --redis-url URL` (or `REDIS_URL`) and `--store redis-cluster
//! --redis-url URL[,URL...]` (a Redis Cluster's seed nodes) share sessions between instances; `--store sqlite --database-url sqlite://PATH` keeps them in a file across restarts; `--idle-timeout SECS` and
//! `--absolute-timeout SECS` override the library's defaults (30 minutes, 12 hours).
//! `LOG_FORMAT=json` switches the logs to JSON lines; `RUST_LOG` filters them.
//!
//! The server's limits (timeouts, connection cap, body size), sign-in throttling, the bound on
//! password hashing and the fresh-sign-in window are flags with production-minded defaults:
//! see `--help`, [`server`], [`throttle`] and [`users`].

mod account;
mod api;
mod client;
mod html;
mod server;
mod throttle;
mod tls;
mod users;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use axum::{Router, middleware};
use clap::{Parser, ValueEnum};
use sessionward::{
    CrossOriginGuard, GuessThrottle, IpRange, MemoryStore, SessionConfig, SessionLayer,
    SessionStore, SharedClock, SystemClock, Transport, role,
};
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

role!(
    /// Users who may change other users' roles.
    pub(crate) Admin = "admin"
);

/// What handlers share.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // holds password hashes: not for logs
pub(crate) struct AppState {
    users: users::Users,
    throttle: throttle::Throttle,
    /// How recent a sign-in must be for role changes and signing out everywhere.
    fresh_window: Duration,
    clock: SharedClock,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum StoreKind {
    Memory,
    Postgres,
    Mysql,
    Sqlite,
    Redis,
    RedisCluster,
}

/// sessionward demo app.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Serve https with this certificate chain (PEM file; with --tls-key).
    #[arg(long, requires = "tls_key", conflicts_with = "self_signed")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM file: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve https with a certificate for `localhost` and `127.0.0.1` made at start, for
    /// local development (the browser asks you to accept it). WebKit browsers (Safari,
    /// GNOME Web) need https even on localhost: they drop Secure cookies from http URLs.
    #[arg(long)]
    self_signed: bool,
    /// With --self-signed: also write the certificate (PEM) to this file, for clients that
    /// should trust it.
    #[arg(long, requires = "self_signed")]
    self_signed_out: Option<PathBuf>,
    /// The app's public origin as people reach it (e.g. `https://app.example.com` behind a
    /// reverse proxy); repeat for several. The cross-origin check compares a request's Origin
    /// with these rather than with the Host header. Default: the Host header.
    #[arg(long)]
    public_origin: Vec<String>,
    /// Where sessions live.
    #[arg(long, value_enum, default_value = "memory")]
    store: StoreKind,
    /// Database URL, for `--store postgres` (postgres://...), `--store mysql` (mysql://...) and
    /// `--store sqlite` (sqlite://PATH, a file created if missing, or sqlite::memory:).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Redis URL, for `--store redis`; for `--store redis-cluster`, the seed nodes' URLs
    /// separated by commas (`redis://host:port[,redis://host:port...]`).
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// Idle timeout in seconds (default: the library's, 30 minutes).
    #[arg(long)]
    idle_timeout: Option<u64>,
    /// Idle timeout of anonymous sessions (a cart before sign-in) in seconds, at most the idle
    /// timeout (default: the idle timeout).
    #[arg(long)]
    anonymous_idle_timeout: Option<u64>,
    /// Absolute timeout in seconds (default: the library's, 12 hours).
    #[arg(long)]
    absolute_timeout: Option<u64>,
    /// The memory store's bound on signed-in sessions (past it, sign-ins are refused with a
    /// 503).
    #[arg(long, default_value_t = 100_000)]
    max_sessions: usize,
    /// The memory store's bound on anonymous sessions (past it, the least recently used are
    /// evicted; never a refusal).
    #[arg(long, default_value_t = 100_000)]
    max_anonymous_sessions: usize,
    /// Peers whose X-Forwarded-For is believed: IP addresses or CIDR ranges, comma-separated
    /// or repeated. Default: none, the client address is the TCP peer's.
    #[arg(long, value_delimiter = ',')]
    trusted_proxy: Vec<IpRange>,
    /// Which X-Forwarded-For entry is the client, counted from the right (1: the entry the
    /// nearest trusted proxy appended), 1 to 16.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    proxy_hops: u16,
    /// Turns on the library's guessing throttle: a client address that presents this many
    /// malformed or unknown session IDs within a minute gets 429 for 5 minutes on requests
    /// that present one (sessions seen valid are still served). Default: off.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    guess_throttle: Option<u32>,
    /// Seconds a client has to send a complete request head.
    #[arg(long, default_value_t = 10)]
    header_read_timeout: u64,
    /// Seconds a connection may stay open with no request in flight.
    #[arg(long, default_value_t = 30)]
    keep_alive_timeout: u64,
    /// Connections served at once; past it the longest-idle one is closed, or new ones wait.
    /// Keep it well below the descriptor limit (`ulimit -n`).
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Largest request head in bytes (at least 8192).
    #[arg(long, default_value_t = 16384, value_parser = clap::value_parser!(u32).range(8192..))]
    max_header_bytes: u32,
    /// Largest request body in bytes (413 past it).
    #[arg(long, default_value_t = 64 * 1024)]
    max_body_bytes: usize,
    /// Seconds allowed between a request body's chunks.
    #[arg(long, default_value_t = 10)]
    body_read_timeout: u64,
    /// Seconds a request may take in all before a 408.
    #[arg(long, default_value_t = 30)]
    request_timeout: u64,
    /// Seconds shutdown waits for in-flight requests.
    #[arg(long, default_value_t = 30)]
    shutdown_timeout: u64,
    /// Password verifications at once (argon2id, 19 MiB each); past it sign-ins get a 503.
    /// Default: the number of cores.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    hash_concurrency: Option<u32>,
    /// Failed sign-ins one client address may make (over all accounts) before back-off.
    #[arg(long, default_value_t = 20)]
    login_free_per_client: u32,
    /// Failed sign-ins one account may take (from all addresses) before back-off; this only
    /// slows addresses that have failed for the account themselves.
    #[arg(long, default_value_t = 10)]
    login_free_per_account: u32,
    /// Failed sign-ins one client address may make for one account before back-off.
    #[arg(long, default_value_t = 5)]
    login_free_per_pair: u32,
    /// The longest sign-in back-off in seconds (it doubles from 1 s), and how long failures
    /// are remembered.
    #[arg(long, default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..))]
    login_max_backoff: u64,
    /// Keys each sign-in throttle table holds (bounded memory).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..))]
    login_throttle_entries: u32,
    /// Seconds since sign-in within which role changes and "sign out everywhere" are allowed
    /// without signing in again (at most 3600).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(0..=3600))]
    fresh_auth_window: u64,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn open_store(args: &Args) -> Result<Arc<dyn SessionStore>, BoxError> {
    Ok(match args.store {
        StoreKind::Memory => Arc::new(
            MemoryStore::builder()
                .max_sessions(args.max_sessions)
                .max_anonymous_sessions(args.max_anonymous_sessions)
                .build(),
        ),
        StoreKind::Postgres => {
            let url = args
                .database_url
                .as_deref()
                .ok_or("--store postgres needs --database-url or DATABASE_URL")?;
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(5))
                .connect(url)
                .await?;
            let store = sessionward_postgres::PostgresStore::new(pool);
            store.migrate().await?;
            Arc::new(store)
        }
        StoreKind::Mysql => {
            let url = args
                .database_url
                .as_deref()
                .ok_or("--store mysql needs --database-url or DATABASE_URL")?;
            let pool = sqlx::mysql::MySqlPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(5))
                .connect(url)
                .await?;
            let store = sessionward_mysql::MySqlStore::new(pool);
            store.migrate().await?;
            Arc::new(store)
        }
        StoreKind::Sqlite => {
            let url = args
                .database_url
                .as_deref()
                .ok_or("--store sqlite needs --database-url sqlite://PATH")?;
            Arc::new(sessionward_sqlite::SqliteStore::open(url).await?)
        }
        StoreKind::Redis => {
            let url = args
                .redis_url
                .as_deref()
                .ok_or("--store redis needs --redis-url or REDIS_URL")?;
            redis_store(url).await?
        }
        StoreKind::RedisCluster => {
            let urls = args
                .redis_url
                .as_deref()
                .ok_or("--store redis-cluster needs --redis-url URL[,URL...] or REDIS_URL")?;
            let seeds = urls.split(',').map(str::trim).filter(|u| !u.is_empty());
            Arc::new(sessionward_redis::RedisStore::connect_cluster(seeds).await?)
        }
    })
}

async fn redis_store(url: &str) -> Result<Arc<dyn SessionStore>, BoxError> {
    Ok(Arc::new(sessionward_redis::RedisStore::connect(url).await?))
}

fn session_config(args: &Args, clock: SharedClock) -> Result<SessionConfig, BoxError> {
    let mut b = SessionConfig::builder()
        .transport(Transport::CookieAndBearer)
        // Signed-out browsers are sent to the sign-in form and back (`next`); htmx requests
        // get `HX-Redirect` to it; API clients a 401 with `WWW-Authenticate`.
        .sign_in_page("/login")
        .clock(clock);
    if let Some(s) = args.anonymous_idle_timeout {
        b = b.anonymous_idle_timeout(Duration::from_secs(s));
    }
    if let Some(s) = args.idle_timeout {
        b = b.idle_timeout(Duration::from_secs(s));
    }
    if let Some(s) = args.absolute_timeout {
        b = b.absolute_timeout(Duration::from_secs(s));
    }
    for origin in &args.public_origin {
        b = b.public_origin(origin);
    }
    // The client address of the library's events and throttle, and of the sign-in throttle
    // (`client::ClientAddr` reads what the layer resolved).
    b = b.trusted_proxies(
        args.trusted_proxy.iter().copied(),
        usize::from(args.proxy_hops),
    );
    if let Some(threshold) = args.guess_throttle {
        b = b.guess_throttle(GuessThrottle::new().threshold(threshold));
    }
    Ok(b.build()?)
}

/// Headers every response carries: no framing, no sniffing, no scripts, and no referrer to
/// other sites (`same-origin` keeps the `Origin` header on the app's own form posts).
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

/// Limits on request bodies and on a request's total time.
#[derive(Clone, Copy, Debug)]
struct RequestLimits {
    max_body_bytes: usize,
    body_read_timeout: Duration,
    request_timeout: Duration,
}

/// The whole application over `store`.
///
/// The session layer and the cross-origin guard wrap the routed application once, as a
/// service (`fallback_service`), rather than through `Router::layer`: `Router::layer` wraps
/// every route in its own copy of the layers, and axum clones a route's whole boxed stack
/// on each request, so each layer added that way costs an allocation per request. The
/// behaviour is the same either way: every route and the 404 fallback are behind both.
fn app(
    store: Arc<dyn SessionStore>,
    config: SessionConfig,
    guard: CrossOriginGuard,
    state: AppState,
    limits: RequestLimits,
) -> Router {
    let routes = Router::new()
        .merge(html::routes())
        .nest("/api", api::routes())
        .fallback(html::not_found)
        .with_state(state);
    let sessioned = ServiceBuilder::new()
        .layer(SessionLayer::from_shared_store(store, config))
        .layer(guard)
        .service(routes);
    Router::new()
        // Outside the session layer: health checks never touch a session.
        .route("/healthz", get(|| async { "ok" }))
        .fallback_service(sessioned)
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        .layer(RequestBodyTimeoutLayer::new(limits.body_read_timeout))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(middleware::map_response(security_headers))
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if std::env::var("LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

fn hash_concurrency(args: &Args) -> usize {
    args.hash_concurrency.map_or_else(
        || std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        |n| usize::try_from(n).unwrap_or(1),
    )
}

fn throttle_policy(args: &Args) -> throttle::Policy {
    throttle::Policy {
        free_per_client: args.login_free_per_client,
        free_per_account: args.login_free_per_account,
        free_per_pair: args.login_free_per_pair,
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(args.login_max_backoff),
        capacity: usize::try_from(args.login_throttle_entries).unwrap_or(usize::MAX),
    }
}

fn server_limits(args: &Args) -> server::Limits {
    server::Limits {
        header_read_timeout: Duration::from_secs(args.header_read_timeout.max(1)),
        keep_alive_timeout: Duration::from_secs(args.keep_alive_timeout.max(1)),
        max_connections: usize::try_from(args.max_connections).unwrap_or(1),
        max_header_bytes: usize::try_from(args.max_header_bytes).unwrap_or(8192),
        shutdown_timeout: Duration::from_secs(args.shutdown_timeout),
    }
}

/// The TLS acceptor the flags ask for, if any (writing a made certificate where asked).
fn tls_acceptor(args: &Args) -> Result<Option<tokio_rustls::TlsAcceptor>, BoxError> {
    let source = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => tls::Source::Files {
            cert: cert.as_path(),
            key: key.as_path(),
        },
        _ if args.self_signed => tls::Source::SelfSigned,
        _ => return Ok(None),
    };
    let (acceptor, pem) = tls::acceptor(&source)?;
    if let (Some(path), Some(pem)) = (&args.self_signed_out, pem) {
        std::fs::write(path, pem)
            .map_err(|e| format!("writing the certificate to {}: {e}", path.display()))?;
    }
    Ok(Some(acceptor))
}

async fn run(args: Args) -> Result<(), BoxError> {
    let clock: SharedClock = Arc::new(SystemClock);
    let config = session_config(&args, Arc::clone(&clock))?;
    let guard = args
        .public_origin
        .iter()
        .try_fold(CrossOriginGuard::new(), |g, o| g.public_origin(o))?;
    let tls = tls_acceptor(&args)?;
    let hashing = hash_concurrency(&args);
    let users =
        users::Users::seeded(hashing).map_err(|e| format!("hashing the demo passwords: {e}"))?;
    let store = open_store(&args).await?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    let state = AppState {
        users,
        throttle: throttle::Throttle::new(throttle_policy(&args)),
        fresh_window: Duration::from_secs(args.fresh_auth_window),
        clock,
    };
    let limits = RequestLimits {
        max_body_bytes: args.max_body_bytes,
        body_read_timeout: Duration::from_secs(args.body_read_timeout.max(1)),
        request_timeout: Duration::from_secs(args.request_timeout.max(1)),
    };
    let server_limits = server_limits(&args);
    tracing::info!(
        store = ?args.store, %addr, max_connections = server_limits.max_connections,
        hash_concurrency = hashing, "demo app ready"
    );
    if tls.is_some() {
        println!("listening on https://{addr}");
        if args.self_signed {
            println!(
                "open https://localhost:{} and accept the self-signed certificate",
                addr.port()
            );
        }
    } else {
        println!("listening on http://{addr}");
    }
    server::serve(
        listener,
        &app(store, config, guard, state, limits),
        &server_limits,
        tls,
        shutdown_signal(),
    )
    .await;
    Ok(())
}

#[tokio::main]
async fn main() {
    init_logging();
    let args = Args::parse();
    if let Err(e) = run(args).await {
        tracing::error!(error = %e, "demo app failed");
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
