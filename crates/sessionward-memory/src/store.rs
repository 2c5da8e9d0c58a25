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

impl Entry {
    fn from_record(r: &SessionRecord) -> Self {
        Self {
            key: r.key,
            handle: r.handle,
            user: r.user.clone(),
            roles: r.roles.clone(),
            data: r.data.clone(),
            created_at: secs(r.created_at),
            last_seen_at: secs(r.last_seen_at),
            authenticated_at: r.authenticated_at.map_or(NO_AUTH, secs),
            absolute_expires_at: secs(r.absolute_expires_at),
            version: r.version,
            filed_at: secs(r.expires_at()),
            idle_secs: u32::try_from(r.idle_timeout.as_secs()).unwrap_or(u32::MAX),
            user_agent: r.user_agent.as_deref().map(Box::from),
        }
    }

    fn to_record(&self) -> SessionRecord {
        SessionRecord {
            key: self.key,
            handle: self.handle,
            user: self.user.clone(),
            roles: self.roles.clone(),
            data: self.data.clone(),
            created_at: ts(self.created_at),
            last_seen_at: ts(self.last_seen_at),
            authenticated_at: (self.authenticated_at != NO_AUTH).then(|| ts(self.authenticated_at)),
            idle_timeout: Duration::from_secs(u64::from(self.idle_secs)),
            absolute_expires_at: ts(self.absolute_expires_at),
            user_agent: self.user_agent.as_deref().map(str::to_owned),
            version: self.version,
        }
    }

    fn expires_at(&self) -> u32 {
        self.last_seen_at
            .saturating_add(self.idle_secs)
            .min(self.absolute_expires_at)
    }

    fn is_live(&self, now: Timestamp) -> bool {
        now.unix() < i64::from(self.expires_at())
    }
}

#[derive(Default)]
struct Shard {
    table: HashTable<Box<Entry>>,
    /// Expiry second -> key prefixes filed there. An entry is filed once, under `filed_at`;
    /// when its expiry moves later (activity), the sweeper re-files it when it reaches the old
    /// bucket, so the hot path never touches this index.
    expiry: BTreeMap<u32, Vec<u64>>,
}

impl Shard {
    fn find(&self, key: &SessionKey) -> Option<&Entry> {
        self.table
            .find(key.prefix_u64(), |e| e.key == *key)
            .map(|b| &**b)
    }

    fn find_mut(&mut self, key: &SessionKey) -> Option<&mut Entry> {
        self.table
            .find_mut(key.prefix_u64(), |e| e.key == *key)
            .map(|b| &mut **b)
    }

    fn remove(&mut self, key: &SessionKey) -> Option<Box<Entry>> {
        match self.table.find_entry(key.prefix_u64(), |e| e.key == *key) {
            Ok(occupied) => Some(occupied.remove().0),
            Err(_) => None,
        }
    }

    /// The keys of the entries whose key starts with `prefix` (almost always one or none; the
    /// indexes hold 8-byte prefixes rather than 32-byte keys to save memory).
    fn keys_with_prefix(&self, prefix: u64, out: &mut Vec<SessionKey>) {
        out.clear();
        out.extend(
            self.table
                .iter_hash(prefix)
                .filter(|e| e.key.prefix_u64() == prefix)
                .map(|e| e.key),
        );
    }

    /// Inserts if absent; gives the entry back on a collision.
    fn insert(&mut self, entry: Box<Entry>) -> Result<(), Box<Entry>> {
        if self.find(&entry.key).is_some() {
            return Err(entry);
        }
        self.expiry
            .entry(entry.filed_at)
            .or_default()
            .push(entry.key.prefix_u64());
        self.table
            .insert_unique(entry.key.prefix_u64(), entry, |e| e.key.prefix_u64());
        Ok(())
    }

    /// Files `key` again if its expiry moved earlier than where it is filed.
    fn refile_if_earlier(&mut self, key: SessionKey, expires_at: u32, filed_at: &mut u32) {
        if expires_at < *filed_at {
            *filed_at = expires_at;
            self.expiry
                .entry(expires_at)
                .or_default()
                .push(key.prefix_u64());
        }
    }
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

impl Inner {
    fn shard(&self, key: &SessionKey) -> &Mutex<Shard> {
        &self.shards[shard_of(key.prefix_u64())]
    }

    /// The keys of the records of `user` among the indexed `prefixes`.
    fn keys_of(&self, user: &UserId, prefixes: &[u64]) -> Vec<SessionKey> {
        let mut out = Vec::with_capacity(prefixes.len());
        let mut found = Vec::new();
        for &p in prefixes {
            let shard = self.shards[shard_of(p)].lock();
            shard.keys_with_prefix(p, &mut found);
            out.extend(
                found
                    .iter()
                    .filter(|k| shard.find(k).is_some_and(|e| e.user.as_ref() == Some(user))),
            );
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    fn users_of(&self, user: &UserId) -> &Mutex<UserIndex> {
        let idx = usize::try_from(self.user_hasher.hash_one(user) % (SHARDS as u64)).unwrap_or(0);
        &self.users[idx]
    }

    /// Removes one record; returns it. Keeps the count; the user index is cleaned lazily.
    fn remove_record(&self, key: &SessionKey) -> Option<Box<Entry>> {
        let removed = self.shard(key).lock().remove(key);
        if removed.is_some() {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    fn unindex(&self, user: &UserId, key: &SessionKey) {
        let mut users = self.users_of(user).lock();
        if let Some(keys) = users.get_mut(user) {
            keys.retain(|p| *p != key.prefix_u64());
            if keys.is_empty() {
                users.remove(user);
            }
        }
    }

    /// Reserves room for one more session.
    fn reserve(&self) -> Result<(), StoreError> {
        let before = self.count.fetch_add(1, Ordering::Relaxed);
        if let Some(limit) = self.max_sessions
            && before >= limit
        {
            self.count.fetch_sub(1, Ordering::Relaxed);
            return Err(StoreError::CapacityExceeded { limit });
        }
        Ok(())
    }

    /// Inserts a record whose user index shard (if any) the caller holds.
    /// `user` is the index's own copy of the record's user id, shared to save memory.
    fn insert_record(
        &self,
        record: &SessionRecord,
        user: Option<UserId>,
    ) -> Result<(), StoreError> {
        self.reserve()?;
        let mut entry = Box::new(Entry::from_record(record));
        if user.is_some() {
            entry.user = user;
        }
        if self.shard(&record.key).lock().insert(entry).is_err() {
            self.count.fetch_sub(1, Ordering::Relaxed);
            return Err(StoreError::Collision);
        }
        Ok(())
    }

    /// The live records among `keys` that belong to `user`; drops the others from `keys`.
    fn live_of(
        &self,
        user: &UserId,
        keys: &mut Vec<SessionKey>,
        now: Timestamp,
    ) -> Vec<SessionRecord> {
        let mut out = Vec::with_capacity(keys.len());
        keys.retain(|k| {
            let shard = self.shard(k).lock();
            match shard.find(k) {
                Some(e) if e.user.as_ref() == Some(user) && e.is_live(now) => {
                    out.push(e.to_record());
                    true
                }
                _ => false,
            }
        });
        out
    }

    /// Makes room for one more session of `user` under the per-user bound; the caller holds
    /// the user's index shard and passes the user's key list.
    fn enforce_user_limit(
        &self,
        user: &UserId,
        keys: &mut Vec<SessionKey>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let Some((limit, policy)) = self.max_per_user else {
            return Ok(());
        };
        let mut live = self.live_of(user, keys, now);
        if live.len() < limit {
            return Ok(());
        }
        match policy {
            PerUserLimit::Refuse => Err(StoreError::UserLimitReached { limit }),
            PerUserLimit::EvictOldest => {
                live.sort_by_key(|r| (r.created_at, r.last_seen_at));
                let excess = live.len() + 1 - limit;
                for victim in live.iter().take(excess) {
                    self.remove_record(&victim.key);
                    keys.retain(|k| *k != victim.key);
                    tracing::debug!(key = %victim.key.short(), "evicted the oldest session of a user at the per-user limit");
                }
                Ok(())
            }
        }
    }

    fn delete_expired(&self, now: Timestamp, limit: usize) -> u64 {
        let mut deleted: u64 = 0;
        let mut unindex: Vec<(UserId, SessionKey)> = Vec::new();
        let mut found = Vec::new();
        let limit = u64::try_from(limit).unwrap_or(u64::MAX);
        for shard in &*self.shards {
            if deleted >= limit {
                break;
            }
            let mut shard = shard.lock();
            while deleted < limit {
                let Some(mut bucket) = shard.expiry.first_entry() else {
                    break;
                };
                let filed = *bucket.key();
                if i64::from(filed) > now.unix() {
                    break;
                }
                let Some(prefix) = bucket.get_mut().pop() else {
                    bucket.remove();
                    continue;
                };
                shard.keys_with_prefix(prefix, &mut found);
                for key in &found {
                    let Some(entry) = shard.find_mut(key) else {
                        continue;
                    };
                    if entry.filed_at != filed {
                        continue; // a stale filing: the entry is filed elsewhere too
                    }
                    if entry.is_live(now) {
                        // Activity moved the expiry; file it where it now belongs.
                        let at = entry.expires_at();
                        entry.filed_at = at;
                        shard.expiry.entry(at).or_default().push(prefix);
                        continue;
                    }
                    if let Some(e) = shard.remove(key) {
                        self.count.fetch_sub(1, Ordering::Relaxed);
                        deleted += 1;
                        if let Some(user) = e.user {
                            unindex.push((user, *key));
                        }
                    }
                }
            }
        }
        for (user, key) in unindex {
            self.unindex(&user, &key);
        }
        deleted
    }
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
