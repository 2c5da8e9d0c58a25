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

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
}

/// The cluster-only scripts. Each touches only its declared `KEYS`, all in one slot.
pub(crate) struct ClusterScripts {
    user_add: Script,
    drop_record: Script,
    take_old: Script,
    bump: Script,
    read_user: Script,
    rec_delete_for_user: Script,
    rec_stamp: Script,
    rec_set_roles: Script,
    rec_delete_handle: Script,
    expire_one: Script,
}

static CLUSTER: LazyLock<ClusterScripts> = LazyLock::new(|| ClusterScripts {
    user_add: script(USER_ADD),
    drop_record: script(DROP_RECORD),
    take_old: script(TAKE_OLD),
    bump: script(BUMP),
    read_user: script(READ_USER),
    rec_delete_for_user: script(REC_DELETE_FOR_USER),
    rec_stamp: script(REC_STAMP),
    rec_set_roles: script(REC_SET_ROLES),
    rec_delete_handle: script(REC_DELETE_HANDLE),
    expire_one: script(EXPIRE_ONE),
});

/// User slot. KEYS: user index, change time. ARGV: key hex, authorized_at.
/// Returns 1 (added to the index), or 0 if the change time is later than `authorized_at`
/// (nothing written).
const USER_ADD: &str = r"
if stale(KEYS[2], ARGV[2]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
return 1
";

/// Record slot. KEYS: record, bucket expiry index. ARGV: key hex, uk or ''.
/// Deletes the record and its expiry entry; returns 1 if the record existed.
const DROP_RECORD: &str = r"
redis.call('ZREM', KEYS[2], member(ARGV[1], ARGV[2]))
return redis.call('DEL', KEYS[1])
";

/// Record slot. KEYS: record, bucket expiry index. ARGV: now, key hex, expected version or '',
/// '1' to delete the live record (take it), '0' to only check it.
/// Returns {1, uk or ''} live (and deleted when taking), {0, uk or ''} gone (deleted if it had
/// expired), {2, version} live at another version (nothing written).
const TAKE_OLD: &str = r"
local f = redis.call('HMGET', KEYS[1], 's', 'i', 'x', 'uk', 'v')
if not f[1] then return {0, ''} end
local uk = f[4] or ''
local function drop()
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], member(ARGV[2], f[4]))
end
if tonumber(ARGV[1]) >= expiry(tonumber(f[1]), tonumber(f[2]), tonumber(f[3])) then
  drop()
  return {0, uk}
end
if ARGV[3] ~= '' and f[5] ~= ARGV[3] then return {2, f[5]} end
if ARGV[4] == '1' then drop() end
return {1, uk}
";

/// User slot. KEYS: user index, change time. ARGV: now, how long to keep the change time (s).
/// Records the change time (the later of the stored one and `now`); returns it, then the
/// index's members.
const BUMP: &str = r"
local out = {bump_epoch(KEYS[2], ARGV[1], ARGV[2])}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do out[#out + 1] = m end
return out
";

/// User slot. KEYS: user index, change time. Returns the change time or '', then the members.
const READ_USER: &str = r"
local out = {redis.call('GET', KEYS[2]) or ''}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do out[#out + 1] = m end
return out
";

/// Record slot. KEYS: record, bucket expiry index. ARGV: user id, key hex, uk.
/// Returns 1 (the user's record, deleted), 0 (no record: its expiry entry dropped), 2 (a
/// record of someone else, untouched).
const REC_DELETE_FOR_USER: &str = r"
local u = redis.call('HGET', KEYS[1], 'u')
if u == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], member(ARGV[2], ARGV[3]))
  return 1
end
if not u then
  redis.call('ZREM', KEYS[2], member(ARGV[2], ARGV[3]))
  return 0
end
return 2
";

/// Record slot. KEYS: record. ARGV: user id, change time.
/// Sets `z` to the change time if the record is the user's and older; returns 1 if it is.
const REC_STAMP: &str = r"
if redis.call('HGET', KEYS[1], 'u') ~= ARGV[1] then return 0 end
stamp(KEYS[1], tonumber(ARGV[2]))
return 1
";

/// Record slot. KEYS: record, bucket expiry index. ARGV: user id, key hex, uk, roles JSON,
/// change time. Returns 1 (the user's record: new roles, `z`, version bumped), 0 (no record:
/// its expiry entry dropped), 2 (someone else's).
const REC_SET_ROLES: &str = r"
local u = redis.call('HGET', KEYS[1], 'u')
if u == ARGV[1] then
  redis.call('HSET', KEYS[1], 'r', ARGV[4])
  stamp(KEYS[1], tonumber(ARGV[5]))
  redis.call('HINCRBY', KEYS[1], 'v', 1)
  return 1
end
if not u then
  redis.call('ZREM', KEYS[2], member(ARGV[2], ARGV[3]))
  return 0
end
return 2
";

/// Record slot. KEYS: record, bucket expiry index. ARGV: user id, key hex, uk, handle.
/// Returns 1 (the user's session with that handle, deleted), 0 (no record), 2 (another one).
const REC_DELETE_HANDLE: &str = r"
local f = redis.call('HMGET', KEYS[1], 'u', 'h')
if not f[1] then
  redis.call('ZREM', KEYS[2], member(ARGV[2], ARGV[3]))
  return 0
end
if f[1] == ARGV[1] and f[2] == ARGV[4] then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], member(ARGV[2], ARGV[3]))
  return 1
end
return 2
";

/// Record slot. KEYS: record, bucket expiry index. ARGV: now, expiry member.
/// Returns 1 (expired at `now`: deleted), 0 (already gone: entry dropped), 2 (its expiry moved
/// later: filed again).
const EXPIRE_ONE: &str = r"
local f = redis.call('HMGET', KEYS[1], 's', 'i', 'x')
if not f[1] then
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 0
end
local e = expiry(tonumber(f[1]), tonumber(f[2]), tonumber(f[3]))
if e <= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 1
end
redis.call('ZADD', KEYS[2], score(e), ARGV[2])
return 2
";

/// Deletes a record this store just wrote (a refused or failed create), ignoring failures:
/// its token was never handed out, so a leftover can never be presented.
async fn undo(inner: &Inner, key: &SessionKey, digest: Option<&str>) {
    let mut inv = CLUSTER.drop_record.prepare_invoke();
    inv.key(inner.record_key(key))
        .key(inner.expiry_key_of(key))
        .arg(key.to_hex())
        .arg(digest.unwrap_or(""));
    if let Err(e) = inner.script::<i64>(&inv).await {
        tracing::debug!(error = %e, "RedisStore (cluster): could not undo a refused record");
    }
}

/// Removes members from a user's index (one `SREM` on the user's slot). A failure is logged
/// and ignored: a member whose record is gone is skipped and dropped by later operations.
async fn unindex(inner: &Inner, digest: &str, hexes: &[String]) {
    if hexes.is_empty() {
        return;
    }
    let cmd = redis::cmd("SREM")
        .arg(inner.user_key(digest))
        .arg(hexes)
        .to_owned();
    if let Err(e) = inner.query::<i64>(&cmd).await {
        tracing::debug!(error = %e, "RedisStore (cluster): could not trim a user index");
    }
}

/// The second step of writing a signed-in record: add it to its user's index, in one script on
/// the user's slot that also reads the user's change time. If the change is later than the
/// record's `authorized_at`, the record is deleted again and the write refused.
///
/// Ordering (`docs/redis.md`): a per-user operation first records the change time and reads
/// the index in one script on the same slot. Either this script ran first (then the operation
/// finds the record in the index and updates or deletes it) or after (then this script sees
/// the change time and refuses). The record was written before this script, so the operation
/// always finds it in its own slot.
async fn admit(
    inner: &Inner,
    key: &SessionKey,
    digest: &str,
    authorized_at: Timestamp,
) -> Result<(), StoreError> {
    let mut inv = CLUSTER.user_add.prepare_invoke();
    inv.key(inner.user_key(digest))
        .key(inner.epoch_key(digest))
        .arg(key.to_hex())
        .arg(authorized_at.unix());
    match inner.script::<i64>(&inv).await {
        Ok(1) => Ok(()),
        Ok(0) => {
            undo(inner, key, Some(digest)).await;
            Err(StoreError::AuthorizationChanged)
        }
        Ok(n) => Err(unexpected("user_add", &Value::Int(n))),
        Err(e) => {
            // The record may or may not be indexed; the caller fails the request, so its token
            // is never delivered. Remove the record if the cluster still answers.
            undo(inner, key, Some(digest)).await;
            Err(e)
        }
    }
}

/// Writes a record into its bucket (the `create` script, without the user's keys).
async fn write_record(inner: &Inner, record: &SessionRecord) -> Result<bool, StoreError> {
    let fields = codec::record_fields(record)?;
    let digest = record.user.as_ref().map(codec::user_digest);
    let expires_at = record.expires_at();
    let mut inv = SCRIPTS.create.prepare_invoke();
    inv.key(inner.record_key(&record.key))
        .key(inner.expiry_key_of(&record.key))
        .arg(record.key.to_hex())
        .arg(digest.as_deref().unwrap_or(""))
        .arg(expires_at.unix())
        .arg(ttl_secs(expires_at, record.last_seen_at, inner.ttl_slack))
        .arg(record.authorized_at.unix())
        .arg(fields);
    let created: i64 = inner.script(&inv).await?;
    Ok(created == 1)
}

/// `create`: the record into its bucket, then (signed in) [`admit`] on the user's slot.
pub(crate) async fn create(inner: &Inner, record: &SessionRecord) -> Result<(), StoreError> {
    if !write_record(inner, record).await? {
        return Err(StoreError::Collision);
    }
    if let Some(user) = &record.user {
        admit(
            inner,
            &record.key,
            &codec::user_digest(user),
            record.authorized_at,
        )
        .await?;
    }
    Ok(())
}

/// Runs `take_old` on the old record: `take` deletes it when live at the expected version.
async fn take_old(
    inner: &Inner,
    old: &SessionKey,
    expected_version: Option<u64>,
    now: Timestamp,
    take: bool,
) -> Result<(i64, String), StoreError> {
    let mut inv = CLUSTER.take_old.prepare_invoke();
    inv.key(inner.record_key(old))
        .key(inner.expiry_key_of(old))
        .arg(now.unix())
        .arg(old.to_hex())
        .arg(expected_version.map_or_else(String::new, |v| v.to_string()))
        .arg(if take { "1" } else { "0" });
    let reply: Value = inner.script(&inv).await?;
    let Value::Array(items) = &reply else {
        return Err(unexpected("rotate", &reply));
    };
    let code = items
        .first()
        .and_then(int_of)
        .ok_or_else(|| unexpected("rotate", &reply))?;
    let second = match items.get(1) {
        Some(Value::Int(n)) => n.to_string(),
        Some(v) => string_of(v.clone()).unwrap_or_default(),
        None => String::new(),
    };
    Ok((code, second))
}

fn rotate_outcome(code: i64, second: &str) -> Result<Option<RotateOutcome>, StoreError> {
    match code {
        1 => Ok(None),
        0 => Ok(Some(RotateOutcome::Gone)),
        2 => Ok(Some(RotateOutcome::Conflict {
            current_version: second
                .parse()
                .map_err(|_| StoreError::backend("unexpected version in a rotate reply"))?,
        })),
        _ => Err(StoreError::backend("unexpected reply from a rotate script")),
    }
}

/// `rotate` across slots: check the old record, write the new one, admit it to its user,
/// then take (delete) the old one at the expected version; any refusal after the write undoes
/// it, so the old record stays as it was.
pub(crate) async fn rotate(
    inner: &Inner,
    old: &SessionKey,
    expected_version: Option<u64>,
    new: &SessionRecord,
    now: Timestamp,
) -> Result<RotateOutcome, StoreError> {
    let (code, second) = take_old(inner, old, expected_version, now, false).await?;
    if let Some(out) = rotate_outcome(code, &second)? {
        if code == 0 && !second.is_empty() {
            unindex(inner, &second, &[old.to_hex()]).await;
        }
        return Ok(out);
    }
    if !write_record(inner, new).await? {
        return Err(StoreError::Collision);
    }
    let digest = new.user.as_ref().map(codec::user_digest);
    if let Some(d) = &digest {
        admit(inner, &new.key, d, new.authorized_at).await?;
    }
    let taken = take_old(inner, old, expected_version, now, true).await;
    let (code, second) = match taken {
        Ok(v) => v,
        Err(e) => {
            // The old record may or may not be gone; the request fails, the new token is
            // never delivered. Remove the new record if the cluster still answers.
            undo(inner, &new.key, digest.as_deref()).await;
            return Err(e);
        }
    };
    if let Some(out) = rotate_outcome(code, &second)? {
        // The old record changed or went away between the check and now: no successor.
        undo(inner, &new.key, digest.as_deref()).await;
        if let Some(d) = &digest {
            unindex(inner, d, &[new.key.to_hex()]).await;
        }
        return Ok(out);
    }
    if !second.is_empty() {
        unindex(inner, &second, &[old.to_hex()]).await;
    }
    Ok(RotateOutcome::Rotated)
}

/// `delete`: one script on the record's slot, then the user index entry.
pub(crate) async fn delete(inner: &Inner, key: &SessionKey) -> Result<bool, StoreError> {
    let (code, uk) = take_old(inner, key, None, Timestamp::from_unix(i64::MIN), true).await?;
    if !uk.is_empty() {
        unindex(inner, &uk, &[key.to_hex()]).await;
    }
    Ok(code == 1)
}

/// The change time (when `bump`) or its stored value, and the members of the user's index.
async fn user_members(
    inner: &Inner,
    digest: &str,
    bump_at: Option<Timestamp>,
) -> Result<(Option<i64>, Vec<String>), StoreError> {
    let mut inv = match bump_at {
        Some(_) => CLUSTER.bump.prepare_invoke(),
        None => CLUSTER.read_user.prepare_invoke(),
    };
    inv.key(inner.user_key(digest)).key(inner.epoch_key(digest));
    if let Some(now) = bump_at {
        inv.arg(now.unix()).arg(inner.epoch_keep());
    }
    let reply: Value = inner.script(&inv).await?;
    let Value::Array(items) = reply else {
        return Err(unexpected("user index", &reply));
    };
    let mut it = items.into_iter();
    let changed = it.next().as_ref().and_then(int_of);
    let members = it.filter_map(string_of).collect();
    Ok((changed, members))
}

/// Runs a per-record script of a per-user operation: KEYS record and its bucket's expiry
/// index, ARGV user id, key hex, uk, then `extra`.
async fn per_record(
    inner: &Inner,
    script: &Script,
    user: &UserId,
    digest: &str,
    hex: &str,
    extra: &[String],
) -> Result<Option<i64>, StoreError> {
    let Some(key) = codec::key_from_hex(hex) else {
        return Ok(None);
    };
    let mut inv = script.prepare_invoke();
    inv.key(inner.record_key(&key))
        .key(inner.expiry_key_of(&key))
        .arg(user.as_str())
        .arg(hex)
        .arg(digest);
    for a in extra {
        inv.arg(a);
    }
    Ok(Some(inner.script(&inv).await?))
}

/// `delete_by_user`: record the change time and read the index (one script, user slot), then
/// delete each listed record but `except` (one script each, record slots) and stamp `except`.
pub(crate) async fn delete_by_user(
    inner: &Inner,
    user: &UserId,
    except: Option<&SessionKey>,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let digest = codec::user_digest(user);
    let (changed, members) = user_members(inner, &digest, Some(now)).await?;
    let changed = changed.ok_or_else(|| StoreError::backend("no change time in a reply"))?;
    let keep = except.map(SessionKey::to_hex);
    let mut deleted = 0;
    let mut gone = Vec::new();
    for m in members {
        if keep.as_deref() == Some(m.as_str()) {
            if let Some(key) = except {
                let mut inv = CLUSTER.rec_stamp.prepare_invoke();
                inv.key(inner.record_key(key))
                    .arg(user.as_str())
                    .arg(changed);
                let _: i64 = inner.script(&inv).await?;
            }
            continue;
        }
        match per_record(inner, &CLUSTER.rec_delete_for_user, user, &digest, &m, &[]).await? {
            Some(1) => {
                deleted += 1;
                gone.push(m);
            }
            Some(0) | None => gone.push(m),
            Some(_) => {}
        }
    }
    unindex(inner, &digest, &gone).await;
    Ok(deleted)
}

/// `set_roles_for_user`: record the change time and read the index, then give each listed
/// record the roles and the change time.
pub(crate) async fn set_roles_for_user(
    inner: &Inner,
    user: &UserId,
    roles: &RoleSet,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let digest = codec::user_digest(user);
    let (changed, members) = user_members(inner, &digest, Some(now)).await?;
    let changed = changed.ok_or_else(|| StoreError::backend("no change time in a reply"))?;
    let extra = [codec::roles_json(roles), changed.to_string()];
    let mut n = 0;
    let mut gone = Vec::new();
    for m in members {
        match per_record(inner, &CLUSTER.rec_set_roles, user, &digest, &m, &extra).await? {
            Some(1) => n += 1,
            Some(0) | None => gone.push(m),
            Some(_) => {}
        }
    }
    unindex(inner, &digest, &gone).await;
    Ok(n)
}

/// `list_by_user`: the change time and the index (one script, user slot), then one `HGETALL`
/// per member; records that are not current (a per-user change is still reaching them) are
/// left out.
pub(crate) async fn list_by_user(
    inner: &Inner,
    user: &UserId,
    now: Timestamp,
) -> Result<Vec<SessionRecord>, StoreError> {
    let digest = codec::user_digest(user);
    let (changed, members) = user_members(inner, &digest, None).await?;
    let changed = changed.map(Timestamp::from_unix);
    let mut out = Vec::with_capacity(members.len());
    let mut gone = Vec::new();
    for m in members {
        let Some(key) = codec::key_from_hex(&m) else {
            gone.push(m);
            continue;
        };
        let cmd = redis::cmd("HGETALL").arg(inner.record_key(&key)).to_owned();
        let reply: Value = inner.query(&cmd).await?;
        let fields =
            fields_of(reply).ok_or_else(|| StoreError::corrupt("a record is not a hash"))?;
        match codec::decode(key, &fields)? {
            None => gone.push(m),
            Some(r)
                if r.user.as_ref() == Some(user)
                    && r.is_live(now)
                    && r.is_authorized_after(changed) =>
            {
                out.push(r);
            }
            Some(_) => {}
        }
    }
    unindex(inner, &digest, &gone).await;
    out.sort_by_key(|r| (r.created_at, r.handle));
    Ok(out)
}

/// `delete_by_handle`: the index, then each member until the handle is found.
pub(crate) async fn delete_by_handle(
    inner: &Inner,
    user: &UserId,
    handle: &SessionHandle,
) -> Result<bool, StoreError> {
    let digest = codec::user_digest(user);
    let (_, members) = user_members(inner, &digest, None).await?;
    let extra = [handle.to_string()];
    let mut gone = Vec::new();
    let mut found = false;
    for m in members {
        match per_record(inner, &CLUSTER.rec_delete_handle, user, &digest, &m, &extra).await? {
            Some(1) => {
                found = true;
                gone.push(m);
                break;
            }
            Some(0) | None => gone.push(m),
            Some(_) => {}
        }
    }
    unindex(inner, &digest, &gone).await;
    Ok(found)
}

/// `delete_expired` over the buckets, from where the last call stopped: per bucket, the
/// expired members of its expiry index (one `ZRANGE`), then one script per member on its
/// record's slot, then one `SREM` per user whose index held it. Stops after `limit` deletions
/// or `limit + 1000` examined members.
pub(crate) async fn delete_expired(
    inner: &Inner,
    now: Timestamp,
    limit: usize,
) -> Result<u64, StoreError> {
    let start = inner.sweep_cursor.load(Ordering::Relaxed) % BUCKETS;
    let budget = limit.saturating_add(1000);
    let (mut deleted, mut examined) = (0usize, 0usize);
    for i in 0..BUCKETS {
        if deleted >= limit || examined >= budget {
            break;
        }
        let bucket = (start + i) % BUCKETS;
        inner.sweep_cursor.store(bucket, Ordering::Relaxed);
        let expiry_key = format!("{{{}:{bucket:02x}}}:x", inner.namespace);
        let want = (limit - deleted).min(500);
        let cmd = redis::cmd("ZRANGE")
            .arg(&expiry_key)
            .arg("-inf")
            .arg(now.unix())
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(want)
            .to_owned();
        let batch: Vec<String> = inner.query(&cmd).await?;
        let mut by_user: std::collections::HashMap<String, Vec<String>> =
            std::collections::HashMap::new();
        for m in batch {
            examined += 1;
            let (hex, uk) = m.split_once(':').unwrap_or((m.as_str(), ""));
            let Some(key) = codec::key_from_hex(hex) else {
                continue;
            };
            let mut inv = CLUSTER.expire_one.prepare_invoke();
            inv.key(inner.record_key(&key))
                .key(&expiry_key)
                .arg(now.unix())
                .arg(&m);
            let code: i64 = inner.script(&inv).await?;
            if code == 1 {
                deleted += 1;
            }
            if (code == 0 || code == 1) && !uk.is_empty() {
                by_user
                    .entry(uk.to_owned())
                    .or_default()
                    .push(hex.to_owned());
            }
        }
        for (uk, hexes) in by_user {
            unindex(inner, &uk, &hexes).await;
        }
        if deleted < limit {
            // This bucket has no more expired members: the next call starts at the next one.
            inner
                .sweep_cursor
                .store((bucket + 1) % BUCKETS, Ordering::Relaxed);
        }
    }
    Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
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
