DELETE FROM contacts c WHERE NOT EXISTS (
    SELECT 1 FROM users u WHERE u.tenant_id = c.contact_tenant_id AND u.user_id = c.contact_user_id);
DELETE FROM room_members m WHERE NOT EXISTS (
    SELECT 1 FROM users u WHERE u.tenant_id = m.user_tenant_id AND u.user_id = m.user_id);
ALTER TABLE contacts ADD CONSTRAINT contacts_contact_tenant_id_contact_user_id_fkey
    FOREIGN KEY (contact_tenant_id, contact_user_id) REFERENCES users (tenant_id, user_id) ON DELETE CASCADE;
ALTER TABLE room_members ADD CONSTRAINT room_members_user_tenant_id_user_id_fkey
    FOREIGN KEY (user_tenant_id, user_id) REFERENCES users (tenant_id, user_id) ON DELETE CASCADE;
