//! [`RedisStoreBuilder`]: the namespace, timeouts, TTL slack, sweeper, and connecting.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use sessionward_core::{StoreError, SweepConfig, Sweeper};

use crate::cluster::ClusterConn;
use crate::store::{Conn, Inner, RedisStore, map_err};

/// How many expired records one sweeper call deletes (it loops until fewer are left).
const SWEEP_BATCH: usize = 1_000;

/// The configured namespace cannot be a Redis Cluster hash tag.
#[derive(Debug)]
struct InvalidNamespace(String);

impl fmt::Display for InvalidNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid RedisStore namespace {:?}: it must be non-empty and hold no `{{` or `}}` (it becomes the hash tag `{{namespace}}`)",
            self.0
        )
    }
}

impl std::error::Error for InvalidNamespace {}

/// Builds a [`RedisStore`].
///
/// ```no_run
/// use std::time::Duration;
/// use sessionward_redis::RedisStore;
///
/// # async fn run() -> Result<(), sessionward_core::StoreError> {
/// let store = RedisStore::builder()
///     .namespace("myapp-sessions")
///     .timeout(Duration::from_millis(500))
///     .connect("redis://127.0.0.1:6379")
///     .await?;
/// # let _ = store; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStoreBuilder {
    namespace: String,
    connect_timeout: Duration,
    timeout: Duration,
    reconnect_retries: usize,
    ttl_slack: Duration,
    sweep: SweepConfig,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("namespace", &self.namespace)
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("reconnect_retries", &self.reconnect_retries)
            .field("ttl_slack", &self.ttl_slack)
            .field("sweep", &self.sweep)
            .finish_non_exhaustive()
    }
}

impl Default for RedisStoreBuilder {
    fn default() -> Self {
        Self {
            namespace: "sessionward".to_owned(),
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(2),
            reconnect_retries: 2,
            ttl_slack: Duration::from_secs(60),
            sweep: SweepConfig::default(),
        }
    }
}

impl RedisStoreBuilder {
    /// The namespace, so that several apps (or test runs) share one Redis: every key starts
    /// with `{namespace}:`, which is also the Redis Cluster hash tag of every key. It must be
    /// non-empty and hold no `{` or `}`. Default: `sessionward`.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionward_core::StoreError> {
    /// let store = sessionward_redis::RedisStore::builder()
    ///     .namespace("shop")
    ///     .connect("redis://127.0.0.1:6379")
    ///     .await?;
    /// assert_eq!(store.namespace(), "shop");
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// How long one connection attempt may take. Default: 2 s.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// let builder = sessionward_redis::RedisStore::builder().connect_timeout(Duration::from_secs(1));
    /// ```
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The deadline of every store operation (and of every Redis response): past it the
    /// operation fails with [`StoreError::Timeout`]. A write that timed out may or may not have
    /// been applied. Default: 2 s.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// let builder = sessionward_redis::RedisStore::builder().timeout(Duration::from_millis(300));
    /// ```
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How many times the client retries a lost connection (with a jittered exponential delay
    /// from 50 ms up to 500 ms) before the waiting operations fail; the next operation then
    /// tries again. Default: 2.
    ///
    /// ```no_run
    /// let builder = sessionward_redis::RedisStore::builder().reconnect_retries(0);
    /// ```
    #[must_use]
    pub fn reconnect_retries(mut self, retries: usize) -> Self {
        self.reconnect_retries = retries;
        self
    }

    /// How long Redis keeps a record past its expiry before its TTL removes it. Expiry itself
    /// is decided by the caller's clock on every operation; the slack covers clock skew between
    /// app servers (a server whose clock is behind must not see its sessions vanish early) and
    /// leaves `delete_expired` something to count. Default: 60 s.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// let builder = sessionward_redis::RedisStore::builder().ttl_slack(Duration::from_secs(300));
    /// ```
    #[must_use]
    pub fn ttl_slack(mut self, slack: Duration) -> Self {
        self.ttl_slack = slack;
        self
    }

    /// How the background sweeper runs: it calls
    /// [`delete_expired`](sessionward_core::SessionStore::delete_expired), which trims the
    /// expiry and user indexes (Redis TTLs remove the records themselves). Default: [`SweepConfig::default`]
    /// (every 60 s on the system clock), 1,000 records per call; [`SweepConfig::disabled`]
    /// turns it off (call `delete_expired` yourself, e.g. from one job for a fleet).
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// use sessionward_redis::{RedisStore, SweepConfig};
    /// let builder = RedisStore::builder().sweep(SweepConfig::every(Duration::from_secs(300)));
    /// ```
    #[must_use]
    pub fn sweep(mut self, config: SweepConfig) -> Self {
        self.sweep = config;
        self
    }

    fn manager_config(&self) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(self.reconnect_retries)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500))
    }

    /// Connects to the Redis at `url` and builds the store.
    ///
    /// # Errors
    /// [`StoreError::Backend`] for a malformed URL, an invalid namespace or a refused
    /// connection; [`StoreError::Timeout`] if Redis does not answer in time.
    pub async fn connect(self, url: &str) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url).map_err(map_err)?;
        self.connect_client(client).await
    }

    /// Connects with a [`redis::Client`] you configured (TLS, credentials, RESP3) and builds
    /// the store. The connection is checked before this returns.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_client(self, client: redis::Client) -> Result<RedisStore, StoreError> {
        self.check_namespace()?;
        let config = self.manager_config();
        // Every attempt is bounded by the connect timeout; the retries add their delays.
        let retries = u32::try_from(self.reconnect_retries).unwrap_or(u32::MAX);
        let deadline = (self.connect_timeout + Duration::from_millis(500))
            .saturating_mul(retries.saturating_add(1));
        let conn = match tokio::time::timeout(
            deadline,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(map_err(e)),
            Err(elapsed) => return Err(StoreError::Timeout(Some(Box::new(elapsed)))),
        };
        self.build_with(conn)
    }

    /// Builds the store without connecting: the first operation connects. Lets an app start
    /// while Redis is still coming up (its requests fail with a [`StoreError`] until then).
    ///
    /// # Errors
    /// [`StoreError::Backend`] for an invalid namespace.
    pub fn connect_lazy(self, client: redis::Client) -> Result<RedisStore, StoreError> {
        self.check_namespace()?;
        let conn = ConnectionManager::new_lazy_with_config(client, self.manager_config())
            .map_err(map_err)?;
        self.build_with(conn)
    }

    /// Builds the store on a [`ConnectionManager`] you made (and configured: its response
    /// timeout and retries are yours; this store still applies its own
    /// [`timeout`](Self::timeout) to every operation).
    ///
    /// # Errors
    /// [`StoreError::Backend`] for an invalid namespace.
    pub fn build_with(self, conn: ConnectionManager) -> Result<RedisStore, StoreError> {
        self.build_on(Conn::Single(conn))
    }

    /// Connects to a Redis Cluster through its seed nodes (`redis://host:port` each; one is
    /// enough, more survive a seed being down) and builds a store in **cluster mode**: the
    /// cluster key layout of `docs/redis.md`, which spreads sessions over the slots of every
    /// primary. The client follows `MOVED`/`ASK` redirects, retries `TRYAGAIN`/`CLUSTERDOWN`
    /// briefly and reconnects by itself; the store's [`timeout`](Self::timeout) still bounds
    /// every operation. When a failure says the topology may have changed (a node unreachable,
    /// `CLUSTERDOWN`, a timeout...), the store rebuilds its connection from the client in the
    /// background, at most one rebuild at a time and one per 500 ms, so that it finds a
    /// promoted replica (`docs/redis.md`, "Failover").
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessionward_core::StoreError> {
    /// let store = sessionward_redis::RedisStore::builder()
    ///     .connect_cluster(["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"])
    ///     .await?;
    /// assert!(store.is_cluster());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`StoreError::Backend`] for no or malformed URLs, an invalid namespace, or no seed
    /// node answering; [`StoreError::Timeout`] if the cluster does not answer in time.
    pub async fn connect_cluster<I, S>(self, seeds: I) -> Result<RedisStore, StoreError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let seeds: Vec<String> = seeds.into_iter().map(|s| s.as_ref().to_owned()).collect();
        if seeds.is_empty() {
            return Err(StoreError::backend("no Redis Cluster seed URL given"));
        }
        let client = self
            .cluster_client_builder(seeds)
            .build()
            .map_err(map_err)?;
        self.connect_cluster_client(client).await
    }

    /// The cluster client [`connect_cluster`](Self::connect_cluster) uses: this builder's
    /// connect and response timeouts, and short retry waits (5–200 ms, at most 8 retries), so
    /// that a resharding's `TRYAGAIN` is retried within the operation's deadline.
    fn cluster_client_builder(&self, seeds: Vec<String>) -> ClusterClientBuilder {
        ClusterClientBuilder::new(seeds)
            .connection_timeout(self.connect_timeout)
            .response_timeout(self.timeout)
            .retries(8)
            .min_retry_wait(5)
            .max_retry_wait(200)
            .retry_wait_formula(10, 2)
    }

    /// Connects with a [`ClusterClient`] you configured (TLS, credentials, retries) and builds
    /// a store in cluster mode. The cluster is reached before this returns.
    ///
    /// # Errors
    /// As [`connect_cluster`](Self::connect_cluster).
    pub async fn connect_cluster_client(
        self,
        client: ClusterClient,
    ) -> Result<RedisStore, StoreError> {
        self.check_namespace()?;
        let deadline =
            crate::cluster::connect_deadline(self.connect_timeout, self.reconnect_retries);
        let conn = match tokio::time::timeout(deadline, client.get_async_connection()).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(crate::cluster::map_cluster_err(&e)),
            Err(_) => {
                return Err(StoreError::Timeout(Some(Box::new(
                    crate::ClusterError::Timeout,
                ))));
            }
        };
        let conn = ClusterConn::new(conn, Some(client), deadline);
        self.build_on(Conn::Cluster(Arc::new(conn)))
    }

    /// Builds a cluster-mode store on a [`ClusterConnection`] you made. Unlike a store from
    /// [`connect_cluster`](Self::connect_cluster), it cannot rebuild its connection after a
    /// failover (it has no client to build one from): it relies on redis-rs's own recovery
    /// (`docs/redis.md`, "Failover").
    ///
    /// # Errors
    /// [`StoreError::Backend`] for an invalid namespace.
    pub fn build_cluster_with(self, conn: ClusterConnection) -> Result<RedisStore, StoreError> {
        let deadline =
            crate::cluster::connect_deadline(self.connect_timeout, self.reconnect_retries);
        let conn = ClusterConn::new(conn, None, deadline);
        self.build_on(Conn::Cluster(Arc::new(conn)))
    }

    fn build_on(self, conn: Conn) -> Result<RedisStore, StoreError> {
        self.check_namespace()?;
        let prefix = format!("{{{}}}:", self.namespace);
        let inner = Arc::new(Inner {
            conn,
            expiry_key: format!("{prefix}x"),
            prefix,
            namespace: self.namespace,
            timeout: self.timeout,
            ttl_slack: self.ttl_slack.as_secs(),
            sweep_cursor: std::sync::atomic::AtomicUsize::new(0),
        });
        let sweeper = Sweeper::start(
            &inner,
            "RedisStore",
            SWEEP_BATCH,
            self.sweep,
            |inner: Arc<Inner>, now, batch| async move { inner.delete_expired(now, batch).await },
        );
        Ok(RedisStore {
            inner,
            sweeper: Arc::new(sweeper),
        })
    }

    fn check_namespace(&self) -> Result<(), StoreError> {
        let ns = &self.namespace;
        if ns.is_empty() || ns.contains(['{', '}']) {
            return Err(StoreError::backend(InvalidNamespace(ns.clone())));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_must_make_a_hash_tag() {
        for bad in ["", "a{b", "a}b", "{x}"] {
            let b = RedisStore::builder()
                .namespace(bad)
                .sweep(SweepConfig::disabled());
            assert!(b.check_namespace().is_err(), "accepted {bad:?}");
        }
        assert!(
            RedisStore::builder()
                .namespace("app-1:sessions")
                .check_namespace()
                .is_ok()
        );
    }
}
