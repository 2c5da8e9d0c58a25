//! Every statement the store sends: static text with bind parameters only (SEC-32).
//!
//! Operations whose write depends on what they read (a save, a rotation) run in a
//! `BEGIN IMMEDIATE` transaction: it takes SQLite's single write lock before the read, so no
//! other writer can change the row between the read and the write, and a concurrent writer
//! waits for the busy timeout instead of failing the transaction half-way. Every other write
//! is one statement, atomic on its own.

/// The columns of a record (table alias `s`), in the order [`crate::row`] decodes them.
macro_rules! record_columns {
    () => {
        "s.key, s.handle, s.user_id, s.roles, s.data, s.created_at, s.last_seen_at, \
         s.authenticated_at, s.idle_timeout_secs, s.absolute_expires_at, s.user_agent, \
         s.version, s.authorized_at, s.persistent"
    };
}

/// The condition that the row `s` is current: anonymous, or its user's authorization has not
/// changed since `s.authorized_at` (a lookup by the primary key of `sessionward_user_authz`).
macro_rules! current {
    () => {
        "NOT EXISTS (SELECT 1 FROM sessionward_user_authz AS u \
         WHERE u.user_id = s.user_id AND u.changed_at > s.authorized_at)"
    };
}

/// Starts a transaction that holds the write lock from its first statement on.
pub(crate) const BEGIN_IMMEDIATE: &str = "BEGIN IMMEDIATE";

/// Inserts a record unless its key exists or it is signed in and older than its user's last
/// authorization change. One write statement: SQLite takes the write lock before it reads, so
/// the user's change time it compares is the newest, and no per-user change can run between
/// the check and the insert.
///
/// `?1` key, `?2` handle, `?3` user, `?4` roles (JSON array), `?5` data (JSON object), `?6`
/// created_at, `?7` last_seen_at, `?8` authenticated_at, `?9` idle_timeout_secs, `?10`
/// absolute_expires_at, `?11` expires_at, `?12` user_agent, `?13` version, `?14`
/// authorized_at, `?15` persistent.
pub(crate) const CREATE: &str = "\
INSERT INTO sessionward_sessions (key, handle, user_id, roles, data, created_at, last_seen_at, \
    authenticated_at, idle_timeout_secs, absolute_expires_at, expires_at, user_agent, version, \
    authorized_at, persistent) \
SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15 \
WHERE NOT EXISTS (SELECT 1 FROM sessionward_user_authz WHERE user_id = ?3 AND changed_at > ?14) \
ON CONFLICT (key) DO NOTHING";

/// The change time of user `?1`, if the store holds one.
pub(crate) const USER_CHANGED_AT: &str =
    "SELECT changed_at FROM sessionward_user_authz WHERE user_id = ?1";

/// The live, current record under `?1` at `?2`: one statement, the session table's primary key
/// and (for a signed-in row) the user table's.
pub(crate) const LOAD: &str = concat!(
    "SELECT ",
    record_columns!(),
    " FROM sessionward_sessions AS s WHERE s.key = ?1 AND s.expires_at > ?2 AND ",
    current!()
);

/// What a save reads of the row under `?1` if it is current (inside the transaction).
pub(crate) const SAVE_READ: &str = concat!(
    "SELECT s.version, s.data, s.last_seen_at, s.idle_timeout_secs, s.absolute_expires_at, \
     s.expires_at FROM sessionward_sessions AS s WHERE s.key = ?1 AND ",
    current!()
);

/// What a save writes: `?2` data (NULL: unchanged), `?3` last_seen_at, `?4` idle timeout,
/// `?5` absolute expiry, `?6` expires_at, `?7` the new version.
pub(crate) const SAVE_WRITE: &str = "\
UPDATE sessionward_sessions SET data = COALESCE(?2, data), last_seen_at = ?3, \
    idle_timeout_secs = ?4, absolute_expires_at = ?5, expires_at = ?6, version = ?7 \
WHERE key = ?1";

/// Moves `last_seen_at` of the live, current record under `?1` forward to `?2`; writes only
/// `last_seen_at` and `expires_at` (every expression reads the row as it was).
pub(crate) const TOUCH: &str = concat!(
    "UPDATE sessionward_sessions AS s SET \
    last_seen_at = max(s.last_seen_at, ?2), \
    expires_at = min(max(s.last_seen_at, ?2) + min(s.idle_timeout_secs, 3155760000), \
        s.absolute_expires_at) \
    WHERE s.key = ?1 AND s.expires_at > ?2 AND ",
    current!()
);

/// What a rotation reads of the old row under `?1` (inside the transaction): its version, its
/// expiry and whether it is current.
pub(crate) const ROTATE_READ: &str = concat!(
    "SELECT s.version, s.expires_at, ",
    current!(),
    " AS current FROM sessionward_sessions AS s WHERE s.key = ?1"
);

/// Deletes the record under `?1`.
pub(crate) const DELETE: &str = "DELETE FROM sessionward_sessions WHERE key = ?1";

/// Records `?2` as the change time of user `?1` (inside a per-user change's transaction, which
/// read the previous value and passes the later of the two).
pub(crate) const SET_USER_CHANGED_AT: &str = "\
INSERT INTO sessionward_user_authz (user_id, changed_at) VALUES (?1, ?2) \
ON CONFLICT (user_id) DO UPDATE SET changed_at = max(changed_at, excluded.changed_at)";

/// Deletes the records of user `?1` except the one under `?2` (NULL: none excepted), and those
/// that were not current before the change (`authorized_at < ?3`, the previous change time)
/// even if it is `?2`: making it current would bring it back.
pub(crate) const DELETE_BY_USER: &str = "\
DELETE FROM sessionward_sessions \
WHERE user_id = ?1 AND user_id IS NOT NULL AND (?2 IS NULL OR key <> ?2 OR authorized_at < ?3)";

/// Makes the record of user `?1` under `?2` current as of the change time `?3`.
pub(crate) const STAMP_KEPT: &str = "\
UPDATE sessionward_sessions SET authorized_at = ?3 WHERE key = ?2 AND user_id = ?1";

/// The live, current records of user `?1` at `?2`, oldest first.
pub(crate) const LIST_BY_USER: &str = concat!(
    "SELECT ",
    record_columns!(),
    " FROM sessionward_sessions AS s \
     WHERE s.user_id = ?1 AND s.user_id IS NOT NULL AND s.expires_at > ?2 AND ",
    current!(),
    " ORDER BY s.created_at, s.handle"
);

/// Deletes the records of user `?1` that were not current before a per-user change
/// (`authorized_at < ?2`, the previous change time): giving them the change's time would bring
/// them back.
pub(crate) const DELETE_STALE_OF_USER: &str = "\
DELETE FROM sessionward_sessions \
WHERE user_id = ?1 AND user_id IS NOT NULL AND authorized_at < ?2";

/// Gives every record of user `?1` the roles `?2` (a JSON array) and the change time `?3` as
/// its `authorized_at` (after [`DELETE_STALE_OF_USER`], in the same transaction).
pub(crate) const SET_ROLES_FOR_USER: &str = "\
UPDATE sessionward_sessions SET roles = ?2, version = version + 1, authorized_at = ?3 \
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

/// Forgets up to `?2` users' authorization changes that the contract lets the store forget:
/// made at or before `?1` (24 hours ago) and older than every session of the user, oldest first
/// through the `changed_at` index, each checked through the session table's user index.
pub(crate) const FORGET_AUTHZ: &str = "\
DELETE FROM sessionward_user_authz WHERE user_id IN ( \
    SELECT u.user_id FROM sessionward_user_authz AS u \
    WHERE u.changed_at <= ?1 AND NOT EXISTS ( \
        SELECT 1 FROM sessionward_sessions AS s \
        WHERE s.user_id = u.user_id AND s.user_id IS NOT NULL \
            AND s.authorized_at < u.changed_at) \
    ORDER BY u.changed_at LIMIT ?2)";

/// Rows in the table.
pub(crate) const COUNT: &str = "SELECT count(*) FROM sessionward_sessions";
