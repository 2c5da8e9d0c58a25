//! sessionward's benchmark harness: the same handlers served by bare axum, sessionward and
//! tower-sessions (memory and PostgreSQL stores), loaded by `wrk` from the other core, in
//! interleaved repetitions; and memory per session at 1,000,000 sessions.
//!
//! Run with: `cargo run --release -p sessionward-bench -- run` (see `docs/performance.md`).
//!
//! Subcommands:
//! - `run [--duration S] [--reps N] [--connections N] [--sessions N] [--workloads a,b]
//!   [--variants a,b] [--database-url URL] [--memory N]`: the whole comparison; prints a
//!   markdown table.
//! - `serve --variant V --port P [--database-url URL]`: one server (the harness starts these).
//! - `memory --impl sessionward|tower-sessions --count N`: resident memory of N sessions.

use sessionward_bench::servers;

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

const VARIANTS: [&str; 5] = ["bare", "sw-mem", "ts-mem", "sw-pg", "ts-pg"];
const WORKLOADS: [&str; 4] = ["read", "write", "login", "plain"];

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

/// Serves one variant on one thread (the harness pins the process to one core).
fn serve(args: &[String]) -> Result<(), BoxError> {
    let variant = arg(args, "--variant").ok_or("--variant")?;
    let port: u16 = num(args, "--port", 0);
    let db = arg(args, "--database-url").or_else(|| std::env::var("DATABASE_URL").ok());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let need_db = || {
            db.clone()
                .ok_or("the PostgreSQL variants need --database-url")
        };
        let app = match variant.as_str() {
            "bare" => servers::bare(),
            "sw-mem" => servers::sessionward(Arc::new(sessionward_memory::MemoryStore::new())),
            "ts-mem" => servers::tower_sessions_memory(),
            "sw-pg" => servers::sessionward_postgres(&need_db()?)
                .await
                .map_err(|e| e.to_string())?,
            "ts-pg" => servers::tower_sessions_postgres(&need_db()?)
                .await
                .map_err(|e| e.to_string())?,
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
                let roles = RoleSet::from_iter(["user"]);
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
                    r.roles = roles.clone();
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

struct Server {
    child: Child,
    addr: String,
}

async fn start_server(variant: &str, cpu: &str, db: Option<&str>) -> Result<Server, BoxError> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", cpu])
        .arg(&exe)
        .args(["serve", "--variant", variant, "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if let Some(db) = db {
        cmd.args(["--database-url", db]);
    }
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().ok_or("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .map_err(|_| format!("{variant} did not start"))??
        .ok_or("server exited")?;
    let addr = line
        .strip_prefix("ready ")
        .ok_or("unexpected server output")?
        .to_owned();
    Ok(Server { child, addr })
}

/// Signs in `n` clients (16 at a time) and returns their `Cookie` header values.
async fn sign_in(addr: &str, n: usize) -> Result<Vec<String>, BoxError> {
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
                let req = hyper::Request::post("/login")
                    .header("host", addr.as_str())
                    .body(Empty::<Bytes>::new())?;
                let res = tx.send_request(req).await?;
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
    let (method, path) = match workload {
        "read" => ("GET", "/read"),
        "write" => ("POST", "/write"),
        "login" => ("POST", "/login"),
        _ => ("GET", "/plain"),
    };
    let out = Command::new("taskset")
        .args(["-c", &args.cpu, "wrk", "-t1"])
        .arg(format!("-c{}", args.connections))
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg("-s")
        .arg(&args.script)
        .arg(format!("http://{addr}{path}"))
        .arg("--")
        .arg(method)
        .arg(cookies.map_or_else(|| "-".into(), |p| p.display().to_string()))
        .output()
        .await?;
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

async fn truncate_tables(db: &str) {
    if let Ok(pool) = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(db)
        .await
    {
        for stmt in [
            "TRUNCATE sessionward_sessions",
            "TRUNCATE tower_sessions.session",
        ] {
            let _ = sqlx::query(stmt).execute(&pool).await;
        }
        let _ = sqlx::query("VACUUM ANALYZE").execute(&pool).await;
        pool.close().await;
    }
}

async fn run(args: &[String]) -> Result<(), BoxError> {
    let duration = Duration::from_secs(num(args, "--duration", 10));
    let reps: usize = num(args, "--reps", 3);
    let sessions: usize = num(args, "--sessions", 10_000);
    let workloads = list(args, "--workloads", &WORKLOADS);
    let db = arg(args, "--database-url").or_else(|| std::env::var("DATABASE_URL").ok());
    let mut variants = list(args, "--variants", &VARIANTS);
    if db.is_none() {
        eprintln!("DATABASE_URL is not set: skipping the PostgreSQL variants");
        variants.retain(|v| !v.ends_with("-pg"));
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
    for workload in &workloads {
        for rep in 0..reps {
            // Interleave: each repetition starts with another variant.
            let mut order = variants.clone();
            order.rotate_left(rep % variants.len().max(1));
            for variant in &order {
                if variant.ends_with("-pg")
                    && let Some(db) = &db
                {
                    truncate_tables(db).await;
                }
                let server = start_server(variant, &server_cpu, db.as_deref()).await?;
                let cookies = if workload == "login" {
                    None
                } else {
                    let list = if variant == "bare" {
                        // The same header shape, so the baseline parses a similar request.
                        (0..sessions)
                            .map(|i| format!("__Host-id={:0>43}", i))
                            .collect()
                    } else {
                        sign_in(&server.addr, sessions).await?
                    };
                    let path = work.join(format!("{variant}.cookies"));
                    std::fs::write(&path, list.join("\n"))?;
                    Some(path)
                };
                // Warm up, then measure.
                wrk(
                    &server.addr,
                    workload,
                    cookies.as_deref(),
                    &wrk_args,
                    Duration::from_secs(2),
                )
                .await?;
                let s = wrk(
                    &server.addr,
                    workload,
                    cookies.as_deref(),
                    &wrk_args,
                    duration,
                )
                .await?;
                eprintln!(
                    "  {workload:<6} {variant:<7} rep {rep}: {:>9.0} req/s  p50 {:>6.0} us  p99 {:>6.0} us",
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
    let _ = std::fs::remove_dir_all(&work);

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
            let rival = match v.as_str() {
                "sw-mem" => med(w, "ts-mem"),
                "sw-pg" => med(w, "ts-pg"),
                _ => None,
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
