//! The store contract.

use std::fmt;
use std::time::Duration;

use crate::error::StoreError;
use crate::record::{DataChanges, RoleSet, SessionRecord, Timestamp, UserId};
use crate::token::{SessionHandle, SessionKey};

/// What one request changed in a session, applied by [`SessionStore::save`] on top of the
/// stored record.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChangeSet {
    /// Data keys set and removed.
    pub data: DataChanges,
    /// New `last_seen_at`; only ever moves forward.
    pub last_seen_at: Option<Timestamp>,
    /// New absolute expiry ("remember me" or a shorter step-up lifetime).
    pub absolute_expires_at: Option<Timestamp>,
    /// New idle timeout.
    pub idle_timeout: Option<Duration>,
    /// Cap on the size of the resulting data (JSON bytes). A save that would exceed it fails
    /// with [`StoreError::Data`] and changes nothing, so that concurrent requests cannot grow a
    /// record past the cap together.
    pub data_limit: Option<usize>,
}

impl ChangeSet {
    /// Whether the change set changes nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.data.is_empty() && !self.is_structural() && self.last_seen_at.is_none()
    }

    /// Whether the change set touches more than data keys and activity (the lifetime): given
    /// an expected version, such a change is applied only if the record still has it
    /// ([`SaveOutcome::Conflict`] otherwise). Roles never change through a save: a privilege
    /// change rotates the session ([`SessionStore::rotate`]), and
    /// [`SessionStore::set_roles_for_user`] changes every session of a user.
    #[must_use]
    pub fn is_structural(&self) -> bool {
        self.absolute_expires_at.is_some() || self.idle_timeout.is_some()
    }
}

/// The result of [`SessionStore::save`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveOutcome {
    /// Applied; the record now has this version.
    Saved {
        /// The record's new version.
        version: u64,
    },
    /// The record no longer exists (logged out, revoked, rotated away or expired). Nothing was
    /// written and nothing was recreated.
    Gone,
    /// A structural change was refused because the record changed since it was read.
    Conflict {
        /// The version the record has now.
        current_version: u64,
    },
}

/// The result of [`SessionStore::rotate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The old record is gone and the new one exists.
    Rotated,
    /// The old record was already gone (another request rotated or deleted it first); nothing
    /// was created.
    Gone,
    /// The old record changed since it was read (its version is no longer the expected one);
    /// nothing changed.
    Conflict {
        /// The version the old record has now.
        current_version: u64,
    },
}

/// Where sessions live. One object-safe async trait, used as `Arc<dyn SessionStore>`.
///
/// Every operation is atomic with respect to the others. Stores only ever see
/// [`SessionKey`]s, never tokens. Operations that read take `now` so that expiry is decided by
/// the caller's (injected) clock: an expired record is treated as absent everywhere, whatever
/// the store's own cleanup has done.
///
/// The methods come in three groups:
///
/// - **Per request**, on the one session a request presented, called by the session layer:
///   [`create`](Self::create), [`load`](Self::load), [`save`](Self::save),
///   [`touch`](Self::touch), [`rotate`](Self::rotate) and [`delete`](Self::delete).
/// - **Per user**, on every session of one user, called from the application's "your
///   sessions" and admin pages: [`delete_by_user`](Self::delete_by_user),
///   [`list_by_user`](Self::list_by_user), [`set_roles_for_user`](Self::set_roles_for_user)
///   and [`delete_by_handle`](Self::delete_by_handle).
/// - **Maintenance**, called by the store's background sweeper (or a job of the
///   application's): [`delete_expired`](Self::delete_expired).
///
/// # Authorization epochs
///
/// A store remembers, per user, when that user's authorization last changed
/// (`authz_changed_at`): [`set_roles_for_user`](Self::set_roles_for_user) and
/// [`delete_by_user`](Self::delete_by_user) set it to their `now` (never moving it back: the
/// later of the stored value and `now`), atomically with the change they make. A signed-in
/// record is *current* when its [`authorized_at`](SessionRecord::authorized_at) is not earlier
/// than its user's `authz_changed_at` ([`SessionRecord::is_authorized_after`]); anonymous
/// records always are. Then:
///
/// - [`create`](Self::create) and [`rotate`](Self::rotate) refuse to write a signed-in record
///   that would not be current ([`StoreError::AuthorizationChanged`], nothing written). A
///   sign-in whose request started before a demotion, a password change or an account
///   disablement read the user's roles (or credentials) from before it, and is refused even if
///   it reaches the store after the change.
/// - The per-user operations keep the sessions they leave in place current: every session that
///   [`set_roles_for_user`](Self::set_roles_for_user) gives the new roles, and the session
///   [`delete_by_user`](Self::delete_by_user) spares, gets `authorized_at =
///   authz_changed_at`.
/// - A record that is not current is treated as absent by [`load`](Self::load),
///   [`save`](Self::save) ([`SaveOutcome::Gone`]), [`touch`](Self::touch),
///   [`rotate`](Self::rotate) ([`RotateOutcome::Gone`]) and
///   [`list_by_user`](Self::list_by_user), whatever the store's own cleanup has done. In a
///   store where every operation is atomic such a record cannot exist; the check makes the rule
///   hold where the per-user change and a create are not one transaction (and costs no round
///   trip: the load reads the user's `authz_changed_at` in the same statement or command).
/// - A store may forget a user's `authz_changed_at` once no record of that user older than it
///   can exist or still be created: not before every such record is gone and at least
///   24 hours after the change (far longer than any request, so an in-flight sign-in cannot
///   outlive the memory of the change).
///
/// The `sessionward-conformance` crate holds one suite that every implementation must pass,
/// and the fixtures, forwarding store and service helpers a store's own tests need.
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync + fmt::Debug + 'static {
    /// Inserts `record` only if no record has its key.
    ///
    /// # Errors
    /// [`StoreError::Collision`] if the key exists (never an overwrite);
    /// [`StoreError::AuthorizationChanged`] if `record` is signed in and not current (see
    /// "Authorization epochs" above); [`StoreError::CapacityExceeded`] or
    /// [`StoreError::UserLimitReached`] when bounded.
    async fn create(&self, record: &SessionRecord) -> Result<(), StoreError>;

    /// The live record under `key`, or `None` if there is none or it expired at `now`.
    async fn load(
        &self,
        key: &SessionKey,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError>;

    /// Applies one request's `changes` to the live record under `key`.
    ///
    /// Data keys are merged into the current record, so concurrent saves that change different
    /// keys all survive. `expected_version` is the version the request read, or `None` for a
    /// blind save (a request that wrote without reading). With `Some(version)`, structural
    /// changes (the lifetime, see [`ChangeSet::is_structural`]) are applied only when the
    /// record still has that version ([`SaveOutcome::Conflict`] otherwise); with `None` there
    /// is no version to check. A record that is gone or expired at `now` is never recreated:
    /// the answer is [`SaveOutcome::Gone`]. Every applied save increments the version.
    async fn save(
        &self,
        key: &SessionKey,
        expected_version: Option<u64>,
        changes: &ChangeSet,
        now: Timestamp,
    ) -> Result<SaveOutcome, StoreError>;

    /// Records activity: moves `last_seen_at` forward to `now`. Returns `false` if the record
    /// is gone or expired at `now`.
    async fn touch(&self, key: &SessionKey, now: Timestamp) -> Result<bool, StoreError>;

    /// Atomically deletes the record under `old` and creates `new` (a new ID for the same
    /// session, after sign-in or a privilege change). If `old` is already gone (or expired at
    /// `now`) nothing is created ([`RotateOutcome::Gone`]), so concurrent rotations leave
    /// exactly one successor. With `expected_version`, the rotation happens only if `old`
    /// still has that version ([`RotateOutcome::Conflict`] otherwise), so a successor built
    /// from a stale read cannot undo a concurrent change (a demotion, saved data).
    ///
    /// # Errors
    /// [`StoreError::Collision`] if `new.key` exists, [`StoreError::AuthorizationChanged`] if
    /// `new` is signed in and not current; the old record is then left in place. Stores that
    /// bound sessions per user apply the bound when `new` brings a user to it.
    async fn rotate(
        &self,
        old: &SessionKey,
        expected_version: Option<u64>,
        new: &SessionRecord,
        now: Timestamp,
    ) -> Result<RotateOutcome, StoreError>;

    /// Deletes the record under `key`; `true` if one existed.
    async fn delete(&self, key: &SessionKey) -> Result<bool, StoreError>;

    /// Deletes every session of `user` except the one under `except`, and records `now` as the
    /// user's authorization change (the spared session stays current, sign-ins that started
    /// earlier are refused: see "Authorization epochs"); returns how many it deleted.
    /// Called with `except: None` to disable an account or end a user's every session.
    async fn delete_by_user(
        &self,
        user: &UserId,
        except: Option<&SessionKey>,
        now: Timestamp,
    ) -> Result<u64, StoreError>;

    /// The live sessions of `user`, oldest first.
    async fn list_by_user(
        &self,
        user: &UserId,
        now: Timestamp,
    ) -> Result<Vec<SessionRecord>, StoreError>;

    /// Gives every session of `user` the roles `roles` and records `now` as the user's
    /// authorization change (those sessions stay current, sign-ins that started earlier are
    /// refused: see "Authorization epochs"); returns how many sessions changed.
    async fn set_roles_for_user(
        &self,
        user: &UserId,
        roles: &RoleSet,
        now: Timestamp,
    ) -> Result<u64, StoreError>;

    /// Deletes the session named `handle` if, and only if, it belongs to `user`.
    /// Returns `false` for an unknown handle and for another user's handle alike.
    async fn delete_by_handle(
        &self,
        user: &UserId,
        handle: &SessionHandle,
    ) -> Result<bool, StoreError>;

    /// Deletes up to `limit` records that expired at or before `now`; returns how many.
    async fn delete_expired(&self, now: Timestamp, limit: usize) -> Result<u64, StoreError>;

    /// This store's synchronous face, for a store whose calls never wait (one that keeps its
    /// records in the process, like `MemoryStore`): see [`ImmediateStore`]. The default,
    /// `None`, is right for every store that does I/O, and for every wrapper of another store
    /// (a wrapper that answered with its inner store's face would bypass itself).
    fn immediate(&self) -> Option<&dyn ImmediateStore> {
        None
    }
}

/// The operations of a request's hot path, answered without waiting.
///
/// A store that never waits (it holds its records in the process and takes only short,
/// non-blocking locks) implements this trait and returns itself from
/// [`SessionStore::immediate`]. The session layer then calls these methods instead of the
/// asynchronous ones on a request's path (its load, and the writes that complete it), so a
/// request needs no boxed future per store call and none for completing the session.
///
/// Each method is the operation of the [`SessionStore`] method of the same name, under the
/// same contract; the asynchronous method of such a store should just call it, so that the two
/// faces cannot differ. The `sessionward-conformance` suite runs its whole contract through
/// this face too when a store has one.
pub trait ImmediateStore: Send + Sync {
    /// [`SessionStore::create`], without waiting.
    ///
    /// # Errors
    /// As [`SessionStore::create`].
    fn create_now(&self, record: &SessionRecord) -> Result<(), StoreError>;

    /// [`SessionStore::load`], without waiting.
    ///
    /// # Errors
    /// As [`SessionStore::load`].
    fn load_now(
        &self,
        key: &SessionKey,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError>;

    /// [`SessionStore::save`], without waiting.
    ///
    /// # Errors
    /// As [`SessionStore::save`].
    fn save_now(
        &self,
        key: &SessionKey,
        expected_version: Option<u64>,
        changes: &ChangeSet,
        now: Timestamp,
    ) -> Result<SaveOutcome, StoreError>;

    /// [`SessionStore::touch`], without waiting.
    ///
    /// # Errors
    /// As [`SessionStore::touch`].
    fn touch_now(&self, key: &SessionKey, now: Timestamp) -> Result<bool, StoreError>;

    /// [`SessionStore::rotate`], without waiting.
    ///
    /// # Errors
    /// As [`SessionStore::rotate`].
    fn rotate_now(
        &self,
        old: &SessionKey,
        expected_version: Option<u64>,
        new: &SessionRecord,
        now: Timestamp,
    ) -> Result<RotateOutcome, StoreError>;

    /// [`SessionStore::delete`], without waiting.
    ///
    /// # Errors
    /// As [`SessionStore::delete`].
    fn delete_now(&self, key: &SessionKey) -> Result<bool, StoreError>;
}
