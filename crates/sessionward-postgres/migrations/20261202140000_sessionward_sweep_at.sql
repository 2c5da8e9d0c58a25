-- sessionward: touches and data saves change no indexed column, so PostgreSQL applies them in
-- place (HOT: no new index entries, the new row version in the same page).
--
-- Every touch and save rewrites `expires_at`; while it was indexed, each of them added an entry
-- to every index of the table. The sweeper now finds its candidates through `sweep_at`
-- instead, a lower bound of `expires_at` that activity leaves alone:
--
-- - a new row (create, rotation) gets its expiry;
-- - a save that shortens the lifetime lowers it (`LEAST`); a touch or a data save leaves it as
--   it is (activity only ever moves the expiry later);
-- - the sweeper takes the rows whose `sweep_at` has passed, deletes those that really expired
--   (`expires_at`) and moves the others' `sweep_at` up to their `expires_at`: one index write
--   per session per idle period instead of one per request.
--
-- Loads, saves and touches still compare `expires_at` on the primary-key row: what is expired
-- is never returned, whatever the sweeper did or did not do yet.
--
-- Rows from before this migration, and rows inserted by an instance still running the previous
-- version during a rolling upgrade, get '-infinity': the first sweep visits them, deletes the
-- expired ones and stamps the others. The default is a constant, so adding the column rewrites
-- no row (PostgreSQL 11 and later).
ALTER TABLE sessionward_sessions
    ADD COLUMN sweep_at timestamptz NOT NULL DEFAULT '-infinity';

-- The sweeper: the oldest sweep times first, in batches.
CREATE INDEX sessionward_sessions_sweep_idx
    ON sessionward_sessions (sweep_at);

DROP INDEX sessionward_sessions_expires_idx;
