//! Every statement the store sends. All are static text with bind parameters only (SEC-32);
//! the table is found through the connection's `search_path`, never through an identifier
//! spliced into SQL.

// Idle timeouts longer than 100 years (3155760000 s) count as 100 years when `expires_at` is
// computed, which keeps `last_seen_at + idle` inside PostgreSQL's timestamp range; the stored
// `idle_timeout_secs` keeps the exact value.

/// The columns of a record (table alias `s`), in the order [`crate::row`] decodes them.
macro_rules! record_columns {
    () => {
        "s.key, s.handle, s.user_id, s.roles, s.data::text AS data, s.created_at, \
         s.last_seen_at, s.authenticated_at, s.idle_timeout_secs, s.absolute_expires_at, \
         s.user_agent, s.version, s.authorized_at, s.persistent"
    };
}

/// The condition that the row `s` is current: anonymous, or its user's authorization has not
/// changed since `s.authorized_at` (an anti-join through the primary key of
/// `sessionward_user_authz`).
macro_rules! current {
    () => {
        "NOT EXISTS (SELECT 1 FROM sessionward_user_authz AS u \
         WHERE u.user_id = s.user_id AND u.changed_at > s.authorized_at)"
    };
}

/// A condition that is always true and, evaluated on the row an `UPDATE` is about to change,
/// turns off `synchronous_commit` for the statement's own (implicit) transaction only: the
/// commit returns before its WAL reaches the disk (asynchronous commit), and the setting reverts
/// when the statement's transaction ends, so nothing else on the connection is affected. Used
/// by [`TOUCH`] and, for saves that change only data and activity, by [`SAVE`]; never by a
/// statement that deletes, rotates, creates or changes authorization (docs/stores.md).
macro_rules! async_commit {
    () => {
        "set_config('synchronous_commit', 'off', true) IS NOT NULL"
    };
}

/// Inserts a record unless its key exists or it is signed in and not current; answers
/// `(created, stale)`. `sweep_at` starts at the expiry (see [`SWEEP`]).
///
/// `$1` key, `$2` handle, `$3` user, `$4` roles, `$5` data (JSON text), `$6` created_at,
/// `$7` last_seen_at, `$8` authenticated_at, `$9` idle_timeout_secs, `$10`
/// absolute_expires_at, `$11` user_agent, `$12` version, `$13` authorized_at, `$14`
/// persistent.
///
/// `authz` reads the user's row `FOR SHARE`: a concurrent `set_roles_for_user` or
/// `delete_by_user` (which lock that row first, exclusively) is waited for and its newest
/// `changed_at` is the one compared (READ COMMITTED returns the newest version of a row it
/// locks), and one that starts later waits for this insert to commit and then sees the row.
/// An uncorrelated `NOT EXISTS` is an init plan: the lock is taken before the insert.
pub(crate) const CREATE: &str = "\
WITH authz AS ( \
    SELECT changed_at FROM sessionward_user_authz WHERE user_id = $3 FOR SHARE \
), ins AS ( \
    INSERT INTO sessionward_sessions (key, handle, user_id, roles, data, created_at, \
        last_seen_at, authenticated_at, idle_timeout_secs, absolute_expires_at, expires_at, \
        sweep_at, user_agent, version, authorized_at, persistent) \
    SELECT $1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10, e.at, e.at, $11, $12, $13, $14 \
    FROM (SELECT LEAST($7 + LEAST($9, 3155760000) * interval '1 second', $10) AS at) AS e \
    WHERE NOT EXISTS (SELECT 1 FROM authz WHERE changed_at > $13) \
    ON CONFLICT (key) DO NOTHING \
    RETURNING 1 \
) \
SELECT EXISTS (SELECT 1 FROM ins) AS created, \
    EXISTS (SELECT 1 FROM authz WHERE changed_at > $13) AS stale";

/// The live, current record under `$1` at `$2`: one statement, the primary key of the
/// session table and (for a signed-in row) the primary key of the user table.
pub(crate) const LOAD: &str = concat!(
    "SELECT ",
    record_columns!(),
    " FROM sessionward_sessions AS s WHERE s.key = $1 AND s.expires_at > $2 AND ",
    current!()
);

/// Applies a change set in one statement.
///
/// `$1` key, `$2` now, `$3` check the version (a structural change with an expected version),
/// `$4` expected version or NULL (a blind save), `$5` clear the data first, `$6` data keys to
/// remove (`text[]`), `$7` data keys to set (a JSON object), `$8` new last_seen_at or NULL,
/// `$8` new absolute expiry or NULL, `$9` new idle timeout or NULL, `$10` data size limit in
/// bytes or NULL (no limit), `$12` commit asynchronously (a save that changes only data and
/// activity; `CASE`, unlike `OR`, guarantees the setting is not touched otherwise).
///
/// One plain `UPDATE` of the live row: PostgreSQL re-checks the `WHERE` on the newest row
/// version after waiting for a concurrent writer, so data-key changes of concurrent requests
/// merge, a structural change applies only at the expected version, and the size limit is
/// checked on the data the save would leave (the bytes of its text as the store keeps and
/// returns it, `data::text`). It answers the new version, or no row; then [`SAVE_REFUSED`]
/// says why (only on that path: a successful save is one statement).
///
/// `sweep_at` only ever goes down (to the new expiry, when a lifetime change makes it earlier):
/// a save of data and activity moves the expiry later or leaves it, so `LEAST` writes back the
/// value the row holds, which changes no indexed column and lets PostgreSQL update the row in
/// place (HOT, see [`SWEEP`]).
pub(crate) const SAVE: &str = concat!(
    "\
UPDATE sessionward_sessions AS s SET \
    data = ((CASE WHEN $5 THEN '{}'::jsonb ELSE s.data END) - $6::text[]) || $7::jsonb, \
    last_seen_at = GREATEST(s.last_seen_at, COALESCE($8, s.last_seen_at)), \
    absolute_expires_at = COALESCE($9, s.absolute_expires_at), \
    idle_timeout_secs = COALESCE($10, s.idle_timeout_secs), \
    expires_at = LEAST( \
        GREATEST(s.last_seen_at, COALESCE($8, s.last_seen_at)) \
            + LEAST(COALESCE($10, s.idle_timeout_secs), 3155760000) * interval '1 second', \
        COALESCE($9, s.absolute_expires_at)), \
    sweep_at = LEAST(s.sweep_at, \
        GREATEST(s.last_seen_at, COALESCE($8, s.last_seen_at)) \
            + LEAST(COALESCE($10, s.idle_timeout_secs), 3155760000) * interval '1 second', \
        COALESCE($9, s.absolute_expires_at)), \
    version = s.version + 1 \
WHERE s.key = $1 AND s.expires_at > $2 AND (NOT $3 OR s.version = $4) \
    AND NOT EXISTS (SELECT 1 FROM sessionward_user_authz AS u \
        WHERE u.user_id = s.user_id AND u.changed_at > s.authorized_at) \
    AND ($11::bigint IS NULL OR octet_length(( \
        ((CASE WHEN $5 THEN '{}'::jsonb ELSE s.data END) - $6::text[]) || $7::jsonb \
    )::text) <= $11) \
    AND (CASE WHEN $12 THEN ",
    async_commit!(),
    " ELSE true END) \
RETURNING s.version"
);

/// Why [`SAVE`] changed no row: the live record's current version and, with a limit (`$3`),
/// the size of the data the save would have left (`$4` clear, `$5` removed keys, `$6` set).
/// No row means the record is gone, expired at `$2` or not current.
pub(crate) const SAVE_REFUSED: &str = concat!(
    "SELECT s.version, CASE WHEN $3::bigint IS NULL THEN NULL ELSE octet_length(( \
        ((CASE WHEN $4 THEN '{}'::jsonb ELSE s.data END) - $5::text[]) || $6::jsonb \
    )::text)::bigint END AS size \
    FROM sessionward_sessions AS s WHERE s.key = $1 AND s.expires_at > $2 AND ",
    current!()
);

/// Moves `last_seen_at` of the live, current record under `$1` forward to `$2`; writes only
/// `last_seen_at` and `expires_at`, neither of them indexed, so the update is in place (HOT)
/// whenever the page has room. Committed asynchronously.
pub(crate) const TOUCH: &str = concat!(
    "UPDATE sessionward_sessions AS s SET \
    last_seen_at = GREATEST(s.last_seen_at, $2), \
    expires_at = LEAST( \
        GREATEST(s.last_seen_at, $2) + LEAST(s.idle_timeout_secs, 3155760000) * interval '1 second', \
        s.absolute_expires_at) \
    WHERE s.key = $1 AND s.expires_at > $2 AND ",
    current!(),
    " AND ",
    async_commit!()
);

/// Rotation, first step (inside a transaction): removes the old record under `$1` if it
/// expired at `$2` or is not current (it is garbage either way) or if it is live and has
/// version `$3` (NULL: any version).
///
/// `cur` locks the row (waiting for a concurrent writer, then reading its committed version),
/// so the version compared is the newest one. The answer is (found, live, current version,
/// taken): no row found means gone; a live row not taken means it has another version.
pub(crate) const ROTATE_TAKE_OLD: &str = concat!(
    "WITH cur AS ( \
    SELECT s.key, s.version, (s.expires_at > $2 AND ",
    current!(),
    ") AS live FROM sessionward_sessions AS s \
    WHERE s.key = $1 \
    FOR UPDATE OF s \
), del AS ( \
    DELETE FROM sessionward_sessions AS s USING cur \
    WHERE s.key = cur.key AND (NOT cur.live OR $3::bigint IS NULL OR cur.version = $3) \
    RETURNING s.key \
) \
SELECT EXISTS (SELECT 1 FROM cur) AS found, COALESCE((SELECT live FROM cur), false) AS live, \
    (SELECT version FROM cur) AS current, EXISTS (SELECT 1 FROM del) AS taken"
);

/// Rotation to a signed-in successor, before [`ROTATE_TAKE_OLD`]: locks the row of user `$1`
/// `FOR SHARE` (if there is one) and answers its `changed_at`. Taking the user's row before
/// the old session's row is the order `set_roles_for_user` and `delete_by_user` take them in,
/// so the two never deadlock.
pub(crate) const LOCK_USER_SHARED: &str =
    "SELECT changed_at FROM sessionward_user_authz WHERE user_id = $1 FOR SHARE";

/// Deletes the record under `$1`.
pub(crate) const DELETE: &str = "DELETE FROM sessionward_sessions WHERE key = $1";

/// A per-user change, first statement (inside a transaction): makes sure user `$1` has a row
/// and locks it exclusively, answering the `changed_at` it holds (the epoch, 1970, for a new
/// row). A concurrent change of the same user waits here; so does a sign-in of the user that
/// reads the row `FOR SHARE`, and one that already holds it is waited for. The no-op update
/// returns the newest committed value, which the second statement needs.
pub(crate) const LOCK_USER: &str = "\
INSERT INTO sessionward_user_authz AS u (user_id, changed_at) VALUES ($1, to_timestamp(0)) \
ON CONFLICT (user_id) DO UPDATE SET changed_at = u.changed_at \
RETURNING changed_at";

/// Deletes the records of user `$1` except the current one under `$2` (NULL: none excepted),
/// records `$3` as the user's authorization change (never moving it back) and makes the spared
/// record current; `$4` is the `changed_at` [`LOCK_USER`] answered. A record of the user that
/// was not current before the change (`authorized_at < $4`) is deleted even if it is `$2`:
/// stamping it would bring it back.
pub(crate) const DELETE_BY_USER: &str = "\
WITH c AS ( \
    UPDATE sessionward_user_authz SET changed_at = GREATEST(changed_at, $3) \
    WHERE user_id = $1 RETURNING changed_at \
), kept AS ( \
    UPDATE sessionward_sessions SET authorized_at = (SELECT changed_at FROM c) \
    WHERE $2::bytea IS NOT NULL AND key = $2 AND user_id = $1 AND authorized_at >= $4 \
    RETURNING 1 \
) \
DELETE FROM sessionward_sessions \
WHERE user_id = $1 AND user_id IS NOT NULL \
    AND ($2::bytea IS NULL OR key <> $2 OR authorized_at < $4)";

/// The live, current records of user `$1` at `$2`, oldest first.
pub(crate) const LIST_BY_USER: &str = concat!(
    "SELECT ",
    record_columns!(),
    " FROM sessionward_sessions AS s \
     WHERE s.user_id = $1 AND s.user_id IS NOT NULL AND s.expires_at > $2 AND ",
    current!(),
    " ORDER BY s.created_at, s.handle"
);

/// Gives every current record of user `$1` the roles `$2`, records `$3` as the user's
/// authorization change (never moving it back) and makes those records current; `$4` is the
/// `changed_at` [`LOCK_USER`] answered. Records of the user that were not current before
/// (`authorized_at < $4`) are deleted: giving them the change's time would bring them back.
pub(crate) const SET_ROLES_FOR_USER: &str = "\
WITH c AS ( \
    UPDATE sessionward_user_authz SET changed_at = GREATEST(changed_at, $3) \
    WHERE user_id = $1 RETURNING changed_at \
), dead AS ( \
    DELETE FROM sessionward_sessions \
    WHERE user_id = $1 AND user_id IS NOT NULL AND authorized_at < $4 \
    RETURNING 1 \
) \
UPDATE sessionward_sessions SET roles = $2, version = version + 1, \
    authorized_at = (SELECT changed_at FROM c) \
WHERE user_id = $1 AND user_id IS NOT NULL AND authorized_at >= $4";

/// Deletes the record of user `$1` named `$2`.
pub(crate) const DELETE_BY_HANDLE: &str = "\
DELETE FROM sessionward_sessions \
WHERE user_id = $1 AND user_id IS NOT NULL AND handle = $2";

/// One step of the lazy sweep: takes up to `$2` rows whose `sweep_at` is at or before `$1`,
/// oldest first through the sweep index, deletes those that really expired (`expires_at <=
/// $1`) and moves the others' `sweep_at` up to their `expires_at` (a session that was active
/// since: the next visit is when it can expire at the earliest). Answers `(due, deleted)`, the
/// rows taken and the rows deleted of them.
///
/// `sweep_at` is never later than `expires_at` (creation sets it to the expiry, a save that
/// shortens the lifetime lowers it, activity only moves the expiry later), so every expired
/// row is due. Rows locked by a concurrent writer (a touch that may extend them, or another
/// instance's sweeper) are skipped, never waited for. The taken keys are locked and then
/// deleted or stamped through the primary key (`= ANY(ARRAY(..))` makes the batch an init
/// plan, so neither statement scans or hashes the table); each re-checks `expires_at` on the
/// row's newest version, so a row touched after the batch was read is kept.
pub(crate) const SWEEP: &str = "\
WITH due AS MATERIALIZED ( \
    SELECT key FROM sessionward_sessions \
    WHERE sweep_at <= $1 \
    ORDER BY sweep_at \
    LIMIT $2 \
    FOR UPDATE SKIP LOCKED \
), gone AS ( \
    DELETE FROM sessionward_sessions \
    WHERE key = ANY(ARRAY(SELECT key FROM due)) AND expires_at <= $1 \
    RETURNING 1 \
), stamped AS ( \
    UPDATE sessionward_sessions SET sweep_at = expires_at \
    WHERE key = ANY(ARRAY(SELECT key FROM due)) AND expires_at > $1 \
    RETURNING 1 \
) \
SELECT (SELECT count(*) FROM due) AS due, (SELECT count(*) FROM gone) AS deleted";

/// Forgets up to `$2` users' authorization changes that the contract lets the store forget:
/// made at or before `$1` (24 hours ago) and older than every session of the user, oldest
/// first through the `changed_at` index. Rows a concurrent change holds are skipped (and are
/// re-checked on their newest version when locked, so a change made meanwhile is kept).
///
/// `OFFSET 0` keeps the `NOT EXISTS` a correlated subplan (PostgreSQL does not turn an
/// `EXISTS` with an offset into a join): each candidate user is checked through the user index
/// of the session table, never by hashing the whole session table.
pub(crate) const FORGET_AUTHZ: &str = "\
DELETE FROM sessionward_user_authz WHERE user_id = ANY(ARRAY( \
    SELECT u.user_id FROM sessionward_user_authz AS u \
    WHERE u.changed_at <= $1 AND NOT EXISTS ( \
        SELECT 1 FROM sessionward_sessions AS s \
        WHERE s.user_id = u.user_id AND s.user_id IS NOT NULL \
            AND s.authorized_at < u.changed_at \
        OFFSET 0) \
    ORDER BY u.changed_at \
    LIMIT $2 \
    FOR UPDATE OF u SKIP LOCKED))";

#[cfg(test)]
mod tests {
    #[test]
    fn every_expiry_computation_clamps_the_idle_timeout() {
        for sql in [super::CREATE, super::SAVE, super::TOUCH] {
            let computed = sql.matches("* interval '1 second'").count();
            let clamped = sql.matches("3155760000) * interval '1 second'").count();
            assert!(computed > 0 && computed == clamped, "{sql}");
        }
    }
}
