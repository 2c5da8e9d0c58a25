-- sessionward: authorization epochs (SEC-16) and per-session persistence.
--
-- `authorized_at`: when the record's user and roles were decided. A signed-in record is current
-- only while this is not earlier than its user's `changed_at` below; rows from before this
-- migration count as decided when they were created. `persistent`: the "remember me" choice
-- (NULL: the layer's default).
ALTER TABLE sessionward_sessions
    ADD COLUMN authorized_at timestamptz,
    ADD COLUMN persistent    boolean;
UPDATE sessionward_sessions SET authorized_at = created_at;
ALTER TABLE sessionward_sessions ALTER COLUMN authorized_at SET NOT NULL;

-- One row per user whose authorization changed (roles set, sessions ended): the time of the
-- last change, which only moves forward. Loads join it by primary key; `set_roles_for_user` and
-- `delete_by_user` lock the row first, so that sign-ins of the user serialize with them. The
-- sweeper forgets a row 24 hours after the change once no session of the user predates it.
CREATE TABLE sessionward_user_authz (
    user_id    text        PRIMARY KEY,
    changed_at timestamptz NOT NULL
);

-- The sweeper: the oldest changes first, in batches.
CREATE INDEX sessionward_user_authz_changed_idx
    ON sessionward_user_authz (changed_at);
