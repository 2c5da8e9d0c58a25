//! [`RedisStore`]: the type, its constructors, and the parts it is built from.

mod inner;
mod reply;
mod session_store;

use std::fmt;
use std::sync::Arc;

use sessionward_core::{StoreError, Sweeper, SweeperStatus};

use crate::connect::RedisStoreBuilder;
#[cfg(doc)]
use sessionward_core::SessionStore;

pub(crate) use inner::{Conn, Inner};
pub(crate) use reply::{
    EPOCH_RETENTION_SECS, fields_of, int_of, map_err, string_of, ttl_secs, unexpected,
};

/// A [`SessionStore`] on Redis (or Redis Cluster): one hash per session, atomic Lua scripts,
/// Redis TTLs plus an expiry index. See the [crate docs](crate) and `docs/stores.md (RedisStore section)`.
///
/// Cheap to clone (the clones share one multiplexed connection); usually used as
/// `Arc<dyn SessionStore>`.
#[derive(Clone)]
pub struct RedisStore {
    pub(crate) inner: Arc<Inner>,
    /// Dropped with the last clone of the store, which ends the sweeper at once.
    pub(crate) sweeper: Arc<Sweeper>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field(
                "mode",
                &if self.inner.is_cluster() {
                    "cluster"
                } else {
                    "single node"
                },
            )
            .field("namespace", &self.inner.namespace)
            .field("timeout", &self.inner.timeout)
            .field("ttl_slack_secs", &self.inner.ttl_slack)
            .field("sweeper", &self.sweeper)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://[user:password@]host[:port][/db]`, or
    /// `rediss://` with a TLS-enabled build of `redis`) with the default settings.
    ///
    /// # Errors
    /// [`StoreError::Backend`] for a malformed URL or a refused connection,
    /// [`StoreError::Timeout`] if Redis does not answer in time.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder().connect(url).await
    }

    /// A builder for the namespace, timeouts, TTL slack, sweeper and clock.
    #[must_use]
    pub fn builder() -> RedisStoreBuilder {
        RedisStoreBuilder::default()
    }

    /// The namespace: every key of this store starts with `{namespace}:`.
    #[must_use]
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// Whether the store runs in cluster mode (built by
    /// [`connect_cluster`](RedisStoreBuilder::connect_cluster) and its kin).
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        self.inner.is_cluster()
    }

    /// Connects to a Redis Cluster through its seed nodes with the default settings (cluster
    /// mode: see [`RedisStoreBuilder::connect_cluster`]).
    ///
    /// # Errors
    /// As [`RedisStoreBuilder::connect_cluster`].
    pub async fn connect_cluster<I, S>(seeds: I) -> Result<Self, StoreError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::builder().connect_cluster(seeds).await
    }

    /// The state of the background sweeper.
    #[must_use]
    pub fn sweeper(&self) -> SweeperStatus {
        self.sweeper.status()
    }
}
