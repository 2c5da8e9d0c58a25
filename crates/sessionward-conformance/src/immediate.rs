//! [`ThroughImmediate`]: a store's [`ImmediateStore`] face as a [`SessionStore`], so that the
//! suite checks that face with the same cases as the asynchronous one.

use std::fmt;
use std::sync::Arc;

use sessionward_core::{
    ChangeSet, ImmediateStore, RoleSet, RotateOutcome, SaveOutcome, SessionHandle, SessionKey,
    SessionRecord, SessionStore, StoreError, Timestamp, UserId,
};

/// Serves the hot-path operations (`create`, `load`, `save`, `touch`, `rotate`, `delete`)
/// through the inner store's [`ImmediateStore`] face, the others through its asynchronous
/// methods. [`run_cases`](crate::run_cases) runs every case through it as well when a store
/// has that face, which is how the session layer uses such a store.
pub struct ThroughImmediate(Arc<dyn SessionStore>);

impl ThroughImmediate {
    /// Wraps `store`.
    #[must_use]
    pub fn new(store: Arc<dyn SessionStore>) -> Self {
        Self(store)
    }

    fn face(&self) -> Result<&dyn ImmediateStore, StoreError> {
        self.0
            .immediate()
            .ok_or_else(|| StoreError::backend("the store has no immediate face"))
    }
}

impl fmt::Debug for ThroughImmediate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ThroughImmediate").field(&self.0).finish()
    }
}

#[sessionward_core::async_trait]
impl SessionStore for ThroughImmediate {
    async fn create(&self, record: &SessionRecord) -> Result<(), StoreError> {
        self.face()?.create_now(record)
    }

    async fn load(
        &self,
        key: &SessionKey,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.face()?.load_now(key, now)
    }

    async fn save(
        &self,
        key: &SessionKey,
        expected_version: Option<u64>,
        changes: &ChangeSet,
        now: Timestamp,
    ) -> Result<SaveOutcome, StoreError> {
        self.face()?.save_now(key, expected_version, changes, now)
    }

    async fn touch(&self, key: &SessionKey, now: Timestamp) -> Result<bool, StoreError> {
        self.face()?.touch_now(key, now)
    }

    async fn rotate(
        &self,
        old: &SessionKey,
        expected_version: Option<u64>,
        new: &SessionRecord,
        now: Timestamp,
    ) -> Result<RotateOutcome, StoreError> {
        self.face()?.rotate_now(old, expected_version, new, now)
    }

    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.face()?.delete_now(key)
    }

    async fn delete_by_user(
        &self,
        user: &UserId,
        except: Option<&SessionKey>,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        self.0.delete_by_user(user, except, now).await
    }

    async fn list_by_user(
        &self,
        user: &UserId,
        now: Timestamp,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        self.0.list_by_user(user, now).await
    }

    async fn set_roles_for_user(
        &self,
        user: &UserId,
        roles: &RoleSet,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        self.0.set_roles_for_user(user, roles, now).await
    }

    async fn delete_by_handle(
        &self,
        user: &UserId,
        handle: &SessionHandle,
    ) -> Result<bool, StoreError> {
        self.0.delete_by_handle(user, handle).await
    }

    async fn delete_expired(&self, now: Timestamp, limit: usize) -> Result<u64, StoreError> {
        self.0.delete_expired(now, limit).await
    }
}
