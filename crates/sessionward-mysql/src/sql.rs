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

/// The columns of a record (table alias `s`), in the order [`crate::row`] decodes them.
macro_rules! record_columns {
    () => {
        "s.`key`, s.handle, s.user_id, s.roles, s.data, s.created_at, s.last_seen_at, \
         s.authenticated_at, s.idle_timeout_secs, s.absolute_expires_at, s.user_agent, \
         s.version, s.authorized_at, s.persistent"
    };
}

/// The condition that the row `s` is current: anonymous, or its user's authorization has not
/// changed since `s.authorized_at` (a lookup by the primary key of `sessionward_user_authz`).
macro_rules! current {
    () => {
        "NOT EXISTS (SELECT 1 FROM sessionward_user_authz AS u \
         WHERE u.user_hash = s.user_hash AND u.changed_at > s.authorized_at)"
    };
}

/// The change time of the row `s`'s user, or NULL (a column of a `SELECT .. FOR UPDATE`: InnoDB
/// locks only the rows of the outer table, this is a plain read of the user row).
macro_rules! changed_at {
    () => {
        "(SELECT u.changed_at FROM sessionward_user_authz AS u WHERE u.user_hash = s.user_hash)"
    };
}

/// Inserts a record; a duplicate key is an error (`ER_DUP_ENTRY`), never an overwrite.
///
/// Key, handle, user hash, user, roles (JSON array), data (JSON object), created_at,
/// last_seen_at, authenticated_at, idle_timeout_secs, absolute_expires_at, expires_at,
/// user_agent, version, authorized_at, persistent. A signed-in record is inserted inside a
/// transaction that holds its user's row in share mode ([`LOCK_USER_SHARED`]).
pub(crate) const CREATE: &str = "\
INSERT INTO sessionward_sessions (`key`, handle, user_hash, user_id, roles, data, created_at, \
    last_seen_at, authenticated_at, idle_timeout_secs, absolute_expires_at, expires_at, \
    user_agent, version, authorized_at, persistent) \
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// A sign-in's (or a signed-in rotation's) first statement: the change time of a user (hash),
/// read with a shared lock until the transaction ends. A per-user change that holds the row is
/// waited for and its newest value is read (a locking read sees the latest commit); one that
/// starts later waits for this transaction. When the user has no row, REPEATABLE READ's shared
/// gap lock keeps a per-user change from inserting it until this transaction ends.
pub(crate) const LOCK_USER_SHARED: &str =
    "SELECT changed_at FROM sessionward_user_authz WHERE user_hash = ? LOCK IN SHARE MODE";

/// The live, current record under a key at a time: one statement, the session table's primary
/// key and (for a signed-in row) the user table's.
pub(crate) const LOAD: &str = concat!(
    "SELECT ",
    record_columns!(),
    " FROM sessionward_sessions AS s WHERE s.`key` = ? AND s.expires_at > ? AND ",
    current!()
);

/// What a save reads of the row under a key, locking it until the transaction ends, with the
/// row's `authorized_at` and its user's change time (NULL: none).
pub(crate) const SAVE_READ: &str = concat!(
    "SELECT s.version, s.data, s.last_seen_at, s.idle_timeout_secs, s.absolute_expires_at, \
     s.expires_at, s.authorized_at, ",
    changed_at!(),
    " AS changed_at FROM sessionward_sessions AS s WHERE s.`key` = ? FOR UPDATE"
);

/// What a save writes: data (NULL: unchanged), last_seen_at, idle timeout, absolute expiry,
/// expires_at, the new version; then the key.
pub(crate) const SAVE_WRITE: &str = "\
UPDATE sessionward_sessions SET data = COALESCE(?, data), last_seen_at = ?, \
    idle_timeout_secs = ?, absolute_expires_at = ?, expires_at = ?, version = ? \
WHERE `key` = ?";

/// Moves `last_seen_at` of the live, current record forward: now, now, key, now. `expires_at`
/// is assigned first: MySQL evaluates a single-table `SET` from left to right on the updated
/// row, so each expression reads `last_seen_at` as it was. (InnoDB reads the user row of the
/// `NOT EXISTS` with a shared lock here, after the session row: the store retries the touch if
/// that deadlocks with a per-user change, which takes the two in the other order.)
pub(crate) const TOUCH: &str = concat!(
    "UPDATE sessionward_sessions AS s SET \
    s.expires_at = LEAST(GREATEST(s.last_seen_at, ?) + LEAST(s.idle_timeout_secs, 3155760000), \
        s.absolute_expires_at), \
    s.last_seen_at = GREATEST(s.last_seen_at, ?) \
    WHERE s.`key` = ? AND s.expires_at > ? AND ",
    current!()
);

/// What a rotation reads of the old row, locking it until the transaction ends: version,
/// expiry, `authorized_at`, whether it is signed in and its user's change time (NULL: none).
pub(crate) const ROTATE_READ: &str = concat!(
    "SELECT s.version, s.expires_at, s.authorized_at, ",
    changed_at!(),
    " AS changed_at FROM sessionward_sessions AS s WHERE s.`key` = ? FOR UPDATE"
);

/// Deletes the record under a key.
pub(crate) const DELETE: &str = "DELETE FROM sessionward_sessions WHERE `key` = ?";

/// A per-user change, first statement (inside a transaction): makes sure the user (hash) has a
/// row and locks it exclusively until the transaction ends (the no-op update of an existing
/// row takes the same lock). A sign-in of the user that holds the row in share mode is waited
/// for; one that comes later waits for this transaction.
pub(crate) const LOCK_USER: &str = "\
INSERT INTO sessionward_user_authz (user_hash, changed_at) VALUES (?, 0) \
ON DUPLICATE KEY UPDATE changed_at = changed_at";

/// The change time of a user (hash) under the lock [`LOCK_USER`] took: the newest committed.
pub(crate) const USER_CHANGED_AT_LOCKED: &str =
    "SELECT changed_at FROM sessionward_user_authz WHERE user_hash = ? FOR UPDATE";

/// Records a change time (the later of the stored one and the change's `now`) for a user
/// (hash).
pub(crate) const SET_USER_CHANGED_AT: &str =
    "UPDATE sessionward_user_authz SET changed_at = ? WHERE user_hash = ?";

/// Deletes the records of a user (hash, id) except the one under a key (bound twice; NULL:
/// none excepted), and those that were not current before the change (`authorized_at` earlier
/// than the previous change time, last) even under that key: making one current would bring it
/// back.
pub(crate) const DELETE_BY_USER: &str = "\
DELETE FROM sessionward_sessions \
WHERE user_hash = ? AND user_id = ? AND (? IS NULL OR `key` <> ? OR authorized_at < ?)";

/// Makes the record of a user (change time, then hash, id) under a key current as of the
/// change time.
pub(crate) const STAMP_KEPT: &str = "\
UPDATE sessionward_sessions SET authorized_at = ? \
WHERE user_hash = ? AND user_id = ? AND `key` = ?";

/// The live, current records of a user (hash, id) at a time, oldest first.
pub(crate) const LIST_BY_USER: &str = concat!(
    "SELECT ",
    record_columns!(),
    " FROM sessionward_sessions AS s \
     WHERE s.user_hash = ? AND s.user_id = ? AND s.expires_at > ? AND ",
    current!(),
    " ORDER BY s.created_at, s.handle"
);

/// Deletes the records of a user (hash, id) that were not current before a per-user change
/// (`authorized_at` earlier than the previous change time): giving them the change's time
/// would bring them back.
pub(crate) const DELETE_STALE_OF_USER: &str = "\
DELETE FROM sessionward_sessions WHERE user_hash = ? AND user_id = ? AND authorized_at < ?";

/// Gives every record of a user (roles, change time, then hash, id) the roles (a JSON array)
/// and the change time as its `authorized_at` (after [`DELETE_STALE_OF_USER`]).
pub(crate) const SET_ROLES_FOR_USER: &str = "\
UPDATE sessionward_sessions SET roles = ?, authorized_at = ?, version = version + 1 \
WHERE user_hash = ? AND user_id = ?";

/// Deletes the record of a user (hash, id) with a handle.
pub(crate) const DELETE_BY_HANDLE: &str = "\
DELETE FROM sessionward_sessions WHERE user_hash = ? AND user_id = ? AND handle = ?";

/// Deletes up to a number of records that expired at or before a time, oldest expiry first,
/// through the expiry index. One statement: InnoDB re-reads a row locked by a concurrent touch
/// once the touch commits, so a row the touch extended is not deleted.
pub(crate) const DELETE_EXPIRED: &str = "\
DELETE FROM sessionward_sessions WHERE expires_at <= ? ORDER BY expires_at LIMIT ?";

/// Forgets up to a number of users' authorization changes that the contract lets the store
/// forget: made at or before a time (24 hours ago) and older than every session of the user,
/// oldest first through the `changed_at` index, each checked through the session table's user
/// index. InnoDB locks what it reads here (the user rows it scans, shared locks on the user's
/// session rows); a deadlock with a touch or a per-user change fails only this pass.
pub(crate) const FORGET_AUTHZ: &str = "\
DELETE FROM sessionward_user_authz \
WHERE changed_at <= ? AND NOT EXISTS ( \
    SELECT 1 FROM sessionward_sessions AS s \
    WHERE s.user_hash = sessionward_user_authz.user_hash \
        AND s.authorized_at < sessionward_user_authz.changed_at) \
ORDER BY changed_at LIMIT ?";

/// Rows in the table.
pub(crate) const COUNT: &str = "SELECT count(*) FROM sessionward_sessions";
