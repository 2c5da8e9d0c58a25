use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hashbrown::HashTable;
use parking_lot::Mutex;
use sessionward_core::{
    ChangeSet, ImmediateStore, RoleSet, RotateOutcome, SaveOutcome, SessionData, SessionHandle,
    SessionKey, SessionRecord, SessionStore, StoreError, SweepConfig, Sweeper, SweeperStatus,
    Timestamp, UserId,
};

mod builder;
mod entry;
mod inner;
mod profiles;

pub use builder::MemoryStoreBuilder;
use profiles::{Profile, ProfileRef, Profiles};

const SHARDS: usize = 64;
/// How many expired records one sweeper call deletes (a pass repeats the call, yielding to the
/// runtime between calls, until one deletes fewer): small, so that a call never keeps a
/// runtime thread from requests for long.
const SWEEP_BATCH: usize = 64;
/// At most this many expiry filings are taken per lock hold of a shard by the sweep.
const SWEEP_HOLD: usize = 64;
/// `authenticated_at` of an anonymous session.
const NO_AUTH: u32 = 0;
/// How long a user's authorization change is remembered after their last session is gone
/// (the contract's minimum: far longer than any request, so an in-flight sign-in that read the
/// user's roles before the change cannot outlive the memory of it).
const EPOCH_MEMORY: u32 = 24 * 60 * 60;

/// Times are kept as unsigned 32-bit seconds since the Unix epoch (until 2106), which keeps an
/// entry at 128 bytes; earlier times clamp to the epoch, later ones to 2106.
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

/// One record, kept compact: 128 bytes (glibc's 144-byte chunk) plus its data text, and its
/// user id if that is longer than [`UserId`] holds in place.
struct Entry {
    key: SessionKey,
    handle: SessionHandle,
    user: Option<UserId>,
    data: SessionData,
    /// The roles, user agent, idle timeout and persistence, shared with every other session
    /// that has the same ([`Profiles`]).
    profile: Arc<Profile>,
    created_at: u32,
    last_seen_at: u32,
    authenticated_at: u32,
    absolute_expires_at: u32,
    /// The expiry bucket this entry is filed under in its shard's expiry index.
    filed_at: u32,
    version: u64,
    /// When the user and roles were decided (SEC-16); `created_at` for an anonymous entry.
    authorized_at: u32,
}

/// A slot of a shard's table: an entry, with its key's [`frag`] beside it. Growing the table
/// rehashes every slot, and a probe compares slots: both read the table alone, in order,
/// instead of every entry it points to (a cache miss each, under the shard's lock).
struct Slot {
    frag: u32,
    entry: Box<Entry>,
}

#[derive(Default)]
struct Shard {
    /// The entries, hashed by [`spread`] of their key's [`frag`].
    table: HashTable<Slot>,
    /// Expiry second -> key fragments filed there, one index for signed-in entries
    /// ([`SIGNED_IN`]) and one for anonymous ones ([`ANONYMOUS`]). An entry is filed once,
    /// under `filed_at`; when its expiry moves later (activity), the sweeper (or the anonymous
    /// budget's eviction) re-files it when it reaches the old bucket, so the hot path never
    /// touches these indexes.
    expiry: [BTreeMap<u32, Vec<u32>>; 2],
}

/// [`Shard::expiry`] of signed-in entries.
const SIGNED_IN: usize = 0;
/// [`Shard::expiry`] of anonymous entries: the anonymous budget evicts from its first bucket.
const ANONYMOUS: usize = 1;

/// The expiry index of an entry.
fn kind(anonymous: bool) -> usize {
    if anonymous { ANONYMOUS } else { SIGNED_IN }
}

/// The 32-bit fragment of a session key that the indexes hold instead of the 32-byte key: its
/// first four bytes (uniformly distributed: the key is a SHA-256 digest). A fragment names a
/// shard ([`shard_of`]) and, within it, the entries whose key starts with it (almost always
/// one or none; every reader compares whole keys).
fn frag(key: &SessionKey) -> u32 {
    let [a, b, c, d, ..] = key.prefix_u64().to_le_bytes();
    u32::from_le_bytes([a, b, c, d])
}

/// A 64-bit table hash of a 32-bit fragment (the SplitMix64 finalizer), so that every bit of
/// the fragment reaches the bits hashbrown uses for buckets and tags.
fn spread(frag: u32) -> u64 {
    let mut x = u64::from(frag).wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The shard of a key fragment.
fn shard_of(frag: u32) -> usize {
    frag as usize % SHARDS
}

/// One entry of the per-user index: "a user whose hash ends in `user` may have a session
/// whose key starts with `key`". Eight bytes per signed-in session and no allocation per
/// user; readers resolve it against the shards, comparing whole user ids and keys.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Pair {
    /// The low 32 bits of the user's keyed hash ([`Inner::user_hash`]).
    user: u32,
    /// The [`frag`] of the session's key.
    key: u32,
}

/// One shard of the per-user index: the sessions of each user, and when each user's
/// authorization last changed (SEC-16). Both live under one lock, so a sign-in (which checks the
/// change time and indexes its record) and a per-user change (which records the time and
/// changes every indexed record) are atomic with respect to each other.
///
/// Invariant: for every stored entry of a user `u` whose index shard this is, `pairs` holds
/// `(low bits of hash(u), frag(key))`. A pair is added under this lock before (or as) the
/// entry becomes visible to per-user operations, and removed only under this lock once no
/// entry needs it; so a per-user operation never misses a record. Pairs whose entries are gone
/// are removed by the next reader that meets them.
#[derive(Default)]
struct UserIndex {
    /// The pairs, hashed by [`spread`] of their user part; a set (no duplicates).
    pairs: HashTable<Pair>,
    /// User -> when their authorization last changed, in 32-bit seconds. Only users whose
    /// authorization ever changed are here (a separate map, so the others pay nothing);
    /// forgotten by the sweeper once the user has no session left and the change is
    /// [`EPOCH_MEMORY`] old.
    changed: HashMap<UserId, u32>,
}

struct Inner {
    shards: Box<[Mutex<Shard>]>,
    /// The per-user index, in shards chosen by the user's keyed hash ([`Inner::user_hash`]).
    users: Box<[Mutex<UserIndex>]>,
    /// Keyed (random per store), so that no one can choose user ids that collide in the index.
    user_hasher: RandomState,
    /// Records held, signed in ([`SIGNED_IN`]) and anonymous ([`ANONYMOUS`]): two budgets.
    count: [AtomicUsize; 2],
    /// Bound on signed-in sessions.
    max_sessions: Option<usize>,
    /// Bound on anonymous sessions: past it, the soonest-expiring ones are evicted.
    max_anonymous: usize,
    max_per_user: Option<(usize, PerUserLimit)>,
    profiles: Profiles,
}

/// A user id with its keyed hash, computed once per operation.
#[derive(Clone, Copy)]
struct Who<'a> {
    id: &'a UserId,
    hash: u64,
}

impl Who<'_> {
    /// The user part of the user's [`Pair`]s.
    fn frag(self) -> u32 {
        self.hash as u32
    }

    /// The shard of the per-user index that holds this user.
    fn shard(self) -> usize {
        (self.hash >> 58) as usize % SHARDS
    }

    /// Whether a user with hash `other` has the same pairs as this one (same index shard and
    /// same user part): the index cannot tell the two apart, only the shards can.
    fn same_pairs(self, other: u64) -> bool {
        other as u32 == self.frag() && (other >> 58) as usize % SHARDS == self.shard()
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
            .field("anonymous", &self.anonymous_len())
            .field("max_sessions", &self.inner.max_sessions)
            .field("max_anonymous_sessions", &self.inner.max_anonymous)
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
    /// The default bound on anonymous sessions: 100,000, sized for a small server. Full, with
    /// a 35-byte payload each, measured (see the crate docs): 24.4 MiB resident, with or
    /// without a shared 42-byte user agent; add what handlers store in anonymous sessions.
    pub const DEFAULT_MAX_ANONYMOUS_SESSIONS: usize = 100_000;

    /// A store with the default bounds (no bound on signed-in sessions,
    /// [`DEFAULT_MAX_ANONYMOUS_SESSIONS`](Self::DEFAULT_MAX_ANONYMOUS_SESSIONS) anonymous ones)
    /// and the default sweeper (every 60 s on the system clock, if a Tokio runtime is running).
    #[must_use]
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder for bounds, the sweeper interval and the clock.
    #[must_use]
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder::default()
    }

    /// Number of records held, signed in and anonymous, live or expired but not yet swept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.count[SIGNED_IN].load(Ordering::Relaxed)
            + self.inner.count[ANONYMOUS].load(Ordering::Relaxed)
    }

    /// Number of anonymous records held (the part of [`len`](Self::len) that the anonymous
    /// budget bounds).
    #[must_use]
    pub fn anonymous_len(&self) -> usize {
        self.inner.count[ANONYMOUS].load(Ordering::Relaxed)
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

/// The operations of a request's hot path, which this store completes without waiting (its
/// asynchronous methods call these).
impl ImmediateStore for MemoryStore {
    fn create_now(&self, record: &SessionRecord) -> Result<(), StoreError> {
        let inner = &self.inner;
        let Some(user) = &record.user else {
            return inner.insert_record(record, None);
        };
        let who = inner.who(user);
        let mut index = inner.users_of(who).lock();
        // The check and the insert happen under the user's index lock, which every per-user
        // change holds too: a sign-in decided before a change is refused, however late it
        // arrives (SEC-16).
        if !record.is_authorized_after(index.changed_at(user)) {
            return Err(StoreError::AuthorizationChanged);
        }
        inner.enforce_user_limit(who, &mut index, record.last_seen_at)?;
        let shared = inner.shared_user(who, &index);
        inner.insert_record(record, Some(shared))?;
        index.insert(Pair {
            user: who.frag(),
            key: frag(&record.key),
        });
        Ok(())
    }

    // Load, save and touch do not look up the user's authorization change: in this store a
    // record that is not current cannot exist, because every write of a signed-in record
    // (create, rotate) checks the change time and every per-user change stamps the records it
    // keeps, each under the user's index lock. The read path stays one shard lock.
    fn load_now(
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

    fn save_now(
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
            let idle_secs = u32::try_from(idle.as_secs()).unwrap_or(u32::MAX);
            if idle_secs != entry.profile.idle_secs {
                let profile = self.inner.profiles.intern(ProfileRef {
                    idle_secs,
                    ..entry.profile.view()
                });
                let old = std::mem::replace(&mut entry.profile, profile);
                self.inner.profiles.release(old);
            }
        }
        entry.version += 1;
        let version = entry.version;
        let (k, anonymous, at, mut filed) = (
            entry.key,
            entry.user.is_none(),
            entry.expires_at(),
            entry.filed_at,
        );
        shard.refile_if_earlier(k, anonymous, at, &mut filed);
        if let Some(entry) = shard.find_mut(key) {
            entry.filed_at = filed;
        }
        Ok(SaveOutcome::Saved { version })
    }

    fn touch_now(&self, key: &SessionKey, now: Timestamp) -> Result<bool, StoreError> {
        let mut shard = self.inner.shard(key).lock();
        match shard.find_mut(key) {
            Some(e) if e.is_live(now) => {
                e.last_seen_at = e.last_seen_at.max(secs(now));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn rotate_now(
        &self,
        old: &SessionKey,
        expected_version: Option<u64>,
        new: &SessionRecord,
        now: Timestamp,
    ) -> Result<RotateOutcome, StoreError> {
        let inner = &self.inner;
        let new_who = new.user.as_ref().map(|u| inner.who(u));
        // Hold the new owner's index shard for the whole rotation, so that a concurrent
        // delete_by_user or set_roles_for_user of that user either sees the old record or the
        // new one, never neither, and so that the authorization check below cannot race a
        // per-user change.
        let mut index = new_who.map(|who| inner.users_of(who).lock());
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
            if live
                && let (Some(index), Some(user)) = (index.as_ref(), &new.user)
                && !new.is_authorized_after(index.changed_at(user))
            {
                return Err(StoreError::AuthorizationChanged);
            }
            let Some(taken) = shard.remove(old) else {
                return Ok(RotateOutcome::Gone);
            };
            if !live {
                drop(shard);
                inner.uncount(&taken);
                drop(index);
                if let Some(u) = &taken.user {
                    inner.unindex(u, old);
                }
                inner.discard(*taken);
                return Ok(RotateOutcome::Gone);
            }
            taken
        };
        let same_user = old_entry.user.is_some() && old_entry.user == new.user;
        // A sign-in moves the session from the anonymous budget to the signed-in one (and a
        // rotation to anonymous the other way). Reserved first, so that a sign-in refused for
        // the signed-in bound evicts nobody.
        let moves = old_entry.user.is_none() != new.user.is_none();
        if moves && let Err(e) = inner.reserve(new.user.is_none(), &new.key) {
            drop(index);
            inner.restore(old_entry);
            return Err(e);
        }
        // A session that becomes this user's (sign-in) counts against their bound.
        let bound = match (index.as_mut(), new_who) {
            (Some(index), Some(who)) if !same_user => inner.enforce_user_limit(who, index, now),
            _ => Ok(()),
        };
        if let Err(e) = bound {
            if moves {
                inner.count[kind(new.user.is_none())].fetch_sub(1, Ordering::Relaxed);
            }
            drop(index);
            inner.restore(old_entry);
            return Err(e);
        }
        let mut entry = Box::new(Entry::from_record(new, &inner.profiles));
        // One copy of the user id for all of a user's sessions.
        if same_user {
            entry.user.clone_from(&old_entry.user);
        } else if let (Some(index), Some(who)) = (index.as_ref(), new_who) {
            entry.user = Some(inner.shared_user(who, index));
        }
        if let Err(entry) = inner.shard(&new.key).lock().insert(entry) {
            inner.discard(*entry);
            if moves {
                inner.count[kind(new.user.is_none())].fetch_sub(1, Ordering::Relaxed);
            }
            // Put the old record back; nothing changed.
            drop(index);
            inner.restore(old_entry);
            return Err(StoreError::Collision);
        }
        if moves {
            inner.uncount(&old_entry);
        }
        if let (Some(index), Some(who)) = (index.as_mut(), new_who) {
            index.insert(Pair {
                user: who.frag(),
                key: frag(&new.key),
            });
            if same_user {
                inner.release(index, who, frag(old));
            }
        }
        drop(index);
        if let Some(old_user) = &old_entry.user
            && !same_user
        {
            inner.unindex(old_user, old);
        }
        inner.discard(*old_entry);
        Ok(RotateOutcome::Rotated)
    }

    fn delete_now(&self, key: &SessionKey) -> Result<bool, StoreError> {
        match self.inner.remove_record(key) {
            Some(e) => {
                if let Some(u) = &e.user {
                    self.inner.unindex(u, key);
                }
                self.inner.discard(*e);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

#[async_trait::async_trait]
impl SessionStore for MemoryStore {
    async fn create(&self, record: &SessionRecord) -> Result<(), StoreError> {
        self.create_now(record)
    }

    async fn load(
        &self,
        key: &SessionKey,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.load_now(key, now)
    }

    async fn save(
        &self,
        key: &SessionKey,
        expected_version: Option<u64>,
        changes: &ChangeSet,
        now: Timestamp,
    ) -> Result<SaveOutcome, StoreError> {
        self.save_now(key, expected_version, changes, now)
    }

    async fn touch(&self, key: &SessionKey, now: Timestamp) -> Result<bool, StoreError> {
        self.touch_now(key, now)
    }

    async fn rotate(
        &self,
        old: &SessionKey,
        expected_version: Option<u64>,
        new: &SessionRecord,
        now: Timestamp,
    ) -> Result<RotateOutcome, StoreError> {
        self.rotate_now(old, expected_version, new, now)
    }

    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.delete_now(key)
    }

    /// `Some`: every call of this store completes without waiting, and the layer makes the
    /// calls of a request's hot path through [`ImmediateStore`], with no future to box.
    fn immediate(&self) -> Option<&dyn ImmediateStore> {
        Some(self)
    }

    async fn delete_by_user(
        &self,
        user: &UserId,
        except: Option<&SessionKey>,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let inner = &self.inner;
        let who = inner.who(user);
        let mut index = inner.users_of(who).lock();
        let changed = index.record_change(user, now);
        let mut deleted = 0;
        for key in inner.keys_of(who, &mut index) {
            let mut shard = inner.shard(&key).lock();
            if Some(&key) == except {
                // The spared session stays current.
                if let Some(e) = shard.find_mut(&key) {
                    e.authorized_at = changed;
                }
                continue;
            }
            if shard
                .find(&key)
                .is_some_and(|e| e.user.as_ref() == Some(user))
                && let Some(e) = shard.remove(&key)
            {
                drop(shard);
                inner.uncount(&e);
                inner.discard(*e);
                inner.release(&mut index, who, frag(&key));
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    async fn list_by_user(
        &self,
        user: &UserId,
        now: Timestamp,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let inner = &self.inner;
        let who = inner.who(user);
        let mut index = inner.users_of(who).lock();
        let changed = index.changed_at(user);
        let mut keys = inner.keys_of(who, &mut index);
        let mut live = inner.live_of(user, &mut keys, now);
        drop(index);
        // Cannot drop anything in this store (see `load`), but costs nothing here.
        live.retain(|r| r.is_authorized_after(changed));
        live.sort_by_key(|r| (r.created_at, r.handle));
        Ok(live)
    }

    async fn set_roles_for_user(
        &self,
        user: &UserId,
        roles: &RoleSet,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let inner = &self.inner;
        let who = inner.who(user);
        let mut index = inner.users_of(who).lock();
        let changed_at = index.record_change(user, now);
        let mut changed = 0;
        for key in &inner.keys_of(who, &mut index) {
            let mut shard = inner.shard(key).lock();
            if let Some(e) = shard.find_mut(key)
                && e.user.as_ref() == Some(user)
            {
                let profile = inner.profiles.intern(ProfileRef {
                    roles,
                    ..e.profile.view()
                });
                let old = std::mem::replace(&mut e.profile, profile);
                inner.profiles.release(old);
                e.authorized_at = changed_at;
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
        let who = inner.who(user);
        let mut index = inner.users_of(who).lock();
        for key in &inner.keys_of(who, &mut index) {
            let mut shard = inner.shard(key).lock();
            if shard
                .find(key)
                .is_some_and(|e| e.handle == *handle && e.user.as_ref() == Some(user))
                && let Some(e) = shard.remove(key)
            {
                drop(shard);
                inner.uncount(&e);
                inner.discard(*e);
                inner.release(&mut index, who, frag(key));
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn delete_expired(&self, now: Timestamp, limit: usize) -> Result<u64, StoreError> {
        Ok(self.inner.delete_expired(now, limit))
    }
}

#[cfg(test)]
mod tests;
