//! A compact record ([`Entry`]) and a shard of them with its expiry index.

use super::*;

impl Entry {
    pub(super) fn from_record(r: &SessionRecord) -> Self {
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
            authorized_at: secs(r.authorized_at),
            persistent: r.persistent,
            user_agent: r.user_agent.as_deref().map(Box::from),
        }
    }

    pub(super) fn to_record(&self) -> SessionRecord {
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
            authorized_at: ts(self.authorized_at),
            persistent: self.persistent,
        }
    }

    pub(super) fn expires_at(&self) -> u32 {
        self.last_seen_at
            .saturating_add(self.idle_secs)
            .min(self.absolute_expires_at)
    }

    pub(super) fn is_live(&self, now: Timestamp) -> bool {
        now.unix() < i64::from(self.expires_at())
    }
}

impl Shard {
    pub(super) fn find(&self, key: &SessionKey) -> Option<&Entry> {
        self.table
            .find(key.prefix_u64(), |e| e.key == *key)
            .map(|b| &**b)
    }

    pub(super) fn find_mut(&mut self, key: &SessionKey) -> Option<&mut Entry> {
        self.table
            .find_mut(key.prefix_u64(), |e| e.key == *key)
            .map(|b| &mut **b)
    }

    pub(super) fn remove(&mut self, key: &SessionKey) -> Option<Box<Entry>> {
        match self.table.find_entry(key.prefix_u64(), |e| e.key == *key) {
            Ok(occupied) => Some(occupied.remove().0),
            Err(_) => None,
        }
    }

    /// The keys of the entries whose key starts with `prefix` (almost always one or none; the
    /// indexes hold 8-byte prefixes rather than 32-byte keys to save memory).
    pub(super) fn keys_with_prefix(&self, prefix: u64, out: &mut Vec<SessionKey>) {
        out.clear();
        out.extend(
            self.table
                .iter_hash(prefix)
                .filter(|e| e.key.prefix_u64() == prefix)
                .map(|e| e.key),
        );
    }

    /// Inserts if absent; gives the entry back on a collision.
    pub(super) fn insert(&mut self, entry: Box<Entry>) -> Result<(), Box<Entry>> {
        if self.find(&entry.key).is_some() {
            return Err(entry);
        }
        self.expiry[kind(entry.user.is_none())]
            .entry(entry.filed_at)
            .or_default()
            .push(entry.key.prefix_u64());
        self.table
            .insert_unique(entry.key.prefix_u64(), entry, |e| e.key.prefix_u64());
        Ok(())
    }

    /// Files `key` again if its expiry moved earlier than where it is filed.
    pub(super) fn refile_if_earlier(
        &mut self,
        key: SessionKey,
        anonymous: bool,
        expires_at: u32,
        filed_at: &mut u32,
    ) {
        if expires_at < *filed_at {
            *filed_at = expires_at;
            self.expiry[kind(anonymous)]
                .entry(expires_at)
                .or_default()
                .push(key.prefix_u64());
        }
    }

    /// Removes the anonymous entry of this shard that expires soonest (with the layer's one
    /// anonymous idle timeout: the least recently used), expired or not. Entries whose expiry
    /// activity moved later are re-filed on the way, as the sweeper does.
    pub(super) fn evict_soonest_anonymous(&mut self) -> Option<Box<Entry>> {
        let mut found = Vec::new();
        loop {
            let mut bucket = self.expiry[ANONYMOUS].first_entry()?;
            let filed = *bucket.key();
            let Some(prefix) = bucket.get_mut().pop() else {
                bucket.remove();
                continue;
            };
            self.keys_with_prefix(prefix, &mut found);
            let mut victims = Vec::new();
            for key in &found {
                let Some(entry) = self.find_mut(key) else {
                    continue;
                };
                if entry.user.is_some() || entry.filed_at != filed {
                    continue; // a stale filing: the entry is filed elsewhere too
                }
                let at = entry.expires_at();
                if at > filed {
                    entry.filed_at = at;
                    self.expiry[ANONYMOUS].entry(at).or_default().push(prefix);
                } else {
                    victims.push(*key);
                }
            }
            if let Some(victim) = victims.first() {
                if victims.len() > 1 {
                    // Two entries share the 8-byte prefix and the bucket: keep the other filed.
                    self.expiry[ANONYMOUS]
                        .entry(filed)
                        .or_default()
                        .push(prefix);
                }
                return self.remove(victim);
            }
        }
    }
}
