-- Every table leads with tenant_id; every foreign-key column has an index that leads with it.
-- Times are microseconds since the Unix epoch (UTC).

CREATE TABLE tenants (
    tenant_id BIGINT PRIMARY KEY,
    display_name TEXT NOT NULL,
    plan TEXT NOT NULL,
    core_enabled BOOLEAN NOT NULL,
    group_creation TEXT NOT NULL,
    masters_may_manage_settings BOOLEAN NOT NULL,
    storage_quota_bytes BIGINT NOT NULL,
    storage_used_bytes BIGINT NOT NULL DEFAULT 0,
    group_count BIGINT NOT NULL DEFAULT 0,
    create_time BIGINT NOT NULL,
    update_time BIGINT NOT NULL
);

CREATE TABLE users (
    tenant_id BIGINT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL,
    email TEXT NOT NULL,
    display_name TEXT NOT NULL,
    is_admin BOOLEAN NOT NULL,
    external_messaging_allowed BOOLEAN NOT NULL,
    kind TEXT NOT NULL,
    direct_group_count BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX users_email ON users (tenant_id, email);

CREATE TABLE teams (
    tenant_id BIGINT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    team_id BIGINT NOT NULL,
    display_name TEXT NOT NULL,
    email TEXT NOT NULL,
    PRIMARY KEY (tenant_id, team_id)
);
CREATE INDEX teams_email ON teams (tenant_id, email);

CREATE TABLE team_members (
    tenant_id BIGINT NOT NULL,
    team_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, team_id, user_id),
    FOREIGN KEY (tenant_id, team_id) REFERENCES teams (tenant_id, team_id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, user_id) ON DELETE CASCADE
);
CREATE INDEX team_members_user ON team_members (tenant_id, user_id);

CREATE TABLE contacts (
    tenant_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    contact_tenant_id BIGINT NOT NULL,
    contact_user_id BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, contact_tenant_id, contact_user_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, user_id) ON DELETE CASCADE,
    FOREIGN KEY (contact_tenant_id, contact_user_id) REFERENCES users (tenant_id, user_id) ON DELETE CASCADE
);
CREATE INDEX contacts_contact ON contacts (contact_tenant_id, contact_user_id);

CREATE TABLE groups (
    tenant_id BIGINT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    group_id BIGINT NOT NULL,
    display_name TEXT NOT NULL,
    -- Unicode-lowercased display_name: names are unique per tenant, case-insensitively.
    name_key TEXT NOT NULL,
    description TEXT NOT NULL,
    photo_uri TEXT NOT NULL,
    kind TEXT NOT NULL,
    is_public BOOLEAN NOT NULL,
    use_message BOOLEAN NOT NULL,
    use_note BOOLEAN NOT NULL,
    use_event BOOLEAN NOT NULL,
    use_task BOOLEAN NOT NULL,
    use_folder BOOLEAN NOT NULL,
    notify_all_members BOOLEAN NOT NULL,
    master_manages_features BOOLEAN NOT NULL,
    external_key TEXT,
    storage_used_bytes BIGINT NOT NULL DEFAULT 0,
    -- Bumped by every change; the etag is derived from it.
    version BIGINT NOT NULL,
    create_time BIGINT NOT NULL,
    update_time BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, group_id)
);
CREATE UNIQUE INDEX groups_name_key ON groups (tenant_id, name_key);
CREATE UNIQUE INDEX groups_external_key ON groups (tenant_id, external_key);

-- Users who are direct members; masters are members with is_master.
CREATE TABLE group_user_members (
    tenant_id BIGINT NOT NULL,
    group_id BIGINT NOT NULL,
    user_tenant_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    is_master BOOLEAN NOT NULL,
    add_time BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, group_id, user_tenant_id, user_id),
    FOREIGN KEY (tenant_id, group_id) REFERENCES groups (tenant_id, group_id) ON DELETE CASCADE,
    FOREIGN KEY (user_tenant_id, user_id) REFERENCES users (tenant_id, user_id) ON DELETE CASCADE
);
CREATE INDEX group_user_members_user ON group_user_members (user_tenant_id, user_id);

CREATE TABLE group_team_members (
    tenant_id BIGINT NOT NULL,
    group_id BIGINT NOT NULL,
    team_id BIGINT NOT NULL,
    add_time BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, group_id, team_id),
    FOREIGN KEY (tenant_id, group_id) REFERENCES groups (tenant_id, group_id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, team_id) REFERENCES teams (tenant_id, team_id) ON DELETE CASCADE
);
CREATE INDEX group_team_members_team ON group_team_members (tenant_id, team_id);

-- Nested groups: member_group_id is a member of group_id.
CREATE TABLE group_group_members (
    tenant_id BIGINT NOT NULL,
    group_id BIGINT NOT NULL,
    member_group_id BIGINT NOT NULL,
    add_time BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, group_id, member_group_id),
    FOREIGN KEY (tenant_id, group_id) REFERENCES groups (tenant_id, group_id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, member_group_id) REFERENCES groups (tenant_id, group_id) ON DELETE CASCADE
);
CREATE INDEX group_group_members_member ON group_group_members (tenant_id, member_group_id);

CREATE TABLE message_rooms (
    tenant_id BIGINT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    room_id BIGINT NOT NULL,
    display_name TEXT NOT NULL,
    converted_group_id BIGINT,
    PRIMARY KEY (tenant_id, room_id)
);

CREATE TABLE room_members (
    tenant_id BIGINT NOT NULL,
    room_id BIGINT NOT NULL,
    user_tenant_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, room_id, user_tenant_id, user_id),
    FOREIGN KEY (tenant_id, room_id) REFERENCES message_rooms (tenant_id, room_id) ON DELETE CASCADE,
    FOREIGN KEY (user_tenant_id, user_id) REFERENCES users (tenant_id, user_id) ON DELETE CASCADE
);
CREATE INDEX room_members_user ON room_members (user_tenant_id, user_id);

-- Idempotent creates: a request_id answers with the group it first created.
CREATE TABLE create_requests (
    tenant_id BIGINT NOT NULL,
    request_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    group_id BIGINT NOT NULL,
    create_time BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, request_id),
    -- Deferred: the request id is claimed first, before the group row exists.
    FOREIGN KEY (tenant_id, group_id) REFERENCES groups (tenant_id, group_id)
        ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX create_requests_group ON create_requests (tenant_id, group_id);

-- Outbox: every change writes its events in the same transaction.
CREATE TABLE events (
    tenant_id BIGINT NOT NULL,
    event_id BIGINT NOT NULL,
    group_id BIGINT,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    create_time BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX events_group ON events (tenant_id, group_id);
