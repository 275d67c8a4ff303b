-- Gallery thumbnails, made once per version of an image object: `stamp`
-- is the object's ETag and modification time when it was made, so an
-- overwritten object's thumbnail is made again; deleting the object drops
-- it. `jpeg` is NULL when the image could not be read (a placeholder).
CREATE TABLE thumbnails (
    bucket TEXT NOT NULL,
    object_key TEXT NOT NULL,
    stamp TEXT NOT NULL,
    jpeg BLOB,
    made_ms BIGINT NOT NULL,
    PRIMARY KEY (bucket, object_key)
);
