//! Members the directory takes away: a deleted user or team leaves every group, and R18 (a
//! user who loses the external permission, or becomes a LINE user, leaves every external
//! group in the same transaction and never makes it fail). R05's succession: where the user
//! was the last Group Master, the member of the owning tenant who joined first (and, for an
//! external group, has the external permission) becomes master; with none, the group has no
//! master until an admin names one. The event says which.

use super::error::Result;
use super::events::{ChangeDetail, Departure, EventKind, TenantDeleted, emit, emit_for_tenant};
use super::groups::delete_in;
use super::members::member_change;
use super::model::*;
use super::repo::Tx;
use super::repo::{GroupFilter, Page};

/// A user leaves every group they are a direct member of (every external group only, for
/// `Departure::ExternalPermissionRevoked`).
pub(crate) async fn remove_user_everywhere(
    tx: &mut dyn Tx,
    user: UserKey,
    why: Departure,
    now: i64,
) -> Result<()> {
    let only_external = why == Departure::ExternalPermissionRevoked;
    for (tenant, group_id, _) in tx.direct_groups_of_user(user).await? {
        // The deleted tenant's own groups are deleted whole (`remove_tenant`).
        if why == Departure::TenantDeleted && tenant == user.tenant {
            continue;
        }
        let Some(group) = tx.lock_group(tenant, group_id).await? else {
            continue;
        };
        if only_external && group.kind != GroupKind::External {
            continue;
        }
        // Read under the group's lock: a concurrent promotion or demotion has settled.
        let Some(is_master) = tx.user_member(tenant, group_id, user).await? else {
            continue;
        };
        let mut successor = None;
        if is_master && tx.count_masters(tenant, group_id).await? <= 1 {
            let external = group.kind == GroupKind::External;
            successor = tx
                .earliest_member(tenant, group_id, tenant, user, external)
                .await?;
            if let Some(s) = successor {
                tx.set_master(tenant, group_id, s, true).await?;
            }
        }
        tx.delete_member(tenant, group_id, MemberRef::User(user))
            .await?;
        tx.release_user_group_slots(&[user]).await?;
        tx.touch_group(tenant, group_id, now).await?;
        let without_master =
            is_master && successor.is_none() && tx.count_masters(tenant, group_id).await? == 0;
        let detail = ChangeDetail::UserLeft {
            cause: why,
            last_master_replaced_by: successor,
            without_master,
        };
        let change = member_change(tx, &group, &[MemberRef::User(user)], detail).await?;
        emit(tx, &group, EventKind::MembersRemoved(change), now).await?;
    }
    Ok(())
}

/// A team leaves every group it is a member of (the directory deleted it).
pub(crate) async fn remove_team_everywhere(
    tx: &mut dyn Tx,
    tenant: TenantId,
    team: TeamId,
    now: i64,
) -> Result<()> {
    for group_id in tx.groups_with_team(tenant, team).await? {
        let Some(group) = tx.lock_group(tenant, group_id).await? else {
            continue;
        };
        // The recipients are resolved before the team's members go.
        let detail = ChangeDetail::TeamDeleted {
            cause: "team_deleted",
        };
        let change = member_change(tx, &group, &[MemberRef::Team(team)], detail).await?;
        tx.delete_member(tenant, group_id, MemberRef::Team(team))
            .await?;
        tx.touch_group(tenant, group_id, now).await?;
        emit(tx, &group, EventKind::MembersRemoved(change), now).await?;
    }
    Ok(())
}

/// Rows read per statement while a tenant is taken apart.
const TENANT_BATCH: i64 = 500;

/// The directory deletes a tenant. Its users leave the other tenants' groups they belong to as
/// deleted users do (R05 succession, the other tenants' counters, events); each of its groups
/// is deleted as DeleteGroup would (R12: events, the counters of members from other tenants);
/// a `tenant.deleted` event ends its feed. The tenant's row goes last (the caller's).
pub(crate) async fn remove_tenant(tx: &mut dyn Tx, tenant: TenantId, now: i64) -> Result<()> {
    let mut users = 0;
    let mut after = None;
    loop {
        let page = Page {
            after,
            limit: TENANT_BATCH,
        };
        let batch = tx.list_users(tenant, page).await?;
        for user in &batch {
            remove_user_everywhere(tx, user.key, Departure::TenantDeleted, now).await?;
        }
        users += batch.len();
        match batch.last() {
            Some(last) if batch.len() as i64 == TENANT_BATCH => after = Some(last.key.user),
            _ => break,
        }
    }
    let mut groups = 0;
    // Every group of the tenant, as its admins see them (a viewer of no user).
    let nobody = UserKey {
        tenant: TenantId(0),
        user: UserId(0),
    };
    loop {
        let page = Page {
            after: None,
            limit: TENANT_BATCH,
        };
        let batch = tx
            .list_groups(tenant, nobody, true, &GroupFilter::default(), page)
            .await?;
        for group in &batch {
            if let Some(locked) = tx.lock_group(tenant, group.id).await? {
                delete_in(tx, &locked).await?;
            }
        }
        groups += batch.len();
        if (batch.len() as i64) < TENANT_BATCH {
            break;
        }
    }
    let deleted = TenantDeleted {
        tenant: format!("tenants/{tenant}"),
        groups,
        users,
    };
    emit_for_tenant(tx, tenant, EventKind::TenantDeleted(deleted), now).await
}
