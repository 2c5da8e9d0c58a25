//! [`MySqlStoreBuilder`]: the operation timeout and the sweeper.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sessionward_core::{SweepConfig, Sweeper};
use sqlx::MySqlPool;

use crate::store::{DEFAULT_SWEEP_BATCH, Inner, MySqlStore};

/// Default bound on one store operation, see [`MySqlStoreBuilder::operation_timeout`].
const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// Builds a [`MySqlStore`].
#[derive(Clone)]
pub struct MySqlStoreBuilder {
    pool: MySqlPool,
    operation_timeout: Duration,
    sweep: SweepConfig,
}

impl fmt::Debug for MySqlStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MySqlStoreBuilder")
            .field("operation_timeout", &self.operation_timeout)
            .field("sweep", &self.sweep)
            .finish_non_exhaustive()
    }
}

impl MySqlStoreBuilder {
    /// The defaults, on `pool`.
    pub(crate) fn new(pool: MySqlPool) -> Self {
        Self {
            pool,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            sweep: SweepConfig::default(),
        }
    }

    /// The longest one store operation may take, waiting for a pooled connection and for
    /// row locks included; past it the operation fails with
    /// [`StoreError::Timeout`](sessionward_core::StoreError::Timeout). A last line of defence
    /// against an unreachable server: also give the pool an `acquire_timeout` and the server a
    /// lock wait timeout (`innodb_lock_wait_timeout`) shorter than this, so that the server
    /// gives up first (a statement abandoned by the client may still complete on the server:
    /// after a `Timeout` the outcome of a write is unknown). Default: 10 s.
    ///
    /// ```no_run
    /// # fn f(pool: sqlx::MySqlPool) {
    /// use std::time::Duration;
    /// let store = sessionward_mysql::MySqlStore::builder(pool)
    ///     .operation_timeout(Duration::from_secs(2))
    ///     .build();
    /// # }
    /// ```
    #[must_use]
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How the background sweeper runs. Default: [`SweepConfig::default`] (every 60 s on the system
    /// clock), 1,000 rows per statement (a pass repeats it until fewer are left).
    /// [`SweepConfig::disabled`] turns it off: expired sessions are still never loaded, but their
    /// rows stay until something calls
    /// [`SessionStore::delete_expired`](sessionward_core::SessionStore::delete_expired) (a cron
    /// job, or one instance of a fleet that keeps its sweeper on).
    ///
    /// ```no_run
    /// # fn f(pool: sqlx::MySqlPool) {
    /// use std::time::Duration;
    /// use sessionward_mysql::{MySqlStore, SweepConfig};
    /// let store = MySqlStore::builder(pool)
    ///     .sweep(SweepConfig::every(Duration::from_secs(300)).batch(5_000))
    ///     .build();
    /// # }
    /// ```
    #[must_use]
    pub fn sweep(mut self, config: SweepConfig) -> Self {
        self.sweep = config;
        self
    }

    /// Builds the store and, when a Tokio runtime is running and the sweeper is on, starts the
    /// sweeper on it.
    #[must_use]
    pub fn build(self) -> MySqlStore {
        let inner = Arc::new(Inner {
            pool: self.pool,
            operation_timeout: self.operation_timeout,
        });
        let sweeper = Sweeper::start(
            &inner,
            "MySqlStore",
            DEFAULT_SWEEP_BATCH,
            self.sweep,
            |inner: Arc<Inner>, now, batch| async move { inner.delete_expired(now, batch).await },
        );
        MySqlStore {
            inner,
            sweeper: Arc::new(sweeper),
        }
    }
}
