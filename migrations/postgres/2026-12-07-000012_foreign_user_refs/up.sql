-- A contact and a room seat may name a user of another tenant that this service does not
-- know (yet): whether such a user exists is that tenant's business (R24), so the directory
-- writes of one tenant must not depend on it. The owner's side keeps its key; deleting a
-- user deletes the rows naming them explicitly (store: delete_user, delete_tenant).
ALTER TABLE contacts DROP CONSTRAINT contacts_contact_tenant_id_contact_user_id_fkey;
ALTER TABLE room_members DROP CONSTRAINT room_members_user_tenant_id_user_id_fkey;
