//! [`MemoryStoreBuilder`]: bounds and the sweeper.

use super::*;

/// Builds a [`MemoryStore`].
#[derive(Debug, Clone, Default)]
pub struct MemoryStoreBuilder {
    max_sessions: Option<usize>,
    max_per_user: Option<(usize, PerUserLimit)>,
    sweep: SweepConfig,
}

impl MemoryStoreBuilder {
    /// Bounds the number of sessions. Past it, `create` fails with
    /// [`StoreError::CapacityExceeded`]. Default: unbounded.
    #[must_use]
    pub fn max_sessions(mut self, limit: usize) -> Self {
        self.max_sessions = Some(limit);
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
    /// system clock), 10,000 records per call; [`SweepConfig::disabled`] turns it off (expired
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
            users: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            user_hasher: RandomState::new(),
            count: AtomicUsize::new(0),
            max_sessions: self.max_sessions,
            max_per_user: self.max_per_user,
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
