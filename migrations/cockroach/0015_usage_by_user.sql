-- CockroachDB's form of migrations/postgres/0015_usage_by_user.sql, safe to run again.
-- A person's usage pages read their own rows by user and day, not the
-- whole table (whose keys start with the day).
CREATE INDEX IF NOT EXISTS usage_daily_by_user ON usage_daily (user_id, day);
CREATE INDEX IF NOT EXISTS usage_stored_by_user ON usage_stored (user_id, day);
