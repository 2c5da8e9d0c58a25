//! Measures MemoryStore's memory per session.
//!
//! Run with: `cargo run --release -p sessionward-memory --example footprint -- 1000000`
//!
//! Fills a store with N signed-in sessions (one user per 4 sessions, a user agent, and a
//! two-key payload) and prints the growth of resident memory per session, read from
//! `/proc/self/statm` (Linux). Set `ANON=1` for anonymous sessions (no user, no per-user
//! index) and `NOUA=1` to store no user agent.

use std::time::Duration;

use sessionward_core::{
    RoleSet, SessionData, SessionHandle, SessionRecord, SessionStore, SessionToken, Timestamp,
    UserId,
};
use sessionward_memory::{MemoryStore, SweepConfig};

const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) Chrome/130";
const PAYLOAD: &str = r#"{"cart":["book-17"],"theme":"dark"}"#;

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(Ok(1_000_000), |s| s.parse())?;
    let anonymous = std::env::var_os("ANON").is_some();
    let with_user_agent = std::env::var_os("NOUA").is_none();
    let store = MemoryStore::builder()
        .max_anonymous_sessions(n)
        .sweep(SweepConfig::disabled())
        .build();
    let data = SessionData::from_json(PAYLOAD)?;
    let roles = RoleSet::from_iter(["user"]);
    let now = Timestamp::from_unix(1_800_000_000);
    // Each record is built and inserted in turn; what it leaves behind in the store (its
    // entry, its own copy of the data text and user agent, the indexes) is what is measured.
    let before = rss_bytes().ok_or("cannot read /proc/self/statm")?;
    for i in 0..n {
        let mut r = SessionRecord::new(
            SessionToken::generate()?.key(),
            SessionHandle::generate()?,
            now,
            Duration::from_secs(1800),
            Duration::from_secs(43_200),
        );
        if anonymous {
            r.user = None;
        } else {
            r.user = Some(UserId::from(format!("user-{}", i / 4)));
        }
        r.roles = roles.clone();
        r.authenticated_at = Some(now);
        r.data = SessionData::from_json(String::from(data.as_json()))?;
        if with_user_agent {
            r.user_agent = Some(USER_AGENT.to_owned());
        }
        store.create(&r).await?;
    }
    let after = rss_bytes().ok_or("cannot read /proc/self/statm")?;
    let per = (after.saturating_sub(before)) as f64 / n as f64;
    let payload = (PAYLOAD.len() + if with_user_agent { USER_AGENT.len() } else { 0 }) as f64;
    println!("sessions: {n}");
    println!(
        "resident memory growth: {:.1} MiB",
        (after - before) as f64 / 1048576.0
    );
    println!("bytes per session: {per:.0}");
    println!("of which payload and user agent text: {payload:.0}");
    println!("overhead per session: {:.0}", per - payload);
    println!("total RSS: {:.1} MiB", after as f64 / 1048576.0);
    assert_eq!(store.len(), n);
    Ok(())
}
