-- CockroachDB's form of migrations/postgres/0011_event_order.sql (the same).
-- Pool event ids in commit order on a shared database: each transaction that
-- writes events takes this row first and numbers its events from it, so no
-- reader that has seen an id can later meet a smaller one. (BIGSERIAL ids
-- are not in commit order: PostgreSQL hands them out before commit, and
-- CockroachDB's unique_rowid() follows node clocks.)
INSERT INTO cluster_notices (channel, generation)
    SELECT 'pool_events', COALESCE(MAX(id), 0) FROM pool_events
    ON CONFLICT (channel) DO NOTHING;
