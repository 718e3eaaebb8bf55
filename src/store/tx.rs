//! `Tx` for both backends from one body of Diesel code: `impl_tx!` expands the same query code
//! once for PostgreSQL and once for SQLite; only the few statements whose SQL must differ (row
//! locks) are written per backend.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{BigInt, Bool};
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::rows::*;
use super::schema::*;
use super::{Pooled, SqliteConn};
use crate::domain::error::{Error, Reason, Result};
use crate::domain::model::*;
use crate::domain::repo::{DirectMembers, GroupFilter, MemberRow, Page, Tx};

/// Reachable groups from `$1` (the group itself included) inside tenant `$2`. `UNION`
/// de-duplicates, so the walk ends even if a cycle were ever stored.
const REACH: &str = "WITH RECURSIVE reach(group_id) AS ( \
     SELECT CAST($1 AS BIGINT) \
     UNION \
     SELECT m.member_group_id FROM group_group_members m \
     JOIN reach r ON m.group_id = r.group_id WHERE m.tenant_id = $2) ";

#[derive(QueryableByName)]
struct FlagRow {
    #[diesel(sql_type = Bool)]
    flag: bool,
}

#[derive(QueryableByName)]
struct MemberSqlRow {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    kind: i32,
    #[diesel(sql_type = BigInt)]
    tenant_id: i64,
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Bool)]
    is_master: bool,
}

#[derive(QueryableByName)]
struct GroupOfUserRow {
    #[diesel(embed)]
    group: GroupRow,
    #[diesel(sql_type = Bool)]
    direct: bool,
}

/// Groups that contain user ($1, $2) directly, through a team, or through nested groups.
/// Each step follows an index from the user outwards (`CROSS JOIN` fixes SQLite's join
/// order), so the cost is the user's memberships, not the tenant's.
const UP_FROM_USER: &str = "WITH RECURSIVE up(tenant_id, group_id) AS ( \
     SELECT u.tenant_id, u.group_id FROM group_user_members u \
       WHERE u.user_tenant_id = $1 AND u.user_id = $2 \
     UNION \
     SELECT t.tenant_id, t.group_id FROM team_members tm CROSS JOIN group_team_members t \
       WHERE tm.tenant_id = $1 AND tm.user_id = $2 \
       AND t.tenant_id = tm.tenant_id AND t.team_id = tm.team_id \
     UNION \
     SELECT m.tenant_id, m.group_id FROM group_group_members m \
       JOIN up ON m.tenant_id = up.tenant_id AND m.member_group_id = up.group_id) ";

/// Effective users of group $1 in tenant $2 (R22).
const EFFECTIVE_USERS: &str = "SELECT u.user_tenant_id AS tenant_id, u.user_id AS user_id \
       FROM group_user_members u \
       WHERE u.tenant_id = $2 AND u.group_id IN (SELECT group_id FROM reach) \
     UNION \
     SELECT tm.tenant_id AS tenant_id, tm.user_id AS user_id \
       FROM group_team_members t \
       JOIN team_members tm ON tm.tenant_id = t.tenant_id AND tm.team_id = t.team_id \
       WHERE t.tenant_id = $2 AND t.group_id IN (SELECT group_id FROM reach)";

#[derive(QueryableByName)]
struct RankedGroupRow {
    #[diesel(embed)]
    group: GroupRow,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    search_rank: i32,
}

/// `(viewer may see g)` for a viewer ($1, $2), with `up` from UP_FROM_USER.
/// Admins are passed as no viewer and see every group of their tenant.
/// The membership test is a non-correlated `IN`: both backends compute the viewer's groups
/// once per statement instead of once per candidate row.
const VISIBLE: &str = "((g.kind = 'INTERNAL' AND g.is_public AND $1 = g.tenant_id) \
     OR (g.tenant_id, g.group_id) IN (SELECT up.tenant_id, up.group_id FROM up))";

/// Escapes LIKE wildcards; patterns use `ESCAPE '\'`.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The visibility clause: everything of the tenant for its admins, else VISIBLE.
fn visible_clause(sees_all: bool) -> &'static str {
    if sees_all {
        "($1 = $1 AND $2 = $2)"
    } else {
        VISIBLE
    }
}

/// External groups of other tenants that the viewer ($1, $2) is a member of (R20), for a
/// viewer whose own tenant is $3. The caller adds conditions on `g` and an order.
/// `CROSS JOIN` keeps the viewer's few groups as the outer loop: SQLite may otherwise scan
/// every group of every tenant and probe `up` (PostgreSQL plans it as an inner join).
const OTHER_TENANTS_EXTERNAL: &str = "SELECT g.* FROM up CROSS JOIN groups g \
     WHERE g.tenant_id = up.tenant_id AND g.group_id = up.group_id \
     AND up.tenant_id <> $3 AND $1 = $3 AND g.kind = 'EXTERNAL'";

fn filter_clause(filter: &GroupFilter) -> String {
    let mut out = String::new();
    if let Some(kind) = filter.kind {
        out.push_str(&format!(" AND g.kind = '{}'", kind.as_str()));
    }
    if let Some(public) = filter.is_public {
        out.push_str(if public {
            " AND g.is_public"
        } else {
            " AND NOT g.is_public"
        });
    }
    out
}

#[derive(QueryableByName)]
struct KindUsageRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    kind: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = BigInt)]
    bytes: i64,
}

#[derive(QueryableByName)]
struct UserKeyRow {
    #[diesel(sql_type = BigInt)]
    tenant_id: i64,
    #[diesel(sql_type = BigInt)]
    user_id: i64,
}

fn unique_violation_on(err: &DieselError, needle: &str) -> bool {
    match err {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            info.constraint_name().is_some_and(|c| c.contains(needle))
                || info.message().contains(needle)
        }
        _ => false,
    }
}

/// Unique violations of a group write, as the rule they break.
fn map_group_write(e: DieselError) -> Error {
    if unique_violation_on(&e, "name_key") {
        Error::AlreadyExists {
            reason: Reason::GroupNameTaken,
            message: "another group of the tenant has this name".into(),
        }
    } else if unique_violation_on(&e, "external_key") {
        Error::AlreadyExists {
            reason: Reason::ExternalKeyTaken,
            message: "another group of the tenant has this external key".into(),
        }
    } else if unique_violation_on(&e, "mailing_list") {
        Error::precondition(
            Reason::AddressInUse,
            "the mailing-list address is in use in the tenant",
        )
    } else {
        e.into()
    }
}

fn user_key(tenant_id: i64, user_id: i64) -> UserKey {
    UserKey {
        tenant: TenantId(tenant_id),
        user: UserId(user_id),
    }
}

pub struct PgTx(pub Pooled<AsyncPgConnection>);
pub struct SqliteTx(pub Pooled<SqliteConn>);

macro_rules! impl_tx {
    ($tx:ident { $($backend_specific:item)* }) => {
        #[async_trait]
        impl Tx for $tx {
            $($backend_specific)*

            async fn ping(&mut self) -> Result<()> {
                diesel::sql_query("SELECT 1").execute(&mut *self.0).await?;
                Ok(())
            }

            async fn upsert_tenant(&mut self, t: &Tenant) -> Result<()> {
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
                    .execute(&mut *self.0)
                    .await?;
                Ok(())
            }

            async fn get_tenant(&mut self, id: TenantId) -> Result<Option<Tenant>> {
                tenants::table
                    .find(id.0)
                    .select(TenantRow::as_select())
                    .first(&mut *self.0)
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
                    .load(&mut *self.0)
                    .await?
                    .into_iter()
                    .map(Tenant::try_from)
                    .collect()
            }

            async fn delete_tenant(&mut self, id: TenantId) -> Result<bool> {
                let n = diesel::delete(tenants::table.find(id.0)).execute(&mut *self.0).await?;
                Ok(n > 0)
            }

            async fn take_group_slot(&mut self, id: TenantId) -> Result<bool> {
                // One conditional UPDATE: the row lock it takes serializes concurrent creates
                // of the tenant, and the re-checked WHERE keeps the count at or under the limit.
                let n = diesel::sql_query(
                    "UPDATE tenants SET group_count = group_count + 1 \
                     WHERE tenant_id = $1 \
                     AND group_count < CASE WHEN plan = 'PAID' THEN $2 ELSE $3 END",
                )
                .bind::<BigInt, _>(id.0)
                .bind::<BigInt, _>(Plan::Paid.group_limit())
                .bind::<BigInt, _>(Plan::Free.group_limit())
                .execute(&mut *self.0)
                .await?;
                Ok(n > 0)
            }

            async fn release_group_slot(&mut self, id: TenantId) -> Result<()> {
                use tenants::dsl as c;
                diesel::update(tenants::table.find(id.0).filter(c::group_count.gt(0)))
                    .set(c::group_count.eq(c::group_count - 1))
                    .execute(&mut *self.0)
                    .await?;
                Ok(())
            }

            async fn upsert_user(&mut self, u: &User) -> Result<()> {
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
                    .execute(&mut *self.0)
                    .await?;
                Ok(())
            }

            async fn get_user(&mut self, key: UserKey) -> Result<Option<User>> {
                users::table
                    .find((key.tenant.0, key.user.0))
                    .select(UserRow::as_select())
                    .first(&mut *self.0)
                    .await
                    .optional()?
                    .map(User::try_from)
                    .transpose()
            }

            async fn get_users(&mut self, keys: &[UserKey]) -> Result<Vec<User>> {
                let mut out = Vec::with_capacity(keys.len());
                let mut by_tenant: std::collections::BTreeMap<TenantId, Vec<i64>> =
                    Default::default();
                for k in keys {
                    by_tenant.entry(k.tenant).or_default().push(k.user.0);
                }
                for (tenant, ids) in by_tenant {
                    let rows = users::table
                        .filter(users::tenant_id.eq(tenant.0))
                        .filter(users::user_id.eq_any(ids))
                        .select(UserRow::as_select())
                        .load(&mut *self.0)
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
                    .load(&mut *self.0)
                    .await?
                    .into_iter()
                    .map(User::try_from)
                    .collect()
            }

            async fn delete_user(&mut self, key: UserKey) -> Result<bool> {
                let n = diesel::delete(users::table.find((key.tenant.0, key.user.0)))
                    .execute(&mut *self.0)
                    .await?;
                Ok(n > 0)
            }

            async fn take_user_group_slot(&mut self, key: UserKey, limit: i64, needs_external_permission: bool) -> Result<bool> {
                use users::dsl as c;
                let mut q = diesel::update(users::table)
                    .filter(c::tenant_id.eq(key.tenant.0))
                    .filter(c::user_id.eq(key.user.0))
                    .filter(c::direct_group_count.lt(limit))
                    .into_boxed();
                if needs_external_permission {
                    q = q.filter(c::external_messaging_allowed.eq(true)).filter(c::kind.eq("WORKS"));
                }
                let n = q
                    .set(c::direct_group_count.eq(c::direct_group_count + 1))
                    .execute(&mut *self.0)
                    .await?;
                Ok(n > 0)
            }

            async fn release_user_group_slots(&mut self, keys: &[UserKey]) -> Result<()> {
                use users::dsl as c;
                for key in keys {
                    diesel::update(
                        users::table
                            .find((key.tenant.0, key.user.0))
                            .filter(c::direct_group_count.gt(0)),
                    )
                    .set(c::direct_group_count.eq(c::direct_group_count - 1))
                    .execute(&mut *self.0)
                    .await?;
                }
                Ok(())
            }

            async fn upsert_team(&mut self, team: &Team) -> Result<()> {
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
                    .execute(&mut *self.0)
                    .await?;
                diesel::delete(
                    team_members::table
                        .filter(team_members::tenant_id.eq(team.tenant.0))
                        .filter(team_members::team_id.eq(team.id.0)),
                )
                .execute(&mut *self.0)
                .await?;
                let rows: Vec<TeamMemberRow> = team
                    .members
                    .iter()
                    .map(|u| TeamMemberRow {
                        tenant_id: team.tenant.0,
                        team_id: team.id.0,
                        user_id: u.0,
                    })
                    .collect();
                // Row by row: the SQLite wrapper has no multi-row insert.
                for row in rows {
                    diesel::insert_into(team_members::table)
                        .values(row)
                        .execute(&mut *self.0)
                        .await?;
                }
                Ok(())
            }

            async fn get_team(&mut self, tenant: TenantId, id: TeamId) -> Result<Option<Team>> {
                let Some(row) = teams::table
                    .find((tenant.0, id.0))
                    .select(TeamRow::as_select())
                    .first(&mut *self.0)
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
                    .load::<i64>(&mut *self.0)
                    .await?;
                Ok(Some(row.into_team(members.into_iter().map(UserId).collect())))
            }

            async fn existing_teams(&mut self, tenant: TenantId, ids: &[TeamId]) -> Result<Vec<TeamId>> {
                let ids: Vec<i64> = ids.iter().map(|t| t.0).collect();
                Ok(teams::table
                    .filter(teams::tenant_id.eq(tenant.0))
                    .filter(teams::team_id.eq_any(ids))
                    .select(teams::team_id)
                    .load::<i64>(&mut *self.0)
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
                    .load(&mut *self.0)
                    .await?;
                let ids: Vec<i64> = rows.iter().map(|r| r.team_id).collect();
                let members = team_members::table
                    .filter(team_members::tenant_id.eq(tenant.0))
                    .filter(team_members::team_id.eq_any(ids))
                    .order((team_members::team_id, team_members::user_id))
                    .select((team_members::team_id, team_members::user_id))
                    .load::<(i64, i64)>(&mut *self.0)
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
                let n = diesel::delete(teams::table.find((tenant.0, id.0)))
                    .execute(&mut *self.0)
                    .await?;
                Ok(n > 0)
            }

            async fn add_contact(&mut self, contact: &Contact) -> Result<()> {
                diesel::insert_into(contacts::table)
                    .values(&ContactRow::from(contact))
                    .on_conflict_do_nothing()
                    .execute(&mut *self.0)
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
                        c::contact_tenant_id.gt(after.tenant.0).or(c::contact_tenant_id
                            .eq(after.tenant.0)
                            .and(c::contact_user_id.gt(after.user.0))),
                    )
                    .order((c::contact_tenant_id, c::contact_user_id))
                    .limit(page.limit)
                    .select(ContactRow::as_select())
                    .load(&mut *self.0)
                    .await?
                    .into_iter()
                    .map(Contact::from)
                    .collect())
            }

            async fn remove_contact(&mut self, contact: &Contact) -> Result<bool> {
                let n = diesel::delete(contacts::table.find((
                    contact.owner.tenant.0,
                    contact.owner.user.0,
                    contact.contact.tenant.0,
                    contact.contact.user.0,
                )))
                .execute(&mut *self.0)
                .await?;
                Ok(n > 0)
            }

            async fn upsert_room(&mut self, room: &MessageRoom) -> Result<()> {
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
                    .execute(&mut *self.0)
                    .await?;
                diesel::delete(
                    room_members::table
                        .filter(room_members::tenant_id.eq(room.tenant.0))
                        .filter(room_members::room_id.eq(room.id.0)),
                )
                .execute(&mut *self.0)
                .await?;
                let rows: Vec<RoomMemberRow> = room
                    .members
                    .iter()
                    .map(|u| RoomMemberRow {
                        tenant_id: room.tenant.0,
                        room_id: room.id.0,
                        user_tenant_id: u.tenant.0,
                        user_id: u.user.0,
                    })
                    .collect();
                // Row by row: the SQLite wrapper has no multi-row insert.
                for row in rows {
                    diesel::insert_into(room_members::table)
                        .values(row)
                        .execute(&mut *self.0)
                        .await?;
                }
                Ok(())
            }

            async fn get_room(&mut self, tenant: TenantId, id: RoomId) -> Result<Option<MessageRoom>> {
                let Some(row) = message_rooms::table
                    .find((tenant.0, id.0))
                    .select(RoomRow::as_select())
                    .first(&mut *self.0)
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
                    .load::<(i64, i64)>(&mut *self.0)
                    .await?;
                Ok(Some(row.into_room(
                    members.into_iter().map(|(t, u)| user_key(t, u)).collect(),
                )))
            }

            async fn list_rooms(&mut self, tenant: TenantId, page: Page<RoomId>) -> Result<Vec<MessageRoom>> {
                let after = page.after.map_or(i64::MIN, |r| r.0);
                let rows = message_rooms::table
                    .filter(message_rooms::tenant_id.eq(tenant.0))
                    .filter(message_rooms::room_id.gt(after))
                    .order(message_rooms::room_id)
                    .limit(page.limit)
                    .select(RoomRow::as_select())
                    .load(&mut *self.0)
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
                    .load::<(i64, i64, i64)>(&mut *self.0)
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
                let n = diesel::delete(message_rooms::table.find((tenant.0, id.0)))
                    .execute(&mut *self.0)
                    .await?;
                Ok(n > 0)
            }

            async fn mark_room_converted(&mut self, tenant: TenantId, id: RoomId, group: GroupId) -> Result<bool> {
                use message_rooms::dsl as r;
                let n = diesel::update(message_rooms::table.find((tenant.0, id.0)).filter(r::converted_group_id.is_null()))
                    .set(r::converted_group_id.eq(group.0))
                    .execute(&mut *self.0)
                    .await?;
                Ok(n > 0)
            }

            async fn usage_by_kind(&mut self, tenant: TenantId) -> Result<[(i64, i64); 2]> {
                let rows = diesel::sql_query(
                    "SELECT kind, COUNT(*) AS n, CAST(COALESCE(SUM(storage_used_bytes), 0) AS BIGINT) AS bytes \
                     FROM groups WHERE tenant_id = $1 GROUP BY kind",
                )
                .bind::<BigInt, _>(tenant.0)
                .load::<KindUsageRow>(&mut *self.0)
                .await?;
                let mut out = [(0, 0); 2];
                for r in rows {
                    out[usize::from(r.kind == GroupKind::External.as_str())] = (r.n, r.bytes);
                }
                Ok(out)
            }

            async fn has_contact(&mut self, owner: UserKey, contact: UserKey) -> Result<bool> {
                Ok(contacts::table
                    .find((owner.tenant.0, owner.user.0, contact.tenant.0, contact.user.0))
                    .select(contacts::user_id)
                    .first::<i64>(&mut *self.0)
                    .await
                    .optional()?
                    .is_some())
            }

            async fn insert_group(&mut self, group: &Group) -> Result<()> {
                let res = diesel::insert_into(groups::table)
                    .values(&GroupRow::from(group))
                    .execute(&mut *self.0)
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
                    .first(&mut *self.0)
                    .await
                    .optional()?
                    .map(Group::try_from)
                    .transpose()
            }

            async fn touch_group(&mut self, tenant: TenantId, id: GroupId, now: i64) -> Result<()> {
                use groups::dsl as c;
                diesel::update(groups::table.find((tenant.0, id.0)))
                    .set((c::version.eq(c::version + 1), c::update_time.eq(now)))
                    .execute(&mut *self.0)
                    .await?;
                Ok(())
            }

            async fn existing_groups(&mut self, tenant: TenantId, ids: &[GroupId]) -> Result<Vec<GroupId>> {
                let ids: Vec<i64> = ids.iter().map(|g| g.0).collect();
                Ok(groups::table
                    .filter(groups::tenant_id.eq(tenant.0))
                    .filter(groups::group_id.eq_any(ids))
                    .select(groups::group_id)
                    .load::<i64>(&mut *self.0)
                    .await?
                    .into_iter()
                    .map(GroupId)
                    .collect())
            }

            async fn delete_group(&mut self, tenant: TenantId, id: GroupId) -> Result<bool> {
                let n = diesel::delete(groups::table.find((tenant.0, id.0)))
                    .execute(&mut *self.0)
                    .await?;
                Ok(n > 0)
            }

            async fn direct_members(&mut self, tenant: TenantId, id: GroupId) -> Result<DirectMembers> {
                use group_user_members::dsl as u;
                let users = group_user_members::table
                    .filter(u::tenant_id.eq(tenant.0))
                    .filter(u::group_id.eq(id.0))
                    .order((u::user_tenant_id, u::user_id))
                    .select((u::user_tenant_id, u::user_id, u::is_master))
                    .load::<(i64, i64, bool)>(&mut *self.0)
                    .await?
                    .into_iter()
                    .map(|(t, user, m)| (user_key(t, user), m))
                    .collect();
                let teams = group_team_members::table
                    .filter(group_team_members::tenant_id.eq(tenant.0))
                    .filter(group_team_members::group_id.eq(id.0))
                    .order(group_team_members::team_id)
                    .select(group_team_members::team_id)
                    .load::<i64>(&mut *self.0)
                    .await?
                    .into_iter()
                    .map(TeamId)
                    .collect();
                let groups = group_group_members::table
                    .filter(group_group_members::tenant_id.eq(tenant.0))
                    .filter(group_group_members::group_id.eq(id.0))
                    .order(group_group_members::member_group_id)
                    .select(group_group_members::member_group_id)
                    .load::<i64>(&mut *self.0)
                    .await?
                    .into_iter()
                    .map(GroupId)
                    .collect();
                Ok(DirectMembers { users, teams, groups })
            }

            async fn insert_user_member(
                &mut self,
                tenant: TenantId,
                group: GroupId,
                user: UserKey,
                is_master: bool,
                now: i64,
            ) -> Result<()> {
                use group_user_members::dsl as u;
                diesel::insert_into(group_user_members::table)
                    .values((
                        u::tenant_id.eq(tenant.0),
                        u::group_id.eq(group.0),
                        u::user_tenant_id.eq(user.tenant.0),
                        u::user_id.eq(user.user.0),
                        u::is_master.eq(is_master),
                        u::add_time.eq(now),
                    ))
                    .execute(&mut *self.0)
                    .await?;
                Ok(())
            }

            async fn insert_team_member(
                &mut self,
                tenant: TenantId,
                group: GroupId,
                team: TeamId,
                now: i64,
            ) -> Result<()> {
                use group_team_members::dsl as t;
                diesel::insert_into(group_team_members::table)
                    .values((
                        t::tenant_id.eq(tenant.0),
                        t::group_id.eq(group.0),
                        t::team_id.eq(team.0),
                        t::add_time.eq(now),
                    ))
                    .execute(&mut *self.0)
                    .await?;
                Ok(())
            }

            async fn insert_group_member(
                &mut self,
                tenant: TenantId,
                group: GroupId,
                member: GroupId,
                now: i64,
            ) -> Result<()> {
                use group_group_members::dsl as g;
                diesel::insert_into(group_group_members::table)
                    .values((
                        g::tenant_id.eq(tenant.0),
                        g::group_id.eq(group.0),
                        g::member_group_id.eq(member.0),
                        g::add_time.eq(now),
                    ))
                    .execute(&mut *self.0)
                    .await?;
                Ok(())
            }

            async fn child_groups(&mut self, tenant: TenantId, of: &[GroupId]) -> Result<Vec<GroupId>> {
                use group_group_members::dsl as g;
                let of: Vec<i64> = of.iter().map(|x| x.0).collect();
                Ok(group_group_members::table
                    .filter(g::tenant_id.eq(tenant.0))
                    .filter(g::group_id.eq_any(of))
                    .select(g::member_group_id)
                    .distinct()
                    .load::<i64>(&mut *self.0)
                    .await?
                    .into_iter()
                    .map(GroupId)
                    .collect())
            }

            async fn parent_groups(&mut self, tenant: TenantId, of: &[GroupId]) -> Result<Vec<GroupId>> {
                use group_group_members::dsl as g;
                let of: Vec<i64> = of.iter().map(|x| x.0).collect();
                Ok(group_group_members::table
                    .filter(g::tenant_id.eq(tenant.0))
                    .filter(g::member_group_id.eq_any(of))
                    .select(g::group_id)
                    .distinct()
                    .load::<i64>(&mut *self.0)
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
                let sql = format!(
                    "{REACH}SELECT (EXISTS (SELECT 1 FROM group_user_members u \
                       WHERE u.tenant_id = $2 AND u.group_id IN (SELECT group_id FROM reach) \
                       AND u.user_tenant_id = $3 AND u.user_id = $4) \
                     OR EXISTS (SELECT 1 FROM group_team_members t \
                       JOIN team_members tm ON tm.tenant_id = t.tenant_id AND tm.team_id = t.team_id \
                       WHERE t.tenant_id = $2 AND t.group_id IN (SELECT group_id FROM reach) \
                       AND tm.tenant_id = $3 AND tm.user_id = $4)) AS flag"
                );
                let row: FlagRow = diesel::sql_query(sql)
                    .bind::<BigInt, _>(group.0)
                    .bind::<BigInt, _>(tenant.0)
                    .bind::<BigInt, _>(user.tenant.0)
                    .bind::<BigInt, _>(user.user.0)
                    .get_result(&mut *self.0)
                    .await?;
                Ok(row.flag)
            }

            async fn effective_users(&mut self, tenant: TenantId, group: GroupId) -> Result<Vec<UserKey>> {
                let sql = format!("{REACH}{EFFECTIVE_USERS} ORDER BY 1, 2");
                Ok(diesel::sql_query(sql)
                    .bind::<BigInt, _>(group.0)
                    .bind::<BigInt, _>(tenant.0)
                    .load::<UserKeyRow>(&mut *self.0)
                    .await?
                    .into_iter()
                    .map(|r| user_key(r.tenant_id, r.user_id))
                    .collect())
            }

            async fn list_effective_users(&mut self, tenant: TenantId, group: GroupId, page: Page<UserKey>) -> Result<Vec<UserKey>> {
                let after = page.after.unwrap_or(user_key(i64::MIN, i64::MIN));
                let sql = format!(
                    "{REACH}SELECT e.tenant_id, e.user_id FROM ({EFFECTIVE_USERS}) e \
                     WHERE e.tenant_id > $3 OR (e.tenant_id = $3 AND e.user_id > $4) \
                     ORDER BY 1, 2 LIMIT $5"
                );
                Ok(diesel::sql_query(sql)
                    .bind::<BigInt, _>(group.0)
                    .bind::<BigInt, _>(tenant.0)
                    .bind::<BigInt, _>(after.tenant.0)
                    .bind::<BigInt, _>(after.user.0)
                    .bind::<BigInt, _>(page.limit)
                    .load::<UserKeyRow>(&mut *self.0)
                    .await?
                    .into_iter()
                    .map(|r| user_key(r.tenant_id, r.user_id))
                    .collect())
            }

            async fn user_member(&mut self, tenant: TenantId, group: GroupId, user: UserKey) -> Result<Option<bool>> {
                Ok(group_user_members::table
                    .find((tenant.0, group.0, user.tenant.0, user.user.0))
                    .select(group_user_members::is_master)
                    .first::<bool>(&mut *self.0)
                    .await
                    .optional()?)
            }

            async fn has_team_member(&mut self, tenant: TenantId, group: GroupId, team: TeamId) -> Result<bool> {
                Ok(group_team_members::table
                    .find((tenant.0, group.0, team.0))
                    .select(group_team_members::team_id)
                    .first::<i64>(&mut *self.0)
                    .await
                    .optional()?
                    .is_some())
            }

            async fn has_group_member(&mut self, tenant: TenantId, group: GroupId, member: GroupId) -> Result<bool> {
                Ok(group_group_members::table
                    .find((tenant.0, group.0, member.0))
                    .select(group_group_members::member_group_id)
                    .first::<i64>(&mut *self.0)
                    .await
                    .optional()?
                    .is_some())
            }

            async fn delete_user_member(&mut self, tenant: TenantId, group: GroupId, user: UserKey) -> Result<bool> {
                let n = diesel::delete(group_user_members::table.find((tenant.0, group.0, user.tenant.0, user.user.0)))
                    .execute(&mut *self.0)
                    .await?;
                Ok(n > 0)
            }

            async fn delete_team_member(&mut self, tenant: TenantId, group: GroupId, team: TeamId) -> Result<bool> {
                let n = diesel::delete(group_team_members::table.find((tenant.0, group.0, team.0)))
                    .execute(&mut *self.0)
                    .await?;
                Ok(n > 0)
            }

            async fn delete_group_member(&mut self, tenant: TenantId, group: GroupId, member: GroupId) -> Result<bool> {
                let n = diesel::delete(group_group_members::table.find((tenant.0, group.0, member.0)))
                    .execute(&mut *self.0)
                    .await?;
                Ok(n > 0)
            }

            async fn set_master(&mut self, tenant: TenantId, group: GroupId, user: UserKey, is_master: bool) -> Result<bool> {
                let n = diesel::update(group_user_members::table.find((tenant.0, group.0, user.tenant.0, user.user.0)))
                    .set(group_user_members::is_master.eq(is_master))
                    .execute(&mut *self.0)
                    .await?;
                Ok(n > 0)
            }

            async fn count_masters(&mut self, tenant: TenantId, group: GroupId) -> Result<i64> {
                use group_user_members::dsl as u;
                Ok(group_user_members::table
                    .filter(u::tenant_id.eq(tenant.0))
                    .filter(u::group_id.eq(group.0))
                    .filter(u::is_master.eq(true))
                    .count()
                    .get_result::<i64>(&mut *self.0)
                    .await?)
            }

            async fn list_members(&mut self, tenant: TenantId, group: GroupId, page: Page<(i32, i64, i64)>) -> Result<Vec<MemberRow>> {
                let (k, t, i) = page.after.unwrap_or((0, i64::MIN, i64::MIN));
                let rows = diesel::sql_query(
                    "SELECT kind, tenant_id, id, is_master FROM ( \
                       SELECT 1 AS kind, user_tenant_id AS tenant_id, user_id AS id, is_master \
                         FROM group_user_members WHERE tenant_id = $1 AND group_id = $2 \
                       UNION ALL \
                       SELECT 2, tenant_id, team_id, FALSE \
                         FROM group_team_members WHERE tenant_id = $1 AND group_id = $2 \
                       UNION ALL \
                       SELECT 3, tenant_id, member_group_id, FALSE \
                         FROM group_group_members WHERE tenant_id = $1 AND group_id = $2 \
                     ) m \
                     WHERE kind > $3 OR (kind = $3 AND tenant_id > $4) \
                       OR (kind = $3 AND tenant_id = $4 AND id > $5) \
                     ORDER BY kind, tenant_id, id LIMIT $6",
                )
                .bind::<BigInt, _>(tenant.0)
                .bind::<BigInt, _>(group.0)
                .bind::<diesel::sql_types::Integer, _>(k)
                .bind::<BigInt, _>(t)
                .bind::<BigInt, _>(i)
                .bind::<BigInt, _>(page.limit)
                .load::<MemberSqlRow>(&mut *self.0)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|r| MemberRow { kind: r.kind, tenant: TenantId(r.tenant_id), id: r.id, is_master: r.is_master })
                    .collect())
            }

            async fn list_masters(&mut self, tenant: TenantId, group: GroupId, page: Page<UserKey>) -> Result<Vec<UserKey>> {
                use group_user_members::dsl as u;
                let after = page.after.unwrap_or(user_key(i64::MIN, i64::MIN));
                Ok(group_user_members::table
                    .filter(u::tenant_id.eq(tenant.0))
                    .filter(u::group_id.eq(group.0))
                    .filter(u::is_master.eq(true))
                    .filter(
                        u::user_tenant_id
                            .gt(after.tenant.0)
                            .or(u::user_tenant_id.eq(after.tenant.0).and(u::user_id.gt(after.user.0))),
                    )
                    .order((u::user_tenant_id, u::user_id))
                    .limit(page.limit)
                    .select((u::user_tenant_id, u::user_id))
                    .load::<(i64, i64)>(&mut *self.0)
                    .await?
                    .into_iter()
                    .map(|(t, id)| user_key(t, id))
                    .collect())
            }

            async fn groups_of_user(&mut self, user: UserKey, page: Page<(TenantId, GroupId)>) -> Result<Vec<(Group, bool)>> {
                let (t, g) = page.after.map_or((i64::MIN, i64::MIN), |(t, g)| (t.0, g.0));
                // One statement: the groups' rows come with the walk, not one query each.
                let sql = format!(
                    "{UP_FROM_USER}SELECT g.*, EXISTS ( \
                       SELECT 1 FROM group_user_members d WHERE d.tenant_id = g.tenant_id \
                       AND d.group_id = g.group_id AND d.user_tenant_id = $1 AND d.user_id = $2) AS direct \
                     FROM up CROSS JOIN groups g \
                     WHERE g.tenant_id = up.tenant_id AND g.group_id = up.group_id \
                     AND (up.tenant_id > $3 OR (up.tenant_id = $3 AND up.group_id > $4)) \
                     ORDER BY g.tenant_id, g.group_id LIMIT $5"
                );
                diesel::sql_query(sql)
                    .bind::<BigInt, _>(user.tenant.0)
                    .bind::<BigInt, _>(user.user.0)
                    .bind::<BigInt, _>(t)
                    .bind::<BigInt, _>(g)
                    .bind::<BigInt, _>(page.limit)
                    .load::<GroupOfUserRow>(&mut *self.0)
                    .await?
                    .into_iter()
                    .map(|r| Ok((Group::try_from(r.group)?, r.direct)))
                    .collect()
            }

            async fn direct_groups_of_user(&mut self, user: UserKey) -> Result<Vec<(TenantId, GroupId, bool)>> {
                use group_user_members::dsl as u;
                Ok(group_user_members::table
                    .filter(u::user_tenant_id.eq(user.tenant.0))
                    .filter(u::user_id.eq(user.user.0))
                    .order((u::tenant_id, u::group_id))
                    .select((u::tenant_id, u::group_id, u::is_master))
                    .load::<(i64, i64, bool)>(&mut *self.0)
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
                    .load::<i64>(&mut *self.0)
                    .await?
                    .into_iter()
                    .map(GroupId)
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
                    .inner_join(users::table.on(users::tenant_id.eq(m::user_tenant_id).and(users::user_id.eq(m::user_id))))
                    .filter(m::tenant_id.eq(tenant.0))
                    .filter(m::group_id.eq(group.0))
                    .filter(m::user_tenant_id.eq(of_tenant.0))
                    .filter(m::user_id.ne(except.user.0).or(m::user_tenant_id.ne(except.tenant.0)))
                    .into_boxed();
                if needs_external_permission {
                    q = q.filter(users::external_messaging_allowed.eq(true));
                }
                Ok(q
                    .order((m::add_time, m::user_id))
                    .select((m::user_tenant_id, m::user_id))
                    .first::<(i64, i64)>(&mut *self.0)
                    .await
                    .optional()?
                    .map(|(t, u)| user_key(t, u)))
            }

            async fn update_group(&mut self, group: &Group) -> Result<()> {
                let res = diesel::update(groups::table.find((group.tenant.0, group.id.0)))
                    .set(&GroupRow::from(group))
                    .execute(&mut *self.0)
                    .await;
                match res {
                    Ok(_) => Ok(()),
                    Err(e) => Err(map_group_write(e)),
                }
            }

            async fn address_in_use(&mut self, tenant: TenantId, local: &str, except: GroupId) -> Result<bool> {
                let pattern = format!("{}@%", like_escape(local));
                let row: FlagRow = diesel::sql_query(
                    "SELECT (EXISTS (SELECT 1 FROM users WHERE tenant_id = $1 AND lower(email) LIKE $2 ESCAPE '\\') \
                     OR EXISTS (SELECT 1 FROM teams WHERE tenant_id = $1 AND lower(email) LIKE $2 ESCAPE '\\') \
                     OR EXISTS (SELECT 1 FROM groups WHERE tenant_id = $1 AND mailing_list = $3 AND group_id <> $4)) AS flag",
                )
                .bind::<BigInt, _>(tenant.0)
                .bind::<diesel::sql_types::Text, _>(pattern)
                .bind::<diesel::sql_types::Text, _>(local)
                .bind::<BigInt, _>(except.0)
                .get_result(&mut *self.0)
                .await?;
                Ok(row.flag)
            }

            async fn is_partner_contact(&mut self, tenant: TenantId, contact: UserKey) -> Result<bool> {
                use contacts::dsl as c;
                Ok(contacts::table
                    .filter(c::tenant_id.eq(tenant.0))
                    .filter(c::contact_tenant_id.eq(contact.tenant.0))
                    .filter(c::contact_user_id.eq(contact.user.0))
                    .select(c::user_id)
                    .first::<i64>(&mut *self.0)
                    .await
                    .optional()?
                    .is_some())
            }

            async fn load_mailing_list(&mut self, group: &mut Group) -> Result<()> {
                let (tenant, id) = (group.tenant.0, group.id.0);
                let Some(list) = group.mailing_list.as_mut() else { return Ok(()) };
                list.designated_senders = mailing_list_senders::table
                    .filter(mailing_list_senders::tenant_id.eq(tenant))
                    .filter(mailing_list_senders::group_id.eq(id))
                    .order((mailing_list_senders::user_tenant_id, mailing_list_senders::user_id))
                    .select((mailing_list_senders::user_tenant_id, mailing_list_senders::user_id))
                    .load::<(i64, i64)>(&mut *self.0)
                    .await?
                    .into_iter()
                    .map(|(t, u)| user_key(t, u))
                    .collect();
                list.external_recipients = mailing_list_recipients::table
                    .filter(mailing_list_recipients::tenant_id.eq(tenant))
                    .filter(mailing_list_recipients::group_id.eq(id))
                    .select(mailing_list_recipients::address)
                    .load::<String>(&mut *self.0)
                    .await?;
                // Byte order, as written, whatever the database's collation.
                list.external_recipients.sort();
                Ok(())
            }

            async fn save_mailing_list(&mut self, group: &Group) -> Result<()> {
                let (tenant, id) = (group.tenant.0, group.id.0);
                diesel::delete(
                    mailing_list_senders::table
                        .filter(mailing_list_senders::tenant_id.eq(tenant))
                        .filter(mailing_list_senders::group_id.eq(id)),
                )
                .execute(&mut *self.0)
                .await?;
                diesel::delete(
                    mailing_list_recipients::table
                        .filter(mailing_list_recipients::tenant_id.eq(tenant))
                        .filter(mailing_list_recipients::group_id.eq(id)),
                )
                .execute(&mut *self.0)
                .await?;
                let Some(list) = &group.mailing_list else { return Ok(()) };
                for s in &list.designated_senders {
                    diesel::insert_into(mailing_list_senders::table)
                        .values((
                            mailing_list_senders::tenant_id.eq(tenant),
                            mailing_list_senders::group_id.eq(id),
                            mailing_list_senders::user_tenant_id.eq(s.tenant.0),
                            mailing_list_senders::user_id.eq(s.user.0),
                        ))
                        .execute(&mut *self.0)
                        .await?;
                }
                for a in &list.external_recipients {
                    diesel::insert_into(mailing_list_recipients::table)
                        .values((
                            mailing_list_recipients::tenant_id.eq(tenant),
                            mailing_list_recipients::group_id.eq(id),
                            mailing_list_recipients::address.eq(a),
                        ))
                        .execute(&mut *self.0)
                        .await?;
                }
                Ok(())
            }

            async fn feature_usage(&mut self, tenant: TenantId, group: GroupId) -> Result<Vec<(String, i64)>> {
                Ok(feature_usage::table
                    .filter(feature_usage::tenant_id.eq(tenant.0))
                    .filter(feature_usage::group_id.eq(group.0))
                    .order(feature_usage::feature)
                    .select((feature_usage::feature, feature_usage::bytes))
                    .load::<(String, i64)>(&mut *self.0)
                    .await?)
            }

            async fn set_feature_usage(&mut self, tenant: TenantId, group: GroupId, feature: &str, bytes: i64, now: i64) -> Result<i64> {
                use feature_usage::dsl as f;
                let old = feature_usage::table
                    .find((tenant.0, group.0, feature))
                    .select(f::bytes)
                    .first::<i64>(&mut *self.0)
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
                    .set((f::bytes.eq(excluded(f::bytes)), f::update_time.eq(excluded(f::update_time))))
                    .execute(&mut *self.0)
                    .await?;
                Ok(old)
            }

            async fn add_storage(&mut self, tenant: TenantId, group: GroupId, delta: i64) -> Result<()> {
                diesel::sql_query(
                    "UPDATE groups SET storage_used_bytes = CASE WHEN storage_used_bytes + $1 < 0 THEN 0 \
                     ELSE storage_used_bytes + $1 END WHERE tenant_id = $2 AND group_id = $3",
                )
                .bind::<BigInt, _>(delta)
                .bind::<BigInt, _>(tenant.0)
                .bind::<BigInt, _>(group.0)
                .execute(&mut *self.0)
                .await?;
                diesel::sql_query(
                    "UPDATE tenants SET storage_used_bytes = CASE WHEN storage_used_bytes + $1 < 0 THEN 0 \
                     ELSE storage_used_bytes + $1 END WHERE tenant_id = $2",
                )
                .bind::<BigInt, _>(delta)
                .bind::<BigInt, _>(tenant.0)
                .execute(&mut *self.0)
                .await?;
                Ok(())
            }

            async fn list_groups(&mut self, tenant: TenantId, viewer: UserKey, sees_all: bool, filter: &GroupFilter, page: Page<GroupId>) -> Result<Vec<Group>> {
                let visible = visible_clause(sees_all);
                let filter = filter_clause(filter);
                let sql = format!(
                    "{UP_FROM_USER}SELECT * FROM ( \
                       SELECT * FROM (SELECT g.* FROM groups g WHERE g.tenant_id = $3 AND {visible} \
                         AND g.group_id > $4{filter} ORDER BY g.group_id LIMIT $5) own \
                       UNION ALL \
                       SELECT * FROM ({OTHER_TENANTS_EXTERNAL} AND g.group_id > $4{filter} \
                         ORDER BY g.group_id LIMIT $5) ext \
                     ) x ORDER BY group_id LIMIT $5"
                );
                diesel::sql_query(sql)
                    .bind::<BigInt, _>(viewer.tenant.0)
                    .bind::<BigInt, _>(viewer.user.0)
                    .bind::<BigInt, _>(tenant.0)
                    .bind::<BigInt, _>(page.after.map_or(i64::MIN, |g| g.0))
                    .bind::<BigInt, _>(page.limit)
                    .load::<GroupRow>(&mut *self.0)
                    .await?
                    .into_iter()
                    .map(Group::try_from)
                    .collect()
            }

            async fn search_groups(&mut self, tenant: TenantId, viewer: UserKey, sees_all: bool, query: &str, page: Page<(i32, String, i64)>) -> Result<Vec<(i32, Group)>> {
                let visible = visible_clause(sees_all);
                let (rank, name, id) = page.after.unwrap_or((-1, String::new(), i64::MIN));
                // SQLite numbers `$n` by first appearance: they first appear here in order.
                let sql = format!(
                    "{UP_FROM_USER}SELECT * FROM ( \
                       SELECT c.*, CASE WHEN c.name_key = $3 THEN 0 \
                         WHEN c.name_key LIKE $4 ESCAPE '\\' THEN 1 ELSE 2 END AS search_rank \
                       FROM ( \
                         SELECT g.* FROM groups g WHERE g.tenant_id = $5 AND {visible} \
                         UNION ALL \
                         SELECT g.* FROM up CROSS JOIN groups g \
                           WHERE g.tenant_id = up.tenant_id AND g.group_id = up.group_id \
                           AND up.tenant_id <> $5 AND $1 = $5 AND g.kind = 'EXTERNAL' \
                       ) c WHERE c.search_text LIKE $6 ESCAPE '\\') s \
                     WHERE s.search_rank > $7 OR (s.search_rank = $7 AND s.name_key > $8) \
                       OR (s.search_rank = $7 AND s.name_key = $8 AND s.group_id > $9) \
                     ORDER BY s.search_rank, s.name_key, s.group_id LIMIT $10"
                );
                let escaped = like_escape(query);
                diesel::sql_query(sql)
                    .bind::<BigInt, _>(viewer.tenant.0)
                    .bind::<BigInt, _>(viewer.user.0)
                    .bind::<diesel::sql_types::Text, _>(query)
                    .bind::<diesel::sql_types::Text, _>(format!("{escaped}%"))
                    .bind::<BigInt, _>(tenant.0)
                    .bind::<diesel::sql_types::Text, _>(format!("%{escaped}%"))
                    .bind::<diesel::sql_types::Integer, _>(rank)
                    .bind::<diesel::sql_types::Text, _>(name)
                    .bind::<BigInt, _>(id)
                    .bind::<BigInt, _>(page.limit)
                    .load::<RankedGroupRow>(&mut *self.0)
                    .await?
                    .into_iter()
                    .map(|r| Ok((r.search_rank, Group::try_from(r.group)?)))
                    .collect()
            }

            async fn autocomplete_groups(&mut self, tenant: TenantId, viewer: UserKey, sees_all: bool, prefix: &str, limit: i64) -> Result<Vec<Group>> {
                let visible = visible_clause(sees_all);
                // A range over the (tenant_id, name_key) index, bytewise on both backends, cut
                // at `limit` before the two parts are merged.
                let sql = format!(
                    "{UP_FROM_USER}SELECT * FROM ( \
                       SELECT * FROM (SELECT g.* FROM groups g WHERE g.tenant_id = $3 \
                         AND g.name_key >= $4 AND g.name_key < $5 AND {visible} \
                         ORDER BY g.name_key LIMIT $6) own \
                       UNION ALL \
                       SELECT * FROM ({OTHER_TENANTS_EXTERNAL} AND g.name_key >= $4 AND g.name_key < $5 \
                         ORDER BY g.name_key LIMIT $6) ext \
                     ) x ORDER BY name_key, group_id LIMIT $6"
                );
                diesel::sql_query(sql)
                    .bind::<BigInt, _>(viewer.tenant.0)
                    .bind::<BigInt, _>(viewer.user.0)
                    .bind::<BigInt, _>(tenant.0)
                    .bind::<diesel::sql_types::Text, _>(prefix)
                    .bind::<diesel::sql_types::Text, _>(format!("{prefix}{}", char::MAX))
                    .bind::<BigInt, _>(limit)
                    .load::<GroupRow>(&mut *self.0)
                    .await?
                    .into_iter()
                    .map(Group::try_from)
                    .collect()
            }

            async fn claim_batch_request(&mut self, tenant: TenantId, request_id: &str, fingerprint: &str, now: i64) -> Result<bool> {
                use batch_requests::dsl as r;
                let n = diesel::insert_into(batch_requests::table)
                    .values((
                        r::tenant_id.eq(tenant.0),
                        r::request_id.eq(request_id),
                        r::fingerprint.eq(fingerprint),
                        r::response.eq(""),
                        r::create_time.eq(now),
                    ))
                    .on_conflict_do_nothing()
                    .execute(&mut *self.0)
                    .await?;
                Ok(n > 0)
            }

            async fn get_batch_request(&mut self, tenant: TenantId, request_id: &str) -> Result<Option<(String, String)>> {
                Ok(batch_requests::table
                    .find((tenant.0, request_id))
                    .select((batch_requests::fingerprint, batch_requests::response))
                    .first::<(String, String)>(&mut *self.0)
                    .await
                    .optional()?)
            }

            async fn save_batch_response(&mut self, tenant: TenantId, request_id: &str, response: &str) -> Result<()> {
                diesel::update(batch_requests::table.find((tenant.0, request_id)))
                    .set(batch_requests::response.eq(response))
                    .execute(&mut *self.0)
                    .await?;
                Ok(())
            }

            async fn get_create_request(
                &mut self,
                tenant: TenantId,
                request_id: &str,
            ) -> Result<Option<(String, GroupId)>> {
                Ok(create_requests::table
                    .find((tenant.0, request_id))
                    .select((create_requests::fingerprint, create_requests::group_id))
                    .first::<(String, i64)>(&mut *self.0)
                    .await
                    .optional()?
                    .map(|(f, g)| (f, GroupId(g))))
            }

            async fn insert_create_request(
                &mut self,
                tenant: TenantId,
                request_id: &str,
                fingerprint: &str,
                group: GroupId,
                now: i64,
            ) -> Result<bool> {
                use create_requests::dsl as r;
                let n = diesel::insert_into(create_requests::table)
                    .values((
                        r::tenant_id.eq(tenant.0),
                        r::request_id.eq(request_id),
                        r::fingerprint.eq(fingerprint),
                        r::group_id.eq(group.0),
                        r::create_time.eq(now),
                    ))
                    .on_conflict_do_nothing()
                    .execute(&mut *self.0)
                    .await?;
                Ok(n > 0)
            }

            async fn insert_event(&mut self, event: &Event) -> Result<()> {
                diesel::insert_into(events::table)
                    .values(&EventRow::from(event))
                    .execute(&mut *self.0)
                    .await?;
                Ok(())
            }

            async fn list_events(&mut self, tenant: TenantId, group: GroupId) -> Result<Vec<Event>> {
                Ok(events::table
                    .filter(events::tenant_id.eq(tenant.0))
                    .filter(events::group_id.eq(group.0))
                    .order(events::event_id)
                    .select(EventRow::as_select())
                    .load(&mut *self.0)
                    .await?
                    .into_iter()
                    .map(Event::from)
                    .collect())
            }
        }
    };
}

impl_tx!(PgTx {
    async fn lock_nesting(&mut self, tenant: TenantId) -> Result<()> {
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended('nesting:' || $1, 0))")
            .bind::<diesel::sql_types::Text, _>(tenant.0.to_string())
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn lock_group(&mut self, tenant: TenantId, id: GroupId) -> Result<Option<Group>> {
        groups::table
            .find((tenant.0, id.0))
            .select(GroupRow::as_select())
            // NO KEY UPDATE: foreign-key checks of rows that reference the group (a nested
            // group being added elsewhere) take KEY SHARE, which this must not block.
            .for_no_key_update()
            .first(&mut *self.0)
            .await
            .optional()?
            .map(Group::try_from)
            .transpose()
    }

});

// SQLite writes go through one writer connection (see `Store`), so a plain read already holds
// the only write lock there is.
impl_tx!(SqliteTx {
    async fn lock_nesting(&mut self, _tenant: TenantId) -> Result<()> {
        Ok(())
    }

    async fn lock_group(&mut self, tenant: TenantId, id: GroupId) -> Result<Option<Group>> {
        self.get_group(tenant, id).await
    }

});
