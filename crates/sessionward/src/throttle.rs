//! [`GuessThrottle`]: 429 for a client that keeps presenting malformed or unknown session IDs
//! (SEC-34).

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::header::RETRY_AFTER;
use http::{HeaderValue, Response, StatusCode};
use sessionward_core::{SessionKey, Timestamp};

use crate::bounded::BoundedMap;
use crate::client::ClientAddr;
use crate::config::ConfigError;

const SHARDS: usize = 16;

/// The body of the 429.
pub(crate) const TOO_MANY: &str = r#"{"error":"too_many_session_guesses"}"#;

/// An optional limiter of session-ID guessing, keyed by [`ClientAddr`]. Off unless
/// [`SessionConfigBuilder::guess_throttle`](crate::SessionConfigBuilder::guess_throttle) sets
/// it.
///
/// What it does, exactly:
///
/// - It counts, per client, the requests that presented a malformed session ID (wrong length,
///   alphabet or padding) or a well-formed one that no store knows (unknown, expired, ended).
///   IPv6 clients are counted per /64 network (what one subscriber usually gets), IPv4 clients
///   per address.
/// - When a client reaches [`threshold`](Self::threshold) of them within
///   [`window`](Self::window) (a fixed window that starts with the client's first failure),
///   it is blocked for [`block_for`](Self::block_for): its requests that present a session ID
///   (cookie or bearer, well-formed or not) get `429 Too Many Requests` with `Retry-After`
///   (the seconds left) before any store access. Requests that present no ID are never
///   refused, so a blocked client can still load public pages and sign in.
/// - It never refuses a session it has seen valid: every session this layer loaded as live or
///   issued (sign-in, new anonymous session) is remembered, and a blocked client presenting
///   one of those is served as usual. So a user behind the same address as a guesser (NAT,
///   a shared proxy) keeps working. The limit of this guarantee: a valid session this
///   process has not seen yet (issued by another app server, or before a restart, or
///   forgotten after [`capacity`](Self::capacity) newer ones) gets the 429 like a guess until
///   the block ends. Likewise a browser at a blocked address that still sends a dead cookie
///   gets the 429 (sign-in included) until the block ends: the 429 never clears a cookie,
///   since the ID it refused might be a valid session.
/// - Its memory is fixed: at most [`capacity`](Self::capacity) clients and as many
///   remembered sessions (only the first 8 bytes of each key hash), the oldest forgotten
///   first. A client forgotten early starts counting again from zero: an attacker with many
///   addresses gets `threshold` guesses per address and block, which the 256-bit IDs make
///   hopeless anyway; the throttle's job is to slow guessing down and to make it visible.
/// - Time comes from the configuration's clock. A request with no known client address (no
///   `ConnectInfo`, no `SocketAddr` extension) is not counted.
///
/// Events: `session.guessing` (warn) when a client is blocked, `session.throttled` (info) for
/// each refused request, both with `client` and rate limited.
///
/// Clones share their table; so do layers built from one configuration.
///
/// ```
/// use std::time::Duration;
/// use sessionward::{GuessThrottle, SessionConfig};
///
/// let throttle = GuessThrottle::new()
///     .threshold(20)
///     .window(Duration::from_secs(60))
///     .block_for(Duration::from_secs(600));
/// let config = SessionConfig::builder().guess_throttle(throttle.clone()).build();
/// assert!(config.is_ok());
/// assert_eq!(throttle.tracked_clients(), 0);
/// ```
#[derive(Clone)]
pub struct GuessThrottle {
    threshold: u32,
    window: Duration,
    block: Duration,
    capacity: usize,
    state: Arc<State>,
}

struct Entry {
    window_start: Timestamp,
    failures: u32,
    blocked_until: Option<Timestamp>,
}

struct State {
    clients: [Mutex<BoundedMap<u128, Entry>>; SHARDS],
    valid: [Mutex<BoundedMap<u64, ()>>; SHARDS],
}

impl State {
    fn new(capacity: usize) -> Self {
        let per_shard = (capacity / SHARDS).max(1);
        Self {
            clients: std::array::from_fn(|_| Mutex::new(BoundedMap::new(per_shard))),
            valid: std::array::from_fn(|_| Mutex::new(BoundedMap::new(per_shard))),
        }
    }
}

impl fmt::Debug for GuessThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuessThrottle")
            .field("threshold", &self.threshold)
            .field("window", &self.window)
            .field("block_for", &self.block)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Default for GuessThrottle {
    fn default() -> Self {
        Self::new()
    }
}

/// The key a client is counted under: an IPv4 address, or an IPv6 /64.
fn client_key(c: ClientAddr) -> u128 {
    match c.ip() {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6) & !u128::from(u64::MAX),
    }
}

fn client_shard(key: u128) -> usize {
    // Spread the network part over the shards; the map itself hashes with a random key.
    #[allow(clippy::cast_possible_truncation)]
    let folded = (key >> 64) as u64 ^ key as u64;
    (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as usize
}

fn key_shard(prefix: u64) -> usize {
    #[allow(clippy::cast_possible_truncation)]
    let shard = (prefix >> 60) as usize;
    shard
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn plus(t: Timestamp, d: Duration) -> Timestamp {
    Timestamp::from_unix(
        t.unix()
            .saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
    )
}

impl GuessThrottle {
    /// A throttle with the defaults: 50 failures in 60 s block a client for 5 minutes; 10,000
    /// clients and 10,000 sessions remembered (about 1 MiB at most).
    #[must_use]
    pub fn new() -> Self {
        let capacity = 10_000;
        Self {
            threshold: 50,
            window: Duration::from_secs(60),
            block: Duration::from_secs(300),
            capacity,
            state: Arc::new(State::new(capacity)),
        }
    }

    /// Failures (malformed or unknown IDs) within a window that block a client. Default: 50.
    /// At least 1.
    #[must_use]
    pub fn threshold(mut self, failures: u32) -> Self {
        self.threshold = failures;
        self
    }

    /// The counting window, from a client's first failure. Default: 60 s. At least 1 s.
    #[must_use]
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// How long a client stays blocked once it reaches the threshold. Default: 5 minutes. At
    /// least 1 s.
    #[must_use]
    pub fn block_for(mut self, block: Duration) -> Self {
        self.block = block;
        self
    }

    /// The most clients tracked, and the most valid sessions remembered; past it the oldest
    /// are forgotten. Default: 10,000. At least 16. Starts a new, empty table.
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self.state = Arc::new(State::new(capacity));
        self
    }

    /// How many clients the table tracks now (at most [`capacity`](Self::capacity)).
    #[must_use]
    pub fn tracked_clients(&self) -> usize {
        self.state.clients.iter().map(|s| lock(s).len()).sum()
    }

    /// Whether `client` is blocked now.
    #[must_use]
    pub fn is_blocked(&self, client: IpAddr, now: Timestamp) -> bool {
        self.blocked_for(ClientAddr::new(client), now).is_some()
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |what| Err(ConfigError::InvalidGuessThrottle(what));
        if self.threshold == 0 {
            return bad("the threshold must be at least 1");
        }
        if self.window.as_secs() == 0 || self.block.as_secs() == 0 {
            return bad("the window and the block must be at least 1 second");
        }
        if self.window > crate::config::MAX_LIFETIME || self.block > crate::config::MAX_LIFETIME {
            return bad("the window and the block must be at most 400 days");
        }
        if self.capacity < SHARDS {
            return bad("the capacity must be at least 16");
        }
        Ok(())
    }

    /// Seconds the client stays blocked, if it is.
    fn blocked_for(&self, client: ClientAddr, now: Timestamp) -> Option<u64> {
        let key = client_key(client);
        let mut shard = lock(&self.state.clients[client_shard(key)]);
        let entry = shard.get_mut(&key)?;
        let until = entry.blocked_until?;
        if now >= until {
            entry.blocked_until = None;
            return None;
        }
        Some(u64::try_from(until.unix() - now.unix()).unwrap_or(1).max(1))
    }

    /// Whether the session `key` was seen valid.
    fn seen_valid(&self, key: &SessionKey) -> bool {
        let prefix = key.prefix_u64();
        lock(&self.state.valid[key_shard(prefix)])
            .get_mut(&prefix)
            .is_some()
    }

    /// The seconds of `Retry-After` if this request, from `client` presenting `key` (the
    /// well-formed ID it presented, if one), must be refused.
    pub(crate) fn refuses(
        &self,
        client: ClientAddr,
        key: impl FnOnce() -> Option<SessionKey>,
        now: Timestamp,
    ) -> Option<u64> {
        let secs = self.blocked_for(client, now)?;
        match key() {
            Some(k) if self.seen_valid(&k) => None,
            _ => Some(secs),
        }
    }

    /// Counts a malformed or unknown ID from `client`; `true` when this blocked it.
    pub(crate) fn failure(&self, client: ClientAddr, now: Timestamp) -> bool {
        let key = client_key(client);
        let mut shard = lock(&self.state.clients[client_shard(key)]);
        let entry = shard.entry_or_insert_with(key, || Entry {
            window_start: now,
            failures: 0,
            blocked_until: None,
        });
        if now >= plus(entry.window_start, self.window) || now < entry.window_start {
            entry.window_start = now;
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        if entry.failures < self.threshold {
            return false;
        }
        entry.failures = 0;
        entry.window_start = now;
        let newly = entry.blocked_until.is_none_or(|u| now >= u);
        entry.blocked_until = Some(plus(now, self.block));
        newly
    }

    /// Remembers the session `key` as valid (loaded live, or issued).
    pub(crate) fn valid(&self, key: &SessionKey) {
        let prefix = key.prefix_u64();
        lock(&self.state.valid[key_shard(prefix)]).entry_or_insert_with(prefix, || ());
    }

    /// The failure threshold (for the event).
    pub(crate) fn failures_to_block(&self) -> u32 {
        self.threshold
    }
}

/// Counts a malformed or unknown ID presented by the request of `cx`, if the throttle is on
/// and the client known; logs `session.guessing` when that blocks the client.
pub(crate) fn count_failure(
    throttle: Option<&GuessThrottle>,
    cx: crate::events::Cx<'_>,
    now: Timestamp,
) {
    if let (Some(t), Some(client)) = (throttle, cx.client)
        && t.failure(client, now)
    {
        crate::events::guessing(cx, t.failures_to_block());
    }
}

/// The 429 of a blocked client: the usual JSON error body, `Retry-After`, never cached.
pub(crate) fn too_many<B: Default + 'static>(retry_after: u64) -> Response<B> {
    let mut res = crate::error::json_response(StatusCode::TOO_MANY_REQUESTS, TOO_MANY);
    res.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> ClientAddr {
        ClientAddr::new(s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])))
    }

    #[test]
    fn blocks_at_the_threshold_within_the_window_then_forgives() {
        let t = GuessThrottle::new()
            .threshold(3)
            .window(Duration::from_secs(10))
            .block_for(Duration::from_secs(30));
        let c = addr("192.0.2.1");
        let at = Timestamp::from_unix;
        assert!(!t.failure(c, at(0)));
        assert!(!t.failure(c, at(9)));
        // The window ended: counting starts again.
        assert!(!t.failure(c, at(10)));
        assert!(!t.failure(c, at(11)));
        assert!(t.refuses(c, || None, at(11)).is_none());
        assert!(t.failure(c, at(12)));
        assert_eq!(t.refuses(c, || None, at(12)), Some(30));
        assert_eq!(t.refuses(c, || None, at(41)), Some(1));
        assert!(t.refuses(c, || None, at(42)).is_none());
        // Others are not affected.
        assert!(t.refuses(addr("192.0.2.2"), || None, at(12)).is_none());
    }

    #[test]
    fn ipv6_counts_per_64() {
        let t = GuessThrottle::new().threshold(2);
        let now = Timestamp::from_unix(0);
        t.failure(addr("2001:db8:1:2::1"), now);
        assert!(t.failure(addr("2001:db8:1:2:ffff::9"), now));
        assert!(t.is_blocked("2001:db8:1:2::77".parse().expect("ip"), now));
        assert!(!t.is_blocked("2001:db8:1:3::1".parse().expect("ip"), now));
    }

    #[test]
    fn a_session_seen_valid_is_never_refused() {
        let t = GuessThrottle::new().threshold(1);
        let now = Timestamp::from_unix(0);
        let c = addr("192.0.2.1");
        let good = SessionKey::from_bytes([7; 32]);
        let guess = SessionKey::from_bytes([8; 32]);
        t.valid(&good);
        t.failure(c, now);
        assert!(t.refuses(c, || Some(good), now).is_none());
        assert!(t.refuses(c, || Some(guess), now).is_some());
    }

    #[test]
    fn validation() {
        assert!(GuessThrottle::new().validate().is_ok());
        assert!(GuessThrottle::new().threshold(0).validate().is_err());
        assert!(
            GuessThrottle::new()
                .window(Duration::ZERO)
                .validate()
                .is_err()
        );
        assert!(
            GuessThrottle::new()
                .block_for(Duration::from_millis(10))
                .validate()
                .is_err()
        );
        assert!(GuessThrottle::new().capacity(3).validate().is_err());
    }
}
