//! Every statement the store sends. All are static text with bind parameters only (SEC-32);
//! the table is found through the connection's `search_path`, never through an identifier
//! spliced into SQL.

// Idle timeouts longer than 100 years (3155760000 s) count as 100 years when `expires_at` is
// computed, which keeps `last_seen_at + idle` inside PostgreSQL's timestamp range; the stored
// `idle_timeout_secs` keeps the exact value.

/// The columns of a record, in the order [`crate::row`] decodes them.
macro_rules! record_columns {
    () => {
        "key, handle, user_id, roles, data::text AS data, created_at, last_seen_at, \
         authenticated_at, idle_timeout_secs, absolute_expires_at, user_agent, version"
    };
}

/// Inserts a record unless its key exists.
///
/// `$1` key, `$2` handle, `$3` user, `$4` roles, `$5` data (JSON text), `$6` created_at,
/// `$7` last_seen_at, `$8` authenticated_at, `$9` idle_timeout_secs, `$10`
/// absolute_expires_at, `$11` user_agent, `$12` version.
pub(crate) const CREATE: &str = "\
INSERT INTO sessionward_sessions (key, handle, user_id, roles, data, created_at, last_seen_at, \
    authenticated_at, idle_timeout_secs, absolute_expires_at, expires_at, user_agent, version) \
VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10, \
    LEAST($7 + LEAST($9, 3155760000) * interval '1 second', $10), $11, $12) \
ON CONFLICT (key) DO NOTHING";

/// The live record under `$1` at `$2`.
pub(crate) const LOAD: &str = concat!(
    "SELECT ",
    record_columns!(),
    " FROM sessionward_sessions WHERE key = $1 AND expires_at > $2"
);

/// Applies a change set in one statement.
///
/// `$1` key, `$2` now, `$3` check the version (a structural change with an expected version),
/// `$4` expected version or NULL (a blind save), `$5` clear the data first, `$6` data keys to
/// remove (`text[]`), `$7` data keys to set (a JSON object), `$8` new last_seen_at or NULL,
/// `$8` new absolute expiry or NULL, `$9` new idle timeout or NULL, `$10` data size limit in
/// bytes or NULL (no limit).
///
/// One plain `UPDATE` of the live row: PostgreSQL re-checks the `WHERE` on the newest row
/// version after waiting for a concurrent writer, so data-key changes of concurrent requests
/// merge, a structural change applies only at the expected version, and the size limit is
/// checked on the data the save would leave (the bytes of its text as the store keeps and
/// returns it, `data::text`). It answers the new version, or no row; then [`SAVE_REFUSED`]
/// says why (only on that path: a successful save is one statement).
pub(crate) const SAVE: &str = "\
UPDATE sessionward_sessions AS s SET \
    data = ((CASE WHEN $5 THEN '{}'::jsonb ELSE s.data END) - $6::text[]) || $7::jsonb, \
    last_seen_at = GREATEST(s.last_seen_at, COALESCE($8, s.last_seen_at)), \
    absolute_expires_at = COALESCE($9, s.absolute_expires_at), \
    idle_timeout_secs = COALESCE($10, s.idle_timeout_secs), \
    expires_at = LEAST( \
        GREATEST(s.last_seen_at, COALESCE($8, s.last_seen_at)) \
            + LEAST(COALESCE($10, s.idle_timeout_secs), 3155760000) * interval '1 second', \
        COALESCE($9, s.absolute_expires_at)), \
    version = s.version + 1 \
WHERE s.key = $1 AND s.expires_at > $2 AND (NOT $3 OR s.version = $4) \
    AND ($11::bigint IS NULL OR octet_length(( \
        ((CASE WHEN $5 THEN '{}'::jsonb ELSE s.data END) - $6::text[]) || $7::jsonb \
    )::text) <= $11) \
RETURNING s.version";

/// Why [`SAVE`] changed no row: the live record's current version and, with a limit (`$3`),
/// the size of the data the save would have left (`$4` clear, `$5` removed keys, `$6` set).
/// No row means the record is gone or expired at `$2`.
pub(crate) const SAVE_REFUSED: &str = "\
SELECT version, CASE WHEN $3::bigint IS NULL THEN NULL ELSE octet_length(( \
        ((CASE WHEN $4 THEN '{}'::jsonb ELSE data END) - $5::text[]) || $6::jsonb \
    )::text)::bigint END AS size \
FROM sessionward_sessions WHERE key = $1 AND expires_at > $2";

/// Moves `last_seen_at` of the live record under `$1` forward to `$2`; writes only
/// `last_seen_at` and `expires_at`.
pub(crate) const TOUCH: &str = "\
UPDATE sessionward_sessions SET \
    last_seen_at = GREATEST(last_seen_at, $2), \
    expires_at = LEAST( \
        GREATEST(last_seen_at, $2) + LEAST(idle_timeout_secs, 3155760000) * interval '1 second', \
        absolute_expires_at) \
WHERE key = $1 AND expires_at > $2";

/// Rotation, first step (inside a transaction): removes the old record under `$1` if it
/// expired at `$2` (it is garbage) or if it is live and has version `$3` (NULL: any version).
///
/// `cur` locks the row (waiting for a concurrent writer, then reading its committed version),
/// so the version compared is the newest one. The answer is (found, live, current version,
/// taken): no row found means gone; a live row not taken means it has another version.
pub(crate) const ROTATE_TAKE_OLD: &str = "\
WITH cur AS ( \
    SELECT key, version, expires_at > $2 AS live FROM sessionward_sessions \
    WHERE key = $1 \
    FOR UPDATE \
), del AS ( \
    DELETE FROM sessionward_sessions AS s USING cur \
    WHERE s.key = cur.key AND (NOT cur.live OR $3::bigint IS NULL OR cur.version = $3) \
    RETURNING s.key \
) \
SELECT EXISTS (SELECT 1 FROM cur) AS found, COALESCE((SELECT live FROM cur), false) AS live, \
    (SELECT version FROM cur) AS current, EXISTS (SELECT 1 FROM del) AS taken";

/// Deletes the record under `$1`.
pub(crate) const DELETE: &str = "DELETE FROM sessionward_sessions WHERE key = $1";

/// Deletes the records of user `$1` except the one under `$2` (NULL: none excepted).
pub(crate) const DELETE_BY_USER: &str = "\
DELETE FROM sessionward_sessions \
WHERE user_id = $1 AND user_id IS NOT NULL AND ($2::bytea IS NULL OR key <> $2)";

/// The live records of user `$1` at `$2`, oldest first.
pub(crate) const LIST_BY_USER: &str = concat!(
    "SELECT ",
    record_columns!(),
    " FROM sessionward_sessions WHERE user_id = $1 AND user_id IS NOT NULL AND expires_at > $2 \
     ORDER BY created_at, handle"
);

/// Gives every record of user `$1` the roles `$2`.
pub(crate) const SET_ROLES_FOR_USER: &str = "\
UPDATE sessionward_sessions SET roles = $2, version = version + 1 \
WHERE user_id = $1 AND user_id IS NOT NULL";

/// Deletes the record of user `$1` named `$2`.
pub(crate) const DELETE_BY_HANDLE: &str = "\
DELETE FROM sessionward_sessions \
WHERE user_id = $1 AND user_id IS NOT NULL AND handle = $2";

/// Deletes up to `$2` records that expired at or before `$1`, oldest expiry first, through the
/// expiry index; the chosen keys are then deleted through the primary key (`= ANY(ARRAY(..))`
/// makes the batch an init plan, so the delete never scans or hashes the table). Rows locked by
/// a concurrent writer (a touch that may extend them, or another instance's sweeper) are
/// skipped, never waited for and never deleted from under the writer.
pub(crate) const DELETE_EXPIRED: &str = "\
DELETE FROM sessionward_sessions WHERE key = ANY(ARRAY( \
    SELECT key FROM sessionward_sessions \
    WHERE expires_at <= $1 \
    ORDER BY expires_at \
    LIMIT $2 \
    FOR UPDATE SKIP LOCKED))";

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
