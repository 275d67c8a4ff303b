-- Keys that the server made to sign share links: listed apart and revocable
-- like any key, never used for anything else.
ALTER TABLE access_keys ADD COLUMN for_share_links BOOLEAN NOT NULL DEFAULT FALSE;
