-- CockroachDB's form of migrations/postgres/0001_storage.sql: the same schema, with
-- STRING keys in CockroachDB's own byte order (it has no "C" collation for
-- columns) and every statement safe to run again, because CockroachDB may
-- commit schema changes one by one (autocommit_before_ddl).
-- Accounts and S3 credentials. Secrets are kept because SigV4 needs them to
-- recompute signatures.
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS access_keys (
    access_key TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_ms BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS buckets (
    name TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL REFERENCES users(id),
    created_ms BIGINT NOT NULL,
    object_count BIGINT NOT NULL DEFAULT 0,
    bytes_stored BIGINT NOT NULL DEFAULT 0
);

-- One row per live object. Small bodies live inline; larger ones are an
-- ordered JSON list of blob segments.
CREATE TABLE IF NOT EXISTS objects (
    bucket TEXT NOT NULL REFERENCES buckets(name),
    key TEXT NOT NULL,
    size BIGINT NOT NULL,
    etag TEXT NOT NULL,
    last_modified_ms BIGINT NOT NULL,
    attrs TEXT NOT NULL,
    inline_data BYTEA,
    segments TEXT,
    parts_count INTEGER,
    PRIMARY KEY (bucket, key)
);

-- Every blob that an object or an uploaded part points at, with a reference
-- count (CopyObject shares blobs). A blob absent from this table and older
-- than the sweeper's grace period is an orphan.
CREATE TABLE IF NOT EXISTS blobs (
    id TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    refs BIGINT NOT NULL,
    created_ms BIGINT NOT NULL
);

-- Blobs no longer referenced, queued for deletion after the commit that
-- released them.
CREATE TABLE IF NOT EXISTS blob_trash (
    id TEXT PRIMARY KEY,
    queued_ms BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL REFERENCES buckets(name),
    key TEXT NOT NULL,
    initiated_ms BIGINT NOT NULL,
    attrs TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS uploads_by_bucket_key ON uploads (bucket, key, initiated_ms);

CREATE TABLE IF NOT EXISTS upload_parts (
    upload_id TEXT NOT NULL REFERENCES uploads(upload_id) ON DELETE CASCADE,
    part_number INTEGER NOT NULL,
    blob_id TEXT NOT NULL,
    size BIGINT NOT NULL,
    etag TEXT NOT NULL,
    last_modified_ms BIGINT NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);
