-- CockroachDB's form of migrations/postgres/0008_share_keys.sql: the same schema, with
-- STRING keys in CockroachDB's own byte order (it has no "C" collation for
-- columns) and every statement safe to run again, because CockroachDB may
-- commit schema changes one by one (autocommit_before_ddl).
-- Keys that the server made to sign share links: listed apart and revocable
-- like any key, never used for anything else.
ALTER TABLE access_keys ADD COLUMN IF NOT EXISTS for_share_links BOOLEAN NOT NULL DEFAULT FALSE;
