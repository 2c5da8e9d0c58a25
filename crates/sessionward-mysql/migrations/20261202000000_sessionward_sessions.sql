-- sessionward: the session table (MySQL 8 / MariaDB 10.11, InnoDB).
--
-- Keyed by the SHA-256 of the session token (32 bytes); the token itself is never stored.
-- Text columns are binary (BLOB): UTF-8 bytes compared byte for byte, whatever the server's or
-- the connection's character set and collation (a case-insensitive collation would make
-- "Alice" the same user as "alice"). `user_hash` is the SHA-256 of `user_id`, so the user
-- index has a fixed width whatever the length of the application's user ids. Times are whole
-- seconds since the Unix epoch (UTC), free of the server's time zone. `expires_at` is
-- min(last_seen_at + idle_timeout_secs, absolute_expires_at), written by every statement
-- that changes one of its inputs, so reads and the sweeper compare one indexed column.
CREATE TABLE sessionward_sessions (
    `key`               BINARY(32)  NOT NULL,
    handle              BINARY(16)  NOT NULL,
    user_hash           BINARY(32)  NULL,
    user_id             BLOB        NULL,
    roles               BLOB        NOT NULL,
    data                MEDIUMBLOB  NOT NULL,
    created_at          BIGINT      NOT NULL,
    last_seen_at        BIGINT      NOT NULL,
    authenticated_at    BIGINT      NULL,
    idle_timeout_secs   BIGINT      NOT NULL,
    absolute_expires_at BIGINT      NOT NULL,
    expires_at          BIGINT      NOT NULL,
    user_agent          BLOB        NULL,
    version             BIGINT      NOT NULL DEFAULT 0,
    PRIMARY KEY (`key`),
    -- "My sessions", sign-out everywhere, role changes and delete-by-handle: one user's rows,
    -- oldest first.
    KEY sessionward_sessions_user_idx (user_hash, created_at),
    -- The sweeper: the oldest expiries first, in batches.
    KEY sessionward_sessions_expires_idx (expires_at),
    CONSTRAINT sessionward_sessions_idle_check CHECK (idle_timeout_secs >= 0),
    CONSTRAINT sessionward_sessions_version_check CHECK (version >= 0)
) ENGINE = InnoDB;
