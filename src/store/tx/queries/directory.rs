//! `DirectoryTx`: tenants, users, teams, contacts and general message rooms.

use std::collections::BTreeMap;

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;

use super::BackendTx;
use crate::domain::error::Result;
use crate::domain::model::*;
use crate::domain::repo::{DirectoryTx, Page};
use crate::store::rows::*;
use crate::store::schema::*;
use crate::store::tx::KeepPrepared;
use crate::store::tx::{sql, user_key};

#[async_trait]
impl DirectoryTx for BackendTx {
    async fn upsert_tenant(&mut self, t: &Tenant) -> Result<()> {
        self.touched.tenant(t.id);
        use tenants::dsl as c;
        let row = TenantRow::new(t, now_micros());
        diesel::insert_into(tenants::table)
            .values(&row)
            .on_conflict(c::tenant_id)
            .do_update()
            .set((
                c::display_name.eq(excluded(c::display_name)),
                c::plan.eq(excluded(c::plan)),
                c::core_enabled.eq(excluded(c::core_enabled)),
                c::group_creation.eq(excluded(c::group_creation)),
                c::masters_may_manage_settings.eq(excluded(c::masters_may_manage_settings)),
                c::storage_quota_bytes.eq(excluded(c::storage_quota_bytes)),
                c::update_time.eq(excluded(c::update_time)),
            ))
            .execute(self.conn())
            .await?;
        Ok(())
    }

    async fn get_tenant(&mut self, id: TenantId) -> Result<Option<Tenant>> {
        tenants::table
            .find(id.0)
            .select(TenantRow::as_select())
            .first(self.conn())
            .await
            .optional()?
            .map(Tenant::try_from)
            .transpose()
    }

    async fn list_tenants(&mut self, page: Page<TenantId>) -> Result<Vec<Tenant>> {
        let after = page.after.map_or(i64::MIN, |t| t.0);
        tenants::table
            .filter(tenants::tenant_id.gt(after))
            .order(tenants::tenant_id)
            .limit(page.limit)
            .select(TenantRow::as_select())
            .load(self.conn())
            .await?
            .into_iter()
            .map(Tenant::try_from)
            .collect()
    }

    async fn delete_tenant(&mut self, id: TenantId) -> Result<bool> {
        self.touched.everything();
        // Rows of other tenants naming its users have no foreign key to them (migration 12).
        diesel::delete(contacts::table.filter(contacts::contact_tenant_id.eq(id.0)))
            .execute(self.conn())
            .await?;
        diesel::delete(room_members::table.filter(room_members::user_tenant_id.eq(id.0)))
            .execute(self.conn())
            .await?;
        let n = diesel::delete(tenants::table.find(id.0))
            .execute(self.conn())
            .await?;
        Ok(n > 0)
    }

    async fn take_group_slot(&mut self, id: TenantId) -> Result<bool> {
        self.touched.tenant(id);
        let n = diesel::sql_query(BackendTx::statement(sql::take_group_slot()))
            .bind::<BigInt, _>(id.0)
            .bind::<BigInt, _>(Plan::Paid.group_limit())
            .bind::<BigInt, _>(Plan::Free.group_limit())
            .keep_prepared()
            .execute(self.conn())
            .await?;
        Ok(n > 0)
    }

    async fn release_group_slot(&mut self, id: TenantId) -> Result<()> {
        self.touched.tenant(id);
        use tenants::dsl as c;
        diesel::update(tenants::table.find(id.0).filter(c::group_count.gt(0)))
            .set(c::group_count.eq(c::group_count - 1))
            .execute(self.conn())
            .await?;
        Ok(())
    }

    async fn upsert_user(&mut self, u: &User) -> Result<()> {
        self.touched.tenant(u.key.tenant);
        use users::dsl as c;
        diesel::insert_into(users::table)
            .values(&UserRow::from(u))
            .on_conflict((c::tenant_id, c::user_id))
            .do_update()
            .set((
                c::email.eq(excluded(c::email)),
                c::display_name.eq(excluded(c::display_name)),
                c::is_admin.eq(excluded(c::is_admin)),
                c::external_messaging_allowed.eq(excluded(c::external_messaging_allowed)),
                c::kind.eq(excluded(c::kind)),
            ))
            .execute(self.conn())
            .await?;
        Ok(())
    }

    async fn get_user(&mut self, key: UserKey) -> Result<Option<User>> {
        users::table
            .find((key.tenant.0, key.user.0))
            .select(UserRow::as_select())
            .first(self.conn())
            .await
            .optional()?
            .map(User::try_from)
            .transpose()
    }

    async fn get_users(&mut self, keys: &[UserKey]) -> Result<Vec<User>> {
        let mut out = Vec::with_capacity(keys.len());
        let mut by_tenant: BTreeMap<TenantId, Vec<i64>> = Default::default();
        for k in keys {
            by_tenant.entry(k.tenant).or_default().push(k.user.0);
        }
        for (tenant, ids) in by_tenant {
            let rows = users::table
                .filter(users::tenant_id.eq(tenant.0))
                .filter(users::user_id.eq_any(ids))
                .select(UserRow::as_select())
                .load(self.conn())
                .await?;
            for r in rows {
                out.push(User::try_from(r)?);
            }
        }
        Ok(out)
    }

    async fn list_users(&mut self, tenant: TenantId, page: Page<UserId>) -> Result<Vec<User>> {
        let after = page.after.map_or(i64::MIN, |u| u.0);
        users::table
            .filter(users::tenant_id.eq(tenant.0))
            .filter(users::user_id.gt(after))
            .order(users::user_id)
            .limit(page.limit)
            .select(UserRow::as_select())
            .load(self.conn())
            .await?
            .into_iter()
            .map(User::try_from)
            .collect()
    }

    async fn delete_user(&mut self, key: UserKey) -> Result<bool> {
        self.touched.everything();
        // Contacts and room seats naming the user have no foreign key to them (migration 12).
        diesel::delete(
            contacts::table
                .filter(contacts::contact_tenant_id.eq(key.tenant.0))
                .filter(contacts::contact_user_id.eq(key.user.0)),
        )
        .execute(self.conn())
        .await?;
        diesel::delete(
            room_members::table
                .filter(room_members::user_tenant_id.eq(key.tenant.0))
                .filter(room_members::user_id.eq(key.user.0)),
        )
        .execute(self.conn())
        .await?;
        let n = diesel::delete(users::table.find((key.tenant.0, key.user.0)))
            .execute(self.conn())
            .await?;
        Ok(n > 0)
    }

    async fn take_user_group_slot(
        &mut self,
        key: UserKey,
        limit: i64,
        needs_external_permission: bool,
    ) -> Result<bool> {
        self.touched.tenant(key.tenant);
        use users::dsl as c;
        let mut q = diesel::update(users::table)
            .filter(c::tenant_id.eq(key.tenant.0))
            .filter(c::user_id.eq(key.user.0))
            .filter(c::direct_group_count.lt(limit))
            .into_boxed();
        if needs_external_permission {
            q = q
                .filter(c::external_messaging_allowed.eq(true))
                .filter(c::kind.eq(user_kind_text(UserKind::Works)));
        }
        let n = q
            .set(c::direct_group_count.eq(c::direct_group_count + 1))
            .keep_prepared()
            .execute(self.conn())
            .await?;
        Ok(n > 0)
    }

    async fn release_user_group_slots(&mut self, keys: &[UserKey]) -> Result<()> {
        keys.iter().for_each(|k| self.touched.tenant(k.tenant));
        use users::dsl as c;
        for key in keys {
            diesel::update(
                users::table
                    .find((key.tenant.0, key.user.0))
                    .filter(c::direct_group_count.gt(0)),
            )
            .set(c::direct_group_count.eq(c::direct_group_count - 1))
            .keep_prepared()
            .execute(self.conn())
            .await?;
        }
        Ok(())
    }

    async fn upsert_team(&mut self, team: &Team) -> Result<()> {
        self.touched.tenant(team.tenant);
        use teams::dsl as c;
        diesel::insert_into(teams::table)
            .values(&TeamRow {
                tenant_id: team.tenant.0,
                team_id: team.id.0,
                display_name: team.display_name.clone(),
                email: team.email.clone(),
            })
            .on_conflict((c::tenant_id, c::team_id))
            .do_update()
            .set((
                c::display_name.eq(excluded(c::display_name)),
                c::email.eq(excluded(c::email)),
            ))
            .execute(self.conn())
            .await?;
        diesel::delete(
            team_members::table
                .filter(team_members::tenant_id.eq(team.tenant.0))
                .filter(team_members::team_id.eq(team.id.0)),
        )
        .execute(self.conn())
        .await?;
        // Row by row: the SQLite wrapper has no multi-row insert.
        for u in &team.members {
            let row = TeamMemberRow {
                tenant_id: team.tenant.0,
                team_id: team.id.0,
                user_id: u.0,
            };
            diesel::insert_into(team_members::table)
                .values(row)
                .execute(self.conn())
                .await?;
        }
        Ok(())
    }

    async fn get_team(&mut self, tenant: TenantId, id: TeamId) -> Result<Option<Team>> {
        let Some(row) = teams::table
            .find((tenant.0, id.0))
            .select(TeamRow::as_select())
            .first(self.conn())
            .await
            .optional()?
        else {
            return Ok(None);
        };
        let members = team_members::table
            .filter(team_members::tenant_id.eq(tenant.0))
            .filter(team_members::team_id.eq(id.0))
            .order(team_members::user_id)
            .select(team_members::user_id)
            .load::<i64>(self.conn())
            .await?;
        Ok(Some(
            row.into_team(members.into_iter().map(UserId).collect()),
        ))
    }

    async fn existing_teams(&mut self, tenant: TenantId, ids: &[TeamId]) -> Result<Vec<TeamId>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = ids.iter().map(|t| t.0).collect();
        Ok(teams::table
            .filter(teams::tenant_id.eq(tenant.0))
            .filter(teams::team_id.eq_any(ids))
            .select(teams::team_id)
            .load::<i64>(self.conn())
            .await?
            .into_iter()
            .map(TeamId)
            .collect())
    }

    async fn list_teams(&mut self, tenant: TenantId, page: Page<TeamId>) -> Result<Vec<Team>> {
        let after = page.after.map_or(i64::MIN, |t| t.0);
        let rows = teams::table
            .filter(teams::tenant_id.eq(tenant.0))
            .filter(teams::team_id.gt(after))
            .order(teams::team_id)
            .limit(page.limit)
            .select(TeamRow::as_select())
            .load(self.conn())
            .await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.team_id).collect();
        let members = team_members::table
            .filter(team_members::tenant_id.eq(tenant.0))
            .filter(team_members::team_id.eq_any(ids))
            .order((team_members::team_id, team_members::user_id))
            .select((team_members::team_id, team_members::user_id))
            .load::<(i64, i64)>(self.conn())
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let team_id = r.team_id;
                let ids = members
                    .iter()
                    .filter(|(t, _)| *t == team_id)
                    .map(|(_, u)| UserId(*u))
                    .collect();
                r.into_team(ids)
            })
            .collect())
    }

    async fn delete_team(&mut self, tenant: TenantId, id: TeamId) -> Result<bool> {
        self.touched.tenant(tenant);
        let n = diesel::delete(teams::table.find((tenant.0, id.0)))
            .execute(self.conn())
            .await?;
        Ok(n > 0)
    }

    async fn add_contact(&mut self, contact: &Contact) -> Result<()> {
        self.touched.tenant(contact.owner.tenant);
        self.touched.tenant(contact.contact.tenant);
        diesel::insert_into(contacts::table)
            .values(&ContactRow::from(contact))
            .on_conflict_do_nothing()
            .execute(self.conn())
            .await?;
        Ok(())
    }

    async fn list_contacts(&mut self, owner: UserKey, page: Page<UserKey>) -> Result<Vec<Contact>> {
        use contacts::dsl as c;
        let after = page.after.unwrap_or(user_key(i64::MIN, i64::MIN));
        Ok(contacts::table
            .filter(c::tenant_id.eq(owner.tenant.0))
            .filter(c::user_id.eq(owner.user.0))
            .filter(
                c::contact_tenant_id
                    .gt(after.tenant.0)
                    .or(c::contact_tenant_id
                        .eq(after.tenant.0)
                        .and(c::contact_user_id.gt(after.user.0))),
            )
            .order((c::contact_tenant_id, c::contact_user_id))
            .limit(page.limit)
            .select(ContactRow::as_select())
            .load(self.conn())
            .await?
            .into_iter()
            .map(Contact::from)
            .collect())
    }

    async fn remove_contact(&mut self, contact: &Contact) -> Result<bool> {
        self.touched.tenant(contact.owner.tenant);
        self.touched.tenant(contact.contact.tenant);
        let n = diesel::delete(contacts::table.find((
            contact.owner.tenant.0,
            contact.owner.user.0,
            contact.contact.tenant.0,
            contact.contact.user.0,
        )))
        .execute(self.conn())
        .await?;
        Ok(n > 0)
    }

    async fn has_contact(&mut self, owner: UserKey, contact: UserKey) -> Result<bool> {
        Ok(contacts::table
            .find((
                owner.tenant.0,
                owner.user.0,
                contact.tenant.0,
                contact.user.0,
            ))
            .select(contacts::user_id)
            .first::<i64>(self.conn())
            .await
            .optional()?
            .is_some())
    }

    async fn is_partner_contact(&mut self, tenant: TenantId, contact: UserKey) -> Result<bool> {
        use contacts::dsl as c;
        Ok(contacts::table
            .filter(c::tenant_id.eq(tenant.0))
            .filter(c::contact_tenant_id.eq(contact.tenant.0))
            .filter(c::contact_user_id.eq(contact.user.0))
            .select(c::user_id)
            .first::<i64>(self.conn())
            .await
            .optional()?
            .is_some())
    }

    async fn upsert_room(&mut self, room: &MessageRoom) -> Result<()> {
        self.touched.tenant(room.tenant);
        use message_rooms::dsl as c;
        diesel::insert_into(message_rooms::table)
            .values(&RoomRow {
                tenant_id: room.tenant.0,
                room_id: room.id.0,
                display_name: room.display_name.clone(),
                converted_group_id: None,
            })
            .on_conflict((c::tenant_id, c::room_id))
            .do_update()
            .set(c::display_name.eq(excluded(c::display_name)))
            .execute(self.conn())
            .await?;
        diesel::delete(
            room_members::table
                .filter(room_members::tenant_id.eq(room.tenant.0))
                .filter(room_members::room_id.eq(room.id.0)),
        )
        .execute(self.conn())
        .await?;
        // Row by row: the SQLite wrapper has no multi-row insert.
        for u in &room.members {
            let row = RoomMemberRow {
                tenant_id: room.tenant.0,
                room_id: room.id.0,
                user_tenant_id: u.tenant.0,
                user_id: u.user.0,
            };
            diesel::insert_into(room_members::table)
                .values(row)
                .execute(self.conn())
                .await?;
        }
        Ok(())
    }

    async fn get_room(&mut self, tenant: TenantId, id: RoomId) -> Result<Option<MessageRoom>> {
        let Some(row) = message_rooms::table
            .find((tenant.0, id.0))
            .select(RoomRow::as_select())
            .first(self.conn())
            .await
            .optional()?
        else {
            return Ok(None);
        };
        let members = room_members::table
            .filter(room_members::tenant_id.eq(tenant.0))
            .filter(room_members::room_id.eq(id.0))
            .order((room_members::user_tenant_id, room_members::user_id))
            .select((room_members::user_tenant_id, room_members::user_id))
            .load::<(i64, i64)>(self.conn())
            .await?;
        Ok(Some(row.into_room(
            members.into_iter().map(|(t, u)| user_key(t, u)).collect(),
        )))
    }

    async fn list_rooms(
        &mut self,
        tenant: TenantId,
        page: Page<RoomId>,
    ) -> Result<Vec<MessageRoom>> {
        let after = page.after.map_or(i64::MIN, |r| r.0);
        let rows = message_rooms::table
            .filter(message_rooms::tenant_id.eq(tenant.0))
            .filter(message_rooms::room_id.gt(after))
            .order(message_rooms::room_id)
            .limit(page.limit)
            .select(RoomRow::as_select())
            .load(self.conn())
            .await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.room_id).collect();
        let members = room_members::table
            .filter(room_members::tenant_id.eq(tenant.0))
            .filter(room_members::room_id.eq_any(ids))
            .order((
                room_members::room_id,
                room_members::user_tenant_id,
                room_members::user_id,
            ))
            .select((
                room_members::room_id,
                room_members::user_tenant_id,
                room_members::user_id,
            ))
            .load::<(i64, i64, i64)>(self.conn())
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let room_id = r.room_id;
                let keys = members
                    .iter()
                    .filter(|(room, _, _)| *room == room_id)
                    .map(|(_, t, u)| user_key(*t, *u))
                    .collect();
                r.into_room(keys)
            })
            .collect())
    }

    async fn delete_room(&mut self, tenant: TenantId, id: RoomId) -> Result<bool> {
        self.touched.tenant(tenant);
        let n = diesel::delete(message_rooms::table.find((tenant.0, id.0)))
            .execute(self.conn())
            .await?;
        Ok(n > 0)
    }

    async fn mark_room_converted(
        &mut self,
        tenant: TenantId,
        id: RoomId,
        group: GroupId,
    ) -> Result<bool> {
        self.touched.tenant(tenant);
        use message_rooms::dsl as r;
        let n = diesel::update(
            message_rooms::table
                .find((tenant.0, id.0))
                .filter(r::converted_group_id.is_null()),
        )
        .set(r::converted_group_id.eq(group.0))
        .execute(self.conn())
        .await?;
        Ok(n > 0)
    }
}
