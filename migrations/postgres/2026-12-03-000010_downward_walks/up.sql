-- The walks from a group down to its nested groups and teams (effective membership, R22)
-- follow these, index-only with the expiry. Without them SQLite's planner prefers the
-- covering indexes of the upward walks, which match the tenant only, and reads every nesting
-- and team row of the tenant at each step.
CREATE INDEX group_group_members_group
    ON group_group_members (tenant_id, group_id, member_group_id, expire_time);
CREATE INDEX group_team_members_group
    ON group_team_members (tenant_id, group_id, team_id, expire_time);
