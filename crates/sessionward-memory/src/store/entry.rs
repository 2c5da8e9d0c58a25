//! A compact record ([`Entry`]) and a shard of them with its expiry index.

use super::*;

impl Entry {
    pub(super) fn from_record(r: &SessionRecord, profiles: &Profiles) -> Self {
        Self {
            key: r.key,
            handle: r.handle,
            user: r.user.clone(),
            data: r.data.clone(),
            created_at: secs(r.created_at),
            last_seen_at: secs(r.last_seen_at),
            authenticated_at: r.authenticated_at.map_or(NO_AUTH, secs),
            absolute_expires_at: secs(r.absolute_expires_at),
            version: r.version,
            filed_at: secs(r.expires_at()),
            authorized_at: secs(r.authorized_at),
            profile: profiles.intern(ProfileRef {
                roles: &r.roles,
                user_agent: r.user_agent.as_deref(),
                idle_secs: u32::try_from(r.idle_timeout.as_secs()).unwrap_or(u32::MAX),
                persistent: r.persistent,
            }),
        }
    }

    pub(super) fn to_record(&self) -> SessionRecord {
        SessionRecord {
            key: self.key,
            handle: self.handle,
            user: self.user.clone(),
            roles: self.profile.roles.clone(),
            data: self.data.clone(),
            created_at: ts(self.created_at),
            last_seen_at: ts(self.last_seen_at),
            authenticated_at: (self.authenticated_at != NO_AUTH).then(|| ts(self.authenticated_at)),
            idle_timeout: Duration::from_secs(u64::from(self.profile.idle_secs)),
            absolute_expires_at: ts(self.absolute_expires_at),
            user_agent: self.profile.user_agent.as_deref().map(str::to_owned),
            version: self.version,
            authorized_at: ts(self.authorized_at),
            persistent: self.profile.persistent,
        }
    }

    pub(super) fn expires_at(&self) -> u32 {
        self.last_seen_at
            .saturating_add(self.profile.idle_secs)
            .min(self.absolute_expires_at)
    }

    pub(super) fn is_live(&self, now: Timestamp) -> bool {
        now.unix() < i64::from(self.expires_at())
    }
}

impl Slot {
    /// Whether this slot holds the entry of `key`, whose fragment is `kf`: the fragment
    /// beside the slot first, so that a probe reads an entry only when it is almost surely
    /// the one.
    fn holds(&self, kf: u32, key: &SessionKey) -> bool {
        self.frag == kf && self.entry.key == *key
    }
}

impl Shard {
    pub(super) fn find(&self, key: &SessionKey) -> Option<&Entry> {
        let kf = frag(key);
        self.table
            .find(spread(kf), |s| s.holds(kf, key))
            .map(|s| &*s.entry)
    }

    pub(super) fn find_mut(&mut self, key: &SessionKey) -> Option<&mut Entry> {
        let kf = frag(key);
        self.table
            .find_mut(spread(kf), |s| s.holds(kf, key))
            .map(|s| &mut *s.entry)
    }

    pub(super) fn remove(&mut self, key: &SessionKey) -> Option<Box<Entry>> {
        let kf = frag(key);
        match self.table.find_entry(spread(kf), |s| s.holds(kf, key)) {
            Ok(occupied) => Some(occupied.remove().0.entry),
            Err(_) => None,
        }
    }

    /// The entries whose key has the fragment `kf` (almost always one or none).
    pub(super) fn with_frag(&self, kf: u32) -> impl Iterator<Item = &Entry> + '_ {
        self.table
            .iter_hash(spread(kf))
            .filter(move |s| s.frag == kf)
            .map(|s| &*s.entry)
    }

    /// The keys of the entries whose key has the fragment `kf`.
    fn keys_with_frag(&self, kf: u32, out: &mut Vec<SessionKey>) {
        out.clear();
        out.extend(self.with_frag(kf).map(|e| e.key));
    }

    /// Inserts if absent; gives the entry back on a collision.
    pub(super) fn insert(&mut self, entry: Box<Entry>) -> Result<(), Box<Entry>> {
        let kf = frag(&entry.key);
        // One probe: the slot it finds free is where the entry goes.
        let hashbrown::hash_table::Entry::Vacant(vacant) =
            self.table
                .entry(spread(kf), |s| s.holds(kf, &entry.key), |s| spread(s.frag))
        else {
            return Err(entry);
        };
        self.expiry[kind(entry.user.is_none())]
            .entry(entry.filed_at)
            .or_default()
            .push(kf);
        vacant.insert(Slot { frag: kf, entry });
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
                .push(frag(&key));
        }
    }

    /// One run of the sweep in this shard: takes at most [`SWEEP_HOLD`] filings that are due
    /// at `now` off the expiry indexes and removes at most `budget` expired records, onto
    /// `removed`. Entries whose expiry moved later (activity) are filed again where they now
    /// belong. `true` if the run stopped at one of its bounds (more may be due).
    #[allow(clippy::vec_box)] // moved out of the table as they are, freed after the lock hold
    pub(super) fn sweep_run(
        &mut self,
        now: Timestamp,
        budget: u64,
        removed: &mut Vec<Box<Entry>>,
    ) -> bool {
        let mut found = Vec::new();
        let mut steps = 0;
        let mut deleted: u64 = 0;
        for index in [SIGNED_IN, ANONYMOUS] {
            while deleted < budget {
                if steps == SWEEP_HOLD {
                    return true;
                }
                let Some(mut bucket) = self.expiry[index].first_entry() else {
                    break;
                };
                let filed = *bucket.key();
                if i64::from(filed) > now.unix() {
                    break;
                }
                let Some(kf) = bucket.get_mut().pop() else {
                    bucket.remove();
                    continue;
                };
                steps += 1;
                self.keys_with_frag(kf, &mut found);
                for key in &found {
                    let Some(entry) = self.find_mut(key) else {
                        continue;
                    };
                    if entry.filed_at != filed || kind(entry.user.is_none()) != index {
                        continue; // a stale filing: the entry is filed elsewhere too
                    }
                    if entry.is_live(now) {
                        // Activity moved the expiry; file it where it now belongs.
                        let at = entry.expires_at();
                        entry.filed_at = at;
                        self.expiry[index].entry(at).or_default().push(kf);
                        continue;
                    }
                    if let Some(e) = self.remove(key) {
                        deleted += 1;
                        removed.push(e);
                    }
                }
            }
        }
        // Stopped at the budget (more may be due) or with nothing due.
        deleted >= budget
    }

    /// Removes the anonymous entry of this shard that expires soonest (with the layer's one
    /// anonymous idle timeout: the least recently used), expired or not. Entries whose expiry
    /// activity moved later are re-filed on the way, as the sweeper does.
    pub(super) fn evict_soonest_anonymous(&mut self) -> Option<Box<Entry>> {
        let mut found = Vec::new();
        loop {
            let mut bucket = self.expiry[ANONYMOUS].first_entry()?;
            let filed = *bucket.key();
            let Some(kf) = bucket.get_mut().pop() else {
                bucket.remove();
                continue;
            };
            self.keys_with_frag(kf, &mut found);
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
                    self.expiry[ANONYMOUS].entry(at).or_default().push(kf);
                } else {
                    victims.push(*key);
                }
            }
            if let Some(victim) = victims.first() {
                if victims.len() > 1 {
                    // Two entries share the fragment and the bucket: keep the other filed.
                    self.expiry[ANONYMOUS].entry(filed).or_default().push(kf);
                }
                return self.remove(victim);
            }
        }
    }
}
