-- CockroachDB's form of migrations/postgres/0007_webhook_lease.sql: the same schema, with
-- STRING keys in CockroachDB's own byte order (it has no "C" collation for
-- columns) and every statement safe to run again, because CockroachDB may
-- commit schema changes one by one (autocommit_before_ddl).
-- Which node delivers a pool's webhook, and until when: nodes sharing the
-- database take turns instead of each delivering every event.
ALTER TABLE pools ADD COLUMN IF NOT EXISTS webhook_node TEXT;
ALTER TABLE pools ADD COLUMN IF NOT EXISTS webhook_lease_ms BIGINT;
