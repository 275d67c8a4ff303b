-- CockroachDB's form of migrations/postgres/0010_cluster_notices.sql: the same schema, with
-- STRING keys in CockroachDB's own byte order (it has no "C" collation for
-- columns) and every statement safe to run again, because CockroachDB may
-- commit schema changes one by one (autocommit_before_ddl).
-- Account changes announced by polling, where the database cannot LISTEN
-- (CockroachDB, PostgreSQL behind a pooler in transaction mode).
CREATE TABLE IF NOT EXISTS cluster_notices (
    channel TEXT PRIMARY KEY,
    generation BIGINT NOT NULL
);
INSERT INTO cluster_notices (channel, generation) VALUES ('accounts', 0)
    ON CONFLICT (channel) DO NOTHING;
