-- CockroachDB's form of migrations/postgres/0005_quotas.sql: the same schema, with
-- STRING keys in CockroachDB's own byte order (it has no "C" collation for
-- columns) and every statement safe to run again, because CockroachDB may
-- commit schema changes one by one (autocommit_before_ddl).
-- Quotas on bytes stored; NULL means none.
ALTER TABLE users ADD COLUMN IF NOT EXISTS quota_bytes BIGINT;
ALTER TABLE buckets ADD COLUMN IF NOT EXISTS quota_bytes BIGINT;
