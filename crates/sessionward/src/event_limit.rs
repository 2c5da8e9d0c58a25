//! Rate limits for the events a client can trigger at will, and the record of which sessions
//! already reported a user agent change, so that no client can make the layer write a log
//! line per request.
//!
//! Each limited kind has a token bucket (one per layer configuration, fixed memory, on the
//! injected clock): up to `per_minute` lines at once, refilled at `per_minute` a minute. What
//! the bucket refuses is counted, and the next line of that kind that goes out is preceded
//! by one `events.suppressed` line saying how many were dropped.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use sessionward_core::{SessionKey, SharedClock, SystemClock, Timestamp};

use crate::bounded::BoundedMap;

/// The rate-limited kinds of event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Malformed,
    Ambiguous,
    Unknown,
    Anomaly,
    StoreError,
    Created,
    Denied,
    CrossOriginBlocked,
    Throttled,
    Guessing,
}

const KINDS: usize = 10;

impl Kind {
    fn index(self) -> usize {
        self as usize
    }

    /// The `event` field of the kind.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Malformed => "session.malformed",
            Self::Ambiguous => "session.ambiguous",
            Self::Unknown => "session.unknown",
            Self::Anomaly => "session.anomaly",
            Self::StoreError => "session.store_error",
            Self::Created => "session.created",
            Self::Denied => "session.denied",
            Self::CrossOriginBlocked => "request.cross_origin_blocked",
            Self::Throttled => "session.throttled",
            Self::Guessing => "session.guessing",
        }
    }
}

/// The default budget of each limited kind: lines a minute.
pub(crate) const DEFAULT_PER_MINUTE: u32 = 60;

/// Sessions remembered as having reported a user agent change.
const ANOMALY_MEMORY: usize = 10_000;

#[derive(Debug, Default, Clone, Copy)]
struct Bucket {
    /// Tokens times 60 (a token is one line; a second refills `per_minute` of these).
    tokens: u64,
    last: Option<Timestamp>,
    suppressed: u64,
}

/// The per-kind buckets and the anomaly record of one layer configuration.
pub(crate) struct EventLimiter {
    per_minute: Option<u32>,
    buckets: [Mutex<Bucket>; KINDS],
    anomalies: Mutex<BoundedMap<u64, ()>>,
    clock: SharedClock,
}

impl fmt::Debug for EventLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLimiter")
            .field("per_minute", &self.per_minute)
            .finish_non_exhaustive()
    }
}

impl Default for EventLimiter {
    fn default() -> Self {
        Self::new(Some(DEFAULT_PER_MINUTE), Arc::new(SystemClock))
    }
}

impl EventLimiter {
    /// `per_minute: None` lets every line through.
    pub(crate) fn new(per_minute: Option<u32>, clock: SharedClock) -> Self {
        Self {
            per_minute,
            buckets: std::array::from_fn(|_| Mutex::new(Bucket::default())),
            anomalies: Mutex::new(BoundedMap::new(ANOMALY_MEMORY)),
            clock,
        }
    }

    /// Whether a line of `kind` may go out now. If lines of this kind were dropped since the
    /// last one, first logs how many.
    pub(crate) fn allow(&self, kind: Kind) -> bool {
        let Some(per_minute) = self.per_minute else {
            return true;
        };
        let rate = u64::from(per_minute);
        let capacity = rate * 60;
        let now = self.clock.now();
        let suppressed = {
            let mut b = self.buckets[kind.index()]
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let elapsed = match b.last {
                None => capacity,
                Some(last) => {
                    let secs = u64::try_from(now.unix() - last.unix()).unwrap_or(0);
                    secs.saturating_mul(rate)
                }
            };
            if elapsed > 0 || b.last.is_none() {
                b.tokens = b.tokens.saturating_add(elapsed).min(capacity);
                b.last = Some(now);
            }
            if b.tokens < 60 {
                b.suppressed = b.suppressed.saturating_add(1);
                return false;
            }
            b.tokens -= 60;
            std::mem::take(&mut b.suppressed)
        };
        if suppressed > 0 {
            tracing::warn!(
                target: "sessionward", event = "events.suppressed", kind = kind.name(),
                suppressed, "events of this kind were not logged (rate limit)"
            );
        }
        true
    }

    /// Whether this is the first user agent change reported for the session `key` (as far as
    /// the last [`ANOMALY_MEMORY`] sessions with a change go).
    pub(crate) fn first_anomaly(&self, key: &SessionKey) -> bool {
        let mut seen = self
            .anomalies
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let prefix = key.prefix_u64();
        if seen.get_mut(&prefix).is_some() {
            return false;
        }
        seen.entry_or_insert_with(prefix, || ());
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sessionward_core::TestClock;

    use super::*;

    #[test]
    fn a_bucket_per_kind_refilled_by_the_clock() {
        let clock = TestClock::new(Timestamp::from_unix(1_000));
        let l = EventLimiter::new(Some(6), Arc::new(clock.clone()));
        let allowed = (0..100).filter(|_| l.allow(Kind::Unknown)).count();
        assert_eq!(allowed, 6);
        // Another kind has its own budget.
        assert!(l.allow(Kind::Malformed));
        // Six a minute: one every ten seconds.
        clock.advance(Duration::from_secs(10));
        assert!(l.allow(Kind::Unknown));
        assert!(!l.allow(Kind::Unknown));
        clock.advance(Duration::from_secs(3600));
        assert_eq!((0..100).filter(|_| l.allow(Kind::Unknown)).count(), 6);
        // No limit.
        let free = EventLimiter::new(None, Arc::new(clock));
        assert!((0..1000).all(|_| free.allow(Kind::Unknown)));
    }

    #[test]
    fn an_anomaly_is_first_once_per_session() {
        let l = EventLimiter::default();
        let a = SessionKey::from_bytes([1; 32]);
        let b = SessionKey::from_bytes([2; 32]);
        assert!(l.first_anomaly(&a));
        assert!(!l.first_anomaly(&a));
        assert!(l.first_anomaly(&b));
    }
}
