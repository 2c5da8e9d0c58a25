-- sessionward: authorization epochs (SEC-16) and per-session persistence (SQLite).
--
-- `authorized_at`: when the record's user and roles were decided (Unix seconds). A signed-in
-- record is current only while this is not earlier than its user's `changed_at` below; rows
-- from before this migration count as decided when they were created. `persistent`: the
-- "remember me" choice, 0 or 1 (NULL: the layer's default).
ALTER TABLE sessionward_sessions ADD COLUMN authorized_at INTEGER NOT NULL DEFAULT 0;
UPDATE sessionward_sessions SET authorized_at = created_at;
ALTER TABLE sessionward_sessions
    ADD COLUMN persistent INTEGER CHECK (persistent IS NULL OR persistent IN (0, 1));

-- One row per user whose authorization changed (roles set, sessions ended): the time of the
-- last change, which only moves forward. Loads look it up by primary key in the same
-- statement; the sweeper forgets a row 24 hours after the change once no session of the user
-- predates it.
CREATE TABLE sessionward_user_authz (
    user_id    TEXT    NOT NULL PRIMARY KEY,
    changed_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- The sweeper: the oldest changes first, in batches.
CREATE INDEX sessionward_user_authz_changed_idx
    ON sessionward_user_authz (changed_at);
