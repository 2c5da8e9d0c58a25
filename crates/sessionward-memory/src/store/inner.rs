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
        if removed.is_some() {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    pub(super) fn unindex(&self, user: &UserId, key: &SessionKey) {
        let mut users = self.users_of(user).lock();
        if let Some(keys) = users.get_mut(user) {
            keys.retain(|p| *p != key.prefix_u64());
            if keys.is_empty() {
                users.remove(user);
            }
        }
    }

    /// Reserves room for one more session.
    pub(super) fn reserve(&self) -> Result<(), StoreError> {
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
    pub(super) fn insert_record(
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
