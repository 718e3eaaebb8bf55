DROP TABLE relay_lease;
DROP TABLE event_sequences;
DROP INDEX events_time;
DROP INDEX events_unpublished;
DROP INDEX events_seq;
ALTER TABLE events DROP COLUMN published;
ALTER TABLE events DROP COLUMN actor;
ALTER TABLE events DROP COLUMN seq;
