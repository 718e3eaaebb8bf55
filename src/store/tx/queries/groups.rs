//! `GroupTx`: group rows, settings, mailing lists, storage usage and discovery.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;

use super::BackendTx;
use crate::domain::error::{Error, Result};
use crate::domain::model::*;
use crate::domain::repo::{GroupFilter, GroupSeen, GroupTx, Page, StaleKeys};
use crate::store::rows::*;
use crate::store::schema::*;
use crate::store::tx::KeepPrepared;
use crate::store::tx::{map_group_write, sql, user_key};

#[async_trait]
impl GroupTx for BackendTx {
    async fn insert_group(&mut self, group: &Group) -> Result<()> {
        self.touched.tenant(group.tenant);
        let res = diesel::insert_into(groups::table)
            .values(&GroupRow::from(group))
            .keep_prepared()
            .execute(self.conn())
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) => Err(map_group_write(e)),
        }
    }

    async fn get_group(&mut self, tenant: TenantId, id: GroupId) -> Result<Option<Group>> {
        groups::table
            .find((tenant.0, id.0))
            .select(GroupRow::as_select())
            .first(self.conn())
            .await
            .optional()?
            .map(Group::try_from)
            .transpose()
    }

    async fn groups_due_for_purge(
        &mut self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<(TenantId, GroupId)>> {
        Ok(groups::table
            .filter(groups::message_purge_time.le(now))
            .order(groups::message_purge_time)
            .limit(limit)
            .select((groups::tenant_id, groups::group_id))
            .load::<(i64, i64)>(self.conn())
            .await?
            .into_iter()
            .map(|(t, g)| (TenantId(t), GroupId(g)))
            .collect())
    }

    async fn group_by_key(&mut self, tenant: TenantId, key: &str) -> Result<Option<GroupId>> {
        Ok(groups::table
            .filter(groups::tenant_id.eq(tenant.0))
            .filter(groups::external_key.eq(key))
            .select(groups::group_id)
            .first::<i64>(self.conn())
            .await
            .optional()?
            .map(GroupId))
    }

    async fn get_group_seen_by(
        &mut self,
        tenant: TenantId,
        id: GroupId,
        user: UserKey,
    ) -> Result<GroupSeen> {
        let GroupSeenRow {
            group,
            member,
            master,
            caller,
        } = self
            .user_in_reach(sql::group_seen_by(), tenant, id, user)
            .await?;
        Ok(GroupSeen {
            user: caller.user(user)?,
            group: group
                .map(|g| Ok::<_, Error>((Group::try_from(g)?, member)))
                .transpose()?,
            direct: master,
        })
    }

    async fn lock_group(&mut self, tenant: TenantId, id: GroupId) -> Result<Option<Group>> {
        self.backend_lock_group(tenant, id).await
    }

    async fn touch_group(&mut self, tenant: TenantId, id: GroupId, now: i64) -> Result<()> {
        self.touched.tenant(tenant);
        use groups::dsl as c;
        diesel::update(groups::table.find((tenant.0, id.0)))
            .set((c::version.eq(c::version + 1), c::update_time.eq(now)))
            .keep_prepared()
            .execute(self.conn())
            .await?;
        Ok(())
    }

    async fn existing_groups(&mut self, tenant: TenantId, ids: &[GroupId]) -> Result<Vec<GroupId>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = ids.iter().map(|g| g.0).collect();
        Ok(groups::table
            .filter(groups::tenant_id.eq(tenant.0))
            .filter(groups::group_id.eq_any(ids))
            .select(groups::group_id)
            .load::<i64>(self.conn())
            .await?
            .into_iter()
            .map(GroupId)
            .collect())
    }

    async fn delete_group(&mut self, tenant: TenantId, id: GroupId) -> Result<bool> {
        self.touched.tenant(tenant);
        let n = diesel::delete(groups::table.find((tenant.0, id.0)))
            .execute(self.conn())
            .await?;
        Ok(n > 0)
    }

    async fn update_group(&mut self, before: &Group, group: &Group) -> Result<()> {
        // Visibility (R07: kind, openness) and the external key decide answers about the
        // group's members and listings (and which group a key names); anything else of the
        // row is read only by answers about the group itself.
        let seen_alike = before.tenant == group.tenant
            && before.id == group.id
            && before.kind == group.kind
            && before.is_public == group.is_public
            && before.external_key == group.external_key;
        if seen_alike {
            self.touched.group(group.tenant, group.id);
        } else {
            self.touched.tenant(group.tenant);
        }
        let res = diesel::update(groups::table.find((group.tenant.0, group.id.0)))
            .set(&GroupRow::from(group))
            .keep_prepared()
            .execute(self.conn())
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) => Err(map_group_write(e)),
        }
    }

    async fn address_in_use(
        &mut self,
        tenant: TenantId,
        local: &str,
        except: GroupId,
    ) -> Result<bool> {
        let pattern = format!("{}@%", sql::like_escape(local));
        let row: FlagRow = diesel::sql_query(BackendTx::statement(sql::ADDRESS_IN_USE))
            .bind::<BigInt, _>(tenant.0)
            .bind::<Text, _>(pattern)
            .bind::<Text, _>(local)
            .bind::<BigInt, _>(except.0)
            .keep_prepared()
            .get_result(self.conn())
            .await?;
        Ok(row.flag)
    }

    async fn load_mailing_list(&mut self, group: &mut Group) -> Result<()> {
        let (tenant, id) = (group.tenant.0, group.id.0);
        let Some(list) = group.mailing_list.as_mut() else {
            return Ok(());
        };
        list.designated_senders = mailing_list_senders::table
            .filter(mailing_list_senders::tenant_id.eq(tenant))
            .filter(mailing_list_senders::group_id.eq(id))
            .order((
                mailing_list_senders::user_tenant_id,
                mailing_list_senders::user_id,
            ))
            .select((
                mailing_list_senders::user_tenant_id,
                mailing_list_senders::user_id,
            ))
            .load::<(i64, i64)>(self.conn())
            .await?
            .into_iter()
            .map(|(t, u)| user_key(t, u))
            .collect();
        list.external_recipients = mailing_list_recipients::table
            .filter(mailing_list_recipients::tenant_id.eq(tenant))
            .filter(mailing_list_recipients::group_id.eq(id))
            .select(mailing_list_recipients::address)
            .load::<String>(self.conn())
            .await?;
        // Byte order, as written, whatever the database's collation.
        list.external_recipients.sort();
        Ok(())
    }

    async fn save_mailing_list(&mut self, group: &Group) -> Result<()> {
        self.touched.tenant(group.tenant);
        let (tenant, id) = (group.tenant.0, group.id.0);
        diesel::delete(
            mailing_list_senders::table
                .filter(mailing_list_senders::tenant_id.eq(tenant))
                .filter(mailing_list_senders::group_id.eq(id)),
        )
        .execute(self.conn())
        .await?;
        diesel::delete(
            mailing_list_recipients::table
                .filter(mailing_list_recipients::tenant_id.eq(tenant))
                .filter(mailing_list_recipients::group_id.eq(id)),
        )
        .execute(self.conn())
        .await?;
        let Some(list) = &group.mailing_list else {
            return Ok(());
        };
        for s in &list.designated_senders {
            diesel::insert_into(mailing_list_senders::table)
                .values((
                    mailing_list_senders::tenant_id.eq(tenant),
                    mailing_list_senders::group_id.eq(id),
                    mailing_list_senders::user_tenant_id.eq(s.tenant.0),
                    mailing_list_senders::user_id.eq(s.user.0),
                ))
                .execute(self.conn())
                .await?;
        }
        for a in &list.external_recipients {
            diesel::insert_into(mailing_list_recipients::table)
                .values((
                    mailing_list_recipients::tenant_id.eq(tenant),
                    mailing_list_recipients::group_id.eq(id),
                    mailing_list_recipients::address.eq(a),
                ))
                .execute(self.conn())
                .await?;
        }
        Ok(())
    }

    async fn feature_usage(
        &mut self,
        tenant: TenantId,
        group: GroupId,
    ) -> Result<Vec<(String, i64)>> {
        Ok(feature_usage::table
            .filter(feature_usage::tenant_id.eq(tenant.0))
            .filter(feature_usage::group_id.eq(group.0))
            .order(feature_usage::feature)
            .select((feature_usage::feature, feature_usage::bytes))
            .load::<(String, i64)>(self.conn())
            .await?)
    }

    async fn set_feature_usage(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        feature: &str,
        bytes: i64,
        now: i64,
    ) -> Result<i64> {
        self.touched.tenant(tenant);
        use feature_usage::dsl as f;
        let old = feature_usage::table
            .find((tenant.0, group.0, feature))
            .select(f::bytes)
            .first::<i64>(self.conn())
            .await
            .optional()?
            .unwrap_or(0);
        diesel::insert_into(feature_usage::table)
            .values((
                f::tenant_id.eq(tenant.0),
                f::group_id.eq(group.0),
                f::feature.eq(feature),
                f::bytes.eq(bytes),
                f::update_time.eq(now),
            ))
            .on_conflict((f::tenant_id, f::group_id, f::feature))
            .do_update()
            .set((
                f::bytes.eq(excluded(f::bytes)),
                f::update_time.eq(excluded(f::update_time)),
            ))
            .execute(self.conn())
            .await?;
        Ok(old)
    }

    async fn stale_name_keys(&mut self, version: i32, limit: i64) -> Result<Vec<StaleKeys>> {
        Ok(
            diesel::sql_query(BackendTx::statement(sql::STALE_NAME_KEYS))
                .bind::<Integer, _>(version)
                .bind::<BigInt, _>(limit)
                .load::<StaleKeysRow>(self.conn())
                .await?
                .into_iter()
                .map(Into::into)
                .collect(),
        )
    }

    async fn name_key_taken(
        &mut self,
        tenant: TenantId,
        id: GroupId,
        name_key: &str,
    ) -> Result<bool> {
        let row: FlagRow = diesel::sql_query(BackendTx::statement(sql::NAME_KEY_TAKEN))
            .bind::<BigInt, _>(tenant.0)
            .bind::<Text, _>(name_key)
            .bind::<BigInt, _>(id.0)
            .get_result(self.conn())
            .await?;
        Ok(row.flag)
    }

    async fn set_name_keys(&mut self, keys: &StaleKeys, version: i32) -> Result<()> {
        self.touched.tenant(keys.tenant);
        diesel::sql_query(BackendTx::statement(sql::SET_NAME_KEYS))
            .bind::<Text, _>(&keys.name_key)
            .bind::<Text, _>(&keys.search_text)
            .bind::<Integer, _>(version)
            .bind::<BigInt, _>(keys.tenant.0)
            .bind::<BigInt, _>(keys.id.0)
            .execute(self.conn())
            .await
            .map_err(map_group_write)?;
        Ok(())
    }

    async fn add_storage(&mut self, tenant: TenantId, group: GroupId, delta: i64) -> Result<()> {
        self.touched.tenant(tenant);
        diesel::sql_query(BackendTx::statement(sql::ADD_GROUP_STORAGE))
            .bind::<BigInt, _>(delta)
            .bind::<BigInt, _>(tenant.0)
            .bind::<BigInt, _>(group.0)
            .keep_prepared()
            .execute(self.conn())
            .await?;
        diesel::sql_query(BackendTx::statement(sql::ADD_TENANT_STORAGE))
            .bind::<BigInt, _>(delta)
            .bind::<BigInt, _>(tenant.0)
            .keep_prepared()
            .execute(self.conn())
            .await?;
        Ok(())
    }

    async fn usage_by_kind(&mut self, tenant: TenantId) -> Result<[(i64, i64); 2]> {
        let rows = diesel::sql_query(BackendTx::statement(sql::USAGE_BY_KIND))
            .bind::<BigInt, _>(tenant.0)
            .keep_prepared()
            .load::<KindUsageRow>(self.conn())
            .await?;
        let mut out = [(0, 0); 2];
        for r in rows {
            let external = group_kind_of_text(&r.kind)? == GroupKind::External;
            out[usize::from(external)] = (r.n, r.bytes);
        }
        Ok(out)
    }

    async fn list_groups(
        &mut self,
        tenant: TenantId,
        viewer: UserKey,
        sees_all: bool,
        filter: &GroupFilter,
        page: Page<GroupId>,
    ) -> Result<Vec<Group>> {
        diesel::sql_query(BackendTx::statement(sql::list_groups(sees_all, filter)))
            .bind::<BigInt, _>(viewer.tenant.0)
            .bind::<BigInt, _>(viewer.user.0)
            .bind::<BigInt, _>(tenant.0)
            .bind::<BigInt, _>(page.after.map_or(i64::MIN, |g| g.0))
            .bind::<BigInt, _>(page.limit)
            .bind::<BigInt, _>(self.now)
            .keep_prepared()
            .load::<GroupRow>(self.conn())
            .await?
            .into_iter()
            .map(Group::try_from)
            .collect()
    }

    async fn search_groups(
        &mut self,
        tenant: TenantId,
        viewer: UserKey,
        sees_all: bool,
        query: &str,
        page: Page<(i32, String, i64)>,
    ) -> Result<Vec<(i32, Group)>> {
        let (rank, name, id) = page.after.unwrap_or((-1, String::new(), i64::MIN));
        let escaped = sql::like_escape(query);
        diesel::sql_query(BackendTx::statement(sql::search_groups(sees_all)))
            .bind::<BigInt, _>(viewer.tenant.0)
            .bind::<BigInt, _>(viewer.user.0)
            .bind::<BigInt, _>(tenant.0)
            .bind::<Text, _>(query)
            .bind::<Text, _>(format!("{escaped}%"))
            .bind::<Text, _>(format!("%{escaped}%"))
            .bind::<Integer, _>(rank)
            .bind::<Text, _>(name)
            .bind::<BigInt, _>(id)
            .bind::<BigInt, _>(page.limit)
            .bind::<BigInt, _>(self.now)
            .keep_prepared()
            .load::<RankedGroupRow>(self.conn())
            .await?
            .into_iter()
            .map(|r| Ok((r.search_rank, Group::try_from(r.group)?)))
            .collect()
    }

    async fn autocomplete_groups(
        &mut self,
        tenant: TenantId,
        viewer: UserKey,
        sees_all: bool,
        prefix: &str,
        limit: i64,
    ) -> Result<Vec<Group>> {
        diesel::sql_query(BackendTx::statement(sql::autocomplete_groups(sees_all)))
            .bind::<BigInt, _>(viewer.tenant.0)
            .bind::<BigInt, _>(viewer.user.0)
            .bind::<BigInt, _>(tenant.0)
            .bind::<Text, _>(prefix)
            .bind::<Text, _>(format!("{prefix}{}", char::MAX))
            .bind::<BigInt, _>(limit)
            .bind::<BigInt, _>(self.now)
            .keep_prepared()
            .load::<GroupRow>(self.conn())
            .await?
            .into_iter()
            .map(Group::try_from)
            .collect()
    }
}
