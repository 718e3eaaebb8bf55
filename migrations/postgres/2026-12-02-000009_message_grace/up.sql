-- When a group's message data is purged (microseconds): set when message is turned off (that
-- instant plus the grace period), cleared when message is turned back on in time or when the
-- purge has run.
ALTER TABLE groups ADD COLUMN message_purge_time BIGINT;
CREATE INDEX groups_message_purge ON groups (message_purge_time)
    WHERE message_purge_time IS NOT NULL;
