-- What a client reported about its own work, as JSON (a backup run's
-- figures); the request itself is described by the other columns.
ALTER TABLE audit ADD COLUMN detail TEXT;
