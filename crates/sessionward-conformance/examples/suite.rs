//! Runs the conformance suite the way a store crate's test does, as a program that prints its
//! report: against the Redis at `REDIS_URL` when it is set (a fresh namespace per case, removed
//! afterwards), else against `MemoryStore`.
//!
//! ```sh
//! cargo run -p sessionward-conformance --example suite
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p sessionward-conformance --example suite
//! ```
//!
//! A store of your own follows the same shape: read the server's URL from the environment,
//! hand the suite a factory that returns an empty store each call (its own schema, key prefix
//! or database), and clean up after the run.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sessionward_conformance::{CASES, Report, run_cases};
use sessionward_core::{SessionStore, SweepConfig};
use sessionward_memory::MemoryStore;
use sessionward_redis::{RedisStore, redis};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let report = match std::env::var("REDIS_URL") {
        Ok(url) => match against_redis(&url).await {
            Ok(report) => report,
            Err(e) => {
                eprintln!("cannot run against REDIS_URL {url}: {e}");
                return ExitCode::from(2);
            }
        },
        Err(_) => {
            eprintln!("REDIS_URL is not set: running against MemoryStore");
            run_cases(CASES, || async {
                Arc::new(MemoryStore::builder().sweep(SweepConfig::disabled()).build()) as Arc<dyn SessionStore>
            })
            .await
        }
    };
    for (name, why) in &report.failed {
        println!("FAILED {name}: {why}");
    }
    println!(
        "{} of {} cases passed",
        report.total - report.failed.len(),
        report.total
    );
    if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The suite against Redis, each case in a namespace of its own; the run's keys are deleted
/// at the end.
async fn against_redis(url: &str) -> Result<Report, redis::RedisError> {
    let client = redis::Client::open(url)?;
    let manager = redis::aio::ConnectionManager::new(client).await?;
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let run = format!("swconf-{}-{}", since_epoch.as_millis(), std::process::id());
    let next = AtomicUsize::new(0);
    let report = run_cases(CASES, || {
        let store = RedisStore::builder()
            .namespace(format!("{run}-{}", next.fetch_add(1, Ordering::Relaxed)))
            .sweep(SweepConfig::disabled())
            .build_with(manager.clone())
            .expect("the namespace is valid");
        async move { Arc::new(store) as Arc<dyn SessionStore> }
    })
    .await;
    // Every key of a store starts with `{namespace}:`. (KEYS is fine on a test server; a
    // shared one would want SCAN.)
    let mut conn = manager;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{{{run}-*"))
        .query_async(&mut conn)
        .await?;
    if !keys.is_empty() {
        redis::cmd("DEL")
            .arg(&keys)
            .query_async::<()>(&mut conn)
            .await?;
    }
    Ok(report)
}
