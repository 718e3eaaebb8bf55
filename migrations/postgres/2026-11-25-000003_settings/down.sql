DROP TABLE feature_usage;
DROP TABLE mailing_list_recipients;
DROP TABLE mailing_list_senders;
DROP INDEX groups_mailing_list;
ALTER TABLE groups DROP COLUMN ml_block_external;
ALTER TABLE groups DROP COLUMN mailing_list;
ALTER TABLE groups DROP COLUMN search_text;
