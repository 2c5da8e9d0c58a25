//! The store's shards and per-user index, and the operations on them.

use super::*;

impl Inner {
    pub(super) fn shard(&self, key: &SessionKey) -> &Mutex<Shard> {
        &self.shards[shard_of(key.prefix_u64())]
    }

    /// The keys of the records of `user` among the indexed `prefixes`.
    pub(super) fn keys_of(&self, user: &UserId, prefixes: &[u64]) -> Vec<SessionKey> {
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

    pub(super) fn users_of(&self, user: &UserId) -> &Mutex<UserIndex> {
        let idx = usize::try_from(self.user_hasher.hash_one(user) % (SHARDS as u64)).unwrap_or(0);
        &self.users[idx]
    }

    /// Removes one record; returns it. Keeps the count; the user index is cleaned lazily.
    pub(super) fn remove_record(&self, key: &SessionKey) -> Option<Box<Entry>> {
        let removed = self.shard(key).lock().remove(key);
        if let Some(e) = &removed {
            self.uncount(e);
        }
        removed
    }

    /// Takes a removed entry off its budget's count.
    pub(super) fn uncount(&self, entry: &Entry) {
        self.count[kind(entry.user.is_none())].fetch_sub(1, Ordering::Relaxed);
    }

    pub(super) fn unindex(&self, user: &UserId, key: &SessionKey) {
        let mut users = self.users_of(user).lock();
        if let Some(keys) = users.keys.get_mut(user) {
            keys.retain(|p| *p != key.prefix_u64());
            if keys.is_empty() {
                users.keys.remove(user);
            }
        }
    }

    /// Reserves room for one more session under its budget: a signed-in one is refused past
    /// `max_sessions`; an anonymous one past `max_anonymous` makes room by evicting the
    /// anonymous session that expires soonest, first in the shard of `key` (where the new one
    /// goes), then in the following shards. Never call it holding a shard lock.
    pub(super) fn reserve(&self, anonymous: bool, key: &SessionKey) -> Result<(), StoreError> {
        let before = self.count[kind(anonymous)].fetch_add(1, Ordering::Relaxed);
        if anonymous {
            if before >= self.max_anonymous {
                self.evict_anonymous(shard_of(key.prefix_u64()));
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
        let mut entry = Box::new(Entry::from_record(record));
        if user.is_some() {
            entry.user = user;
        }
        if self.shard(&record.key).lock().insert(entry).is_err() {
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

    /// Makes room for one more session of `user` under the per-user bound; the caller holds
    /// the user's index shard and passes the user's key list.
    pub(super) fn enforce_user_limit(
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

    pub(super) fn delete_expired(&self, now: Timestamp, limit: usize) -> u64 {
        let mut deleted: u64 = 0;
        let mut unindex: Vec<(UserId, SessionKey)> = Vec::new();
        let mut found = Vec::new();
        let limit = u64::try_from(limit).unwrap_or(u64::MAX);
        for shard in &*self.shards {
            if deleted >= limit {
                break;
            }
            let mut shard = shard.lock();
            for index in [SIGNED_IN, ANONYMOUS] {
                while deleted < limit {
                    let Some(mut bucket) = shard.expiry[index].first_entry() else {
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
                        if entry.filed_at != filed || kind(entry.user.is_none()) != index {
                            continue; // a stale filing: the entry is filed elsewhere too
                        }
                        if entry.is_live(now) {
                            // Activity moved the expiry; file it where it now belongs.
                            let at = entry.expires_at();
                            entry.filed_at = at;
                            shard.expiry[index].entry(at).or_default().push(prefix);
                            continue;
                        }
                        if let Some(e) = shard.remove(key) {
                            self.uncount(&e);
                            deleted += 1;
                            if let Some(user) = e.user {
                                unindex.push((user, *key));
                            }
                        }
                    }
                }
            }
        }
        for (user, key) in unindex {
            self.unindex(&user, &key);
        }
        self.forget_old_changes(now);
        deleted
    }

    /// Forgets the authorization change times the contract no longer needs: of users with no
    /// session left, [`EPOCH_MEMORY`] after the change.
    fn forget_old_changes(&self, now: Timestamp) {
        for users in &*self.users {
            let mut users = users.lock();
            let UserIndex { keys, changed } = &mut *users;
            if changed.is_empty() {
                continue;
            }
            changed.retain(|user, at| {
                keys.contains_key(user) || now.unix() < i64::from(*at) + i64::from(EPOCH_MEMORY)
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
        let shared = self
            .keys
            .get_key_value(user)
            .map_or_else(|| user.clone(), |(k, _)| k.clone());
        self.changed.insert(shared, at);
        at
    }
}
