DROP INDEX group_user_members_user;
CREATE INDEX group_user_members_user ON group_user_members (user_tenant_id, user_id);
