-- A contact and a room seat may name a user of another tenant that this service does not
-- know (yet): whether such a user exists is that tenant's business (R24), so the directory
-- writes of one tenant must not depend on it. The owner's side keeps its key; deleting a
-- user deletes the rows naming them explicitly (store: delete_user, delete_tenant). SQLite
-- cannot drop a constraint: the two tables are rebuilt (nothing references them).
CREATE TABLE contacts_new (
    tenant_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    contact_tenant_id BIGINT NOT NULL,
    contact_user_id BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, contact_tenant_id, contact_user_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, user_id) ON DELETE CASCADE
);
INSERT INTO contacts_new SELECT tenant_id, user_id, contact_tenant_id, contact_user_id FROM contacts;
DROP TABLE contacts;
ALTER TABLE contacts_new RENAME TO contacts;
CREATE INDEX contacts_contact ON contacts (contact_tenant_id, contact_user_id);

CREATE TABLE room_members_new (
    tenant_id BIGINT NOT NULL,
    room_id BIGINT NOT NULL,
    user_tenant_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, room_id, user_tenant_id, user_id),
    FOREIGN KEY (tenant_id, room_id) REFERENCES message_rooms (tenant_id, room_id) ON DELETE CASCADE
);
INSERT INTO room_members_new SELECT tenant_id, room_id, user_tenant_id, user_id FROM room_members;
DROP TABLE room_members;
ALTER TABLE room_members_new RENAME TO room_members;
CREATE INDEX room_members_user ON room_members (user_tenant_id, user_id);
