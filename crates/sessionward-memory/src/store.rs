use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hashbrown::HashTable;
use parking_lot::Mutex;
use sessionward_core::{
    ChangeSet, RoleSet, RotateOutcome, SaveOutcome, SessionData, SessionHandle, SessionKey,
    SessionRecord, SessionStore, StoreError, SweepConfig, Sweeper, SweeperStatus, Timestamp,
    UserId,
};

mod builder;
mod entry;
mod inner;

pub use builder::MemoryStoreBuilder;

const SHARDS: usize = 64;
/// How many expired records one sweeper pass deletes per call (it loops until none are left).
const SWEEP_BATCH: usize = 10_000;
/// `authenticated_at` of an anonymous session.
const NO_AUTH: u32 = 0;

/// Times are kept as unsigned 32-bit seconds since the Unix epoch (until 2106), which keeps an
/// entry at 144 bytes; earlier times clamp to the epoch, later ones to 2106.
fn secs(t: Timestamp) -> u32 {
    u32::try_from(t.unix().max(0)).unwrap_or(u32::MAX)
}

fn ts(secs: u32) -> Timestamp {
    Timestamp::from_unix(i64::from(secs))
}

/// What happens when a user who already holds the maximum number of sessions signs in again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PerUserLimit {
    /// End the user's oldest session to make room (the default).
    EvictOldest,
    /// Refuse the new session with [`StoreError::UserLimitReached`].
    Refuse,
}

/// One record, kept compact: 144 bytes plus its data and user agent text.
struct Entry {
    key: SessionKey,
    handle: SessionHandle,
    user: Option<UserId>,
    roles: RoleSet,
    data: SessionData,
    created_at: u32,
    last_seen_at: u32,
    authenticated_at: u32,
    absolute_expires_at: u32,
    /// The expiry bucket this entry is filed under in its shard's expiry index.
    filed_at: u32,
    version: u64,
    idle_secs: u32,
    user_agent: Option<Box<str>>,
}

#[derive(Default)]
struct Shard {
    table: HashTable<Box<Entry>>,
    /// Expiry second -> key prefixes filed there. An entry is filed once, under `filed_at`;
    /// when its expiry moves later (activity), the sweeper re-files it when it reaches the old
    /// bucket, so the hot path never touches this index.
    expiry: BTreeMap<u32, Vec<u64>>,
}

/// User -> prefixes of the keys of their sessions.
type UserIndex = HashMap<UserId, UserKeys>;

/// A user's key prefixes: inline while the user has one session (most users), so the index
/// costs no allocation for them.
type UserKeys = smallvec::SmallVec<[u64; 1]>;

/// The shard of a key prefix: bits the hash tables do not use for buckets or tags.
fn shard_of(prefix: u64) -> usize {
    usize::try_from((prefix >> 32) % (SHARDS as u64)).unwrap_or(0)
}

struct Inner {
    shards: Box<[Mutex<Shard>]>,
    /// User -> keys of their sessions. May hold stale keys (of records already deleted or
    /// expired), which every reader skips and removes; never misses a live record, because a
    /// record is only ever added to a user while that user's index shard is locked.
    users: Box<[Mutex<UserIndex>]>,
    user_hasher: RandomState,
    count: AtomicUsize,
    max_sessions: Option<usize>,
    max_per_user: Option<(usize, PerUserLimit)>,
}

/// The embedded, in-process session store. Cloning gives another handle to the same store.
///
/// See the [crate docs](crate) for its design and figures.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
    /// Dropped with the last clone of the store, which ends the sweeper at once.
    sweeper: Arc<Sweeper>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("sessions", &self.len())
            .field("max_sessions", &self.inner.max_sessions)
            .field("max_per_user", &self.inner.max_per_user)
            .field("sweeper", &self.sweeper)
            .finish()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An unbounded store with the default sweeper (every 60 s on the system clock, if a
    /// Tokio runtime is running).
    #[must_use]
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder for bounds, the sweeper interval and the clock.
    #[must_use]
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder::default()
    }

    /// Number of records held, live or expired but not yet swept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.count.load(Ordering::Relaxed)
    }

    /// Whether the store holds no record.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The state of the background sweeper.
    #[must_use]
    pub fn sweeper(&self) -> SweeperStatus {
        self.sweeper.status()
    }
}

#[async_trait::async_trait]
impl SessionStore for MemoryStore {
    async fn create(&self, record: &SessionRecord) -> Result<(), StoreError> {
        let inner = &self.inner;
        let Some(user) = &record.user else {
            return inner.insert_record(record, None);
        };
        let mut users = inner.users_of(user).lock();
        let shared = users
            .get_key_value(user)
            .map_or_else(|| user.clone(), |(k, _)| k.clone());
        let prefixes = users.entry(shared.clone()).or_default();
        let mut result = Ok(());
        if inner.max_per_user.is_some() {
            let mut keys = inner.keys_of(user, prefixes);
            result = inner.enforce_user_limit(user, &mut keys, record.last_seen_at);
            *prefixes = keys.iter().map(SessionKey::prefix_u64).collect();
        }
        result = result.and_then(|()| inner.insert_record(record, Some(shared)));
        if result.is_ok() {
            prefixes.push(record.key.prefix_u64());
        }
        if prefixes.is_empty() {
            users.remove(user);
        }
        result
    }

    async fn load(
        &self,
        key: &SessionKey,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let shard = self.inner.shard(key).lock();
        Ok(shard
            .find(key)
            .filter(|e| e.is_live(now))
            .map(Entry::to_record))
    }

    async fn save(
        &self,
        key: &SessionKey,
        expected_version: Option<u64>,
        changes: &ChangeSet,
        now: Timestamp,
    ) -> Result<SaveOutcome, StoreError> {
        let mut shard = self.inner.shard(key).lock();
        let Some(entry) = shard.find_mut(key) else {
            return Ok(SaveOutcome::Gone);
        };
        if !entry.is_live(now) {
            return Ok(SaveOutcome::Gone);
        }
        if changes.is_structural() && expected_version.is_some_and(|v| v != entry.version) {
            return Ok(SaveOutcome::Conflict {
                current_version: entry.version,
            });
        }
        // Compute everything that can fail before changing anything.
        let data = entry.data.apply(&changes.data, changes.data_limit)?;
        entry.data = data;
        if let Some(at) = changes.last_seen_at {
            entry.last_seen_at = entry.last_seen_at.max(secs(at));
        }
        if let Some(at) = changes.absolute_expires_at {
            entry.absolute_expires_at = secs(at);
        }
        if let Some(idle) = changes.idle_timeout {
            entry.idle_secs = u32::try_from(idle.as_secs()).unwrap_or(u32::MAX);
        }
        entry.version += 1;
        let version = entry.version;
        let (k, at, mut filed) = (entry.key, entry.expires_at(), entry.filed_at);
        shard.refile_if_earlier(k, at, &mut filed);
        if let Some(entry) = shard.find_mut(key) {
            entry.filed_at = filed;
        }
        Ok(SaveOutcome::Saved { version })
    }

    async fn touch(&self, key: &SessionKey, now: Timestamp) -> Result<bool, StoreError> {
        let mut shard = self.inner.shard(key).lock();
        match shard.find_mut(key) {
            Some(e) if e.is_live(now) => {
                e.last_seen_at = e.last_seen_at.max(secs(now));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn rotate(
        &self,
        old: &SessionKey,
        expected_version: Option<u64>,
        new: &SessionRecord,
        now: Timestamp,
    ) -> Result<RotateOutcome, StoreError> {
        let inner = &self.inner;
        // Hold the new owner's index shard for the whole rotation, so that a concurrent
        // delete_by_user of that user either sees the old record or the new one, never neither.
        let mut users = new.user.as_ref().map(|u| inner.users_of(u).lock());
        // Take the old record if it is live and at the expected version.
        let old_entry = {
            let mut shard = inner.shard(old).lock();
            let Some(e) = shard.find(old) else {
                return Ok(RotateOutcome::Gone);
            };
            let live = e.is_live(now);
            if live && expected_version.is_some_and(|v| v != e.version) {
                return Ok(RotateOutcome::Conflict {
                    current_version: e.version,
                });
            }
            let Some(taken) = shard.remove(old) else {
                return Ok(RotateOutcome::Gone);
            };
            if !live {
                drop(shard);
                inner.count.fetch_sub(1, Ordering::Relaxed);
                drop(users);
                if let Some(u) = &taken.user {
                    inner.unindex(u, old);
                }
                return Ok(RotateOutcome::Gone);
            }
            taken
        };
        // A session that becomes this user's (sign-in) counts against their bound.
        if let (Some(users), Some(user)) = (users.as_mut(), &new.user)
            && old_entry.user.as_ref() != Some(user)
            && inner.max_per_user.is_some()
        {
            let prefixes = users.entry(user.clone()).or_default();
            let mut keys = inner.keys_of(user, prefixes);
            let bound = inner.enforce_user_limit(user, &mut keys, now);
            *prefixes = keys.iter().map(SessionKey::prefix_u64).collect();
            if let Err(e) = bound {
                let _ = inner.shard(old).lock().insert(old_entry);
                return Err(e);
            }
        }
        let entry = Box::new(Entry::from_record(new));
        if let Err(entry) = inner.shard(&new.key).lock().insert(entry) {
            drop(entry);
            // Put the old record back; nothing changed.
            let _ = inner.shard(old).lock().insert(old_entry);
            return Err(StoreError::Collision);
        }
        if let (Some(users), Some(user)) = (users.as_mut(), &new.user) {
            let prefixes = users.entry(user.clone()).or_default();
            prefixes.retain(|p| *p != old.prefix_u64());
            prefixes.push(new.key.prefix_u64());
        }
        drop(users);
        if let Some(old_user) = &old_entry.user
            && Some(old_user) != new.user.as_ref()
        {
            inner.unindex(old_user, old);
        }
        Ok(RotateOutcome::Rotated)
    }

    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        match self.inner.remove_record(key) {
            Some(e) => {
                if let Some(u) = &e.user {
                    self.inner.unindex(u, key);
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn delete_by_user(
        &self,
        user: &UserId,
        except: Option<&SessionKey>,
    ) -> Result<u64, StoreError> {
        let inner = &self.inner;
        let mut users = inner.users_of(user).lock();
        let Some(prefixes) = users.remove(user) else {
            return Ok(0);
        };
        let keys = inner.keys_of(user, &prefixes);
        let mut kept = Vec::new();
        let mut deleted = 0;
        for key in keys {
            if Some(&key) == except {
                kept.push(key.prefix_u64());
                continue;
            }
            let mut shard = inner.shard(&key).lock();
            if shard
                .find(&key)
                .is_some_and(|e| e.user.as_ref() == Some(user))
            {
                shard.remove(&key);
                inner.count.fetch_sub(1, Ordering::Relaxed);
                deleted += 1;
            }
        }
        if !kept.is_empty() {
            users.insert(user.clone(), kept.into());
        }
        Ok(deleted)
    }

    async fn list_by_user(
        &self,
        user: &UserId,
        now: Timestamp,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let mut users = self.inner.users_of(user).lock();
        let Some(prefixes) = users.get_mut(user) else {
            return Ok(Vec::new());
        };
        let mut keys = self.inner.keys_of(user, prefixes);
        let mut live = self.inner.live_of(user, &mut keys, now);
        *prefixes = keys.iter().map(SessionKey::prefix_u64).collect();
        if prefixes.is_empty() {
            users.remove(user);
        }
        live.sort_by_key(|r| (r.created_at, r.handle));
        Ok(live)
    }

    async fn set_roles_for_user(&self, user: &UserId, roles: &RoleSet) -> Result<u64, StoreError> {
        let users = self.inner.users_of(user).lock();
        let Some(prefixes) = users.get(user) else {
            return Ok(0);
        };
        let mut changed = 0;
        for key in &self.inner.keys_of(user, prefixes) {
            let mut shard = self.inner.shard(key).lock();
            if let Some(e) = shard.find_mut(key)
                && e.user.as_ref() == Some(user)
            {
                e.roles = roles.clone();
                e.version += 1;
                changed += 1;
            }
        }
        Ok(changed)
    }

    async fn delete_by_handle(
        &self,
        user: &UserId,
        handle: &SessionHandle,
    ) -> Result<bool, StoreError> {
        let inner = &self.inner;
        let mut users = inner.users_of(user).lock();
        let Some(prefixes) = users.get_mut(user) else {
            return Ok(false);
        };
        let mut found = None;
        for key in &inner.keys_of(user, prefixes) {
            let mut shard = inner.shard(key).lock();
            if shard
                .find(key)
                .is_some_and(|e| e.handle == *handle && e.user.as_ref() == Some(user))
            {
                shard.remove(key);
                inner.count.fetch_sub(1, Ordering::Relaxed);
                found = Some(*key);
                break;
            }
        }
        if let Some(key) = found {
            prefixes.retain(|p| *p != key.prefix_u64());
            if prefixes.is_empty() {
                users.remove(user);
            }
        }
        Ok(found.is_some())
    }

    async fn delete_expired(&self, now: Timestamp, limit: usize) -> Result<u64, StoreError> {
        Ok(self.inner.delete_expired(now, limit))
    }
}
