-- CockroachDB's form of migrations/postgres/0017_previews.sql, safe to run again.
-- The gallery's large view: one screen-sized rendition per version of an
-- image object, kept like its thumbnail (see 0014_thumbnails.sql), so the
-- original is read only when asked for.
CREATE TABLE IF NOT EXISTS previews (
    bucket TEXT NOT NULL,
    object_key TEXT NOT NULL,
    stamp TEXT NOT NULL,
    jpeg BYTEA,
    made_ms BIGINT NOT NULL,
    PRIMARY KEY (bucket, object_key)
);
