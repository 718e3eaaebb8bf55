-- The walk from a user to their groups starts from this index: with the group's key in it,
-- the walk is an index-only scan and returns keys in (tenant, group) order.
DROP INDEX group_user_members_user;
CREATE INDEX group_user_members_user
    ON group_user_members (user_tenant_id, user_id, tenant_id, group_id);
-- SearchGroups is a substring match (LIKE '%text%'). Trigram indexes answer it without
-- scanning the tenant: one over every group (admins see all), one over the public internal
-- groups that every user of the tenant may see (docs/decisions.md). pg_trgm is a trusted
-- extension: a database owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX groups_search_text ON groups USING gin (search_text gin_trgm_ops);
CREATE INDEX groups_search_public ON groups USING gin (search_text gin_trgm_ops)
    WHERE is_public AND kind = 'INTERNAL';
