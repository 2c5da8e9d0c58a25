//! [`Traced`]: the layer's store, with every call inside a `tracing` span.
//!
//! Each store call the layer and [`Sessions`](crate::Sessions) make runs inside a DEBUG span
//! named `sessionward.store` with the fields `operation` (`load`, `save`, `touch`, ...),
//! `store` (the store's type name) and `outcome` (recorded when the call ends: `ok`, `absent`,
//! `gone`, `conflict` or `error`). With an OpenTelemetry subscriber the span becomes a child of
//! the request's span, so a trace shows the store's latency per request.
//!
//! When no subscriber is interested in the span (none installed, or DEBUG filtered out for
//! `sessionward`), the call goes straight to the store: the check is the global level hint
//! (no subscriber takes DEBUG at all), then the callsite's interest, and neither the span nor
//! an extra future is created. The level hint comes first because a disabled span is not
//! free: with `tracing`'s `log` feature on (any crate in the build may turn it on), building
//! one still offers its fields to `log`. So with no `tracing` subscriber at all, these spans
//! are not mirrored to a `log` logger either.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use sessionward_core::{
    ChangeSet, ImmediateStore, RoleSet, RotateOutcome, SaveOutcome, SessionHandle, SessionKey,
    SessionRecord, SessionStore, StoreError, Timestamp, UserId,
};
use tracing::Instrument as _;

type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A store whose calls run inside `sessionward.store` spans (see the module docs).
pub(crate) struct Traced {
    inner: Arc<dyn SessionStore>,
    /// The store's type name, from its `Debug` output (e.g. `MemoryStore`).
    name: Box<str>,
}

impl Traced {
    pub(crate) fn wrap(inner: Arc<dyn SessionStore>) -> Arc<dyn SessionStore> {
        let name = store_name(&*inner);
        Arc::new(Self { inner, name })
    }

    /// The span of one store call, or `None` when no subscriber takes it: the global level
    /// hint first (a disabled span is not free, see the module docs), then the callsite's
    /// interest.
    fn span(&self, operation: &'static str) -> Option<tracing::Span> {
        if !tracing::level_enabled!(tracing::Level::DEBUG) {
            return None;
        }
        let span = tracing::debug_span!(
            "sessionward.store",
            operation,
            store = &*self.name,
            outcome = tracing::field::Empty,
        );
        (!span.is_disabled()).then_some(span)
    }

    fn traced<'a, T: Send + 'a>(
        &self,
        operation: &'static str,
        call: StoreFuture<'a, T>,
        outcome: fn(&T) -> &'static str,
    ) -> StoreFuture<'a, T> {
        let Some(span) = self.span(operation) else {
            return call;
        };
        Box::pin(async move {
            let result = call.instrument(span.clone()).await;
            span.record("outcome", result.as_ref().map_or("error", outcome));
            result
        })
    }
}

impl Traced {
    /// One call through the inner store's [`ImmediateStore`] face, inside the same span as the
    /// asynchronous calls (entered and left around the call).
    fn traced_now<T>(
        &self,
        operation: &'static str,
        call: impl FnOnce(&dyn ImmediateStore) -> Result<T, StoreError>,
        outcome: fn(&T) -> &'static str,
    ) -> Result<T, StoreError> {
        // `Traced::immediate` offers this face only when the inner store has one.
        let Some(inner) = self.inner.immediate() else {
            return Err(StoreError::backend("the store has no immediate face"));
        };
        let Some(span) = self.span(operation) else {
            return call(inner);
        };
        let result = span.in_scope(|| call(inner));
        span.record("outcome", result.as_ref().map_or("error", outcome));
        result
    }
}

impl ImmediateStore for Traced {
    fn create_now(&self, record: &SessionRecord) -> Result<(), StoreError> {
        self.traced_now("create", |s| s.create_now(record), ok)
    }

    fn load_now(
        &self,
        key: &SessionKey,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.traced_now("load", |s| s.load_now(key, now), found)
    }

    fn save_now(
        &self,
        key: &SessionKey,
        expected_version: Option<u64>,
        changes: &ChangeSet,
        now: Timestamp,
    ) -> Result<SaveOutcome, StoreError> {
        let call = |s: &dyn ImmediateStore| s.save_now(key, expected_version, changes, now);
        self.traced_now("save", call, saved)
    }

    fn touch_now(&self, key: &SessionKey, now: Timestamp) -> Result<bool, StoreError> {
        self.traced_now("touch", |s| s.touch_now(key, now), done)
    }

    fn rotate_now(
        &self,
        old: &SessionKey,
        expected_version: Option<u64>,
        new: &SessionRecord,
        now: Timestamp,
    ) -> Result<RotateOutcome, StoreError> {
        let call = |s: &dyn ImmediateStore| s.rotate_now(old, expected_version, new, now);
        self.traced_now("rotate", call, rotated)
    }

    fn delete_now(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.traced_now("delete", |s| s.delete_now(key), done)
    }
}

/// The leading identifier of the store's `Debug` output, at most 64 characters: its type name
/// for derived and hand-written `Debug`s alike. Computed once, when the layer is built.
fn store_name(store: &dyn SessionStore) -> Box<str> {
    let debug = format!("{store:?}");
    let name: String = debug
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
        .take(64)
        .collect();
    if name.is_empty() {
        "SessionStore".into()
    } else {
        name.into()
    }
}

impl fmt::Debug for Traced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Transparent: the layer's `Debug` shows the application's store.
        self.inner.fmt(f)
    }
}

fn ok<T>(_: &T) -> &'static str {
    "ok"
}

fn found<T>(value: &Option<T>) -> &'static str {
    if value.is_some() { "ok" } else { "absent" }
}

fn done(value: &bool) -> &'static str {
    if *value { "ok" } else { "absent" }
}

fn saved(value: &SaveOutcome) -> &'static str {
    match value {
        SaveOutcome::Gone => "gone",
        SaveOutcome::Conflict { .. } => "conflict",
        SaveOutcome::Saved { .. } => "ok",
    }
}

fn rotated(value: &RotateOutcome) -> &'static str {
    match value {
        RotateOutcome::Gone => "gone",
        RotateOutcome::Conflict { .. } => "conflict",
        RotateOutcome::Rotated => "ok",
    }
}

// The trait is declared with `async_trait`; these are its desugared signatures, written out so
// that a call with no interested subscriber returns the store's own future unchanged.
impl SessionStore for Traced {
    fn create<'l0, 'l1, 'at>(&'l0 self, record: &'l1 SessionRecord) -> StoreFuture<'at, ()>
    where
        'l0: 'at,
        'l1: 'at,
        Self: 'at,
    {
        self.traced("create", self.inner.create(record), ok)
    }

    fn load<'l0, 'l1, 'at>(
        &'l0 self,
        key: &'l1 SessionKey,
        now: Timestamp,
    ) -> StoreFuture<'at, Option<SessionRecord>>
    where
        'l0: 'at,
        'l1: 'at,
        Self: 'at,
    {
        self.traced("load", self.inner.load(key, now), found)
    }

    fn save<'l0, 'l1, 'l2, 'at>(
        &'l0 self,
        key: &'l1 SessionKey,
        expected_version: Option<u64>,
        changes: &'l2 ChangeSet,
        now: Timestamp,
    ) -> StoreFuture<'at, SaveOutcome>
    where
        'l0: 'at,
        'l1: 'at,
        'l2: 'at,
        Self: 'at,
    {
        let call = self.inner.save(key, expected_version, changes, now);
        self.traced("save", call, saved)
    }

    fn touch<'l0, 'l1, 'at>(
        &'l0 self,
        key: &'l1 SessionKey,
        now: Timestamp,
    ) -> StoreFuture<'at, bool>
    where
        'l0: 'at,
        'l1: 'at,
        Self: 'at,
    {
        self.traced("touch", self.inner.touch(key, now), done)
    }

    fn rotate<'l0, 'l1, 'l2, 'at>(
        &'l0 self,
        old: &'l1 SessionKey,
        expected_version: Option<u64>,
        new: &'l2 SessionRecord,
        now: Timestamp,
    ) -> StoreFuture<'at, RotateOutcome>
    where
        'l0: 'at,
        'l1: 'at,
        'l2: 'at,
        Self: 'at,
    {
        let call = self.inner.rotate(old, expected_version, new, now);
        self.traced("rotate", call, rotated)
    }

    fn delete<'l0, 'l1, 'at>(&'l0 self, key: &'l1 SessionKey) -> StoreFuture<'at, bool>
    where
        'l0: 'at,
        'l1: 'at,
        Self: 'at,
    {
        self.traced("delete", self.inner.delete(key), done)
    }

    fn delete_by_user<'l0, 'l1, 'l2, 'at>(
        &'l0 self,
        user: &'l1 UserId,
        except: Option<&'l2 SessionKey>,
        now: Timestamp,
    ) -> StoreFuture<'at, u64>
    where
        'l0: 'at,
        'l1: 'at,
        'l2: 'at,
        Self: 'at,
    {
        let call = self.inner.delete_by_user(user, except, now);
        self.traced("delete_by_user", call, ok)
    }

    fn list_by_user<'l0, 'l1, 'at>(
        &'l0 self,
        user: &'l1 UserId,
        now: Timestamp,
    ) -> StoreFuture<'at, Vec<SessionRecord>>
    where
        'l0: 'at,
        'l1: 'at,
        Self: 'at,
    {
        self.traced("list_by_user", self.inner.list_by_user(user, now), ok)
    }

    fn set_roles_for_user<'l0, 'l1, 'l2, 'at>(
        &'l0 self,
        user: &'l1 UserId,
        roles: &'l2 RoleSet,
        now: Timestamp,
    ) -> StoreFuture<'at, u64>
    where
        'l0: 'at,
        'l1: 'at,
        'l2: 'at,
        Self: 'at,
    {
        let call = self.inner.set_roles_for_user(user, roles, now);
        self.traced("set_roles_for_user", call, ok)
    }

    fn delete_by_handle<'l0, 'l1, 'l2, 'at>(
        &'l0 self,
        user: &'l1 UserId,
        handle: &'l2 SessionHandle,
    ) -> StoreFuture<'at, bool>
    where
        'l0: 'at,
        'l1: 'at,
        'l2: 'at,
        Self: 'at,
    {
        self.traced(
            "delete_by_handle",
            self.inner.delete_by_handle(user, handle),
            done,
        )
    }

    fn delete_expired<'l0, 'at>(&'l0 self, now: Timestamp, limit: usize) -> StoreFuture<'at, u64>
    where
        'l0: 'at,
        Self: 'at,
    {
        self.traced("delete_expired", self.inner.delete_expired(now, limit), ok)
    }

    /// The inner store's face, traced: offered only when the inner store has one.
    fn immediate(&self) -> Option<&dyn ImmediateStore> {
        self.inner.immediate().map(|_| self as &dyn ImmediateStore)
    }
}
