//! [`MemoryStoreBuilder`]: bounds and the sweeper.

use super::*;

/// Builds a [`MemoryStore`].
#[derive(Debug, Clone)]
pub struct MemoryStoreBuilder {
    max_sessions: Option<usize>,
    max_anonymous: usize,
    max_per_user: Option<(usize, PerUserLimit)>,
    sweep: SweepConfig,
}

impl Default for MemoryStoreBuilder {
    fn default() -> Self {
        Self {
            max_sessions: None,
            max_anonymous: MemoryStore::DEFAULT_MAX_ANONYMOUS_SESSIONS,
            max_per_user: None,
            sweep: SweepConfig::default(),
        }
    }
}

impl MemoryStoreBuilder {
    /// Bounds the number of signed-in sessions. Past it, a sign-in (a `create` or a `rotate`
    /// to a signed-in record) fails with [`StoreError::CapacityExceeded`], which the layer
    /// answers with 503. Anonymous sessions do not count: they have their own budget
    /// ([`max_anonymous_sessions`](Self::max_anonymous_sessions)), so a flood of them can never
    /// refuse a sign-in. Default: unbounded.
    #[must_use]
    pub fn max_sessions(mut self, limit: usize) -> Self {
        self.max_sessions = Some(limit);
        self
    }

    /// Bounds the number of anonymous sessions (SEC-33). Past it, creating one evicts the
    /// anonymous session that expires soonest (with one anonymous idle timeout, the least
    /// recently used) in the new session's shard, or the next shard that has one: an
    /// approximation of least-recently-used over 64 shards, never a refusal. A rotation to a
    /// signed-in record (a sign-in) moves the session to the signed-in budget. Default:
    /// [`MemoryStore::DEFAULT_MAX_ANONYMOUS_SESSIONS`]; `usize::MAX` for no bound.
    #[must_use]
    pub fn max_anonymous_sessions(mut self, limit: usize) -> Self {
        self.max_anonymous = limit.max(1);
        self
    }

    /// Bounds the sessions of one user; `policy` says what a sign-in past the bound does.
    /// Default: unbounded.
    #[must_use]
    pub fn max_sessions_per_user(mut self, limit: usize, policy: PerUserLimit) -> Self {
        self.max_per_user = Some((limit.max(1), policy));
        self
    }

    /// How the background sweeper runs. Default: [`SweepConfig::default`] (every 60 s on the
    /// system clock), 64 records per call; [`SweepConfig::disabled`] turns it off (expired
    /// records are still never loaded; call [`SessionStore::delete_expired`] yourself).
    #[must_use]
    pub fn sweep(mut self, config: SweepConfig) -> Self {
        self.sweep = config;
        self
    }

    /// Builds the store and, when a Tokio runtime is running and the sweeper is on, starts the
    /// sweeper on it.
    #[must_use]
    pub fn build(self) -> MemoryStore {
        let inner = Arc::new(Inner {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            users: (0..SHARDS)
                .map(|_| Mutex::new(UserIndex::default()))
                .collect(),
            user_hasher: RandomState::new(),
            count: [AtomicUsize::new(0), AtomicUsize::new(0)],
            max_sessions: self.max_sessions,
            max_anonymous: self.max_anonymous,
            max_per_user: self.max_per_user,
            profiles: Profiles::new(),
        });
        let sweeper = Sweeper::start(
            &inner,
            "MemoryStore",
            SWEEP_BATCH,
            self.sweep,
            |inner: Arc<Inner>, now, batch| async move { Ok(inner.delete_expired(now, batch)) },
        );
        MemoryStore {
            inner,
            sweeper: Arc::new(sweeper),
        }
    }
}
