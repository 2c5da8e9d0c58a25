//! A store that forwards every call to another store after asking a [`Hook`]: the way to
//! count calls, fail them on demand, or break a store on purpose in a test.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use sessionward_core::{
    ChangeSet, RoleSet, RotateOutcome, SaveOutcome, SessionHandle, SessionKey, SessionRecord,
    SessionStore, StoreError, Timestamp, UserId,
};

/// One store call and its arguments, as a [`Hook`] sees it before it is forwarded.
#[derive(Clone, Copy, Debug)]
#[allow(missing_docs)] // The fields are the arguments of the `SessionStore` method.
pub enum Call<'a> {
    Create {
        record: &'a SessionRecord,
    },
    Load {
        key: &'a SessionKey,
        now: Timestamp,
    },
    Save {
        key: &'a SessionKey,
        expected_version: Option<u64>,
        changes: &'a ChangeSet,
        now: Timestamp,
    },
    Touch {
        key: &'a SessionKey,
        now: Timestamp,
    },
    Rotate {
        old: &'a SessionKey,
        expected_version: Option<u64>,
        new: &'a SessionRecord,
        now: Timestamp,
    },
    Delete {
        key: &'a SessionKey,
    },
    DeleteByUser {
        user: &'a UserId,
        except: Option<&'a SessionKey>,
        now: Timestamp,
    },
    ListByUser {
        user: &'a UserId,
        now: Timestamp,
    },
    SetRolesForUser {
        user: &'a UserId,
        roles: &'a RoleSet,
        now: Timestamp,
    },
    DeleteByHandle {
        user: &'a UserId,
        handle: &'a SessionHandle,
    },
    DeleteExpired {
        now: Timestamp,
        limit: usize,
    },
}

impl Call<'_> {
    /// The name of the `SessionStore` method, e.g. `"save"`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Create { .. } => "create",
            Self::Load { .. } => "load",
            Self::Save { .. } => "save",
            Self::Touch { .. } => "touch",
            Self::Rotate { .. } => "rotate",
            Self::Delete { .. } => "delete",
            Self::DeleteByUser { .. } => "delete_by_user",
            Self::ListByUser { .. } => "list_by_user",
            Self::SetRolesForUser { .. } => "set_roles_for_user",
            Self::DeleteByHandle { .. } => "delete_by_handle",
            Self::DeleteExpired { .. } => "delete_expired",
        }
    }
}

/// What a [`ForwardingStore`] asks before every call.
#[sessionward_core::async_trait]
pub trait Hook: Send + Sync + fmt::Debug + 'static {
    /// Called before `call` is forwarded; an error is returned to the caller instead (the call
    /// is then not forwarded). A hook may also act on a store of its own first, to simulate a
    /// concurrent request or a broken store.
    async fn before(&self, call: Call<'_>) -> Result<(), StoreError>;
}

/// Forwards every [`SessionStore`] call to `inner` after [`Hook::before`] allowed it.
///
/// ```
/// use sessionward_conformance::{CallLog, ForwardingStore};
///
/// fn counted<S: sessionward_core::SessionStore>(inner: S) -> ForwardingStore<S, CallLog> {
///     let store = ForwardingStore::new(inner, CallLog::default());
///     store.hook().fail(true); // every call now fails with a backend error
///     store
/// }
/// ```
#[derive(Debug)]
pub struct ForwardingStore<S, H> {
    inner: S,
    hook: Arc<H>,
}

/// A clone forwards to a clone of the inner store and shares the hook (and so its counts).
impl<S: Clone, H> Clone for ForwardingStore<S, H> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            hook: Arc::clone(&self.hook),
        }
    }
}

impl<S, H> ForwardingStore<S, H> {
    /// Wraps `inner`.
    pub fn new(inner: S, hook: H) -> Self {
        Self {
            inner,
            hook: Arc::new(hook),
        }
    }

    /// The wrapped store (calls on it bypass the hook).
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The hook.
    pub fn hook(&self) -> &H {
        &self.hook
    }
}

#[sessionward_core::async_trait]
impl<S: SessionStore, H: Hook> SessionStore for ForwardingStore<S, H> {
    async fn create(&self, record: &SessionRecord) -> Result<(), StoreError> {
        self.hook.before(Call::Create { record }).await?;
        self.inner.create(record).await
    }

    async fn load(
        &self,
        key: &SessionKey,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.hook.before(Call::Load { key, now }).await?;
        self.inner.load(key, now).await
    }

    async fn save(
        &self,
        key: &SessionKey,
        expected_version: Option<u64>,
        changes: &ChangeSet,
        now: Timestamp,
    ) -> Result<SaveOutcome, StoreError> {
        let call = Call::Save {
            key,
            expected_version,
            changes,
            now,
        };
        self.hook.before(call).await?;
        self.inner.save(key, expected_version, changes, now).await
    }

    async fn touch(&self, key: &SessionKey, now: Timestamp) -> Result<bool, StoreError> {
        self.hook.before(Call::Touch { key, now }).await?;
        self.inner.touch(key, now).await
    }

    async fn rotate(
        &self,
        old: &SessionKey,
        expected_version: Option<u64>,
        new: &SessionRecord,
        now: Timestamp,
    ) -> Result<RotateOutcome, StoreError> {
        let call = Call::Rotate {
            old,
            expected_version,
            new,
            now,
        };
        self.hook.before(call).await?;
        self.inner.rotate(old, expected_version, new, now).await
    }

    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.hook.before(Call::Delete { key }).await?;
        self.inner.delete(key).await
    }

    async fn delete_by_user(
        &self,
        user: &UserId,
        except: Option<&SessionKey>,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        self.hook
            .before(Call::DeleteByUser { user, except, now })
            .await?;
        self.inner.delete_by_user(user, except, now).await
    }

    async fn list_by_user(
        &self,
        user: &UserId,
        now: Timestamp,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        self.hook.before(Call::ListByUser { user, now }).await?;
        self.inner.list_by_user(user, now).await
    }

    async fn set_roles_for_user(
        &self,
        user: &UserId,
        roles: &RoleSet,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        self.hook
            .before(Call::SetRolesForUser { user, roles, now })
            .await?;
        self.inner.set_roles_for_user(user, roles, now).await
    }

    async fn delete_by_handle(
        &self,
        user: &UserId,
        handle: &SessionHandle,
    ) -> Result<bool, StoreError> {
        self.hook
            .before(Call::DeleteByHandle { user, handle })
            .await?;
        self.inner.delete_by_handle(user, handle).await
    }

    async fn delete_expired(&self, now: Timestamp, limit: usize) -> Result<u64, StoreError> {
        self.hook.before(Call::DeleteExpired { now, limit }).await?;
        self.inner.delete_expired(now, limit).await
    }
}

/// A [`Hook`] that counts calls per method and fails every call while switched to failing
/// (with a [`StoreError::Backend`], as a store that is down would).
#[derive(Debug, Default)]
pub struct CallLog {
    calls: Mutex<BTreeMap<&'static str, usize>>,
    failing: AtomicBool,
}

impl CallLog {
    /// The calls so far, by method name.
    pub fn calls(&self) -> BTreeMap<&'static str, usize> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many calls so far, all methods together.
    pub fn total(&self) -> usize {
        self.calls().values().sum()
    }

    /// Forgets the calls so far.
    pub fn reset(&self) {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Makes every later call fail (`true`) or pass again (`false`).
    pub fn fail(&self, on: bool) {
        self.failing.store(on, Ordering::SeqCst);
    }
}

#[sessionward_core::async_trait]
impl Hook for CallLog {
    async fn before(&self, call: Call<'_>) -> Result<(), StoreError> {
        *self
            .calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(call.name())
            .or_default() += 1;
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::backend(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "test store is down",
            )));
        }
        Ok(())
    }
}
