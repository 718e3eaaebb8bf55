-- Members that expire: NULL never expires; a member whose expire_time (microseconds) is not
-- after the transaction's instant counts nowhere, before and after the sweeper deletes it.
ALTER TABLE group_user_members ADD COLUMN expire_time BIGINT;
ALTER TABLE group_team_members ADD COLUMN expire_time BIGINT;
ALTER TABLE group_group_members ADD COLUMN expire_time BIGINT;

-- The walks from a user outwards stay index-only with the expiry in their indexes.
DROP INDEX group_user_members_user;
CREATE INDEX group_user_members_user
    ON group_user_members (user_tenant_id, user_id, tenant_id, group_id, expire_time);
DROP INDEX group_team_members_team;
CREATE INDEX group_team_members_team
    ON group_team_members (tenant_id, team_id, group_id, expire_time);
DROP INDEX group_group_members_member;
CREATE INDEX group_group_members_member
    ON group_group_members (tenant_id, member_group_id, group_id, expire_time);

-- The sweeper and the cache's horizon read the next expiry from these.
CREATE INDEX group_user_members_expiry ON group_user_members (expire_time)
    WHERE expire_time IS NOT NULL;
CREATE INDEX group_team_members_expiry ON group_team_members (expire_time)
    WHERE expire_time IS NOT NULL;
CREATE INDEX group_group_members_expiry ON group_group_members (expire_time)
    WHERE expire_time IS NOT NULL;
