//! Who may see and change a group: R06 (settings and membership by admins and Group
//! Masters), R07 (private groups are visible to their members only), R20 (members of an
//! external group from other companies see it), R24 (a caller acts within its own tenant).
//! Every check is decided here; the rest of the domain asks for the capability it needs.

use super::caller::{Actor, Caller};
use super::error::{Error, Reason, Result};
use super::model::{Group, GroupId, GroupKind, GroupRef, TenantId, UserKey};
use super::repo::Tx;

/// The actor's standing in a group for R06, decided in this one place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Standing {
    /// An admin (or service) of the owning tenant: may change everything.
    Admin,
    /// A Group Master, and the owning tenant lets masters manage groups
    /// (`masters_may_manage_settings`).
    Master,
    /// Anyone else, including masters whose tenant does not let them manage.
    Other,
}

pub(crate) async fn standing(tx: &mut dyn Tx, actor: &Actor, group: &Group) -> Result<Standing> {
    if actor.is_admin_of(group.tenant) {
        return Ok(Standing::Admin);
    }
    let Some(user) = actor.user_key() else {
        return Ok(Standing::Other);
    };
    if tx.user_member(group.tenant, group.id, user).await? != Some(true) {
        return Ok(Standing::Other);
    }
    let allowed = tx
        .get_tenant(group.tenant)
        .await?
        .is_some_and(|t| t.masters_may_manage_settings);
    Ok(if allowed {
        Standing::Master
    } else {
        Standing::Other
    })
}

/// What changing a part of a group takes (R06).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Capability {
    /// Admins; Group Masters unless the tenant's `masters_may_manage_settings` is off.
    Basic,
    /// Admins; Group Masters when the group's `master_manages_features` is on (and the tenant
    /// lets masters manage groups at all).
    RoomFeature,
    /// Admins of the owning tenant only.
    AdminOnly,
}

/// R06: may someone of this standing do what `capability` names in this group?
pub(crate) fn may(standing: Standing, group: &Group, capability: Capability) -> bool {
    match (standing, capability) {
        (Standing::Admin, _) => true,
        (Standing::Master, Capability::Basic) => true,
        (Standing::Master, Capability::RoomFeature) => group.master_manages_features,
        (Standing::Master, Capability::AdminOnly) | (Standing::Other, _) => false,
    }
}

/// Admins of the owning tenant delete any group; the Group Masters of an external group may
/// delete it too (user guide), unless the tenant does not let masters manage groups.
pub(crate) async fn may_delete(tx: &mut dyn Tx, actor: &Actor, group: &Group) -> Result<bool> {
    Ok(match standing(tx, actor, group).await? {
        Standing::Admin => true,
        Standing::Master => group.kind == GroupKind::External,
        Standing::Other => false,
    })
}

/// What an invisible group answers: the same as a missing one.
pub(crate) fn group_not_found() -> Error {
    Error::NotFound("group")
}

/// R07 for a group already read, without the membership test: `Some(answer)` when the
/// actor's role or the group's openness decides, `None` when only membership can.
/// The SQL of discovery (`store`) applies the same rule; `tests` cross-check the two.
pub(crate) fn visible_without_membership(actor: &Actor, group: &Group) -> Option<bool> {
    seen_without_membership(actor, group.tenant, group.kind, group.is_public)
}

/// `visible_without_membership` from the group's tenant, kind and openness alone.
pub(crate) fn seen_without_membership(
    actor: &Actor,
    tenant: TenantId,
    kind: GroupKind,
    is_public: bool,
) -> Option<bool> {
    if actor.is_admin_of(tenant) {
        return Some(true);
    }
    let user = actor.user_key()?;
    if is_public && kind == GroupKind::Internal && user.tenant == tenant {
        return Some(true);
    }
    None
}

/// R07, R20: a user sees every group they are a member of, so the groups of a user listed
/// for that user need no check one by one.
pub(crate) fn sees_own_groups(actor: &Actor, user: UserKey) -> bool {
    actor.user_key() == Some(user)
}

/// R07, R20: whether the actor may see the group at all.
pub(crate) async fn can_see(tx: &mut dyn Tx, actor: &Actor, group: &Group) -> Result<bool> {
    if let Some(answer) = visible_without_membership(actor, group) {
        return Ok(answer);
    }
    match actor.user_key() {
        Some(user) => tx.is_effective_member(group.tenant, group.id, user).await,
        None => Ok(false),
    }
}

/// Whether a group is read for a change (its row lock held to the end of the transaction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lock {
    No,
    ForUpdate,
}

/// Reads a group the actor may see, or NOT_FOUND.
///
/// A group the actor may not see costs what a missing one does, so that the time of the
/// answer does not tell whether it exists: for anyone but the owning tenant's admins one
/// statement answers both the group and the actor's membership, whether or not the group is
/// there, and only a visible group is then locked for a change (an invisible one is never
/// locked, so outsiders cannot make the tenant's writers wait either). A service of another
/// tenant sees no group of this one and is answered without a statement, as it would be for a
/// missing group.
pub(crate) async fn visible_group(
    tx: &mut dyn Tx,
    actor: &Actor,
    tenant: TenantId,
    group: &GroupRef,
    lock: Lock,
) -> Result<Group> {
    if !actor.is_admin_of(tenant) && actor.user_key().is_none() {
        return Err(group_not_found());
    }
    let id = locate(tx, tenant, group).await?;
    if actor.is_admin_of(tenant) {
        let group = match lock {
            Lock::ForUpdate => tx.lock_group(tenant, id).await?,
            Lock::No => tx.get_group(tenant, id).await?,
        };
        return group.ok_or_else(group_not_found);
    }
    let Some(user) = actor.user_key() else {
        return Err(group_not_found());
    };
    let group = seen_or_not_found(actor, tx.get_group_seen_by(tenant, id, user).await?.group)?;
    match lock {
        Lock::No => Ok(group),
        // Read again under the lock: the change works on the row as it is now.
        Lock::ForUpdate => tx.lock_group(tenant, id).await?.ok_or_else(group_not_found),
    }
}

/// R07 on a group read with the reader's membership: the group when the actor may see it,
/// NOT_FOUND when it is missing or hidden.
fn seen_or_not_found(actor: &Actor, seen: Option<(Group, bool)>) -> Result<Group> {
    match seen {
        Some((group, member)) if visible_without_membership(actor, &group).unwrap_or(member) => {
            Ok(group)
        }
        _ => Err(group_not_found()),
    }
}

/// A read of one group by a caller not yet resolved (`Service::read_resolving`): for a user,
/// their directory row (R24), the group and their membership (R07) come back in one
/// statement, where `visible_group` after `Caller::resolve` takes two. The caller is decided
/// first, as `resolve` decides it; then the group as `visible_group` would (an admin of the
/// owning tenant sees it; anyone else by R07, a missing group and a hidden one alike).
pub(crate) async fn group_for_caller(
    tx: &mut dyn Tx,
    caller: &Caller,
    tenant: TenantId,
    group: &GroupRef,
) -> Result<Group> {
    Ok(group_and_own_membership(tx, caller, tenant, group).await?.0)
}

/// `group_for_caller`, with the caller's own membership of the group when the caller is a
/// user (`(direct row, effective)`, as `Tx::membership_of` answers it): read in the same
/// statement, so a user checking their own membership makes one round trip.
pub(crate) async fn group_and_own_membership(
    tx: &mut dyn Tx,
    caller: &Caller,
    tenant: TenantId,
    group: &GroupRef,
) -> Result<(Group, Option<(Option<bool>, bool)>)> {
    let Some(user) = caller.user_key() else {
        let actor = caller.resolve(tx).await?;
        return Ok((
            visible_group(tx, &actor, tenant, group, Lock::No).await?,
            None,
        ));
    };
    let id = locate(tx, tenant, group).await?;
    let seen = tx.get_group_seen_by(tenant, id, user).await?;
    let actor = caller.user_actor(seen.user)?;
    let member = seen.group.as_ref().is_some_and(|(_, member)| *member);
    let group = seen_or_not_found(&actor, seen.group)?;
    Ok((group, Some((seen.direct, member))))
}

/// The id of a group named by id or by external key. A key that names no group gives id 0,
/// which no group has: the statements that follow answer NOT_FOUND for it at the cost of a
/// group that exists, so the time of the answer does not tell whether the key is taken.
pub(crate) async fn locate(tx: &mut dyn Tx, tenant: TenantId, group: &GroupRef) -> Result<GroupId> {
    Ok(match group {
        GroupRef::Id(id) => *id,
        GroupRef::Key(key) => tx.group_by_key(tenant, key).await?.unwrap_or(GroupId(0)),
    })
}

/// Proof that the actor passed the R06 check for changing the group's membership. Only
/// `manage_membership` makes one (and group creation, whose caller's right to create is the
/// right to name the first members), so no change can skip the check.
pub(crate) struct Managed {
    pub group: Group,
    /// Who passed the check: R15's contacts rule is theirs, and the groups they may name as
    /// members are the ones they may see (R07).
    pub by: Actor,
}

/// R06: admins of the owning tenant always; Group Masters unless the tenant's
/// `masters_may_manage_settings` is off; nobody else. Locks the group row.
pub(crate) async fn manage_membership(
    tx: &mut dyn Tx,
    actor: &Actor,
    tenant: TenantId,
    group: &GroupRef,
) -> Result<Managed> {
    let group = visible_group(tx, actor, tenant, group, Lock::ForUpdate).await?;
    if standing(tx, actor, &group).await? == Standing::Other {
        return Err(Error::permission(
            Reason::NotGroupManager,
            "only admins and (where the tenant lets them) Group Masters change members",
        ));
    }
    // The change sees the members that count: expired rows go first, with their event.
    super::expiry::drop_expired(tx, &group).await?;
    Ok(Managed {
        group,
        by: actor.clone(),
    })
}

/// R07, R24 for a group named as a member (nested, or named to be removed or to expire): the
/// group when the actor may see it, `None` when it is missing or hidden, at the same cost
/// (`visible_group`), so that naming a group as a member cannot tell whether a hidden one
/// exists.
pub(crate) async fn visible_member_group(
    tx: &mut dyn Tx,
    actor: &Actor,
    tenant: TenantId,
    group: &GroupRef,
) -> Result<Option<Group>> {
    match visible_group(tx, actor, tenant, group, Lock::No).await {
        Ok(group) => Ok(Some(group)),
        Err(Error::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// R24: a caller asks about users of its own tenant only.
pub(crate) fn require_own_tenant(actor: &Actor, user: UserKey) -> Result<()> {
    if user.tenant == actor.tenant() {
        Ok(())
    } else {
        Err(Error::NotFound("user"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::model::{Features, User, UserId, UserKind};

    fn group(kind: GroupKind, is_public: bool, master_manages_features: bool) -> Group {
        Group {
            tenant: TenantId(1),
            id: GroupId(10),
            display_name: "g".into(),
            description: String::new(),
            photo_uri: String::new(),
            kind,
            is_public,
            features: Features::default(),
            notify_all_members: false,
            master_manages_features,
            external_key: None,
            mailing_list: None,
            storage_used_bytes: 0,
            version: 1,
            create_time: 0,
            update_time: 0,
            message_purge_time: None,
        }
    }

    fn user(tenant: i64, is_admin: bool) -> Actor {
        let key = UserKey {
            tenant: TenantId(tenant),
            user: UserId(7),
        };
        Actor::User {
            user: User {
                key,
                email: "u@example.com".into(),
                display_name: "u".into(),
                is_admin,
                external_messaging_allowed: true,
                kind: UserKind::Works,
            },
            is_admin,
        }
    }

    #[test]
    fn r06_admins_may_everything_others_nothing() {
        let g = group(GroupKind::Internal, false, false);
        for c in [
            Capability::Basic,
            Capability::RoomFeature,
            Capability::AdminOnly,
        ] {
            assert!(may(Standing::Admin, &g, c));
            assert!(!may(Standing::Other, &g, c));
        }
    }

    #[test]
    fn r06_masters_change_basics_and_features_only_when_allowed() {
        let off = group(GroupKind::Internal, false, false);
        let on = group(GroupKind::Internal, false, true);
        assert!(may(Standing::Master, &off, Capability::Basic));
        assert!(!may(Standing::Master, &off, Capability::RoomFeature));
        assert!(may(Standing::Master, &on, Capability::RoomFeature));
        assert!(!may(Standing::Master, &on, Capability::AdminOnly));
    }

    #[test]
    fn r07_public_internal_groups_are_visible_in_their_tenant_only() {
        let public = group(GroupKind::Internal, true, false);
        assert_eq!(
            visible_without_membership(&user(1, false), &public),
            Some(true)
        );
        assert_eq!(visible_without_membership(&user(2, false), &public), None);
        let private = group(GroupKind::Internal, false, false);
        assert_eq!(visible_without_membership(&user(1, false), &private), None);
        assert_eq!(
            visible_without_membership(&user(1, true), &private),
            Some(true)
        );
    }

    #[test]
    fn r20_external_groups_need_membership_even_when_marked_public() {
        let external = group(GroupKind::External, true, false);
        assert_eq!(visible_without_membership(&user(1, false), &external), None);
        assert_eq!(
            visible_without_membership(&user(1, true), &external),
            Some(true)
        );
        assert_eq!(visible_without_membership(&user(2, true), &external), None);
        let service = Actor::Service {
            tenant: TenantId(2),
        };
        assert_eq!(visible_without_membership(&service, &external), None);
    }
}
