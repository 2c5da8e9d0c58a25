//! The `sweep` workload: does the memory store's background sweep of 1,000,000 expired
//! sessions stall requests?
//!
//! The server (`serve --variant sw-mem --expiring N`) fills its `MemoryStore` with N signed-in
//! sessions (one user each, a role list and one data key, as the `memory` command builds
//! them) that expire 10 s after start, and runs the store's own background sweeper every
//! 10 ms on a [`GateClock`]: a clock that stands still at the start time, so the sweeper finds
//! nothing due, until the load client opens it (`POST /bench/sweep`); from then on the sweeper
//! sees every filled session expired and deletes them all, in its batches, while the signed-in
//! sessions of the run (30-minute idle timeout) stay live. `GET /bench/sweep` answers the
//! number of records held. Both routes are outside the session layer.
//!
//! The load client (`sweep-load`, pinned to the other core like `wrk`) keeps `--connections`
//! connections busy with signed-in `GET /read` requests, each with the next cookie, and times
//! every request. It measures `--baseline` seconds with no sweep running (the first second is
//! warm-up), opens the gate, polls the record count every 20 ms until the N sessions are gone
//! (the sweep's window), runs 300 ms more, and prints one JSON line: p50 and p99 of the
//! requests sent in the baseline window and of those sent during the sweep, and the ratio.
//!
//! tower-sessions' `MemoryStore` has no sweep (it drops an expired record only when that
//! session is loaded), so the workload runs on sessionward only.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use sessionward_core::{
    Clock, RoleSet, SessionData, SessionHandle, SessionRecord, SessionStore as _, SessionToken,
    SweepConfig, SystemClock, Timestamp, UserId,
};
use sessionward_memory::MemoryStore;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::{BoxError, USER_AGENT};

/// The sweeper's clock in the `sweep` server: stands still at `start` until opened, then reads
/// the system clock a minute ahead (past the filled sessions' expiry, well before the live
/// ones').
#[derive(Debug)]
pub(crate) struct GateClock {
    start: Timestamp,
    open: AtomicBool,
}

impl Clock for GateClock {
    fn now(&self) -> Timestamp {
        if self.open.load(Ordering::SeqCst) {
            SystemClock.now() + Duration::from_secs(60)
        } else {
            self.start
        }
    }
}

/// The `sweep` server: sessionward's bare routes on a `MemoryStore` holding `count` sessions
/// that the sweeper deletes once the gate opens; `batch` overrides the sweeper's batch size.
pub(crate) async fn server(count: usize, batch: Option<usize>) -> Result<Router, BoxError> {
    let start = SystemClock.now();
    let gate = Arc::new(GateClock {
        start,
        open: AtomicBool::new(false),
    });
    let mut sweep = SweepConfig::every(Duration::from_millis(10)).clock(gate.clone());
    if let Some(batch) = batch {
        sweep = sweep.batch(batch);
    }
    let store = MemoryStore::builder().sweep(sweep).build();
    let roles = RoleSet::from_iter(["user"]);
    let lifetime = Duration::from_secs(10);
    for i in 0..count {
        let mut r = SessionRecord::new(
            SessionToken::generate()?.key(),
            SessionHandle::generate()?,
            start,
            lifetime,
            lifetime,
        );
        r.user = Some(UserId::from(format!("fill-{i}")));
        r.roles = roles.clone();
        r.authenticated_at = Some(start);
        r.data = SessionData::from_json(format!(r#"{{"n":{i}}}"#))?;
        store.create(&r).await?;
    }
    let app =
        super::servers::sessionward_shaped(Arc::new(store.clone()), super::servers::Shape::Bare)?;
    let control = Router::new().route(
        "/bench/sweep",
        get(move || {
            let held = store.len();
            async move { held.to_string() }
        })
        .post(move || {
            gate.open.store(true, Ordering::SeqCst);
            async { StatusCode::NO_CONTENT }
        }),
    );
    Ok(app.merge(control))
}

/// One timed request: when it was sent (since the client started) and how long it took.
#[derive(Clone, Copy)]
struct Timed {
    sent_us: u64,
    took_us: u64,
    ok: bool,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// An HTTP/1 connection to `addr`.
async fn connect(
    addr: &str,
) -> Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>, BoxError> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (tx, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(tx)
}

/// Sends one request and reads the whole answer: the status and the body.
async fn send(
    tx: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    req: hyper::Request<Empty<Bytes>>,
) -> Result<(StatusCode, Bytes), BoxError> {
    tx.ready().await?;
    let res = tx.send_request(req).await?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// The records the server holds (`GET /bench/sweep`).
async fn held(
    tx: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    addr: &str,
) -> Result<usize, BoxError> {
    let req = hyper::Request::get("/bench/sweep")
        .header("host", addr)
        .body(Empty::new())?;
    let (_, body) = send(tx, req).await?;
    Ok(std::str::from_utf8(&body)?.trim().parse()?)
}

/// The `p`th percentile (nearest rank) of `v`, sorted in place.
fn percentile(v: &mut [u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// The `sweep-load` subcommand (see the module docs); prints one JSON line.
pub(crate) fn load(args: &[String]) -> Result<(), BoxError> {
    let addr = super::arg(args, "--addr").ok_or("--addr")?;
    let cookies = super::arg(args, "--cookies").ok_or("--cookies")?;
    let connections: usize = super::num(args, "--connections", 32);
    let baseline = Duration::from_secs(super::num(args, "--baseline", 6_u64).max(2));
    let expiring: usize = super::num(args, "--expiring", 1_000_000);
    let cookies: Arc<Vec<String>> = Arc::new(
        std::fs::read_to_string(cookies)?
            .lines()
            .map(str::to_owned)
            .collect(),
    );
    if cookies.is_empty() {
        return Err("no cookies".into());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let origin = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicUsize::new(0));
        let mut workers = Vec::new();
        for _ in 0..connections {
            let (addr, cookies, stop, next) =
                (addr.clone(), cookies.clone(), stop.clone(), next.clone());
            workers.push(tokio::spawn(async move {
                let mut tx = connect(&addr).await?;
                let mut out = Vec::with_capacity(1 << 16);
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed) % cookies.len();
                    let req = hyper::Request::get("/read")
                        .header("host", addr.as_str())
                        .header("cookie", cookies[i].as_str())
                        .header("user-agent", USER_AGENT)
                        .header("sec-fetch-site", "same-origin")
                        .body(Empty::<Bytes>::new())?;
                    let sent = Instant::now();
                    let (status, _) = send(&mut tx, req).await?;
                    out.push(Timed {
                        sent_us: micros(sent - origin),
                        took_us: micros(sent.elapsed()),
                        ok: status.is_success(),
                    });
                }
                Ok::<_, BoxError>(out)
            }));
        }
        let mut control = connect(&addr).await?;
        tokio::time::sleep(baseline).await;
        let before = held(&mut control, &addr).await?;
        let target = before.saturating_sub(expiring);
        let opened = Instant::now();
        let req = hyper::Request::post("/bench/sweep")
            .header("host", addr.as_str())
            .body(Empty::new())?;
        let (status, _) = send(&mut control, req).await?;
        if !status.is_success() {
            return Err(format!("opening the sweep: {status}").into());
        }
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if held(&mut control, &addr).await? <= target {
                break;
            }
            if opened.elapsed() > Duration::from_secs(120) {
                return Err("the sweep did not finish in 120 s".into());
            }
        }
        let closed = Instant::now();
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for w in workers {
            all.extend(w.await??);
        }
        let (warm, open_us, close_us) = (
            1_000_000,
            micros(opened - origin),
            micros(closed - origin),
        );
        let window = |from: u64, to: u64| -> (Vec<u64>, usize) {
            let inside: Vec<&Timed> = all
                .iter()
                .filter(|t| t.sent_us >= from && t.sent_us < to)
                .collect();
            let errors = inside.iter().filter(|t| !t.ok).count();
            (inside.iter().map(|t| t.took_us).collect(), errors)
        };
        let (mut quiet, quiet_errors) = window(warm, open_us);
        let (mut swept, swept_errors) = window(open_us, close_us);
        let quiet_secs = (open_us - warm) as f64 / 1e6;
        let sweep_secs = (close_us - open_us) as f64 / 1e6;
        let (q50, q99) = (percentile(&mut quiet, 50.0), percentile(&mut quiet, 99.0));
        let (s50, s99) = (percentile(&mut swept, 50.0), percentile(&mut swept, 99.0));
        println!(
            r#"{{"held_before":{before},"quiet_requests":{},"quiet_rps":{:.0},"quiet_p50_us":{q50},"quiet_p99_us":{q99},"sweep_seconds":{sweep_secs:.3},"sweep_requests":{},"sweep_rps":{:.0},"sweep_p50_us":{s50},"sweep_p99_us":{s99},"errors":{}}}"#,
            quiet.len(),
            quiet.len() as f64 / quiet_secs,
            swept.len(),
            swept.len() as f64 / sweep_secs.max(1e-6),
            quiet_errors + swept_errors,
        );
        Ok(())
    })
}

/// One repetition of the workload from `run`: starts the server on `server_cpu`, signs in
/// `sessions` clients, runs `sweep-load` on `load_cpu`; returns its JSON line.
pub(crate) async fn repetition(
    work: &Path,
    server_cpu: &str,
    load_cpu: &str,
    sessions: usize,
    connections: usize,
    expiring: usize,
    batch: Option<usize>,
) -> Result<serde_json::Value, BoxError> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", server_cpu])
        .arg(&exe)
        .args(["serve", "--variant", "sw-mem", "--port", "0"])
        .args(["--expiring", &expiring.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if let Some(batch) = batch {
        cmd.args(["--sweep-batch", &batch.to_string()]);
    }
    let mut server = cmd.spawn()?;
    let stdout = server.stdout.take().ok_or("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
        .await
        .map_err(|_| "the sweep server did not start")??
        .ok_or("the sweep server exited")?;
    let addr = line
        .strip_prefix("ready ")
        .ok_or("unexpected server output")?
        .to_owned();
    let cookies = super::sign_in(&addr, "/login", sessions).await?;
    let path = work.join("sweep.cookies");
    std::fs::write(&path, cookies.join("\n"))?;
    let out = Command::new("taskset")
        .args(["-c", load_cpu])
        .arg(&exe)
        .args(["sweep-load", "--addr", &addr])
        .arg("--cookies")
        .arg(&path)
        .args(["--connections", &connections.to_string()])
        .args(["--expiring", &expiring.to_string()])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), out)
        .await
        .map_err(|_| "sweep-load did not finish")??;
    let _ = server.kill().await;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with('{')).ok_or_else(|| {
        format!(
            "sweep-load printed no result: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    Ok(serde_json::from_str(line)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt as _;

    async fn call(app: &Router, method: &str) -> (StatusCode, String) {
        let req = hyper::Request::builder()
            .method(method)
            .uri("/bench/sweep")
            .body(Body::empty())
            .expect("request");
        let res = app.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let body = res.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8(body.to_vec()).expect("utf-8"))
    }

    #[tokio::test]
    async fn the_server_holds_the_filled_sessions_until_its_clock_opens() {
        let app = server(100, Some(10)).await.expect("server");
        assert_eq!(call(&app, "GET").await, (StatusCode::OK, "100".to_owned()));
        assert_eq!(call(&app, "POST").await.0, StatusCode::NO_CONTENT);
    }

    #[test]
    fn the_gate_clock_stands_still_until_opened_then_runs_past_the_fill() {
        let start = Timestamp::from_unix(1_000);
        let gate = GateClock {
            start,
            open: AtomicBool::new(false),
        };
        assert_eq!(gate.now(), start);
        assert_eq!(gate.now(), start);
        gate.open.store(true, Ordering::SeqCst);
        assert!(gate.now() >= SystemClock.now() + Duration::from_secs(59));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut v: Vec<u64> = (1..=200).rev().collect();
        assert_eq!(percentile(&mut v, 50.0), 100);
        assert_eq!(percentile(&mut v, 99.0), 198);
        assert_eq!(percentile(&mut [], 99.0), 0);
        assert_eq!(percentile(&mut [7], 99.0), 7);
    }
}
