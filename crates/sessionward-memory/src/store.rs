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
mod immediate;
mod inner;
mod profiles;
mod session_store;

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

#[cfg(test)]
mod tests;
