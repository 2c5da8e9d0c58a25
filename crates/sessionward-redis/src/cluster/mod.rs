//! Cluster mode: the key layout that spreads sessions over the slots of a Redis Cluster, the
//! operations that span slots, and the cluster's errors. `docs/redis.md` explains the design,
//! its ordering argument and its failure cases.
//!
//! - A record lives in its *bucket*: the hash tag `{ns:<bb>}`, `<bb>` being the first byte of
//!   the session key in hex (256 buckets, so a namespace spreads over up to 256 slots). The
//!   record `{ns:<bb>}:s:<hex>` and its bucket's expiry index `{ns:<bb>}:x` share a slot, so
//!   load (one `HGETALL`), save, touch and delete are one command to one node, as on a single
//!   node.
//! - A user's index `{ns:u:<uk>}:u` and change time `{ns:u:<uk>}:e` share the user's slot.
//! - Every script declares every key it touches (unlike the single-node scripts, which derive
//!   keys of their slot from arguments), so a slot being migrated answers `ASK`/`TRYAGAIN`
//!   instead of "absent".
//! - An operation over a record and its user is two scripts on two slots, ordered
//!   write-then-check: see [`create`] and the per-user operations.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{ErrorKind, RedisError, Script, ServerErrorKind, Value};
use sessionward_core::{
    RoleSet, RotateOutcome, SessionHandle, SessionKey, SessionRecord, StoreError, Timestamp, UserId,
};

use crate::codec;
use crate::scripts::{PRELUDE, SCRIPTS};
use crate::store::{Inner, fields_of, int_of, string_of, ttl_secs, unexpected};

mod ops;
mod scripts;

pub(crate) use ops::{
    create, delete, delete_by_handle, delete_by_user, delete_expired, list_by_user, rotate,
    set_roles_for_user,
};

/// How many buckets (hash tags) a namespace's records spread over.
pub(crate) const BUCKETS: usize = 256;

/// `{ns:<bb>}:`, the start of the keys of the bucket that holds the record with key hex `hex`.
pub(crate) fn bucket_prefix(namespace: &str, hex: &str) -> String {
    format!("{{{namespace}:{}}}:", hex.get(..2).unwrap_or("00"))
}

/// What went wrong talking to a Redis Cluster, without key names, tokens or values: the
/// source of the [`StoreError`] a cluster-mode [`RedisStore`](crate::RedisStore) returns
/// (`Backend`, or `Timeout` for [`ClusterError::Timeout`]). The layer answers every one with
/// 503, failing closed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClusterError {
    /// A node answered `MOVED` or `ASK` and the redirect could not be followed (the client's
    /// retries were spent, or the named node is not reachable): the cluster is resharding or
    /// its topology changed under the client. `node` is the address it was sent to, if known.
    Redirected {
        /// `host:port` of the node the redirect named.
        node: Option<String>,
    },
    /// The client has no connection for the slot's node (a node it does not know, or one
    /// that left): it refreshes its slot map and the next operation tries again.
    UnknownNode,
    /// `CLUSTERDOWN`: the cluster does not serve the slot (no primary covers it, for example
    /// during a failover before a replica is promoted).
    ClusterDown,
    /// `MASTERDOWN`: the node's primary is unreachable.
    MasterDown,
    /// `TRYAGAIN`: the slot is being migrated and the keys are split between two nodes for
    /// the moment.
    SlotMigrating,
    /// `READONLY`: a write reached a replica (a failover demoted the node).
    ReadOnly,
    /// The node could not be reached or the connection dropped.
    Unreachable,
    /// The operation passed the store's deadline.
    Timeout,
    /// Another failure; `category` is redis-rs's name for its kind (for example
    /// "response error"), never the server's message.
    Other {
        /// The kind of failure.
        category: String,
    },
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Redirected { node: Some(node) } => write!(
                f,
                "Redis Cluster redirected the request (MOVED/ASK) to {node}, which could not be used"
            ),
            Self::Redirected { node: None } => f.write_str(
                "Redis Cluster redirected the request (MOVED/ASK) and it could not be followed",
            ),
            Self::UnknownNode => {
                f.write_str("no connection to the Redis Cluster node that serves the slot")
            }
            Self::ClusterDown => {
                f.write_str("the Redis Cluster is down (CLUSTERDOWN) for the slot")
            }
            Self::MasterDown => {
                f.write_str("the Redis Cluster node's primary is down (MASTERDOWN)")
            }
            Self::SlotMigrating => {
                f.write_str("the slot is being migrated between Redis Cluster nodes (TRYAGAIN)")
            }
            Self::ReadOnly => f.write_str("a write reached a Redis Cluster replica (READONLY)"),
            Self::Unreachable => f.write_str("a Redis Cluster node could not be reached"),
            Self::Timeout => f.write_str("the Redis Cluster did not answer in time"),
            Self::Other { category } => write!(f, "Redis Cluster failure: {category}"),
        }
    }
}

impl std::error::Error for ClusterError {}

/// What a client error means, as a [`ClusterError`].
pub(crate) fn classify(e: &RedisError) -> ClusterError {
    if e.is_timeout() {
        return ClusterError::Timeout;
    }
    match e.kind() {
        ErrorKind::Server(ServerErrorKind::Moved | ServerErrorKind::Ask) => {
            ClusterError::Redirected {
                node: e
                    .redirect_node()
                    .map(|(host, port)| format!("{host}:{port}")),
            }
        }
        ErrorKind::Server(ServerErrorKind::ClusterDown) => ClusterError::ClusterDown,
        ErrorKind::Server(ServerErrorKind::MasterDown) => ClusterError::MasterDown,
        ErrorKind::Server(ServerErrorKind::TryAgain) => ClusterError::SlotMigrating,
        ErrorKind::Server(ServerErrorKind::ReadOnly) => ClusterError::ReadOnly,
        ErrorKind::ClusterConnectionNotFound => ClusterError::UnknownNode,
        _ if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() => {
            ClusterError::Unreachable
        }
        _ => ClusterError::Other {
            category: e.category().to_owned(),
        },
    }
}

/// The outcome of one request under the store's deadline, as the store's result; a failure is
/// noted on the connection (which may start a rebuild, see [`ClusterConn`]).
pub(crate) fn settle<T>(
    conn: &Arc<ClusterConn>,
    result: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
) -> Result<T, StoreError> {
    let kind = match result {
        Ok(Ok(v)) => return Ok(v),
        Ok(Err(e)) => classify(&e),
        Err(_) => ClusterError::Timeout,
    };
    conn.failed(&kind);
    Err(match kind {
        ClusterError::Timeout => StoreError::Timeout(Some(Box::new(ClusterError::Timeout))),
        other => StoreError::backend(other),
    })
}

/// Maps a cluster client error to the store's errors.
pub(crate) fn map_cluster_err(e: &RedisError) -> StoreError {
    match classify(e) {
        ClusterError::Timeout => StoreError::Timeout(Some(Box::new(ClusterError::Timeout))),
        other => StoreError::backend(other),
    }
}

/// The least time between two rebuilds of a store's cluster connection.
const REBUILD_INTERVAL: Duration = Duration::from_millis(500);

/// A cluster-mode store's connection, rebuilt from its client when the cluster fails under it.
///
/// redis-rs's cluster connection refreshes its slot map only when a node answers `MOVED` or
/// `READONLY`, or when a request finds no connection for its slot; a connection error only
/// starts a reconnect loop to the same address, which runs for as long as the map lists it. After
/// a primary dies, the map keeps naming it until one of those events comes, and a script's
/// `SCRIPT LOAD` (the promoted replica has an empty script cache, so its first `EVALSHA` answers
/// `NOSCRIPT`) fans out to every node of that map, the dead one included, and fails. So on a
/// failure that says the topology may have changed (a node unreachable, `CLUSTERDOWN`,
/// `MASTERDOWN`, `READONLY`, a redirect that could not be followed, a timeout), the store builds
/// a fresh connection from its [`ClusterClient`] in the background (it reads the slot map from
/// the seeds anew) and swaps it in: at most one rebuild at a time, at most one per
/// [`REBUILD_INTERVAL`], each bounded by the connect deadline; requests never wait for it (they
/// keep failing closed on the old connection until the new one is in).
pub(crate) struct ClusterConn {
    current: RwLock<ClusterConnection>,
    /// The client the connection came from; `None` for a connection the caller built, which
    /// is never rebuilt.
    client: Option<ClusterClient>,
    /// The bound of one rebuild.
    deadline: Duration,
    rebuilding: AtomicBool,
    last_rebuild: Mutex<Option<Instant>>,
}

impl ClusterConn {
    pub(crate) fn new(
        conn: ClusterConnection,
        client: Option<ClusterClient>,
        deadline: Duration,
    ) -> Self {
        Self {
            current: RwLock::new(conn),
            client,
            deadline,
            rebuilding: AtomicBool::new(false),
            last_rebuild: Mutex::new(None),
        }
    }

    /// The connection to send the next request on.
    pub(crate) fn get(&self) -> ClusterConnection {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Notes a failed request: a failure that may mean a changed topology starts a rebuild.
    pub(crate) fn failed(self: &Arc<Self>, kind: &ClusterError) {
        let topology_changed = matches!(
            kind,
            ClusterError::Unreachable
                | ClusterError::ClusterDown
                | ClusterError::MasterDown
                | ClusterError::ReadOnly
                | ClusterError::UnknownNode
                | ClusterError::Redirected { .. }
                | ClusterError::Timeout
        );
        let Some(client) = self.client.clone() else {
            return;
        };
        if !topology_changed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        {
            let mut last = self
                .last_rebuild
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|t| t.elapsed() < REBUILD_INTERVAL)
                || self.rebuilding.swap(true, Ordering::AcqRel)
            {
                return;
            }
            *last = Some(Instant::now());
        }
        let this = Arc::clone(self);
        runtime.spawn(async move {
            match tokio::time::timeout(this.deadline, client.get_async_connection()).await {
                Ok(Ok(conn)) => {
                    *this.current.write().unwrap_or_else(PoisonError::into_inner) = conn;
                    tracing::info!("RedisStore (cluster): rebuilt the cluster connection");
                }
                Ok(Err(e)) => tracing::warn!(
                    error = %classify(&e),
                    "RedisStore (cluster): could not rebuild the cluster connection"
                ),
                Err(_) => tracing::warn!(
                    "RedisStore (cluster): rebuilding the cluster connection timed out"
                ),
            }
            this.rebuilding.store(false, Ordering::Release);
        });
    }
}

/// How long (at most) the client waits for the cluster's nodes when connecting.
pub(crate) fn connect_deadline(connect_timeout: Duration, retries: usize) -> Duration {
    let retries = u32::try_from(retries).unwrap_or(u32::MAX);
    (connect_timeout + Duration::from_millis(500)).saturating_mul(retries.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_the_first_byte_of_the_key() {
        assert_eq!(bucket_prefix("ns", "ab12"), "{ns:ab}:");
        assert_eq!(bucket_prefix("ns", ""), "{ns:00}:");
    }

    #[test]
    fn errors_say_what_went_wrong_without_details() {
        let e = ClusterError::Redirected {
            node: Some("127.0.0.1:7001".into()),
        };
        assert!(e.to_string().contains("MOVED/ASK") && e.to_string().contains("7001"));
        assert!(
            ClusterError::ClusterDown
                .to_string()
                .contains("CLUSTERDOWN")
        );
        assert!(matches!(
            map_cluster_err(&RedisError::from(std::io::Error::from(
                std::io::ErrorKind::TimedOut
            ))),
            StoreError::Timeout(_)
        ));
        let refused = map_cluster_err(&RedisError::from(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert!(matches!(refused, StoreError::Backend(_)));
        let StoreError::Backend(src) = refused else {
            unreachable!()
        };
        assert_eq!(
            src.downcast_ref::<ClusterError>(),
            Some(&ClusterError::Unreachable)
        );
    }
}
