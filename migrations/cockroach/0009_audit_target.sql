-- CockroachDB's form of migrations/postgres/0009_audit_target.sql: the same schema, with
-- STRING keys in CockroachDB's own byte order (it has no "C" collation for
-- columns) and every statement safe to run again, because CockroachDB may
-- commit schema changes one by one (autocommit_before_ddl).
-- What an action was done to when it is neither a bucket nor an object:
-- `user:alice`, `key:CK...`, `pool:sky/member:cam-1`.
ALTER TABLE audit ADD COLUMN IF NOT EXISTS target TEXT;
