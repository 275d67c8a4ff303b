-- The audit log: one row per request on either port.
CREATE TABLE audit (
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
CREATE INDEX audit_by_time ON audit (time_ms);
CREATE INDEX audit_by_actor ON audit (actor_id, id);

-- Traffic per day, user and bucket ('' when a request named no bucket).
CREATE TABLE usage_daily (
    day TEXT NOT NULL,
    user_id TEXT NOT NULL,
    bucket TEXT NOT NULL,
    bytes_in BIGINT NOT NULL,
    bytes_out BIGINT NOT NULL,
    requests BIGINT NOT NULL,
    PRIMARY KEY (day, user_id, bucket)
);
