-- Which node delivers a pool's webhook, and until when: nodes sharing the
-- database take turns instead of each delivering every event.
ALTER TABLE pools ADD COLUMN webhook_node TEXT;
ALTER TABLE pools ADD COLUMN webhook_lease_ms BIGINT;
