-- CockroachDB's form of migrations/postgres/0012_audit_detail.sql, safe to run again.
-- What a client reported about its own work, as JSON (a backup run's
-- figures); the request itself is described by the other columns.
ALTER TABLE audit ADD COLUMN IF NOT EXISTS detail TEXT;
