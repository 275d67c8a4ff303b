-- Account changes announced by polling, where the database cannot LISTEN
-- (CockroachDB, PostgreSQL behind a pooler in transaction mode).
CREATE TABLE cluster_notices (
    channel TEXT PRIMARY KEY,
    generation BIGINT NOT NULL
);
INSERT INTO cluster_notices (channel, generation) VALUES ('accounts', 0);
