//! Every statement the store sends: static text with bind parameters only (SEC-32). MySQL's
//! `?` parameters are positional, so a value used twice is bound twice.
//!
//! MySQL 8 has no `RETURNING` and its JSON functions do not merge the way the contract needs
//! (`JSON_MERGE_PATCH` deletes a key set to `null`; MariaDB's JSON is text with other rules
//! again), so an operation whose write depends on what it read (a save, a rotation) is one
//! InnoDB transaction: `SELECT .. FOR UPDATE` locks the row (waiting for a concurrent writer,
//! then reading its committed newest version), the store decides in Rust (the same merge and
//! limit as every other store), and writes that row by its primary key before `COMMIT`. Every
//! other operation is one statement, checked by its affected-row count (sqlx connects with
//! `CLIENT_FOUND_ROWS`, so a matched row counts even when no value changed).

/// The columns of a record, in the order [`crate::row`] decodes them.
macro_rules! record_columns {
    () => {
        "`key`, handle, user_id, roles, data, created_at, last_seen_at, authenticated_at, \
         idle_timeout_secs, absolute_expires_at, user_agent, version"
    };
}

/// Inserts a record; a duplicate key is an error (`ER_DUP_ENTRY`), never an overwrite.
///
/// Key, handle, user hash, user, roles (JSON array), data (JSON object), created_at,
/// last_seen_at, authenticated_at, idle_timeout_secs, absolute_expires_at, expires_at,
/// user_agent, version.
pub(crate) const CREATE: &str = "\
INSERT INTO sessionward_sessions (`key`, handle, user_hash, user_id, roles, data, created_at, \
    last_seen_at, authenticated_at, idle_timeout_secs, absolute_expires_at, expires_at, \
    user_agent, version) \
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// The live record under a key at a time.
pub(crate) const LOAD: &str = concat!(
    "SELECT ",
    record_columns!(),
    " FROM sessionward_sessions WHERE `key` = ? AND expires_at > ?"
);

/// What a save reads of the row under a key, locking it until the transaction ends.
pub(crate) const SAVE_READ: &str = "\
SELECT version, data, last_seen_at, idle_timeout_secs, absolute_expires_at, expires_at \
FROM sessionward_sessions WHERE `key` = ? FOR UPDATE";

/// What a save writes: data (NULL: unchanged), last_seen_at, idle timeout, absolute expiry,
/// expires_at, the new version; then the key.
pub(crate) const SAVE_WRITE: &str = "\
UPDATE sessionward_sessions SET data = COALESCE(?, data), last_seen_at = ?, \
    idle_timeout_secs = ?, absolute_expires_at = ?, expires_at = ?, version = ? \
WHERE `key` = ?";

/// Moves `last_seen_at` of the live record forward: now, now, key, now. `expires_at` is
/// assigned first: MySQL evaluates a single-table `SET` from left to right on the updated
/// row, so each expression reads `last_seen_at` as it was.
pub(crate) const TOUCH: &str = "\
UPDATE sessionward_sessions SET \
    expires_at = LEAST(GREATEST(last_seen_at, ?) + LEAST(idle_timeout_secs, 3155760000), \
        absolute_expires_at), \
    last_seen_at = GREATEST(last_seen_at, ?) \
WHERE `key` = ? AND expires_at > ?";

/// What a rotation reads of the old row, locking it until the transaction ends.
pub(crate) const ROTATE_READ: &str =
    "SELECT version, expires_at FROM sessionward_sessions WHERE `key` = ? FOR UPDATE";

/// Deletes the record under a key.
pub(crate) const DELETE: &str = "DELETE FROM sessionward_sessions WHERE `key` = ?";

/// Deletes the records of a user (hash, id) except the one under a key (bound twice; NULL:
/// none excepted).
pub(crate) const DELETE_BY_USER: &str = "\
DELETE FROM sessionward_sessions \
WHERE user_hash = ? AND user_id = ? AND (? IS NULL OR `key` <> ?)";

/// The live records of a user (hash, id) at a time, oldest first.
pub(crate) const LIST_BY_USER: &str = concat!(
    "SELECT ",
    record_columns!(),
    " FROM sessionward_sessions WHERE user_hash = ? AND user_id = ? AND expires_at > ? \
     ORDER BY created_at, handle"
);

/// Gives every record of a user (roles, then hash, id) the roles (a JSON array).
pub(crate) const SET_ROLES_FOR_USER: &str = "\
UPDATE sessionward_sessions SET roles = ?, version = version + 1 \
WHERE user_hash = ? AND user_id = ?";

/// Deletes the record of a user (hash, id) with a handle.
pub(crate) const DELETE_BY_HANDLE: &str = "\
DELETE FROM sessionward_sessions WHERE user_hash = ? AND user_id = ? AND handle = ?";

/// Deletes up to a number of records that expired at or before a time, oldest expiry first,
/// through the expiry index. One statement: InnoDB re-reads a row locked by a concurrent touch
/// once the touch commits, so a row the touch extended is not deleted.
pub(crate) const DELETE_EXPIRED: &str = "\
DELETE FROM sessionward_sessions WHERE expires_at <= ? ORDER BY expires_at LIMIT ?";

/// Rows in the table.
pub(crate) const COUNT: &str = "SELECT count(*) FROM sessionward_sessions";
