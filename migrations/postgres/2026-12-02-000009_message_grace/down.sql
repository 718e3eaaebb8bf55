DROP INDEX groups_message_purge;
ALTER TABLE groups DROP COLUMN message_purge_time;
