-- Quotas on bytes stored; NULL means none.
ALTER TABLE users ADD COLUMN quota_bytes BIGINT;
ALTER TABLE buckets ADD COLUMN quota_bytes BIGINT;
