-- The version of `domain::text::fold_case` that computed a group's name_key and search_text.
-- Rows written before this migration have version 1; new rows get the current version (2)
-- by default. At start-up `store::rekey` computes the keys of older rows again.
ALTER TABLE groups ADD COLUMN key_version INTEGER NOT NULL DEFAULT 2;
UPDATE groups SET key_version = 1;
CREATE INDEX groups_key_version ON groups (key_version, tenant_id, group_id);
