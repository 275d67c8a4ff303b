-- A person's usage pages read their own rows by user and day, not the
-- whole table (whose keys start with the day).
CREATE INDEX usage_daily_by_user ON usage_daily (user_id, day);
CREATE INDEX usage_stored_by_user ON usage_stored (user_id, day);
