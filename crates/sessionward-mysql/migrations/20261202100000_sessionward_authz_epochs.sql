-- sessionward: authorization epochs (SEC-16) and per-session persistence (MySQL 8 / MariaDB).
--
-- `authorized_at`: when the record's user and roles were decided (Unix seconds). A signed-in
-- record is current only while this is not earlier than its user's `changed_at` below; rows
-- from before this migration count as decided when they were created. `persistent`: the
-- "remember me" choice, 0 or 1 (NULL: the layer's default).
ALTER TABLE sessionward_sessions
    ADD COLUMN authorized_at BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN persistent    BOOLEAN NULL;
UPDATE sessionward_sessions SET authorized_at = created_at;

-- One row per user whose authorization changed (roles set, sessions ended), keyed like the
-- sessions' user index by the SHA-256 of the user id: the time of the last change, which only
-- moves forward. Loads look it up by primary key in the same statement; `set_roles_for_user`
-- and `delete_by_user` lock it exclusively first and sign-ins read it `LOCK IN SHARE MODE`, so
-- the two serialize. The sweeper forgets a row 24 hours after the change once no session of
-- the user predates it.
CREATE TABLE sessionward_user_authz (
    user_hash  BINARY(32) NOT NULL,
    changed_at BIGINT     NOT NULL,
    PRIMARY KEY (user_hash),
    -- The sweeper: the oldest changes first, in batches.
    KEY sessionward_user_authz_changed_idx (changed_at)
) ENGINE = InnoDB;
