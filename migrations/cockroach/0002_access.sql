-- CockroachDB's form of migrations/postgres/0002_access.sql: the same schema, with
-- STRING keys in CockroachDB's own byte order (it has no "C" collation for
-- columns) and every statement safe to run again, because CockroachDB may
-- commit schema changes one by one (autocommit_before_ddl).
-- Accounts with passwords, limited access keys, and bucket sharing.
ALTER TABLE users ADD COLUMN IF NOT EXISTS password_hash TEXT;
ALTER TABLE users ADD COLUMN IF NOT EXISTS disabled_ms BIGINT;

-- A key may be read-only and limited to some buckets (a JSON list; NULL
-- means every bucket its user may reach).
ALTER TABLE access_keys ADD COLUMN IF NOT EXISTS read_only BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE access_keys ADD COLUMN IF NOT EXISTS buckets TEXT;

ALTER TABLE buckets ADD COLUMN IF NOT EXISTS public_read BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE IF NOT EXISTS bucket_grants (
    bucket TEXT NOT NULL REFERENCES buckets(name) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    level TEXT NOT NULL,
    PRIMARY KEY (bucket, user_id)
);
