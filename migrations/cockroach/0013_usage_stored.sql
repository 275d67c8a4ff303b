-- CockroachDB's form of migrations/postgres/0013_usage_stored.sql, safe to run again.
-- Bytes and objects each bucket held on a day (its last record of the
-- day), so that usage pages can plot bytes stored over time.
CREATE TABLE IF NOT EXISTS usage_stored (
    day TEXT NOT NULL,
    user_id TEXT NOT NULL,
    bucket TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    objects BIGINT NOT NULL,
    PRIMARY KEY (day, user_id, bucket)
);
