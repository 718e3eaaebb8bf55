DROP INDEX groups_key_version;
ALTER TABLE groups DROP COLUMN key_version;
