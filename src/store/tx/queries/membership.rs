//! `MembershipTx`: direct members, Group Masters and the walks over nested groups.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer};
use diesel_async::RunQueryDsl;

use super::BackendTx;
use crate::domain::error::Result;
use crate::domain::model::*;
use crate::domain::repo::{DirectMembers, MemberRow, MembershipTx, Page};
use crate::store::rows::*;
use crate::store::schema::*;
use crate::store::tx::KeepPrepared;
use crate::store::tx::{sql, user_key};

impl BackendTx {
    /// The rows of a page of the user's groups (`sql::groups_of_user` and its variants).
    async fn of_user_page<R>(
        &mut self,
        sql: String,
        user: UserKey,
        page: Page<(TenantId, GroupId)>,
    ) -> Result<Vec<R>>
    where
        R: diesel::QueryableByName<super::Db> + Send + 'static,
    {
        let (t, g) = page.after.map_or((i64::MIN, i64::MIN), |(t, g)| (t.0, g.0));
        Ok(diesel::sql_query(BackendTx::statement(sql))
            .bind::<BigInt, _>(user.tenant.0)
            .bind::<BigInt, _>(user.user.0)
            .bind::<BigInt, _>(t)
            .bind::<BigInt, _>(g)
            .bind::<BigInt, _>(page.limit)
            .bind::<BigInt, _>(self.now)
            .keep_prepared()
            .load::<R>(self.conn())
            .await?)
    }

    /// A change of `member`'s row in a group of `tenant` touches that tenant, and, for a user
    /// of another tenant (an external group's member, R20), the user's tenant too: which
    /// groups a user is in is that user's tenant's answer as well (`cache::Key::tenants`).
    fn touch_member(&mut self, tenant: TenantId, member: MemberRef) {
        self.touched.tenant(tenant);
        if let MemberRef::User(user) = member {
            self.touched.tenant(user.tenant);
        }
    }
}

#[async_trait]
impl MembershipTx for BackendTx {
    async fn direct_members(&mut self, tenant: TenantId, id: GroupId) -> Result<DirectMembers> {
        use group_user_members::dsl as u;
        let users = group_user_members::table
            .filter(u::tenant_id.eq(tenant.0))
            .filter(u::group_id.eq(id.0))
            .order((u::user_tenant_id, u::user_id))
            .select((u::user_tenant_id, u::user_id, u::is_master))
            .load::<(i64, i64, bool)>(self.conn())
            .await?
            .into_iter()
            .map(|(t, user, m)| (user_key(t, user), m))
            .collect();
        let teams = group_team_members::table
            .filter(group_team_members::tenant_id.eq(tenant.0))
            .filter(group_team_members::group_id.eq(id.0))
            .order(group_team_members::team_id)
            .select(group_team_members::team_id)
            .load::<i64>(self.conn())
            .await?
            .into_iter()
            .map(TeamId)
            .collect();
        let groups = group_group_members::table
            .filter(group_group_members::tenant_id.eq(tenant.0))
            .filter(group_group_members::group_id.eq(id.0))
            .order(group_group_members::member_group_id)
            .select(group_group_members::member_group_id)
            .load::<i64>(self.conn())
            .await?
            .into_iter()
            .map(GroupId)
            .collect();
        Ok(DirectMembers {
            users,
            teams,
            groups,
        })
    }

    async fn insert_member(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        member: MemberRef,
        is_master: bool,
        expire_time: Option<i64>,
        now: i64,
    ) -> Result<()> {
        self.touch_member(tenant, member);
        if expire_time.is_some() {
            self.touched.expiry();
        }
        let (t, g) = (tenant.0, group.0);
        let conn = self.conn();
        match member {
            MemberRef::User(user) => {
                use group_user_members::dsl as u;
                diesel::insert_into(group_user_members::table)
                    .values((
                        (u::tenant_id.eq(t), u::group_id.eq(g)),
                        (
                            u::user_tenant_id.eq(user.tenant.0),
                            u::user_id.eq(user.user.0),
                        ),
                        (u::is_master.eq(is_master), u::add_time.eq(now)),
                        u::expire_time.eq(expire_time),
                    ))
                    .execute(conn)
                    .await?
            }
            MemberRef::Team(team) => {
                use group_team_members::dsl as m;
                diesel::insert_into(group_team_members::table)
                    .values((
                        (m::tenant_id.eq(t), m::group_id.eq(g)),
                        (m::team_id.eq(team.0), m::add_time.eq(now)),
                        m::expire_time.eq(expire_time),
                    ))
                    .execute(conn)
                    .await?
            }
            MemberRef::Group(member) => {
                use group_group_members::dsl as m;
                diesel::insert_into(group_group_members::table)
                    .values((
                        (m::tenant_id.eq(t), m::group_id.eq(g)),
                        (m::member_group_id.eq(member.0), m::add_time.eq(now)),
                        m::expire_time.eq(expire_time),
                    ))
                    .execute(conn)
                    .await?
            }
        };
        Ok(())
    }

    async fn user_member(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        user: UserKey,
    ) -> Result<Option<bool>> {
        Ok(group_user_members::table
            .find((tenant.0, group.0, user.tenant.0, user.user.0))
            .select(group_user_members::is_master)
            .first::<bool>(self.conn())
            .await
            .optional()?)
    }

    async fn has_member(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        member: MemberRef,
    ) -> Result<bool> {
        let (t, g) = (tenant.0, group.0);
        let found = match member {
            MemberRef::User(user) => {
                return Ok(self.user_member(tenant, group, user).await?.is_some());
            }
            MemberRef::Team(team) => group_team_members::table
                .find((t, g, team.0))
                .select(group_team_members::team_id)
                .first::<i64>(self.conn())
                .await
                .optional()?,
            MemberRef::Group(member) => group_group_members::table
                .find((t, g, member.0))
                .select(group_group_members::member_group_id)
                .first::<i64>(self.conn())
                .await
                .optional()?,
        };
        Ok(found.is_some())
    }

    async fn delete_member(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        member: MemberRef,
    ) -> Result<bool> {
        self.touch_member(tenant, member);
        let (t, g) = (tenant.0, group.0);
        let conn = self.conn();
        let n = match member {
            MemberRef::User(u) => {
                let key = (t, g, u.tenant.0, u.user.0);
                diesel::delete(group_user_members::table.find(key))
                    .execute(conn)
                    .await?
            }
            MemberRef::Team(team) => {
                diesel::delete(group_team_members::table.find((t, g, team.0)))
                    .execute(conn)
                    .await?
            }
            MemberRef::Group(member) => {
                diesel::delete(group_group_members::table.find((t, g, member.0)))
                    .execute(conn)
                    .await?
            }
        };
        Ok(n > 0)
    }

    async fn list_members(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        page: Page<(MemberKind, i64, i64)>,
    ) -> Result<Vec<MemberRow>> {
        // 0 is below every kind's number.
        let (k, t, i) = page.after.map_or((0, i64::MIN, i64::MIN), |(k, t, i)| {
            (member_kind_number(k), t, i)
        });
        let rows = diesel::sql_query(BackendTx::statement(sql::list_members()))
            .bind::<BigInt, _>(tenant.0)
            .bind::<BigInt, _>(group.0)
            .bind::<Integer, _>(k)
            .bind::<BigInt, _>(t)
            .bind::<BigInt, _>(i)
            .bind::<BigInt, _>(page.limit)
            .bind::<BigInt, _>(self.now)
            .keep_prepared()
            .load::<MemberSqlRow>(self.conn())
            .await?;
        rows.into_iter().map(MemberRow::try_from).collect()
    }

    async fn set_master(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        user: UserKey,
        is_master: bool,
    ) -> Result<bool> {
        self.touched.tenant(tenant);
        use group_user_members::dsl as u;
        let row = group_user_members::table.find((tenant.0, group.0, user.tenant.0, user.user.0));
        let n = if is_master {
            diesel::update(row)
                .set((u::is_master.eq(true), u::expire_time.eq(None::<i64>)))
                .keep_prepared()
                .execute(self.conn())
                .await?
        } else {
            diesel::update(row)
                .set(u::is_master.eq(false))
                .keep_prepared()
                .execute(self.conn())
                .await?
        };
        Ok(n > 0)
    }

    async fn set_member_expiry(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        member: MemberRef,
        expire_time: Option<i64>,
    ) -> Result<bool> {
        self.touch_member(tenant, member);
        self.touched.expiry();
        let (t, g) = (tenant.0, group.0);
        let conn = self.conn();
        let n = match member {
            MemberRef::User(u) => {
                let key = (t, g, u.tenant.0, u.user.0);
                diesel::update(group_user_members::table.find(key))
                    .set(group_user_members::expire_time.eq(expire_time))
                    .keep_prepared()
                    .execute(conn)
                    .await?
            }
            MemberRef::Team(team) => {
                diesel::update(group_team_members::table.find((t, g, team.0)))
                    .set(group_team_members::expire_time.eq(expire_time))
                    .keep_prepared()
                    .execute(conn)
                    .await?
            }
            MemberRef::Group(member) => {
                diesel::update(group_group_members::table.find((t, g, member.0)))
                    .set(group_group_members::expire_time.eq(expire_time))
                    .keep_prepared()
                    .execute(conn)
                    .await?
            }
        };
        Ok(n > 0)
    }

    async fn expired_members(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        now: i64,
    ) -> Result<Vec<MemberRef>> {
        let (t, g) = (tenant.0, group.0);
        let mut out: Vec<MemberRef> = {
            use group_user_members::dsl as u;
            group_user_members::table
                .filter(u::tenant_id.eq(t).and(u::group_id.eq(g)))
                .filter(u::expire_time.le(now))
                .select((u::user_tenant_id, u::user_id))
                .load::<(i64, i64)>(self.conn())
                .await?
                .into_iter()
                .map(|(ut, uid)| MemberRef::User(user_key(ut, uid)))
                .collect()
        };
        {
            use group_team_members::dsl as m;
            let teams = group_team_members::table
                .filter(m::tenant_id.eq(t).and(m::group_id.eq(g)))
                .filter(m::expire_time.le(now))
                .select(m::team_id)
                .load::<i64>(self.conn())
                .await?;
            out.extend(teams.into_iter().map(|id| MemberRef::Team(TeamId(id))));
        }
        {
            use group_group_members::dsl as m;
            let groups = group_group_members::table
                .filter(m::tenant_id.eq(t).and(m::group_id.eq(g)))
                .filter(m::expire_time.le(now))
                .select(m::member_group_id)
                .load::<i64>(self.conn())
                .await?;
            out.extend(groups.into_iter().map(|id| MemberRef::Group(GroupId(id))));
        }
        out.sort();
        Ok(out)
    }

    async fn groups_with_expired_members(
        &mut self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<(TenantId, GroupId)>> {
        let mut out: Vec<(i64, i64)> = group_user_members::table
            .filter(group_user_members::expire_time.le(now))
            .select((group_user_members::tenant_id, group_user_members::group_id))
            .distinct()
            .limit(limit)
            .load(self.conn())
            .await?;
        out.extend(
            group_team_members::table
                .filter(group_team_members::expire_time.le(now))
                .select((group_team_members::tenant_id, group_team_members::group_id))
                .distinct()
                .limit(limit)
                .load::<(i64, i64)>(self.conn())
                .await?,
        );
        out.extend(
            group_group_members::table
                .filter(group_group_members::expire_time.le(now))
                .select((
                    group_group_members::tenant_id,
                    group_group_members::group_id,
                ))
                .distinct()
                .limit(limit)
                .load::<(i64, i64)>(self.conn())
                .await?,
        );
        out.sort_unstable();
        out.dedup();
        out.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(out
            .into_iter()
            .map(|(t, g)| (TenantId(t), GroupId(g)))
            .collect())
    }

    async fn next_expiry(&mut self, now: i64) -> Result<Option<i64>> {
        let row: NextExpiryRow = diesel::sql_query(BackendTx::statement(sql::NEXT_EXPIRY))
            .bind::<BigInt, _>(now)
            .keep_prepared()
            .get_result(self.conn())
            .await?;
        Ok(row.next_expiry)
    }

    async fn count_masters(&mut self, tenant: TenantId, group: GroupId) -> Result<i64> {
        use group_user_members::dsl as u;
        Ok(group_user_members::table
            .filter(u::tenant_id.eq(tenant.0))
            .filter(u::group_id.eq(group.0))
            .filter(u::is_master.eq(true))
            .count()
            .get_result::<i64>(self.conn())
            .await?)
    }

    async fn list_masters(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        page: Page<UserKey>,
    ) -> Result<Vec<UserKey>> {
        use group_user_members::dsl as u;
        let after = page.after.unwrap_or(user_key(i64::MIN, i64::MIN));
        Ok(group_user_members::table
            .filter(u::tenant_id.eq(tenant.0))
            .filter(u::group_id.eq(group.0))
            .filter(u::is_master.eq(true))
            .filter(
                u::user_tenant_id.gt(after.tenant.0).or(u::user_tenant_id
                    .eq(after.tenant.0)
                    .and(u::user_id.gt(after.user.0))),
            )
            .order((u::user_tenant_id, u::user_id))
            .limit(page.limit)
            .select((u::user_tenant_id, u::user_id))
            .load::<(i64, i64)>(self.conn())
            .await?
            .into_iter()
            .map(|(t, id)| user_key(t, id))
            .collect())
    }

    async fn earliest_member(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        of_tenant: TenantId,
        except: UserKey,
        needs_external_permission: bool,
    ) -> Result<Option<UserKey>> {
        use group_user_members::dsl as m;
        let mut q = group_user_members::table
            .inner_join(
                users::table.on(users::tenant_id
                    .eq(m::user_tenant_id)
                    .and(users::user_id.eq(m::user_id))),
            )
            .filter(m::tenant_id.eq(tenant.0))
            .filter(m::group_id.eq(group.0))
            .filter(m::user_tenant_id.eq(of_tenant.0))
            .filter(
                m::user_id
                    .ne(except.user.0)
                    .or(m::user_tenant_id.ne(except.tenant.0)),
            )
            // An expired member is no successor (it counts nowhere).
            .filter(m::expire_time.is_null().or(m::expire_time.gt(self.now)))
            .into_boxed();
        if needs_external_permission {
            q = q.filter(users::external_messaging_allowed.eq(true));
        }
        Ok(q.order((m::add_time, m::user_id))
            .select((m::user_tenant_id, m::user_id))
            .first::<(i64, i64)>(self.conn())
            .await
            .optional()?
            .map(|(t, u)| user_key(t, u)))
    }

    async fn lock_nesting(&mut self, tenant: TenantId) -> Result<()> {
        self.backend_lock_nesting(tenant).await
    }

    async fn child_groups(&mut self, tenant: TenantId, of: &[GroupId]) -> Result<Vec<GroupId>> {
        use group_group_members::dsl as g;
        let of: Vec<i64> = of.iter().map(|x| x.0).collect();
        Ok(group_group_members::table
            .filter(g::tenant_id.eq(tenant.0).and(g::group_id.eq_any(of)))
            .select(g::member_group_id)
            .distinct()
            .load::<i64>(self.conn())
            .await?
            .into_iter()
            .map(GroupId)
            .collect())
    }

    async fn parent_groups(&mut self, tenant: TenantId, of: &[GroupId]) -> Result<Vec<GroupId>> {
        use group_group_members::dsl as g;
        let of: Vec<i64> = of.iter().map(|x| x.0).collect();
        Ok(group_group_members::table
            .filter(g::tenant_id.eq(tenant.0).and(g::member_group_id.eq_any(of)))
            .select(g::group_id)
            .distinct()
            .load::<i64>(self.conn())
            .await?
            .into_iter()
            .map(GroupId)
            .collect())
    }

    async fn is_effective_member(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        user: UserKey,
    ) -> Result<bool> {
        Ok(self.membership_of(tenant, group, user).await?.1)
    }

    async fn membership_of(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        user: UserKey,
    ) -> Result<(Option<bool>, bool)> {
        let row: MembershipRow = self
            .user_in_reach(sql::membership_of(), tenant, group, user)
            .await?;
        Ok((row.master, row.member))
    }

    async fn effective_users(&mut self, tenant: TenantId, group: GroupId) -> Result<Vec<UserKey>> {
        Ok(
            diesel::sql_query(BackendTx::statement(sql::effective_users()))
                .bind::<BigInt, _>(group.0)
                .bind::<BigInt, _>(tenant.0)
                .bind::<BigInt, _>(self.now)
                .keep_prepared()
                .load::<UserKeyRow>(self.conn())
                .await?
                .into_iter()
                .map(|r| user_key(r.tenant_id, r.user_id))
                .collect(),
        )
    }

    async fn list_effective_users(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        page: Page<UserKey>,
    ) -> Result<Vec<UserKey>> {
        let after = page.after.unwrap_or(user_key(i64::MIN, i64::MIN));
        Ok(
            diesel::sql_query(BackendTx::statement(sql::list_effective_users()))
                .bind::<BigInt, _>(group.0)
                .bind::<BigInt, _>(tenant.0)
                .bind::<BigInt, _>(after.tenant.0)
                .bind::<BigInt, _>(after.user.0)
                .bind::<BigInt, _>(page.limit)
                .bind::<BigInt, _>(self.now)
                .keep_prepared()
                .load::<UserKeyRow>(self.conn())
                .await?
                .into_iter()
                .map(|r| user_key(r.tenant_id, r.user_id))
                .collect(),
        )
    }

    async fn groups_of_user(
        &mut self,
        user: UserKey,
        page: Page<(TenantId, GroupId)>,
    ) -> Result<Vec<(Group, bool)>> {
        self.of_user_page::<GroupOfUserRow>(sql::groups_of_user(), user, page)
            .await?
            .into_iter()
            .map(|r| Ok((Group::try_from(r.group)?, r.direct)))
            .collect()
    }

    async fn group_keys_of_user(
        &mut self,
        user: UserKey,
        page: Page<(TenantId, GroupId)>,
    ) -> Result<Vec<GroupKeyOfUser>> {
        self.of_user_page::<GroupKeyOfUserRow>(sql::group_keys_of_user(), user, page)
            .await?
            .into_iter()
            .map(GroupKeyOfUser::try_from)
            .collect()
    }

    async fn direct_groups_of_user(
        &mut self,
        user: UserKey,
    ) -> Result<Vec<(TenantId, GroupId, bool)>> {
        use group_user_members::dsl as u;
        Ok(group_user_members::table
            .filter(u::user_tenant_id.eq(user.tenant.0))
            .filter(u::user_id.eq(user.user.0))
            .order((u::tenant_id, u::group_id))
            .select((u::tenant_id, u::group_id, u::is_master))
            .load::<(i64, i64, bool)>(self.conn())
            .await?
            .into_iter()
            .map(|(t, g, m)| (TenantId(t), GroupId(g), m))
            .collect())
    }

    async fn groups_with_team(&mut self, tenant: TenantId, team: TeamId) -> Result<Vec<GroupId>> {
        use group_team_members::dsl as t;
        Ok(group_team_members::table
            .filter(t::tenant_id.eq(tenant.0))
            .filter(t::team_id.eq(team.0))
            .order(t::group_id)
            .select(t::group_id)
            .load::<i64>(self.conn())
            .await?
            .into_iter()
            .map(GroupId)
            .collect())
    }
}
