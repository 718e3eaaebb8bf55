-- The outbox becomes the change feed. Every event gets its tenant's next sequence number (the
-- resume cursor) just before its transaction commits, under the row lock of the tenant's
-- counter in `event_sequences`: one tenant's events commit in sequence order, so a follower
-- reading "after cursor N" can never see N+2 before N+1 (docs/decisions.md).
ALTER TABLE events ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN actor TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN published BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE events SET seq = n.seq
    FROM (SELECT tenant_id, event_id,
                 ROW_NUMBER() OVER (PARTITION BY tenant_id ORDER BY event_id) AS seq
            FROM events) n
    WHERE events.tenant_id = n.tenant_id AND events.event_id = n.event_id;
CREATE UNIQUE INDEX events_seq ON events (tenant_id, seq);
CREATE INDEX events_unpublished ON events (tenant_id, seq) WHERE NOT published;
CREATE INDEX events_time ON events (tenant_id, create_time);

-- No foreign key: a deleted tenant's counter and events outlive it (its deletion is an event).
-- `pruned_seq`: every event up to it has been removed by retention; a cursor below it is gone.
CREATE TABLE event_sequences (
    tenant_id BIGINT PRIMARY KEY,
    last_seq BIGINT NOT NULL,
    pruned_seq BIGINT NOT NULL DEFAULT 0
);
INSERT INTO event_sequences (tenant_id, last_seq)
    SELECT tenant_id, MAX(seq) FROM events GROUP BY tenant_id;

-- One relay at a time per database: the holder renews its lease; another takes it over only
-- after it has expired.
CREATE TABLE relay_lease (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires BIGINT NOT NULL
);
