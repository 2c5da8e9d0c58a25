//! The store's shards and per-user index, and the operations on them.

use super::*;

impl Inner {
    pub(super) fn shard(&self, key: &SessionKey) -> &Mutex<Shard> {
        &self.shards[shard_of(frag(key))]
    }

    /// The keyed hash of a user id, which places the user in the per-user index.
    pub(super) fn user_hash(&self, user: &UserId) -> u64 {
        self.user_hasher.hash_one(user)
    }

    pub(super) fn who<'a>(&self, user: &'a UserId) -> Who<'a> {
        Who {
            id: user,
            hash: self.user_hash(user),
        }
    }

    pub(super) fn users_of(&self, who: Who<'_>) -> &Mutex<UserIndex> {
        &self.users[who.shard()]
    }

    /// The keys of the stored records of `who`, sorted, from the caller's lock of the user's
    /// index shard. Removes the pairs that no stored record needs any more.
    pub(super) fn keys_of(&self, who: Who<'_>, index: &mut UserIndex) -> Vec<SessionKey> {
        let frags = index.frags_of(who.frag());
        let mut out = Vec::with_capacity(frags.len());
        for kf in frags {
            let shard = self.shards[shard_of(kf)].lock();
            let mut needed = false;
            for e in shard.with_frag(kf) {
                match &e.user {
                    Some(u) if u == who.id => {
                        out.push(e.key);
                        needed = true;
                    }
                    Some(u) if !needed => needed = who.same_pairs(self.user_hash(u)),
                    _ => {}
                }
            }
            drop(shard);
            if !needed {
                index.remove(Pair {
                    user: who.frag(),
                    key: kf,
                });
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Removes the pair `(who, kf)` from the caller's lock of the user's index shard, unless a
    /// stored record still needs it (another session of the user, or of a user with the same
    /// pairs, whose key has the same fragment).
    pub(super) fn release(&self, index: &mut UserIndex, who: Who<'_>, kf: u32) {
        let needed = self.shards[shard_of(kf)].lock().with_frag(kf).any(|e| {
            e.user
                .as_ref()
                .is_some_and(|u| u == who.id || who.same_pairs(self.user_hash(u)))
        });
        if !needed {
            index.remove(Pair {
                user: who.frag(),
                key: kf,
            });
        }
    }

    /// The index's way to one copy of a user id for all of a user's sessions: the id of one
    /// of `who`'s stored records, or a clone of `who`'s own. An id held in place
    /// ([`UserId::is_inline`]) has no allocation to share: it is cloned without a probe.
    pub(super) fn shared_user(&self, who: Who<'_>, index: &UserIndex) -> UserId {
        if who.id.is_inline() {
            return who.id.clone();
        }
        for kf in index.frags_of(who.frag()) {
            let shard = self.shards[shard_of(kf)].lock();
            if let Some(u) = shard
                .with_frag(kf)
                .find_map(|e| e.user.as_ref().filter(|u| *u == who.id))
            {
                return u.clone();
            }
        }
        who.id.clone()
    }

    /// Removes one record; returns it. Keeps the count; the user index is cleaned lazily.
    pub(super) fn remove_record(&self, key: &SessionKey) -> Option<Box<Entry>> {
        let removed = self.shard(key).lock().remove(key);
        if let Some(e) = &removed {
            self.uncount(e);
        }
        removed
    }

    /// Puts back a record that a failed rotation took out, holding no lock. A signed-in one goes
    /// back under its user's index lock, with its pair, unless the user's authorization changed
    /// while it was out (a "sign out everywhere" or a role change that could not see it): then
    /// it stays gone, as the change would have left it.
    pub(super) fn restore(&self, entry: Box<Entry>) {
        let Some(user) = entry.user.clone() else {
            let inserted = self.shard(&entry.key).lock().insert(entry);
            if let Err(e) = inserted {
                self.uncount(&e);
                self.discard(*e);
            }
            return;
        };
        let who = self.who(&user);
        let mut index = self.users_of(who).lock();
        if index
            .changed
            .get(&user)
            .is_some_and(|at| entry.authorized_at < *at)
        {
            self.release(&mut index, who, frag(&entry.key));
            drop(index);
            self.uncount(&entry);
            self.discard(*entry);
            return;
        }
        let kf = frag(&entry.key);
        let inserted = self.shard(&entry.key).lock().insert(entry);
        match inserted {
            Ok(()) => index.insert(Pair {
                user: who.frag(),
                key: kf,
            }),
            Err(e) => {
                drop(index);
                self.uncount(&e);
                self.discard(*e);
            }
        }
    }

    /// Drops a removed entry, letting go of its profile.
    pub(super) fn discard(&self, entry: Entry) {
        let Entry { profile, .. } = entry;
        self.profiles.release(profile);
    }

    /// Takes a removed entry off its budget's count.
    pub(super) fn uncount(&self, entry: &Entry) {
        self.count[kind(entry.user.is_none())].fetch_sub(1, Ordering::Relaxed);
    }

    /// Drops `key` of `user` from the per-user index (once its record is gone).
    pub(super) fn unindex(&self, user: &UserId, key: &SessionKey) {
        let who = self.who(user);
        let mut index = self.users_of(who).lock();
        self.release(&mut index, who, frag(key));
    }

    /// Reserves room for one more session under its budget: a signed-in one is refused past
    /// `max_sessions`; an anonymous one past `max_anonymous` makes room by evicting the
    /// anonymous session that expires soonest, first in the shard of `key` (where the new one
    /// goes), then in the following shards. Never call it holding a shard lock.
    pub(super) fn reserve(&self, anonymous: bool, key: &SessionKey) -> Result<(), StoreError> {
        let before = self.count[kind(anonymous)].fetch_add(1, Ordering::Relaxed);
        if anonymous {
            if before >= self.max_anonymous {
                self.evict_anonymous(shard_of(frag(key)));
            }
            return Ok(());
        }
        if let Some(limit) = self.max_sessions
            && before >= limit
        {
            self.count[SIGNED_IN].fetch_sub(1, Ordering::Relaxed);
            return Err(StoreError::CapacityExceeded { limit });
        }
        Ok(())
    }

    /// Evicts one anonymous session, from the shard `home` or, if it has none, the next one
    /// that has one. `false` if no shard has any (every anonymous session counted is being
    /// created right now).
    fn evict_anonymous(&self, home: usize) -> bool {
        for i in 0..SHARDS {
            let victim = self.shards[(home + i) % SHARDS]
                .lock()
                .evict_soonest_anonymous();
            if let Some(victim) = victim {
                self.uncount(&victim);
                tracing::debug!(
                    key = %victim.key.short(),
                    "evicted an anonymous session: the anonymous budget is full"
                );
                self.discard(*victim);
                return true;
            }
        }
        false
    }

    /// Inserts a record whose user index shard (if any) the caller holds.
    /// `user` is the index's own copy of the record's user id, shared to save memory.
    pub(super) fn insert_record(
        &self,
        record: &SessionRecord,
        user: Option<UserId>,
    ) -> Result<(), StoreError> {
        let anonymous = record.user.is_none();
        self.reserve(anonymous, &record.key)?;
        let mut entry = Box::new(Entry::from_record(record, &self.profiles));
        if user.is_some() {
            entry.user = user;
        }
        let inserted = self.shard(&record.key).lock().insert(entry);
        if let Err(entry) = inserted {
            self.discard(*entry);
            self.count[kind(anonymous)].fetch_sub(1, Ordering::Relaxed);
            return Err(StoreError::Collision);
        }
        Ok(())
    }

    /// The live records among `keys` that belong to `user`; drops the others from `keys`.
    pub(super) fn live_of(
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

    /// Makes room for one more session of `who` under the per-user bound, from the caller's
    /// lock of the user's index shard.
    pub(super) fn enforce_user_limit(
        &self,
        who: Who<'_>,
        index: &mut UserIndex,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let Some((limit, policy)) = self.max_per_user else {
            return Ok(());
        };
        let mut keys = self.keys_of(who, index);
        let mut live = self.live_of(who.id, &mut keys, now);
        if live.len() < limit {
            return Ok(());
        }
        match policy {
            PerUserLimit::Refuse => Err(StoreError::UserLimitReached { limit }),
            PerUserLimit::EvictOldest => {
                live.sort_by_key(|r| (r.created_at, r.last_seen_at));
                let excess = live.len() + 1 - limit;
                for victim in live.iter().take(excess) {
                    if let Some(e) = self.remove_record(&victim.key) {
                        self.discard(*e);
                    }
                    self.release(index, who, frag(&victim.key));
                    tracing::debug!(key = %victim.key.short(), "evicted the oldest session of a user at the per-user limit");
                }
                Ok(())
            }
        }
    }

    /// Deletes up to `limit` expired records. Never holds a lock for more than
    /// [`SWEEP_HOLD`] steps: each shard is swept in runs of at most that many filings, its lock
    /// released between runs, and the per-user index is updated after each run. A call that
    /// deletes fewer than `limit` (the end of a sweeper pass) also forgets the authorization
    /// change times the contract no longer needs.
    pub(super) fn delete_expired(&self, now: Timestamp, limit: usize) -> u64 {
        let mut deleted: u64 = 0;
        let mut removed: Vec<Box<Entry>> = Vec::new();
        let limit = u64::try_from(limit).unwrap_or(u64::MAX);
        'shards: for shard in &*self.shards {
            loop {
                if deleted >= limit {
                    break 'shards;
                }
                let budget = limit.saturating_sub(deleted);
                // The lock is held for the run only: the entries are dropped after it.
                let more = shard.lock().sweep_run(now, budget, &mut removed);
                for e in removed.drain(..) {
                    deleted += 1;
                    self.uncount(&e);
                    if let Some(user) = &e.user {
                        self.unindex(user, &e.key);
                    }
                    self.discard(*e);
                }
                if !more {
                    break;
                }
            }
        }
        if deleted < limit {
            self.forget_old_changes(now);
            self.profiles.sweep();
        }
        deleted
    }

    /// Forgets the authorization change times the contract no longer needs: of users with no
    /// session left, [`EPOCH_MEMORY`] after the change.
    fn forget_old_changes(&self, now: Timestamp) {
        for users in &*self.users {
            let mut users = users.lock();
            let UserIndex { pairs, changed } = &mut *users;
            if changed.is_empty() {
                continue;
            }
            changed.retain(|user, at| {
                let uf = self.who(user).frag();
                now.unix() < i64::from(*at) + i64::from(EPOCH_MEMORY)
                    || pairs.find(spread(uf), |p| p.user == uf).is_some()
            });
        }
    }
}

impl UserIndex {
    /// When `user`'s authorization last changed, if this store still remembers.
    pub(super) fn changed_at(&self, user: &UserId) -> Option<Timestamp> {
        self.changed.get(user).map(|at| ts(*at))
    }

    /// Records a change of `user`'s authorization at `now` (never moving it back); returns the
    /// recorded time.
    pub(super) fn record_change(&mut self, user: &UserId, now: Timestamp) -> u32 {
        let at = secs(now);
        if let Some(stored) = self.changed.get_mut(user) {
            *stored = (*stored).max(at);
            return *stored;
        }
        self.changed.insert(user.clone(), at);
        at
    }

    /// The key fragments paired with the user part `uf`.
    pub(super) fn frags_of(&self, uf: u32) -> smallvec::SmallVec<[u32; 4]> {
        self.pairs
            .iter_hash(spread(uf))
            .filter(|p| p.user == uf)
            .map(|p| p.key)
            .collect()
    }

    /// Adds a pair (once).
    pub(super) fn insert(&mut self, pair: Pair) {
        // One probe: the slot it finds free is where the pair goes.
        if let hashbrown::hash_table::Entry::Vacant(vacant) =
            self.pairs
                .entry(spread(pair.user), |p| *p == pair, |p| spread(p.user))
        {
            vacant.insert(pair);
        }
    }

    /// Removes a pair.
    pub(super) fn remove(&mut self, pair: Pair) {
        if let Ok(found) = self.pairs.find_entry(spread(pair.user), |p| *p == pair) {
            found.remove();
        }
    }
}
