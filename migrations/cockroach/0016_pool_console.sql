-- CockroachDB's form of migrations/postgres/0016_pool_console.sql, safe to run again.
-- When the next attempt at an undelivered webhook event is due (Unix ms);
-- empty once it was delivered or given up on. Shown to the pool's owner.
ALTER TABLE webhook_attempts ADD COLUMN IF NOT EXISTS next_try_ms BIGINT;
-- A member's console page reads its own refusals, newest first.
CREATE INDEX IF NOT EXISTS pool_events_by_member ON pool_events (pool_id, member_id, kind, id);
