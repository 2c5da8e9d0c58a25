//! Records and keys for store tests: the ones the suite itself uses, exported so that a store
//! crate's own tests build theirs the same way instead of copying them.

use std::time::Duration;

use sessionward_core::{
    ChangeSet, Clock as _, RoleSet, SessionHandle, SessionKey, SessionRecord, SessionToken,
    SystemClock, Timestamp, UserId,
};

/// The idle timeout of fixture records: 30 minutes.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// The absolute lifetime of fixture records: 12 hours.
pub const ABSOLUTE: Duration = Duration::from_secs(12 * 60 * 60);

/// The system clock's now.
#[must_use]
pub fn now() -> Timestamp {
    SystemClock.now()
}

/// The key of a fresh random token.
///
/// # Panics
/// If the OS RNG fails (a broken machine, not a broken store).
#[must_use]
pub fn new_key() -> SessionKey {
    SessionToken::generate()
        .map(|t| t.key())
        .unwrap_or_else(|_| panic!("the OS RNG failed"))
}

/// A fresh random handle.
///
/// # Panics
/// If the OS RNG fails.
#[must_use]
pub fn handle() -> SessionHandle {
    SessionHandle::generate().unwrap_or_else(|_| panic!("the OS RNG failed"))
}

/// A user id unique to this run, so stores shared between tests do not see each other's.
#[must_use]
pub fn unique_user(name: &str) -> UserId {
    UserId::new(format!("{name}-{}", handle()))
}

/// A fresh anonymous record created at `at`, lasting [`IDLE`] / [`ABSOLUTE`].
#[must_use]
pub fn anonymous(at: Timestamp) -> SessionRecord {
    SessionRecord::new(new_key(), handle(), at, IDLE, ABSOLUTE)
}

/// A fresh record of `user` (roles `user`, authenticated at `at`) created at `at`.
#[must_use]
pub fn signed_in(user: &UserId, at: Timestamp) -> SessionRecord {
    let mut r = anonymous(at);
    r.user = Some(user.clone());
    r.roles = RoleSet::from_iter(["user"]);
    r.authenticated_at = Some(at);
    r
}

/// A fresh record created at `at`, of `user` (by name, without roles) or anonymous, with the
/// given timeouts.
#[must_use]
pub fn record_lasting(
    user: Option<&str>,
    at: Timestamp,
    idle: Duration,
    absolute: Duration,
) -> SessionRecord {
    let mut r = SessionRecord::new(new_key(), handle(), at, idle, absolute);
    r.user = user.map(UserId::from);
    r
}

/// A fresh record created at `at`, of `user` (by name, without roles) or anonymous, lasting
/// [`IDLE`] / [`ABSOLUTE`].
#[must_use]
pub fn record(user: Option<&str>, at: Timestamp) -> SessionRecord {
    record_lasting(user, at, IDLE, ABSOLUTE)
}

/// A change set that sets one data key.
#[must_use]
pub fn data_change(key: &str, value: serde_json::Value) -> ChangeSet {
    let mut c = ChangeSet::default();
    c.data.insert(key, value);
    c
}
