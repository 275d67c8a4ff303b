-- CockroachDB's form of migrations/postgres/0004_audit_usage.sql: the same schema, with
-- STRING keys in CockroachDB's own byte order (it has no "C" collation for
-- columns) and every statement safe to run again, because CockroachDB may
-- commit schema changes one by one (autocommit_before_ddl).
-- The audit log: one row per request on either port.
CREATE TABLE IF NOT EXISTS audit (
    id BIGSERIAL PRIMARY KEY,
    time_ms BIGINT NOT NULL,
    request_id TEXT NOT NULL,
    actor_id TEXT,
    actor TEXT NOT NULL,
    access_key TEXT,
    source TEXT,
    action TEXT NOT NULL,
    bucket TEXT,
    object_key TEXT,
    status INTEGER NOT NULL,
    bytes_in BIGINT NOT NULL,
    bytes_out BIGINT NOT NULL,
    user_agent TEXT
);
CREATE INDEX IF NOT EXISTS audit_by_time ON audit (time_ms);
CREATE INDEX IF NOT EXISTS audit_by_actor ON audit (actor_id, id);

-- Traffic per day, user and bucket ('' when a request named no bucket).
CREATE TABLE IF NOT EXISTS usage_daily (
    day TEXT NOT NULL,
    user_id TEXT NOT NULL,
    bucket TEXT NOT NULL,
    bytes_in BIGINT NOT NULL,
    bytes_out BIGINT NOT NULL,
    requests BIGINT NOT NULL,
    PRIMARY KEY (day, user_id, bucket)
);
