use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{RedisResult, Value};
use sessionward_core::{
    ChangeSet, DataError, RoleSet, RotateOutcome, SaveOutcome, SessionHandle, SessionKey,
    SessionRecord, SessionStore, StoreError, Sweeper, SweeperStatus, Timestamp, UserId,
};

use crate::codec::{self, DATA_PREFIX};
use crate::connect::RedisStoreBuilder;
use crate::scripts::SCRIPTS;

/// Maps a client result to the store's errors.
pub(crate) fn map_err(e: redis::RedisError) -> StoreError {
    if e.is_timeout() {
        StoreError::Timeout(Some(Box::new(e)))
    } else {
        StoreError::backend(e)
    }
}

pub(crate) fn unexpected(what: &str, v: &Value) -> StoreError {
    StoreError::backend(format!(
        "unexpected reply from a RedisStore script ({what}): {v:?}"
    ))
}

pub(crate) fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

pub(crate) fn string_of(v: Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

/// The fields of a flat `HGETALL` reply.
pub(crate) fn fields_of(v: Value) -> Option<HashMap<String, String>> {
    let Value::Array(items) = v else { return None };
    let mut map = HashMap::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let Some(k) = it.next() {
        map.insert(string_of(k)?, string_of(it.next()?)?);
    }
    Some(map)
}

/// How long a user's authorization change time is remembered after the change: the 24 hours
/// of the store contract (far longer than any request, so no sign-in decided before the change
/// can still reach the store after it is forgotten).
pub(crate) const EPOCH_RETENTION_SECS: u64 = 24 * 60 * 60;

/// The seconds a Redis TTL should last for a record expiring at `expires_at`, seen at `now`.
pub(crate) fn ttl_secs(expires_at: Timestamp, now: Timestamp, slack: u64) -> u64 {
    let left = u64::try_from(expires_at.unix().saturating_sub(now.unix())).unwrap_or(0);
    left.saturating_add(slack).clamp(1, 1_000_000_000)
}

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

#[async_trait::async_trait]
impl SessionStore for RedisStore {
    async fn create(&self, record: &SessionRecord) -> Result<(), StoreError> {
        if self.inner.is_cluster() {
            return self
                .inner
                .bounded(crate::cluster::create(&self.inner, record))
                .await;
        }
        let inner = &self.inner;
        let fields = codec::record_fields(record)?;
        let digest = record.user.as_ref().map(codec::user_digest);
        let expires_at = record.expires_at();
        let mut inv = SCRIPTS.create.prepare_invoke();
        inv.key(inner.record_key(&record.key))
            .key(&inner.expiry_key);
        if let Some(d) = &digest {
            inv.key(inner.user_key(d)).key(inner.epoch_key(d));
        }
        inv.arg(record.key.to_hex())
            .arg(digest.as_deref().unwrap_or(""))
            .arg(expires_at.unix())
            .arg(ttl_secs(expires_at, record.last_seen_at, inner.ttl_slack))
            .arg(record.authorized_at.unix())
            .arg(fields);
        let created: i64 = inner.script(&inv).await?;
        match created {
            1 => Ok(()),
            -2 => Err(StoreError::AuthorizationChanged),
            _ => Err(StoreError::Collision),
        }
    }

    async fn load(
        &self,
        key: &SessionKey,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let inner = &self.inner;
        let cmd = redis::cmd("HGETALL").arg(inner.record_key(key)).to_owned();
        let fields: HashMap<String, String> = inner.query(&cmd).await?;
        Ok(codec::decode(*key, &fields)?.filter(|r| r.is_live(now)))
    }

    async fn save(
        &self,
        key: &SessionKey,
        expected_version: Option<u64>,
        changes: &ChangeSet,
        now: Timestamp,
    ) -> Result<SaveOutcome, StoreError> {
        let inner = &self.inner;
        let flag = |b: bool| if b { "1" } else { "0" };
        let opt = |v: Option<i64>| v.map_or_else(String::new, |n| n.to_string());
        let data = &changes.data;
        // As in `SessionData::apply`, a save that changes no data key is never refused for
        // size (a record over a lowered limit can still be touched or have its lifetime changed).
        let limit = changes.data_limit.filter(|_| !data.is_empty());
        let mut inv = SCRIPTS.save.prepare_invoke();
        inv.key(inner.record_key(key))
            .key(inner.expiry_key_of(key))
            .arg(now.unix())
            .arg(expected_version.map_or_else(String::new, |v| v.to_string()))
            .arg(flag(changes.is_structural() && expected_version.is_some()))
            .arg(flag(data.clear))
            .arg(opt(changes.last_seen_at.map(Timestamp::unix)))
            .arg(opt(changes.absolute_expires_at.map(Timestamp::unix)))
            .arg(
                changes
                    .idle_timeout
                    .map_or_else(String::new, |d| codec::secs(d).to_string()),
            )
            .arg(inner.ttl_slack)
            .arg(key.to_hex())
            .arg(limit.map_or_else(String::new, |l| l.to_string()))
            .arg(data.set.len())
            .arg(data.remove.len());
        for (k, v) in &data.set {
            inv.arg(format!("{DATA_PREFIX}{k}")).arg(v.to_string());
        }
        for k in data.set.keys() {
            inv.arg(codec::quoted_len(k));
        }
        for k in &data.remove {
            inv.arg(format!("{DATA_PREFIX}{k}"));
        }
        for k in &data.remove {
            inv.arg(codec::quoted_len(k));
        }
        let reply: Value = inner.script(&inv).await?;
        let Value::Array(items) = &reply else {
            return Err(unexpected("save", &reply));
        };
        let number = || {
            items
                .get(1)
                .and_then(int_of)
                .and_then(|v| u64::try_from(v).ok())
                .ok_or_else(|| unexpected("save", &reply))
        };
        match items.first().and_then(int_of) {
            Some(0) => Ok(SaveOutcome::Gone),
            Some(1) => Ok(SaveOutcome::Saved { version: number()? }),
            Some(2) => Ok(SaveOutcome::Conflict {
                current_version: number()?,
            }),
            Some(3) => match limit {
                Some(limit) => Err(StoreError::Data(DataError::TooLarge {
                    size: usize::try_from(number()?).unwrap_or(usize::MAX),
                    limit,
                })),
                None => Err(unexpected("save", &reply)),
            },
            _ => Err(unexpected("save", &reply)),
        }
    }

    async fn touch(&self, key: &SessionKey, now: Timestamp) -> Result<bool, StoreError> {
        let inner = &self.inner;
        let mut inv = SCRIPTS.touch.prepare_invoke();
        inv.key(inner.record_key(key))
            .key(inner.expiry_key_of(key))
            .arg(now.unix())
            .arg(inner.ttl_slack)
            .arg(key.to_hex());
        let touched: i64 = inner.script(&inv).await?;
        Ok(touched == 1)
    }

    async fn rotate(
        &self,
        old: &SessionKey,
        expected_version: Option<u64>,
        new: &SessionRecord,
        now: Timestamp,
    ) -> Result<RotateOutcome, StoreError> {
        if self.inner.is_cluster() {
            return self
                .inner
                .bounded(crate::cluster::rotate(
                    &self.inner,
                    old,
                    expected_version,
                    new,
                    now,
                ))
                .await;
        }
        let inner = &self.inner;
        let fields = codec::record_fields(new)?;
        let digest = new.user.as_ref().map(codec::user_digest);
        let expires_at = new.expires_at();
        let mut inv = SCRIPTS.rotate.prepare_invoke();
        inv.key(inner.record_key(old))
            .key(inner.record_key(&new.key))
            .key(&inner.expiry_key);
        if let Some(d) = &digest {
            inv.key(inner.user_key(d)).key(inner.epoch_key(d));
        }
        inv.arg(now.unix())
            .arg(&inner.prefix)
            .arg(old.to_hex())
            .arg(new.key.to_hex())
            .arg(digest.as_deref().unwrap_or(""))
            .arg(expires_at.unix())
            .arg(ttl_secs(expires_at, now, inner.ttl_slack))
            .arg(expected_version.map_or_else(String::new, |v| v.to_string()))
            .arg(new.authorized_at.unix())
            .arg(fields);
        let reply: Value = inner.script(&inv).await?;
        let Value::Array(items) = &reply else {
            return Err(unexpected("rotate", &reply));
        };
        match items.first().and_then(int_of) {
            Some(1) => Ok(RotateOutcome::Rotated),
            Some(0) => Ok(RotateOutcome::Gone),
            Some(2) => Ok(RotateOutcome::Conflict {
                current_version: items
                    .get(1)
                    .and_then(int_of)
                    .and_then(|v| u64::try_from(v).ok())
                    .ok_or_else(|| unexpected("rotate", &reply))?,
            }),
            Some(-1) => Err(StoreError::Collision),
            Some(-2) => Err(StoreError::AuthorizationChanged),
            _ => Err(unexpected("rotate", &reply)),
        }
    }

    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        if self.inner.is_cluster() {
            return self
                .inner
                .bounded(crate::cluster::delete(&self.inner, key))
                .await;
        }
        let inner = &self.inner;
        let mut inv = SCRIPTS.delete.prepare_invoke();
        inv.key(inner.record_key(key))
            .key(&inner.expiry_key)
            .arg(&inner.prefix)
            .arg(key.to_hex());
        let deleted: i64 = inner.script(&inv).await?;
        Ok(deleted == 1)
    }

    async fn delete_by_user(
        &self,
        user: &UserId,
        except: Option<&SessionKey>,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        if self.inner.is_cluster() {
            return self
                .inner
                .bounded(crate::cluster::delete_by_user(
                    &self.inner,
                    user,
                    except,
                    now,
                ))
                .await;
        }
        let inner = &self.inner;
        let digest = codec::user_digest(user);
        let mut inv = SCRIPTS.delete_by_user.prepare_invoke();
        inv.key(inner.user_key(&digest))
            .key(&inner.expiry_key)
            .key(inner.epoch_key(&digest))
            .arg(&inner.prefix)
            .arg(user.as_str())
            .arg(&digest)
            .arg(except.map_or_else(String::new, SessionKey::to_hex))
            .arg(now.unix())
            .arg(inner.epoch_keep());
        let n: i64 = inner.script(&inv).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn list_by_user(
        &self,
        user: &UserId,
        now: Timestamp,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        if self.inner.is_cluster() {
            return self
                .inner
                .bounded(crate::cluster::list_by_user(&self.inner, user, now))
                .await;
        }
        let inner = &self.inner;
        let digest = codec::user_digest(user);
        let mut inv = SCRIPTS.list_by_user.prepare_invoke();
        inv.key(inner.user_key(&digest))
            .key(&inner.expiry_key)
            .arg(&inner.prefix)
            .arg(&digest);
        let reply: Value = inner.script(&inv).await?;
        let Value::Array(items) = reply else {
            return Err(unexpected("list_by_user", &reply));
        };
        let mut out = Vec::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(hex), Some(fields)) = (it.next(), it.next()) {
            let key = string_of(hex)
                .as_deref()
                .and_then(codec::key_from_hex)
                .ok_or_else(|| StoreError::corrupt("a user index member is not a key"))?;
            let fields =
                fields_of(fields).ok_or_else(|| StoreError::corrupt("a record is not a hash"))?;
            if let Some(r) = codec::decode(key, &fields)?
                && r.user.as_ref() == Some(user)
                && r.is_live(now)
            {
                out.push(r);
            }
        }
        out.sort_by_key(|r| (r.created_at, r.handle));
        Ok(out)
    }

    async fn set_roles_for_user(
        &self,
        user: &UserId,
        roles: &RoleSet,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        if self.inner.is_cluster() {
            return self
                .inner
                .bounded(crate::cluster::set_roles_for_user(
                    &self.inner,
                    user,
                    roles,
                    now,
                ))
                .await;
        }
        let inner = &self.inner;
        let digest = codec::user_digest(user);
        let mut inv = SCRIPTS.set_roles_for_user.prepare_invoke();
        inv.key(inner.user_key(&digest))
            .key(&inner.expiry_key)
            .key(inner.epoch_key(&digest))
            .arg(&inner.prefix)
            .arg(user.as_str())
            .arg(&digest)
            .arg(codec::roles_json(roles))
            .arg(now.unix())
            .arg(inner.epoch_keep());
        let n: i64 = inner.script(&inv).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn delete_by_handle(
        &self,
        user: &UserId,
        handle: &SessionHandle,
    ) -> Result<bool, StoreError> {
        if self.inner.is_cluster() {
            return self
                .inner
                .bounded(crate::cluster::delete_by_handle(&self.inner, user, handle))
                .await;
        }
        let inner = &self.inner;
        let digest = codec::user_digest(user);
        let mut inv = SCRIPTS.delete_by_handle.prepare_invoke();
        inv.key(inner.user_key(&digest))
            .key(&inner.expiry_key)
            .arg(&inner.prefix)
            .arg(user.as_str())
            .arg(&digest)
            .arg(handle.to_string());
        let deleted: i64 = inner.script(&inv).await?;
        Ok(deleted == 1)
    }

    async fn delete_expired(&self, now: Timestamp, limit: usize) -> Result<u64, StoreError> {
        self.inner.delete_expired(now, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_expiry_minus_now_plus_slack_at_least_one_second() {
        let t = Timestamp::from_unix(1_000);
        assert_eq!(ttl_secs(Timestamp::from_unix(1_060), t, 0), 60);
        assert_eq!(ttl_secs(Timestamp::from_unix(1_060), t, 30), 90);
        assert_eq!(ttl_secs(Timestamp::from_unix(900), t, 0), 1);
        assert_eq!(
            ttl_secs(Timestamp::from_unix(i64::MAX), t, 60),
            1_000_000_000
        );
    }

    #[test]
    fn replies_are_read_leniently() {
        assert_eq!(int_of(&Value::Int(3)), Some(3));
        assert_eq!(int_of(&Value::BulkString(b"42".to_vec())), Some(42));
        assert_eq!(int_of(&Value::Nil), None);
        let fields = fields_of(Value::Array(vec![
            Value::BulkString(b"h".to_vec()),
            Value::BulkString(b"x".to_vec()),
        ]))
        .expect("fields");
        assert_eq!(fields.get("h").map(String::as_str), Some("x"));
        assert!(fields_of(Value::Array(vec![Value::BulkString(b"h".to_vec())])).is_none());
    }
}
