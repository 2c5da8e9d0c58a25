//! [`MemoryStore`]'s [`ImmediateStore`] face: the hot path's operations, completed without
//! waiting.

use super::*;

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
        // The new key's shard lock ends with this statement: putting the old record back
        // below locks the old key's shard, which may be the same one.
        let inserted = inner.shard(&new.key).lock().insert(entry);
        if let Err(entry) = inserted {
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
