//! Sign-in throttling: exponential back-off on failed sign-ins, per client address, per
//! account, and per (account, client address) pair, in bounded memory.
//!
//! Each key counts recent failures. Past its free allowance, every further failure blocks the
//! key for a delay that doubles with each failure (1 s, 2 s, 4 s, ... up to `max_delay`); a
//! blocked attempt answers 429 with `Retry-After` and costs no password hash. A key's failures
//! are forgotten after `max_delay` without one.
//!
//! **Why an attacker cannot lock the real user out from elsewhere.** The account's count only
//! blocks client addresses that have themselves failed for that account. A client address with
//! no recent failure for the account (the real user on their own device) still gets its
//! password checked while the account is under attack, and a correct password signs in. What
//! an attacker spread over many addresses gains is one guess per address per account before
//! the pair and address limits apply to it. A successful sign-in clears only its own pair: it
//! does not reset the account's count for the attacker.
//!
//! Memory: each of the three maps holds at most `capacity` keys; a full map drops expired
//! entries and then the entry whose last failure is the oldest. IPv6 addresses are keyed by
//! their /64, which one host usually controls whole.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The throttle's parameters.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Policy {
    /// Failures a client address may make (over all accounts) before back-off.
    pub(crate) free_per_client: u32,
    /// Failures an account may take (from all addresses) before back-off.
    pub(crate) free_per_account: u32,
    /// Failures a client address may make for one account before back-off.
    pub(crate) free_per_pair: u32,
    /// The first delay past the allowance.
    pub(crate) base_delay: Duration,
    /// The longest delay, and how long failures are remembered.
    pub(crate) max_delay: Duration,
    /// Keys per map.
    pub(crate) capacity: usize,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    blocked_until: Instant,
}

/// A bounded map of back-off entries.
#[derive(Debug)]
struct Backoff<K> {
    entries: HashMap<K, Entry>,
    free: u32,
}

impl<K: Hash + Eq + Clone> Backoff<K> {
    fn new(free: u32) -> Self {
        Self {
            entries: HashMap::new(),
            free,
        }
    }

    fn live(&self, key: &K, now: Instant, p: &Policy) -> Option<&Entry> {
        self.entries
            .get(key)
            .filter(|e| now.saturating_duration_since(e.last_failure) < p.max_delay)
    }

    /// How long `key` is still blocked.
    fn blocked_for(&self, key: &K, now: Instant, p: &Policy) -> Option<Duration> {
        let e = self.live(key, now, p)?;
        (e.blocked_until > now).then(|| e.blocked_until - now)
    }

    fn has_failures(&self, key: &K, now: Instant, p: &Policy) -> bool {
        self.live(key, now, p).is_some()
    }

    fn fail(&mut self, key: &K, now: Instant, p: &Policy) {
        if !self.entries.contains_key(key) && self.entries.len() >= p.capacity {
            self.make_room(now, p);
        }
        let e = self.entries.entry(key.clone()).or_insert(Entry {
            failures: 0,
            last_failure: now,
            blocked_until: now,
        });
        if now.saturating_duration_since(e.last_failure) >= p.max_delay {
            e.failures = 0;
        }
        e.failures = e.failures.saturating_add(1);
        e.last_failure = now;
        if e.failures > self.free {
            let doublings = (e.failures - self.free - 1).min(30);
            let delay = p.base_delay.saturating_mul(1 << doublings).min(p.max_delay);
            e.blocked_until = now + delay;
        }
    }

    fn clear(&mut self, key: &K) {
        self.entries.remove(key);
    }

    fn make_room(&mut self, now: Instant, p: &Policy) {
        self.entries
            .retain(|_, e| now.saturating_duration_since(e.last_failure) < p.max_delay);
        if self.entries.len() >= p.capacity {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_failure)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.entries.remove(&k);
            }
        }
    }
}

/// A client address as the throttle keys it: IPv4 whole, IPv6 by its /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::V6(s.into())
            }
        },
    }
}

struct Maps {
    clients: Backoff<IpAddr>,
    accounts: Backoff<String>,
    pairs: Backoff<(String, IpAddr)>,
}

/// The sign-in throttle, shared by all requests.
#[derive(Clone)]
pub(crate) struct Throttle {
    policy: Policy,
    maps: Arc<Mutex<Maps>>,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Throttle {
    /// A throttle with `policy`.
    pub(crate) fn new(policy: Policy) -> Self {
        Self {
            policy,
            maps: Arc::new(Mutex::new(Maps {
                clients: Backoff::new(policy.free_per_client),
                accounts: Backoff::new(policy.free_per_account),
                pairs: Backoff::new(policy.free_per_pair),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Maps> {
        self.maps.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `Some(wait)` if a sign-in to `account` from `client` must wait before being checked.
    pub(crate) fn check(&self, account: &str, client: IpAddr, now: Instant) -> Option<Duration> {
        let p = &self.policy;
        let client = client_key(client);
        let pair = (account.to_owned(), client);
        let m = self.lock();
        let by_account = if m.pairs.has_failures(&pair, now, p) {
            m.accounts.blocked_for(&account.to_owned(), now, p)
        } else {
            None
        };
        [
            m.clients.blocked_for(&client, now, p),
            m.pairs.blocked_for(&pair, now, p),
            by_account,
        ]
        .into_iter()
        .flatten()
        .max()
    }

    /// Records a failed sign-in.
    pub(crate) fn failed(&self, account: &str, client: IpAddr, now: Instant) {
        let p = &self.policy;
        let client = client_key(client);
        let mut m = self.lock();
        m.clients.fail(&client, now, p);
        m.accounts.fail(&account.to_owned(), now, p);
        m.pairs.fail(&(account.to_owned(), client), now, p);
    }

    /// Records a successful sign-in: forgets this pair's failures (not the account's).
    pub(crate) fn succeeded(&self, account: &str, client: IpAddr) {
        let client = client_key(client);
        self.lock().pairs.clear(&(account.to_owned(), client));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            free_per_client: 20,
            free_per_account: 10,
            free_per_pair: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(900),
            capacity: 4,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn failures_past_the_allowance_back_off_exponentially() {
        let t = Throttle::new(policy());
        let now = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..5 {
            assert_eq!(t.check("alice", a, now), None);
            t.failed("alice", a, now);
        }
        assert_eq!(t.check("alice", a, now), None, "five failures are free");
        t.failed("alice", a, now);
        assert_eq!(t.check("alice", a, now), Some(Duration::from_secs(1)));
        t.failed("alice", a, now);
        assert_eq!(t.check("alice", a, now), Some(Duration::from_secs(2)));
        t.failed("alice", a, now);
        assert_eq!(t.check("alice", a, now), Some(Duration::from_secs(4)));
        let later = now + Duration::from_secs(5);
        assert_eq!(t.check("alice", a, later), None, "the delay runs out");
        let much_later = now + Duration::from_secs(901);
        t.failed("alice", a, much_later);
        assert_eq!(
            t.check("alice", a, much_later),
            None,
            "failures are forgotten after the longest delay"
        );
    }

    #[test]
    fn the_account_limit_does_not_block_an_address_that_has_not_failed() {
        let t = Throttle::new(Policy {
            capacity: 100,
            ..policy()
        });
        let now = Instant::now();
        // Failures from many addresses: the account's count is far past its allowance.
        for i in 0..40u8 {
            t.failed("alice", IpAddr::from([198, 51, 100, i]), now);
        }
        assert!(t.check("alice", ip("198.51.100.1"), now).is_some());
        assert_eq!(t.check("alice", ip("203.0.113.9"), now), None);
        t.succeeded("alice", ip("203.0.113.9"));
        assert!(
            t.check("alice", ip("198.51.100.1"), now).is_some(),
            "a success elsewhere does not reset the account for the attacker"
        );
    }

    #[test]
    fn a_client_address_is_limited_over_all_accounts() {
        let t = Throttle::new(Policy {
            capacity: 100,
            ..policy()
        });
        let now = Instant::now();
        let a = ip("192.0.2.7");
        for i in 0..21 {
            t.failed(&format!("user{i}"), a, now);
        }
        assert!(t.check("someone-else", a, now).is_some());
        assert_eq!(t.check("someone-else", ip("192.0.2.8"), now), None);
    }

    #[test]
    fn ipv6_addresses_share_their_64() {
        let t = Throttle::new(policy());
        let now = Instant::now();
        for i in 1..=6u16 {
            t.failed("bob", IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, i]), now);
        }
        assert!(t.check("bob", ip("2001:db8:0:1::ffff"), now).is_some());
        assert_eq!(t.check("bob", ip("2001:db8:0:2::1"), now), None);
    }

    #[test]
    fn memory_is_bounded() {
        let t = Throttle::new(policy());
        let now = Instant::now();
        for i in 0..100u8 {
            t.failed(&format!("u{i}"), IpAddr::from([10, 0, 0, i]), now);
        }
        let m = t.lock();
        assert!(m.clients.entries.len() <= 4);
        assert!(m.accounts.entries.len() <= 4);
        assert!(m.pairs.entries.len() <= 4);
    }
}
