//! sessionward's benchmark harness: the same handlers served by bare axum, sessionward and
//! tower-sessions (memory, PostgreSQL, SQLite, MySQL, Redis and Redis Cluster stores; bare routes and the
//! demo app's stack), loaded by `wrk` from the other core, in interleaved repetitions; and
//! memory per session at 1,000,000 sessions.
//!
//! Run with: `cargo run --release -p sessionward-bench -- run` (see `docs/performance.md`).
//!
//! Subcommands:
//! - `run [--duration S] [--warmup S] [--reps N] [--connections N] [--sessions N]
//!   [--workloads a,b] [--variants a,b] [--database-url URL] [--mysql-url URL]
//!   [--redis-url URL] [--redis-cluster-url URL[,URL...]] [--memory N]`: the whole
//!   comparison; prints a markdown table. Every server and `wrk` run is a child process that
//!   stops by itself or is killed when its run ends; everything listens on loopback. The
//!   `*-redis-cluster` variants run on the cluster whose seeds `--redis-cluster-url` names, or
//!   else on one the harness starts for the run (three primaries, three replicas of
//!   `redis-server` on free loopback ports below 55536, under a temp folder, every node killed
//!   by PID when the run ends).
//! - `serve --variant V --port P [--shape bare|app] [--database-url URL]`: one server (the
//!   harness starts these; URL is the variant's PostgreSQL, SQLite, MySQL or Redis URL).
//! - `memory --impl sessionward|tower-sessions --count N`: resident memory of N sessions.
//! - `run --workloads sweep`: the sweep workload (see [`sweep`]); its servers are `serve
//!   --variant sw-mem --expiring N [--sweep-batch B]` and its load client `sweep-load`.

mod sweep;

use sessionward_bench::servers;

// The Redis Cluster starter of sessionward-redis's tests, shared as one source file.
#[path = "../../crates/sessionward-redis/tests/common/cluster.rs"]
mod cluster;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const VARIANTS: [&str; 14] = [
    "bare",
    "floor",
    "sw-mem",
    "ts-mem",
    "sw-pg",
    "ts-pg",
    "sw-sqlite",
    "ts-sqlite",
    "sw-mysql",
    "ts-mysql",
    "sw-redis",
    "ts-redis",
    "sw-redis-cluster",
    "ts-redis-cluster",
];
const WORKLOADS: [&str; 6] = ["read", "write", "login", "plain", "app-read", "app-write"];

/// The `User-Agent` every request of a run carries, sign-in included (sessionward records the
/// sign-in's; a request with another one would be a different client).
const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) sessionward-bench/1";

/// What one workload sends: method, path, and whether it is the app-shaped stack.
struct Request {
    method: &'static str,
    path: &'static str,
    app: bool,
}

fn request_of(workload: &str) -> Request {
    let (method, path, app) = match workload {
        "read" => ("GET", "/read", false),
        "write" => ("POST", "/write", false),
        "login" => ("POST", "/login", false),
        "app-read" => ("GET", "/api/me", true),
        "app-write" => ("PUT", "/api/prefs/theme", true),
        "app-login" => ("POST", "/api/login", true),
        _ => ("GET", "/plain", false),
    };
    Request { method, path, app }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn list(args: &[String], name: &str, default: &[&str]) -> Vec<String> {
    arg(args, name).map_or_else(
        || default.iter().map(|s| (*s).to_owned()).collect(),
        |v| v.split(',').map(str::to_owned).collect(),
    )
}

fn num<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    arg(args, name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(&args),
        Some("memory") => memory(&args),
        Some("sweep-load") => sweep::load(&args),
        Some("run") => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(run(&args))
        }
        _ => {
            eprintln!("usage: sessionward-bench run|serve|memory (see docs/performance.md)");
            std::process::exit(2);
        }
    }
}

/// The store family of a variant: `mem`, `pg`, `sqlite`, `mysql`, `redis`, `redis-cluster`
/// (`bare` for bare).
fn family(variant: &str) -> &str {
    variant
        .split_once('-')
        .map_or(variant, |(_, family)| family)
}

/// The environment variable naming the server a family needs, if any.
fn url_var(family: &str) -> Option<&'static str> {
    match family {
        "pg" => Some("DATABASE_URL"),
        "mysql" => Some("MYSQL_URL"),
        "redis" => Some("REDIS_URL"),
        _ => None,
    }
}

/// Serves one variant on one thread (the harness pins the process to one core).
fn serve(args: &[String]) -> Result<(), BoxError> {
    let variant = arg(args, "--variant").ok_or("--variant")?;
    let port: u16 = num(args, "--port", 0);
    let shape = match arg(args, "--shape").as_deref() {
        None | Some("bare") => servers::Shape::Bare,
        Some("app") => servers::Shape::App,
        Some(other) => return Err(format!("unknown shape {other}").into()),
    };
    let url = arg(args, "--database-url")
        .or_else(|| url_var(family(&variant)).and_then(|v| std::env::var(v).ok()));
    let expiring: Option<usize> = arg(args, "--expiring").and_then(|n| n.parse().ok());
    let sweep_batch: Option<usize> = arg(args, "--sweep-batch").and_then(|n| n.parse().ok());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let need_url = || {
            url.clone()
                .ok_or_else(|| format!("{variant} needs --database-url"))
        };
        let sw = |store| servers::sessionward_shaped(store, shape);
        let app = match variant.as_str() {
            "bare" => match shape {
                servers::Shape::Bare => servers::bare(),
                servers::Shape::App => servers::bare_app(),
            },
            "floor" => match shape {
                servers::Shape::Bare => servers::floor(),
                servers::Shape::App => {
                    return Err("floor serves the bare workloads only (not app-*)".into());
                }
            },
            "sw-mem" => match expiring {
                // The sweep workload's server (see `sweep`).
                Some(n) => sweep::server(n, sweep_batch).await?,
                None => sw(Arc::new(sessionward_memory::MemoryStore::new()))?,
            },
            "ts-mem" => servers::tower_sessions_memory(shape),
            "sw-pg" => sw(servers::sessionward_postgres(&need_url()?).await?)?,
            "ts-pg" => servers::tower_sessions_postgres(&need_url()?, shape).await?,
            "sw-sqlite" => sw(servers::sessionward_sqlite(&need_url()?).await?)?,
            "ts-sqlite" => servers::tower_sessions_sqlite(&need_url()?, shape).await?,
            "sw-mysql" => sw(servers::sessionward_mysql(&need_url()?).await?)?,
            "ts-mysql" => servers::tower_sessions_mysql(&need_url()?, shape).await?,
            "sw-redis" => sw(servers::sessionward_redis(&need_url()?).await?)?,
            "ts-redis" => servers::tower_sessions_redis(&need_url()?, shape).await?,
            "sw-redis-cluster" => sw(servers::sessionward_redis_cluster(&need_url()?).await?)?,
            "ts-redis-cluster" => {
                servers::tower_sessions_redis_cluster(&need_url()?, shape).await?
            }
            other => return Err(format!("unknown variant {other}").into()),
        };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        println!("ready {}", listener.local_addr()?);
        std::io::stdout().flush()?;
        axum::serve(listener, app).await?;
        Ok::<(), BoxError>(())
    })
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Resident memory of N sessions in one implementation's memory store, each holding a user
/// and a role list (what a sign-in stores) with the idle policy of the load tests.
fn memory(args: &[String]) -> Result<(), BoxError> {
    let imp = arg(args, "--impl").ok_or("--impl sessionward|tower-sessions")?;
    let count: usize = num(args, "--count", 1_000_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let before = rss_bytes();
    let started = Instant::now();
    rt.block_on(async {
        match imp.as_str() {
            "sessionward" => {
                use sessionward_core::{
                    RoleSet, SessionData, SessionHandle, SessionRecord, SessionStore, SessionToken,
                    Timestamp, UserId,
                };
                let store = sessionward_memory::MemoryStore::builder()
                    .sweep(sessionward_memory::SweepConfig::disabled())
                    .build();
                let now = Timestamp::from_unix(1_800_000_000);
                for i in 0..count {
                    let mut r = SessionRecord::new(
                        SessionToken::generate()?.key(),
                        SessionHandle::generate()?,
                        now,
                        Duration::from_secs(1800),
                        Duration::from_secs(43_200),
                    );
                    r.user = Some(UserId::from(format!("user-{i}")));
                    // Each sign-in's own allocation of its roles, as `login(user, ["user"])`
                    // brings one (a store that keeps them as given keeps one per session).
                    r.roles = RoleSet::from(["user"]);
                    r.authenticated_at = Some(now);
                    r.data = SessionData::from_json(format!(r#"{{"n":{i}}}"#))?;
                    store.create(&r).await?;
                }
                std::mem::forget(store);
            }
            "tower-sessions" => {
                use tower_sessions::session::{Id, Record};
                use tower_sessions::session_store::SessionStore as _;
                let store = tower_sessions::MemoryStore::default();
                let expiry = time::OffsetDateTime::now_utc() + time::Duration::minutes(30);
                for i in 0..count {
                    let mut data = std::collections::HashMap::new();
                    data.insert("user".to_owned(), serde_json::json!(format!("user-{i}")));
                    data.insert("roles".to_owned(), serde_json::json!(["user"]));
                    data.insert("n".to_owned(), serde_json::json!(i));
                    let mut r = Record {
                        id: Id::default(),
                        data,
                        expiry_date: expiry,
                    };
                    store.create(&mut r).await.map_err(|e| e.to_string())?;
                }
                std::mem::forget(store);
            }
            other => return Err::<(), BoxError>(format!("unknown --impl {other}").into()),
        }
        Ok(())
    })?;
    let after = rss_bytes();
    println!(
        r#"{{"impl":"{imp}","count":{count},"rss_bytes":{after},"growth_bytes":{},"seconds":{:.1}}}"#,
        after.saturating_sub(before),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The `sweep` workload (see [`sweep`]) on `sw-mem`, `reps` times; prints its table.
async fn run_sweep(
    args: &[String],
    work: &Path,
    server_cpu: &str,
    wrk_args: &WrkArgs,
    sessions: usize,
    reps: usize,
    variants: &[String],
) -> Result<(), BoxError> {
    if !variants.iter().any(|v| v == "sw-mem") {
        eprintln!(
            "the sweep workload runs on sw-mem only (tower-sessions' MemoryStore has no sweep)"
        );
        return Ok(());
    }
    let expiring: usize = num(args, "--expiring", 1_000_000);
    let batch: Option<usize> = arg(args, "--sweep-batch").and_then(|b| b.parse().ok());
    let mut rows = Vec::new();
    for rep in 0..reps {
        let v = sweep::repetition(
            work,
            server_cpu,
            &wrk_args.cpu,
            sessions,
            wrk_args.connections,
            expiring,
            batch,
        )
        .await?;
        let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
        eprintln!(
            "  sweep     sw-mem    rep {rep}: p99 {:.0} us without the sweep, {:.0} us during it ({:.2}x); sweep {:.2} s; {:.0} / {:.0} req/s; {} errors",
            f("quiet_p99_us"),
            f("sweep_p99_us"),
            f("sweep_p99_us") / f("quiet_p99_us").max(1.0),
            f("sweep_seconds"),
            f("quiet_rps"),
            f("sweep_rps"),
            v["errors"]
        );
        rows.push(v);
    }
    let med = |k: &str| median(rows.iter().map(|v| v[k].as_f64().unwrap_or(0.0)).collect());
    let ratio = median(
        rows.iter()
            .map(|v| {
                v["sweep_p99_us"].as_f64().unwrap_or(0.0)
                    / v["quiet_p99_us"].as_f64().unwrap_or(1.0).max(1.0)
            })
            .collect(),
    );
    println!(
        "| sweep of {expiring} expired sessions (sw-mem, median of {reps}) | p50 | p99 | req/s |"
    );
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| no sweep running | {:.2} ms | {:.2} ms | {:.0} |",
        med("quiet_p50_us") / 1000.0,
        med("quiet_p99_us") / 1000.0,
        med("quiet_rps")
    );
    println!(
        "| during the sweep ({:.2} s) | {:.2} ms | {:.2} ms | {:.0} |",
        med("sweep_seconds"),
        med("sweep_p50_us") / 1000.0,
        med("sweep_p99_us") / 1000.0,
        med("sweep_rps")
    );
    println!("| p99 during / without | | {ratio:.2}x | |");
    println!();
    Ok(())
}

struct Server {
    child: Child,
    addr: String,
}

async fn start_server(
    variant: &str,
    app: bool,
    cpu: &str,
    url: Option<&str>,
) -> Result<Server, BoxError> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", cpu])
        .arg(&exe)
        .args(["serve", "--variant", variant, "--port", "0"])
        .args(["--shape", if app { "app" } else { "bare" }])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if let Some(url) = url {
        cmd.args(["--database-url", url]);
    }
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().ok_or("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .map_err(|_| format!("{variant} did not start"))??
        .ok_or_else(|| format!("{variant} exited"))?;
    let addr = line
        .strip_prefix("ready ")
        .ok_or("unexpected server output")?
        .to_owned();
    Ok(Server { child, addr })
}

/// Signs in `n` clients (16 at a time) at `path` and returns their `Cookie` header values.
async fn sign_in(addr: &str, path: &'static str, n: usize) -> Result<Vec<String>, BoxError> {
    let per = n.div_ceil(16);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let addr = addr.to_owned();
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(&addr).await?;
            stream.set_nodelay(true)?;
            let (mut tx, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let mut out = Vec::with_capacity(per);
            for _ in 0..per {
                let req = hyper::Request::post(path)
                    .header("host", addr.as_str())
                    .header("user-agent", USER_AGENT)
                    .header("sec-fetch-site", "same-origin")
                    .body(Empty::<Bytes>::new())?;
                let res = tx.send_request(req).await?;
                if !res.status().is_success() {
                    return Err(format!("sign-in at {path}: {}", res.status()).into());
                }
                let cookie = res
                    .headers()
                    .get("set-cookie")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split(';').next())
                    .map(str::to_owned);
                let _ = res.into_body().collect().await?;
                if let Some(c) = cookie {
                    out.push(c);
                }
            }
            Ok::<_, BoxError>(out)
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await??);
    }
    all.truncate(n);
    Ok(all)
}

#[derive(Clone, Copy, Debug)]
struct Sample {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
}

async fn wrk(
    addr: &str,
    workload: &str,
    cookies: Option<&Path>,
    args: &WrkArgs,
    duration: Duration,
) -> Result<Sample, BoxError> {
    let req = request_of(workload);
    // The app-shaped write carries a JSON body, as the demo's client sends it.
    let body = if req.method == "PUT" {
        r#"{"value":"dark"}"#
    } else {
        "-"
    };
    let out = Command::new("taskset")
        .args(["-c", &args.cpu, "wrk", "-t1"])
        .arg(format!("-c{}", args.connections))
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg("-s")
        .arg(&args.script)
        .arg(format!("http://{addr}{}", req.path))
        .arg("--")
        .arg(req.method)
        .arg(cookies.map_or_else(|| "-".into(), |p| p.display().to_string()))
        .arg(USER_AGENT)
        .arg(body)
        .kill_on_drop(true)
        .output();
    // wrk stops by itself after `duration`; bound the wait anyway.
    let out = tokio::time::timeout(duration + Duration::from_secs(30), out)
        .await
        .map_err(|_| "wrk did not finish")??;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with('{')).ok_or_else(|| {
        format!(
            "wrk printed no result: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let v: serde_json::Value = serde_json::from_str(line)?;
    let requests = v["requests"].as_f64().unwrap_or(0.0);
    let secs = v["duration_us"].as_f64().unwrap_or(1.0) / 1e6;
    let errors = v["errors"].as_u64().unwrap_or(0);
    if errors > 0 {
        eprintln!("  warning: {errors} errors (non-2xx or socket) on {workload}");
    }
    Ok(Sample {
        rps: requests / secs,
        p50_us: v["p50_us"].as_f64().unwrap_or(0.0),
        p99_us: v["p99_us"].as_f64().unwrap_or(0.0),
    })
}

struct WrkArgs {
    cpu: String,
    connections: usize,
    script: PathBuf,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Empties both implementations' session tables on the PostgreSQL or MySQL server at `url`
/// (a table that does not exist yet is skipped), so every run starts from the same state.
async fn truncate_tables(family: &str, url: &str) {
    match family {
        "pg" => {
            if let Ok(pool) = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await
            {
                for stmt in [
                    "TRUNCATE sessionward_sessions",
                    "TRUNCATE tower_sessions.session",
                    "VACUUM ANALYZE",
                ] {
                    let _ = sqlx::query(stmt).execute(&pool).await;
                }
                pool.close().await;
            }
        }
        "mysql" => {
            if let Ok(pool) = sqlx::mysql::MySqlPoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await
            {
                for stmt in [
                    "TRUNCATE TABLE sessionward_sessions",
                    "TRUNCATE TABLE tower_sessions.session",
                ] {
                    let _ = sqlx::query(stmt).execute(&pool).await;
                }
                pool.close().await;
            }
        }
        _ => {}
    }
}

async fn run(args: &[String]) -> Result<(), BoxError> {
    let duration = Duration::from_secs(num(args, "--duration", 10));
    let warmup = Duration::from_secs(num(args, "--warmup", 2));
    let reps: usize = num(args, "--reps", 3);
    let sessions: usize = num(args, "--sessions", 10_000);
    let mut workloads = list(args, "--workloads", &WORKLOADS);
    let sweep_workload = workloads.iter().any(|w| w == "sweep");
    workloads.retain(|w| w != "sweep");
    let mut urls: BTreeMap<&str, Option<String>> = [
        ("pg", arg(args, "--database-url")),
        ("mysql", arg(args, "--mysql-url")),
        ("redis", arg(args, "--redis-url")),
        ("redis-cluster", arg(args, "--redis-cluster-url")),
    ]
    .into_iter()
    .map(|(f, given)| {
        let url = given.or_else(|| url_var(f).and_then(|v| std::env::var(v).ok()));
        (f, url)
    })
    .collect();
    let mut variants = list(args, "--variants", &VARIANTS);
    // A cluster of the run's own unless seeds were given; dropped (every node killed) at the end.
    let mut _own_cluster = None;
    if urls["redis-cluster"].is_none()
        && variants.iter().any(|v| family(v) == "redis-cluster")
        && let Some(c) = cluster::RedisCluster::start("sessionward-bench")
    {
        eprintln!("started a Redis Cluster: {}", c.seeds().join(","));
        urls.insert("redis-cluster", Some(c.seeds().join(",")));
        _own_cluster = Some(c);
    }
    for (f, url) in &urls {
        if url.is_none() && variants.iter().any(|v| family(v) == *f) {
            eprintln!(
                "{} is not set: skipping the {f} variants",
                url_var(f).unwrap_or("--redis-cluster-url (and no redis-server to start one)")
            );
            variants.retain(|v| family(v) != *f);
        }
    }
    let server_cpu = arg(args, "--server-cpu").unwrap_or_else(|| "0".into());
    let wrk_args = WrkArgs {
        cpu: arg(args, "--load-cpu").unwrap_or_else(|| "1".into()),
        connections: num(args, "--connections", 32),
        script: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("wrk/load.lua"),
    };
    let work = std::env::temp_dir().join(format!("sessionward-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    eprintln!(
        "{} workloads x {} variants x {reps} reps x {}s, {} connections, server on CPU {server_cpu}, wrk on CPU {}",
        workloads.len(),
        variants.len(),
        duration.as_secs(),
        wrk_args.connections,
        wrk_args.cpu
    );
    let mut results: BTreeMap<(String, String), Vec<Sample>> = BTreeMap::new();
    let mut runs = 0_usize;
    for workload in &workloads {
        let req = request_of(workload);
        for rep in 0..reps {
            // Interleave: each repetition starts with another variant.
            let mut order = variants.clone();
            order.rotate_left(rep % variants.len().max(1));
            for variant in &order {
                if variant == "floor" && req.app {
                    continue; // the floor has no app-shaped routes
                }
                runs += 1;
                let fam = family(variant);
                let url = if fam == "sqlite" {
                    // A fresh file per server: every run starts empty.
                    Some(format!(
                        "sqlite://{}",
                        work.join(format!("{variant}-{runs}.db")).display()
                    ))
                } else {
                    urls.get(fam).cloned().flatten()
                };
                if let Some(url) = &url {
                    truncate_tables(fam, url).await;
                }
                let server = start_server(variant, req.app, &server_cpu, url.as_deref()).await?;
                let cookies = if workload.ends_with("login") {
                    None
                } else {
                    let list = if variant == "bare" || variant == "floor" {
                        // The same header shape, so the baseline parses a similar request.
                        (0..sessions)
                            .map(|i| format!("__Host-id={:0>43}", i))
                            .collect()
                    } else {
                        let login = if req.app { "/api/login" } else { "/login" };
                        sign_in(&server.addr, login, sessions).await?
                    };
                    let path = work.join(format!("{variant}.cookies"));
                    std::fs::write(&path, list.join("\n"))?;
                    Some(path)
                };
                // Warm up, then measure.
                if !warmup.is_zero() {
                    wrk(
                        &server.addr,
                        workload,
                        cookies.as_deref(),
                        &wrk_args,
                        warmup,
                    )
                    .await?;
                }
                let s = wrk(
                    &server.addr,
                    workload,
                    cookies.as_deref(),
                    &wrk_args,
                    duration,
                )
                .await?;
                eprintln!(
                    "  {workload:<9} {variant:<9} rep {rep}: {:>9.0} req/s  p50 {:>6.0} us  p99 {:>6.0} us",
                    s.rps, s.p50_us, s.p99_us
                );
                results
                    .entry((workload.clone(), variant.clone()))
                    .or_default()
                    .push(s);
                let mut child = server.child;
                let _ = child.kill().await;
            }
        }
    }
    if sweep_workload {
        run_sweep(
            args,
            &work,
            &server_cpu,
            &wrk_args,
            sessions,
            reps,
            &variants,
        )
        .await?;
    }
    let _ = std::fs::remove_dir_all(&work);
    if workloads.is_empty() {
        return Ok(());
    }

    let med = |w: &str, v: &str| -> Option<(f64, f64, f64)> {
        let s = results.get(&(w.to_owned(), v.to_owned()))?;
        Some((
            median(s.iter().map(|x| x.rps).collect()),
            median(s.iter().map(|x| x.p50_us).collect()),
            median(s.iter().map(|x| x.p99_us).collect()),
        ))
    };
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| workload | variant | req/s (median of {reps}) | p50 | p99 | vs bare axum | vs tower-sessions |"
    );
    let _ = writeln!(table, "| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for w in &workloads {
        let bare = med(w, "bare").map(|m| m.0);
        for v in &variants {
            let Some((rps, p50, p99)) = med(w, v) else {
                continue;
            };
            let vs_bare = bare.map_or_else(|| "-".into(), |b| format!("{:.2}x", rps / b));
            // The floor is the ceiling of an in-memory sign-in: compared with tower-sessions'
            // (its other routes are bare axum's).
            let rival = if v == "floor" {
                (w == "login").then(|| med(w, "ts-mem")).flatten()
            } else {
                v.strip_prefix("sw-")
                    .and_then(|store| med(w, &format!("ts-{store}")))
            };
            let vs_ts = rival.map_or_else(|| "-".into(), |r| format!("{:.2}x", rps / r.0));
            let _ = writeln!(
                table,
                "| {w} | {v} | {rps:.0} | {:.2} ms | {:.2} ms | {vs_bare} | {vs_ts} |",
                p50 / 1000.0,
                p99 / 1000.0
            );
        }
    }
    println!("{table}");

    let count: usize = num(args, "--memory", 0);
    if count > 0 {
        println!("| memory store | sessions | resident memory | growth per session |");
        println!("| --- | ---: | ---: | ---: |");
        for imp in ["sessionward", "tower-sessions"] {
            let out = Command::new(std::env::current_exe()?)
                .args(["memory", "--impl", imp, "--count", &count.to_string()])
                .output()
                .await?;
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
            let rss = v["rss_bytes"].as_f64().unwrap_or(0.0);
            let growth = v["growth_bytes"].as_f64().unwrap_or(0.0);
            println!(
                "| {imp} | {count} | {:.0} MiB | {:.0} bytes |",
                rss / 1_048_576.0,
                growth / count as f64
            );
        }
    }
    Ok(())
}
