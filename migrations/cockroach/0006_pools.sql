-- CockroachDB's form of migrations/postgres/0006_pools.sql: the same schema, with
-- STRING keys in CockroachDB's own byte order (it has no "C" collation for
-- columns) and every statement safe to run again, because CockroachDB may
-- commit schema changes one by one (autocommit_before_ddl).
-- Pools: many members contribute timestamped files, grouped by time window;
-- a processor turns each group into one result that every member receives.
-- Booleans are 0/1 integers, as elsewhere, so both engines decode alike.
CREATE TABLE IF NOT EXISTS pools (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    owner_id TEXT NOT NULL,
    bucket TEXT NOT NULL,
    window_secs BIGINT NOT NULL,
    grace_secs BIGINT NOT NULL,
    origin_ms BIGINT NOT NULL,
    max_file_size BIGINT NOT NULL,
    allowed_types TEXT NOT NULL,
    forbidden_types TEXT NOT NULL,
    allow_empty BIGINT NOT NULL,
    retention_days BIGINT NOT NULL,
    webhook_url TEXT,
    webhook_secret TEXT,
    -- The last event the webhook has had (delivered or given up on).
    webhook_cursor BIGINT NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS pool_members (
    id TEXT PRIMARY KEY,
    pool_id TEXT NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL,
    disabled_ms BIGINT,
    UNIQUE (pool_id, name)
);

-- One row per time window that has received a file (or was sealed).
CREATE TABLE IF NOT EXISTS pool_groups (
    pool_id TEXT NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
    start_ms BIGINT NOT NULL,
    end_ms BIGINT NOT NULL,
    seal_at_ms BIGINT NOT NULL,
    state TEXT NOT NULL,
    files BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    lease_id TEXT,
    lease_member TEXT,
    lease_expires_ms BIGINT,
    result_key TEXT,
    result_size BIGINT,
    result_etag TEXT,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (pool_id, start_ms)
);
CREATE INDEX IF NOT EXISTS pool_groups_to_seal ON pool_groups (state, seal_at_ms);

CREATE TABLE IF NOT EXISTS contributions (
    id TEXT PRIMARY KEY,
    pool_id TEXT NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
    member_id TEXT NOT NULL,
    group_start_ms BIGINT NOT NULL,
    client_time_ms BIGINT NOT NULL,
    name TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    content_type TEXT NOT NULL,
    object_key TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    UNIQUE (pool_id, member_id, client_time_ms, name, sha256)
);
CREATE INDEX IF NOT EXISTS contributions_by_group ON contributions (pool_id, group_start_ms, id);
CREATE INDEX IF NOT EXISTS contributions_by_member ON contributions (pool_id, member_id, id);

-- Written in the same transaction as the change they report. A NULL
-- member_id is for the whole pool; otherwise for that member only.
CREATE TABLE IF NOT EXISTS pool_events (
    id BIGSERIAL PRIMARY KEY,
    pool_id TEXT NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
    member_id TEXT,
    kind TEXT NOT NULL,
    group_start_ms BIGINT,
    data TEXT NOT NULL,
    time_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS pool_events_by_pool ON pool_events (pool_id, id);

-- Which member fetched which group's result, for the owner's delivery view.
CREATE TABLE IF NOT EXISTS pool_deliveries (
    pool_id TEXT NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
    member_id TEXT NOT NULL,
    group_start_ms BIGINT NOT NULL,
    fetched_ms BIGINT NOT NULL,
    PRIMARY KEY (pool_id, member_id, group_start_ms)
);

-- Every attempt to deliver an event to a pool's webhook.
CREATE TABLE IF NOT EXISTS webhook_attempts (
    id BIGSERIAL PRIMARY KEY,
    pool_id TEXT NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
    event_id BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    time_ms BIGINT NOT NULL,
    status BIGINT,
    error TEXT,
    delivered BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_attempts_by_pool ON webhook_attempts (pool_id, id);
