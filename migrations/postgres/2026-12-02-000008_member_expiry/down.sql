DROP INDEX group_user_members_expiry;
DROP INDEX group_team_members_expiry;
DROP INDEX group_group_members_expiry;
DROP INDEX group_user_members_user;
CREATE INDEX group_user_members_user
    ON group_user_members (user_tenant_id, user_id, tenant_id, group_id);
DROP INDEX group_team_members_team;
CREATE INDEX group_team_members_team ON group_team_members (tenant_id, team_id, group_id);
DROP INDEX group_group_members_member;
CREATE INDEX group_group_members_member
    ON group_group_members (tenant_id, member_group_id, group_id);
ALTER TABLE group_user_members DROP COLUMN expire_time;
ALTER TABLE group_team_members DROP COLUMN expire_time;
ALTER TABLE group_group_members DROP COLUMN expire_time;
