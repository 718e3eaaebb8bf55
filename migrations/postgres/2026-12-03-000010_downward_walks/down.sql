DROP INDEX group_team_members_group;
DROP INDEX group_group_members_group;
