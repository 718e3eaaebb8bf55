-- Lower-cased name and description, matched by SearchGroups on both backends alike.
ALTER TABLE groups ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
-- Mailing list (R10): the address's local part, unique within the tenant.
ALTER TABLE groups ADD COLUMN mailing_list TEXT;
ALTER TABLE groups ADD COLUMN ml_block_external BOOLEAN NOT NULL DEFAULT FALSE;
CREATE UNIQUE INDEX groups_mailing_list ON groups (tenant_id, mailing_list);

-- Designated senders: direct user members; they leave the list when they leave the group.
CREATE TABLE mailing_list_senders (
    tenant_id BIGINT NOT NULL,
    group_id BIGINT NOT NULL,
    user_tenant_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, group_id, user_tenant_id, user_id),
    FOREIGN KEY (tenant_id, group_id, user_tenant_id, user_id)
        REFERENCES group_user_members (tenant_id, group_id, user_tenant_id, user_id) ON DELETE CASCADE
);

-- External recipients: a plain address, or a partner contact (`tenants/T/users/U`).
CREATE TABLE mailing_list_recipients (
    tenant_id BIGINT NOT NULL,
    group_id BIGINT NOT NULL,
    address TEXT NOT NULL,
    PRIMARY KEY (tenant_id, group_id, address),
    FOREIGN KEY (tenant_id, group_id) REFERENCES groups (tenant_id, group_id) ON DELETE CASCADE
);

-- Feature data sizes reported by the services that own the data (R09, R19).
CREATE TABLE feature_usage (
    tenant_id BIGINT NOT NULL,
    group_id BIGINT NOT NULL,
    feature TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    update_time BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, group_id, feature),
    FOREIGN KEY (tenant_id, group_id) REFERENCES groups (tenant_id, group_id) ON DELETE CASCADE
);
