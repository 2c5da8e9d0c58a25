//! Every statement the store sends: static text with bind parameters only (SEC-32).
//!
//! Operations whose write depends on what they read (a save, a rotation) run in a
//! `BEGIN IMMEDIATE` transaction: it takes SQLite's single write lock before the read, so no
//! other writer can change the row between the read and the write, and a concurrent writer
//! waits for the busy timeout instead of failing the transaction half-way. Every other write
//! is one statement, atomic on its own.

/// The columns of a record, in the order [`crate::row`] decodes them.
macro_rules! record_columns {
    () => {
        "key, handle, user_id, roles, data, created_at, last_seen_at, authenticated_at, \
         idle_timeout_secs, absolute_expires_at, user_agent, version"
    };
}

/// Starts a transaction that holds the write lock from its first statement on.
pub(crate) const BEGIN_IMMEDIATE: &str = "BEGIN IMMEDIATE";

/// Inserts a record unless its key exists.
///
/// `?1` key, `?2` handle, `?3` user, `?4` roles (JSON array), `?5` data (JSON object), `?6`
/// created_at, `?7` last_seen_at, `?8` authenticated_at, `?9` idle_timeout_secs, `?10`
/// absolute_expires_at, `?11` expires_at, `?12` user_agent, `?13` version.
pub(crate) const CREATE: &str = "\
INSERT INTO sessionward_sessions (key, handle, user_id, roles, data, created_at, last_seen_at, \
    authenticated_at, idle_timeout_secs, absolute_expires_at, expires_at, user_agent, version) \
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
ON CONFLICT (key) DO NOTHING";

/// The live record under `?1` at `?2`.
pub(crate) const LOAD: &str = concat!(
    "SELECT ",
    record_columns!(),
    " FROM sessionward_sessions WHERE key = ?1 AND expires_at > ?2"
);

/// What a save reads of the row under `?1` (inside the transaction).
pub(crate) const SAVE_READ: &str = "\
SELECT version, data, last_seen_at, idle_timeout_secs, absolute_expires_at, expires_at \
FROM sessionward_sessions WHERE key = ?1";

/// What a save writes: `?2` data (NULL: unchanged), `?3` last_seen_at, `?4` idle timeout,
/// `?5` absolute expiry, `?6` expires_at, `?7` the new version.
pub(crate) const SAVE_WRITE: &str = "\
UPDATE sessionward_sessions SET data = COALESCE(?2, data), last_seen_at = ?3, \
    idle_timeout_secs = ?4, absolute_expires_at = ?5, expires_at = ?6, version = ?7 \
WHERE key = ?1";

/// Moves `last_seen_at` of the live record under `?1` forward to `?2`; writes only
/// `last_seen_at` and `expires_at` (every expression reads the row as it was).
pub(crate) const TOUCH: &str = "\
UPDATE sessionward_sessions SET \
    last_seen_at = max(last_seen_at, ?2), \
    expires_at = min(max(last_seen_at, ?2) + min(idle_timeout_secs, 3155760000), \
        absolute_expires_at) \
WHERE key = ?1 AND expires_at > ?2";

/// What a rotation reads of the old row under `?1` (inside the transaction).
pub(crate) const ROTATE_READ: &str =
    "SELECT version, expires_at FROM sessionward_sessions WHERE key = ?1";

/// Deletes the record under `?1`.
pub(crate) const DELETE: &str = "DELETE FROM sessionward_sessions WHERE key = ?1";

/// Deletes the records of user `?1` except the one under `?2` (NULL: none excepted).
pub(crate) const DELETE_BY_USER: &str = "\
DELETE FROM sessionward_sessions \
WHERE user_id = ?1 AND user_id IS NOT NULL AND (?2 IS NULL OR key <> ?2)";

/// The live records of user `?1` at `?2`, oldest first.
pub(crate) const LIST_BY_USER: &str = concat!(
    "SELECT ",
    record_columns!(),
    " FROM sessionward_sessions WHERE user_id = ?1 AND user_id IS NOT NULL AND expires_at > ?2 \
     ORDER BY created_at, handle"
);

/// Gives every record of user `?1` the roles `?2` (a JSON array).
pub(crate) const SET_ROLES_FOR_USER: &str = "\
UPDATE sessionward_sessions SET roles = ?2, version = version + 1 \
WHERE user_id = ?1 AND user_id IS NOT NULL";

/// Deletes the record of user `?1` named `?2`.
pub(crate) const DELETE_BY_HANDLE: &str = "\
DELETE FROM sessionward_sessions \
WHERE user_id = ?1 AND user_id IS NOT NULL AND handle = ?2";

/// Deletes up to `?2` records that expired at or before `?1`, oldest expiry first, through the
/// expiry index. One statement: no touch can land between the choice and the delete.
pub(crate) const DELETE_EXPIRED: &str = "\
DELETE FROM sessionward_sessions WHERE rowid IN ( \
    SELECT rowid FROM sessionward_sessions WHERE expires_at <= ?1 \
    ORDER BY expires_at LIMIT ?2)";

/// Rows in the table.
pub(crate) const COUNT: &str = "SELECT count(*) FROM sessionward_sessions";
