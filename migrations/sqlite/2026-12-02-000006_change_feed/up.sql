-- The outbox becomes the change feed: see the PostgreSQL migration. SQLite has one writer, so
-- sequence order is commit order by construction.
ALTER TABLE events ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN actor TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN published BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE events SET seq = (SELECT COUNT(*) FROM events e
    WHERE e.tenant_id = events.tenant_id AND e.event_id <= events.event_id);
CREATE UNIQUE INDEX events_seq ON events (tenant_id, seq);
CREATE INDEX events_unpublished ON events (tenant_id, seq) WHERE NOT published;
CREATE INDEX events_time ON events (tenant_id, create_time);

CREATE TABLE event_sequences (
    tenant_id BIGINT PRIMARY KEY,
    last_seq BIGINT NOT NULL,
    pruned_seq BIGINT NOT NULL DEFAULT 0
);
INSERT INTO event_sequences (tenant_id, last_seq)
    SELECT tenant_id, MAX(seq) FROM events GROUP BY tenant_id;

CREATE TABLE relay_lease (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires BIGINT NOT NULL
);
