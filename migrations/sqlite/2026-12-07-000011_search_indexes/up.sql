-- SearchGroups is a substring match (LIKE '%text%') that SQLite cannot answer from an index.
-- This one makes a user's search scan the tenant's public internal groups, the candidates
-- every user of the tenant may see, in short index entries (tenant, kind, folded name and
-- description) instead of whole group rows: the LIKE is tested on the entry and only a
-- match's row is read. `kind` is in the key so that the planner, without statistics, prefers
-- it to the primary key (two equality columns against one).
CREATE INDEX groups_search_public ON groups (tenant_id, kind, search_text)
    WHERE is_public AND kind = 'INTERNAL';
