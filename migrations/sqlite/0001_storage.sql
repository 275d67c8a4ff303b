-- Accounts and S3 credentials. Secrets are kept because SigV4 needs them to
-- recompute signatures.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);

CREATE TABLE access_keys (
    access_key TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_ms BIGINT NOT NULL
);

CREATE TABLE buckets (
    name TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL REFERENCES users(id),
    created_ms BIGINT NOT NULL,
    object_count BIGINT NOT NULL DEFAULT 0,
    bytes_stored BIGINT NOT NULL DEFAULT 0
);

-- One row per live object. Small bodies live inline; larger ones are an
-- ordered JSON list of blob segments.
CREATE TABLE objects (
    bucket TEXT NOT NULL REFERENCES buckets(name),
    key TEXT NOT NULL,
    size BIGINT NOT NULL,
    etag TEXT NOT NULL,
    last_modified_ms BIGINT NOT NULL,
    attrs TEXT NOT NULL,
    inline_data BLOB,
    segments TEXT,
    parts_count INTEGER,
    PRIMARY KEY (bucket, key)
);

-- Every blob that an object or an uploaded part points at, with a reference
-- count (CopyObject shares blobs). A blob absent from this table and older
-- than the sweeper's grace period is an orphan.
CREATE TABLE blobs (
    id TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    refs BIGINT NOT NULL,
    created_ms BIGINT NOT NULL
);

-- Blobs no longer referenced, queued for deletion after the commit that
-- released them.
CREATE TABLE blob_trash (
    id TEXT PRIMARY KEY,
    queued_ms BIGINT NOT NULL
);

CREATE TABLE uploads (
    upload_id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL REFERENCES buckets(name),
    key TEXT NOT NULL,
    initiated_ms BIGINT NOT NULL,
    attrs TEXT NOT NULL
);
CREATE INDEX uploads_by_bucket_key ON uploads (bucket, key, initiated_ms);

CREATE TABLE upload_parts (
    upload_id TEXT NOT NULL REFERENCES uploads(upload_id) ON DELETE CASCADE,
    part_number INTEGER NOT NULL,
    blob_id TEXT NOT NULL,
    size BIGINT NOT NULL,
    etag TEXT NOT NULL,
    last_modified_ms BIGINT NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);
