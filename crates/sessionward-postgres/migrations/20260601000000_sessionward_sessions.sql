-- sessionward: the session table.
--
-- Keyed by the SHA-256 of the session token (32 bytes); the token itself is never stored.
-- `expires_at` is min(last_seen_at + idle_timeout_secs, absolute_expires_at), written by every
-- statement that changes one of its inputs, so reads and the sweeper compare one indexed
-- `timestamptz` column with a `timestamptz` parameter.
CREATE TABLE sessionward_sessions (
    key                 bytea       PRIMARY KEY CHECK (octet_length(key) = 32),
    handle              bytea       NOT NULL CHECK (octet_length(handle) = 16),
    user_id             text,
    roles               text[]      NOT NULL DEFAULT '{}',
    data                jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(data) = 'object'),
    created_at          timestamptz NOT NULL,
    last_seen_at        timestamptz NOT NULL,
    authenticated_at    timestamptz,
    idle_timeout_secs   bigint      NOT NULL CHECK (idle_timeout_secs >= 0),
    absolute_expires_at timestamptz NOT NULL,
    expires_at          timestamptz NOT NULL,
    user_agent          text,
    version             bigint      NOT NULL DEFAULT 0 CHECK (version >= 0)
);

-- "My sessions", sign-out everywhere, role changes and delete-by-handle: one user's rows,
-- oldest first. Anonymous sessions are not indexed here.
CREATE INDEX sessionward_sessions_user_idx
    ON sessionward_sessions (user_id, created_at)
    WHERE user_id IS NOT NULL;

-- The sweeper: the oldest expiries first, in batches.
CREATE INDEX sessionward_sessions_expires_idx
    ON sessionward_sessions (expires_at);
