CREATE TABLE contacts_old (
    tenant_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    contact_tenant_id BIGINT NOT NULL,
    contact_user_id BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, contact_tenant_id, contact_user_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, user_id) ON DELETE CASCADE,
    FOREIGN KEY (contact_tenant_id, contact_user_id) REFERENCES users (tenant_id, user_id) ON DELETE CASCADE
);
INSERT INTO contacts_old SELECT c.tenant_id, c.user_id, c.contact_tenant_id, c.contact_user_id
    FROM contacts c JOIN users u ON u.tenant_id = c.contact_tenant_id AND u.user_id = c.contact_user_id;
DROP TABLE contacts;
ALTER TABLE contacts_old RENAME TO contacts;
CREATE INDEX contacts_contact ON contacts (contact_tenant_id, contact_user_id);

CREATE TABLE room_members_old (
    tenant_id BIGINT NOT NULL,
    room_id BIGINT NOT NULL,
    user_tenant_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, room_id, user_tenant_id, user_id),
    FOREIGN KEY (tenant_id, room_id) REFERENCES message_rooms (tenant_id, room_id) ON DELETE CASCADE,
    FOREIGN KEY (user_tenant_id, user_id) REFERENCES users (tenant_id, user_id) ON DELETE CASCADE
);
INSERT INTO room_members_old SELECT m.tenant_id, m.room_id, m.user_tenant_id, m.user_id
    FROM room_members m JOIN users u ON u.tenant_id = m.user_tenant_id AND u.user_id = m.user_id;
DROP TABLE room_members;
ALTER TABLE room_members_old RENAME TO room_members;
CREATE INDEX room_members_user ON room_members (user_tenant_id, user_id);
