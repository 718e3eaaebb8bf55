DROP INDEX group_group_members_member;
CREATE INDEX group_group_members_member ON group_group_members (tenant_id, member_group_id);
DROP INDEX group_team_members_team;
CREATE INDEX group_team_members_team ON group_team_members (tenant_id, team_id);
DROP INDEX team_members_user;
CREATE INDEX team_members_user ON team_members (tenant_id, user_id);
