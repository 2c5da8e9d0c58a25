//! The connection and what every operation runs through: key names, the deadline, scripts
//! and commands on one node or a cluster.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::RedisResult;
use redis::aio::ConnectionManager;
use sessionward_core::{SessionKey, StoreError, Timestamp};

use super::{EPOCH_RETENTION_SECS, map_err};
use crate::scripts::SCRIPTS;

/// The connection: one node, or a Redis Cluster.
#[derive(Clone)]
pub(crate) enum Conn {
    /// One Redis (or a cluster's primary, addressed directly): the single-node key layout.
    Single(ConnectionManager),
    /// A Redis Cluster: the cluster key layout (`docs/redis.md`).
    Cluster(Arc<crate::cluster::ClusterConn>),
}

pub(crate) struct Inner {
    pub(crate) conn: Conn,
    /// `{namespace}:`, the start of every key.
    pub(crate) prefix: String,
    /// The expiry index.
    pub(crate) expiry_key: String,
    pub(crate) namespace: String,
    pub(crate) timeout: Duration,
    pub(crate) ttl_slack: u64,
    /// Cluster mode: the bucket where the next `delete_expired` starts.
    pub(crate) sweep_cursor: std::sync::atomic::AtomicUsize,
}

impl Inner {
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.conn, Conn::Cluster(_))
    }

    /// The record's key: `{ns}:s:<hex>` on one node, `{ns:<bucket>}:s:<hex>` on a cluster.
    pub(crate) fn record_key(&self, key: &SessionKey) -> String {
        let hex = key.to_hex();
        if self.is_cluster() {
            format!(
                "{}s:{hex}",
                crate::cluster::bucket_prefix(&self.namespace, &hex)
            )
        } else {
            format!("{}s:{hex}", self.prefix)
        }
    }

    /// The expiry index that files the record under `key`: one per store on one node, one per
    /// bucket (in the record's slot) on a cluster.
    pub(crate) fn expiry_key_of(&self, key: &SessionKey) -> String {
        if self.is_cluster() {
            let hex = key.to_hex();
            format!("{}x", crate::cluster::bucket_prefix(&self.namespace, &hex))
        } else {
            self.expiry_key.clone()
        }
    }

    /// The user's index: `{ns}:u:<digest>`, or `{ns:u:<digest>}:u` on a cluster.
    pub(crate) fn user_key(&self, digest: &str) -> String {
        if self.is_cluster() {
            format!("{{{}:u:{digest}}}:u", self.namespace)
        } else {
            format!("{}u:{digest}", self.prefix)
        }
    }

    /// The user's authorization change time: `{ns}:e:<digest>`, or `{ns:u:<digest>}:e` on a
    /// cluster (the slot of the user's index).
    pub(crate) fn epoch_key(&self, digest: &str) -> String {
        if self.is_cluster() {
            format!("{{{}:u:{digest}}}:e", self.namespace)
        } else {
            format!("{}e:{digest}", self.prefix)
        }
    }

    /// How long (seconds) a user's change time is kept past the change: the contract's 24 h,
    /// plus the TTL slack that covers clock skew between app servers.
    pub(crate) fn epoch_keep(&self) -> u64 {
        EPOCH_RETENTION_SECS.saturating_add(self.ttl_slack)
    }

    /// Runs one request under the store's deadline.
    pub(crate) async fn run<T>(
        &self,
        fut: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        let result = tokio::time::timeout(self.timeout, fut).await;
        if let Conn::Cluster(c) = &self.conn {
            return crate::cluster::settle(c, result);
        }
        match result {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(map_err(e)),
            Err(elapsed) => Err(StoreError::Timeout(Some(Box::new(elapsed)))),
        }
    }

    /// Runs a cluster operation of several steps under one deadline (each step also has
    /// it): past it the operation fails with [`StoreError::Timeout`], wherever it was (see
    /// `docs/redis.md`, "Failures midway").
    pub(crate) async fn bounded<T>(
        &self,
        op: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(out) => out,
            Err(_) => Err(StoreError::Timeout(Some(Box::new(
                crate::ClusterError::Timeout,
            )))),
        }
    }

    /// Runs one script (`EVALSHA`, loading it on `NOSCRIPT`) under the deadline.
    pub(crate) async fn script<T: redis::FromRedisValue>(
        &self,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        match &self.conn {
            Conn::Single(c) => {
                let mut c = c.clone();
                self.run(inv.invoke_async(&mut c)).await
            }
            Conn::Cluster(c) => {
                let mut c = c.get();
                self.run(inv.invoke_async(&mut c)).await
            }
        }
    }

    /// Runs one command under the deadline.
    pub(crate) async fn query<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        match &self.conn {
            Conn::Single(c) => {
                let mut c = c.clone();
                self.run(cmd.query_async(&mut c)).await
            }
            Conn::Cluster(c) => {
                let mut c = c.get();
                self.run(cmd.query_async(&mut c)).await
            }
        }
    }

    pub(crate) async fn delete_expired(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<u64, StoreError> {
        if limit == 0 {
            return Ok(0);
        }
        if self.is_cluster() {
            return crate::cluster::delete_expired(self, now, limit).await;
        }
        let mut inv = SCRIPTS.delete_expired.prepare_invoke();
        inv.key(&self.expiry_key)
            .arg(&self.prefix)
            .arg(now.unix())
            .arg(u64::try_from(limit).unwrap_or(u64::MAX));
        let n: i64 = self.script(&inv).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
