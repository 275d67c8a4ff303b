-- What an action was done to when it is neither a bucket nor an object:
-- `user:alice`, `key:CK...`, `pool:sky/member:cam-1`.
ALTER TABLE audit ADD COLUMN target TEXT;
