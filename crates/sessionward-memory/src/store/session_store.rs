//! [`MemoryStore`]'s [`SessionStore`] face: the hot path through [`ImmediateStore`], and the
//! per-user and maintenance operations.

use super::*;

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
