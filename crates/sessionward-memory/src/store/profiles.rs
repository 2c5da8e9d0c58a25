//! The store's [`Profile`]s: what many sessions have in common, kept once.

use std::sync::Weak;

use super::*;

/// What many sessions have in common and the store keeps once ([`Profiles`]): the roles (a
/// few role sets per application, but each sign-in brings its own allocation of them), the
/// client's user agent (most sessions come from a few browsers), the idle timeout and the
/// persistence choice (one or two of each per application).
#[derive(PartialEq, Eq)]
pub(super) struct Profile {
    pub(super) roles: RoleSet,
    pub(super) user_agent: Option<Box<str>>,
    pub(super) idle_secs: u32,
    pub(super) persistent: Option<bool>,
}

/// A [`Profile`] by reference: what a lookup compares and hashes, so that finding a profile
/// the store already holds (nearly every new session) allocates nothing.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct ProfileRef<'a> {
    pub(super) roles: &'a RoleSet,
    pub(super) user_agent: Option<&'a str>,
    pub(super) idle_secs: u32,
    pub(super) persistent: Option<bool>,
}

impl Profile {
    pub(super) fn view(&self) -> ProfileRef<'_> {
        ProfileRef {
            roles: &self.roles,
            user_agent: self.user_agent.as_deref(),
            idle_secs: self.idle_secs,
            persistent: self.persistent,
        }
    }
}

/// How many recently interned profiles [`Profiles::intern`] checks before it hashes.
const RECENT: usize = 8;

/// The store's [`Profile`]s, each kept once, in shards by a keyed hash. A profile stays while
/// a session holds it: the last session to let go removes it (or, should two let go at once,
/// the sweeper's next pass does), so the set never outgrows the sessions held.
///
/// Most new sessions have the profile of a session made shortly before (a few browsers, a
/// few role sets), so a few recently interned profiles are remembered, by a [`Weak`]
/// reference in a slot chosen by the profile's lengths, and compared byte for byte before
/// the keyed hash is computed. The slots hold no profile alive: the set's bound is
/// unchanged. A slot's index is not keyed and needs not be: a client that picks its user
/// agent can only make its own lookups miss the slot, and a miss is the hashed lookup.
pub(super) struct Profiles {
    pub(super) shards: Box<[Mutex<HashTable<Arc<Profile>>>]>,
    recent: [Mutex<Weak<Profile>>; RECENT],
    hasher: RandomState,
}

impl Profiles {
    pub(super) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashTable::new())).collect(),
            recent: std::array::from_fn(|_| Mutex::new(Weak::new())),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, hash: u64) -> &Mutex<HashTable<Arc<Profile>>> {
        // Bits hashbrown uses neither for buckets nor for tags.
        &self.shards[(hash >> 32) as usize % SHARDS]
    }

    /// The slot of [`Profiles::recent`] that remembers profiles like `profile`.
    fn recent_slot(&self, profile: ProfileRef<'_>) -> &Mutex<Weak<Profile>> {
        let lengths = profile.user_agent.map_or(0, str::len) ^ (profile.roles.len() << 3);
        &self.recent[lengths % RECENT]
    }

    /// The store's copy of `profile`, made only if the store has none.
    pub(super) fn intern(&self, profile: ProfileRef<'_>) -> Arc<Profile> {
        let slot = self.recent_slot(profile);
        let recent = slot.lock().upgrade();
        if let Some(recent) = recent
            && recent.view() == profile
        {
            // Should the last other holder let go of it at this moment, the set may have
            // dropped its copy: then this session keeps one of its own, which is freed
            // when the session lets go, as any other.
            return recent;
        }
        let interned = self.intern_hashed(profile);
        *slot.lock() = Arc::downgrade(&interned);
        interned
    }

    /// [`Profiles::intern`] by the keyed hash.
    fn intern_hashed(&self, profile: ProfileRef<'_>) -> Arc<Profile> {
        let hash = self.hasher.hash_one(profile);
        let mut table = self.shard(hash).lock();
        if let Some(found) = table.find(hash, |p| p.view() == profile) {
            return found.clone();
        }
        let interned = Arc::new(Profile {
            roles: profile.roles.clone(),
            user_agent: profile.user_agent.map(Box::from),
            idle_secs: profile.idle_secs,
            persistent: profile.persistent,
        });
        table.insert_unique(hash, interned.clone(), |p| self.hasher.hash_one(p.view()));
        interned
    }

    /// Lets go of a session's profile: removes it from the set if no other session holds it.
    pub(super) fn release(&self, profile: Arc<Profile>) {
        // The set's copy and this one: anything more is another session's. A copy made from
        // a recent slot at this moment may find the profile gone from the set: it is then
        // that session's own (see `intern`).
        if Arc::strong_count(&profile) > 2 {
            return;
        }
        let hash = self.hasher.hash_one(profile.view());
        let mut table = self.shard(hash).lock();
        if Arc::strong_count(&profile) == 2
            && let Ok(found) = table.find_entry(hash, |p| Arc::ptr_eq(p, &profile))
        {
            found.remove();
        }
        drop(table);
        drop(profile);
    }

    /// Removes the profiles no session holds (those two sessions let go of at once).
    pub(super) fn sweep(&self) {
        for shard in &*self.shards {
            shard.lock().retain(|p| Arc::strong_count(p) > 1);
        }
    }
}
