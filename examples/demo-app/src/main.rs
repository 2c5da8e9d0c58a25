//! sessionward's demo app: the production-shaped template.
//!
//! Run with: `cargo run --release -p demo-app`, then open <http://localhost:3000>.
//!
//! `--store postgres --database-url URL` (or `DATABASE_URL`) and `--store redis --redis-url URL`
//! (or `REDIS_URL`) share sessions between instances; `--idle-timeout SECS` and
//! `--absolute-timeout SECS` override the library's defaults (30 minutes, 12 hours).
//! `LOG_FORMAT=json` switches the logs to JSON lines; `RUST_LOG` filters them.

mod api;
mod html;
mod users;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::get;
use axum::{Router, middleware};
use clap::{Parser, ValueEnum};
use sessionward::{
    CrossOriginGuard, MemoryStore, SessionConfig, SessionLayer, SessionStore, Transport, role,
};

role!(
    /// Users who may change other users' roles.
    pub(crate) Admin = "admin"
);

/// What handlers share.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // holds password hashes: not for logs
pub(crate) struct AppState {
    users: users::Users,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum StoreKind {
    Memory,
    Postgres,
    Redis,
}

/// sessionward demo app.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Where sessions live.
    #[arg(long, value_enum, default_value = "memory")]
    store: StoreKind,
    /// PostgreSQL URL, for `--store postgres`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Redis URL, for `--store redis`.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// Idle timeout in seconds (default: the library's, 30 minutes).
    #[arg(long)]
    idle_timeout: Option<u64>,
    /// Absolute timeout in seconds (default: the library's, 12 hours).
    #[arg(long)]
    absolute_timeout: Option<u64>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn open_store(args: &Args) -> Result<Arc<dyn SessionStore>, BoxError> {
    Ok(match args.store {
        StoreKind::Memory => Arc::new(MemoryStore::new()),
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
        StoreKind::Redis => {
            let url = args
                .redis_url
                .as_deref()
                .ok_or("--store redis needs --redis-url or REDIS_URL")?;
            redis_store(url).await?
        }
    })
}

async fn redis_store(url: &str) -> Result<Arc<dyn SessionStore>, BoxError> {
    Ok(Arc::new(sessionward_redis::RedisStore::connect(url).await?))
}

fn session_config(args: &Args) -> Result<SessionConfig, BoxError> {
    let mut b = SessionConfig::builder().transport(Transport::CookieAndBearer);
    if let Some(s) = args.idle_timeout {
        b = b.idle_timeout(Duration::from_secs(s));
    }
    if let Some(s) = args.absolute_timeout {
        b = b.absolute_timeout(Duration::from_secs(s));
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
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
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

/// The whole application over `store`.
fn app(store: Arc<dyn SessionStore>, config: SessionConfig, state: AppState) -> Router {
    let sessions = SessionLayer::from_shared_store(store, config);
    Router::new()
        .merge(html::routes())
        .nest("/api", api::routes())
        .fallback(html::not_found)
        .layer(CrossOriginGuard::new())
        .layer(sessions)
        // Outside the session layer: health checks never touch a session.
        .route("/healthz", get(|| async { "ok" }))
        .layer(middleware::map_response(security_headers))
        .with_state(state)
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

async fn run(args: Args) -> Result<(), BoxError> {
    let config = session_config(&args)?;
    let users = users::Users::seeded().map_err(|e| format!("hashing the demo passwords: {e}"))?;
    let store = open_store(&args).await?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(store = ?args.store, %addr, "demo app ready");
    println!("listening on http://{addr}");
    axum::serve(
        listener,
        app(store, config, AppState { users }).into_make_service(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
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
