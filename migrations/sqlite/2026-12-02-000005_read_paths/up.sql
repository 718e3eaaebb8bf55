-- The walk from a user to their groups starts from this index: with the group's key in it,
-- the walk is an index-only scan and returns keys in (tenant, group) order.
DROP INDEX group_user_members_user;
CREATE INDEX group_user_members_user
    ON group_user_members (user_tenant_id, user_id, tenant_id, group_id);
