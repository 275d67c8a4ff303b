-- CockroachDB's form of migrations/postgres/0003_sessions.sql: the same schema, with
-- STRING keys in CockroachDB's own byte order (it has no "C" collation for
-- columns) and every statement safe to run again, because CockroachDB may
-- commit schema changes one by one (autocommit_before_ddl).
-- Login sessions. Only a hash of each token is kept; revoking a session is
-- a row change every node sees at once.
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    revoked_ms BIGINT
);
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions (user_id);
