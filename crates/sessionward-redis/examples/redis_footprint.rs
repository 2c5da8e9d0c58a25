//! Measures RedisStore's Redis memory per session and the time of its operations.
//!
//! Run with: `REDIS_URL=redis://127.0.0.1:6379 cargo run --release -p sessionward-redis --example redis_footprint -- 100000`
//!
//! Fills a fresh namespace with N signed-in sessions (one user per 4 sessions, a user agent
//! and a two-key payload), prints the growth of Redis' `used_memory` per session and the mean
//! latency of create, load and save (one at a time, so latency rather than throughput), then
//! deletes the namespace's keys. Set `ANON=1` for anonymous sessions.

use std::time::{Duration, Instant};

use serde_json::json;
use sessionward_core::{
    ChangeSet, Clock as _, RoleSet, SessionData, SessionHandle, SessionRecord, SessionStore,
    SessionToken, SystemClock, UserId,
};
use sessionward_redis::redis;
use sessionward_redis::{RedisStore, SweepConfig};

const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) Chrome/130";
const PAYLOAD: &str = r#"{"cart":["book-17"],"theme":"dark"}"#;

async fn used_memory(conn: &mut redis::aio::MultiplexedConnection) -> redis::RedisResult<u64> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(conn).await?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).map_or(Ok(10_000), |a| a.parse())?;
    let url = std::env::var("REDIS_URL").map_err(|_| "set REDIS_URL")?;
    let anonymous = std::env::var_os("ANON").is_some();
    let namespace = format!("footprint-{}", std::process::id());
    let store = RedisStore::builder()
        .namespace(&namespace)
        .sweep(SweepConfig::disabled())
        .connect(&url)
        .await?;
    let mut conn = redis::Client::open(url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let now = SystemClock.now();
    let data = SessionData::from_json(PAYLOAD)?;
    let before = used_memory(&mut conn).await?;
    let mut keys = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let mut r = SessionRecord::new(
            SessionToken::generate()?.key(),
            SessionHandle::generate()?,
            now,
            Duration::from_secs(30 * 60),
            Duration::from_secs(12 * 3600),
        );
        if !anonymous {
            r.user = Some(UserId::new(format!("user-{}", i / 4)));
            r.roles = RoleSet::from_iter(["user"]);
            r.authenticated_at = Some(now);
            r.user_agent = Some(USER_AGENT.to_owned());
        }
        r.data = data.clone();
        store.create(&r).await?;
        keys.push(r.key);
    }
    let create = started.elapsed();
    let after = used_memory(&mut conn).await?;
    let started = Instant::now();
    for key in &keys {
        store.load(key, now).await?;
    }
    let load = started.elapsed();
    let started = Instant::now();
    for key in &keys {
        let mut c = ChangeSet::default();
        c.data.insert("theme", json!("light"));
        store.save(key, Some(0), &c, now).await?;
    }
    let save = started.elapsed();
    let per = |d: Duration| d.as_secs_f64() * 1e6 / n.max(1) as f64;
    println!(
        "{n} {} sessions: {} bytes of Redis memory per session; mean latency create {:.0} µs, load {:.0} µs, save {:.0} µs",
        if anonymous { "anonymous" } else { "signed-in" },
        after.saturating_sub(before) / n.max(1) as u64,
        per(create),
        per(load),
        per(save),
    );
    let pattern = format!("{{{namespace}}}:*");
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        if !batch.is_empty() {
            redis::cmd("DEL").arg(&batch).exec_async(&mut conn).await?;
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    Ok(())
}
