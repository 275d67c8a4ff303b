-- Accounts with passwords, limited access keys, and bucket sharing.
ALTER TABLE users ADD COLUMN password_hash TEXT;
ALTER TABLE users ADD COLUMN disabled_ms BIGINT;

-- A key may be read-only and limited to some buckets (a JSON list; NULL
-- means every bucket its user may reach).
ALTER TABLE access_keys ADD COLUMN read_only BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE access_keys ADD COLUMN buckets TEXT;

ALTER TABLE buckets ADD COLUMN public_read BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE bucket_grants (
    bucket TEXT NOT NULL REFERENCES buckets(name) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    level TEXT NOT NULL,
    PRIMARY KEY (bucket, user_id)
);
