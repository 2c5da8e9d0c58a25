-- sessionward: the session table (SQLite).
--
-- Keyed by the SHA-256 of the session token (32 bytes); the token itself is never stored.
-- Times are whole seconds since the Unix epoch (UTC). `expires_at` is
-- min(last_seen_at + idle_timeout_secs, absolute_expires_at), written by every statement that
-- changes one of its inputs, so reads and the sweeper compare one indexed integer column.
-- `roles` is a JSON array of strings and `data` a JSON object, both as text.
CREATE TABLE sessionward_sessions (
    key                 BLOB    NOT NULL PRIMARY KEY CHECK (length(key) = 32),
    handle              BLOB    NOT NULL CHECK (length(handle) = 16),
    user_id             TEXT,
    roles               TEXT    NOT NULL DEFAULT '[]',
    data                TEXT    NOT NULL DEFAULT '{}',
    created_at          INTEGER NOT NULL,
    last_seen_at        INTEGER NOT NULL,
    authenticated_at    INTEGER,
    idle_timeout_secs   INTEGER NOT NULL CHECK (idle_timeout_secs >= 0),
    absolute_expires_at INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL,
    user_agent          TEXT,
    version             INTEGER NOT NULL DEFAULT 0 CHECK (version >= 0)
) STRICT;

-- "My sessions", sign-out everywhere, role changes and delete-by-handle: one user's rows,
-- oldest first. Anonymous sessions are not indexed here.
CREATE INDEX sessionward_sessions_user_idx
    ON sessionward_sessions (user_id, created_at)
    WHERE user_id IS NOT NULL;

-- The sweeper: the oldest expiries first, in batches.
CREATE INDEX sessionward_sessions_expires_idx
    ON sessionward_sessions (expires_at);
