//! Reading membership: direct members, R22 (transitive membership through teams and nested
//! groups: effective members, CheckMembership, ListGroupsOfUser), and R17/R23 (members
//! cannot leave a group by themselves).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::access::{
    Lock, can_see, group_and_own_membership, group_not_found, require_own_tenant,
    seen_without_membership, sees_own_groups, visible_group,
};
use super::cache::{Answer, GroupKeysOfUser, Key};
use super::caller::Caller;
use super::error::{Error, Reason, Result, Violations};
use super::limits::MAX_BATCH;
use super::model::*;
use super::names::GroupPath;
use super::operation::Operation;
use super::page::PageRequest;
use super::repo::{MemberRow, Page};
use super::service::Service;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Membership {
    pub member: bool,
    pub master: bool,
    pub direct: bool,
}

impl Membership {
    /// From `MembershipTx::membership_of`: the direct row (`Some(is_master)`) and effective
    /// membership.
    fn of(direct: Option<bool>, member: bool) -> Self {
        Membership {
            member: member || direct.is_some(),
            master: direct == Some(true),
            direct: direct.is_some(),
        }
    }
}

/// The most groups a names-only page of ListGroupsOfUser holds, and its size unless the
/// request says fewer: Microsoft Graph's getMemberGroups answers up to 11,000 ids at once.
pub const MAX_NAMES_PAGE: i64 = 10_000;

/// A direct member as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectMember {
    pub member: MemberRef,
    pub master: bool,
    pub display_name: String,
    /// When the member stops counting (microseconds); `None`: never.
    pub expire_time: Option<i64>,
}

/// Which users of a group a list returns.
#[derive(Clone, Copy, Debug)]
enum UserList {
    Effective,
    Masters,
}

fn member_of_row(r: &MemberRow) -> MemberRef {
    match r.kind {
        MemberKind::User => MemberRef::User(UserKey {
            tenant: r.tenant,
            user: UserId(r.id),
        }),
        MemberKind::Team => MemberRef::Team(TeamId(r.id)),
        MemberKind::Group => MemberRef::Group(GroupId(r.id)),
    }
}

impl Service {
    pub async fn list_members(
        &self,
        caller: &Caller,
        tenant: TenantId,
        group: GroupRef,
        page: PageRequest,
    ) -> Result<(Vec<DirectMember>, String)> {
        let scope = format!("members|{tenant}|{group}");
        let (size, after) = self.pager.start::<(MemberKind, i64, i64)>(&scope, &page)?;
        let page = Page { after, limit: size };
        let rows = self
            .read(Operation::ListMembers, caller, group, |tx, actor, group| {
                Box::pin(async move {
                    let group = visible_group(tx, actor, tenant, group, Lock::No).await?.id;
                    let rows = tx.list_members(tenant, group, page).await?;
                    let members: Vec<MemberRef> = rows.iter().map(member_of_row).collect();
                    let keys: Vec<UserKey> = members
                        .iter()
                        .filter_map(|m| match m {
                            MemberRef::User(k) => Some(*k),
                            _ => None,
                        })
                        .collect();
                    let names: HashMap<UserKey, String> = tx
                        .get_users(&keys)
                        .await?
                        .into_iter()
                        .map(|u| (u.key, u.display_name))
                        .collect();
                    let listed = rows.into_iter().zip(members).map(|(r, member)| {
                        let display_name = match member {
                            MemberRef::User(k) => names.get(&k).cloned().unwrap_or_default(),
                            _ => String::new(),
                        };
                        let m = DirectMember {
                            member,
                            master: r.is_master,
                            display_name,
                            expire_time: r.expire_time,
                        };
                        (r, m)
                    });
                    Ok(listed.collect::<Vec<_>>())
                })
            })
            .await?;
        let next = self
            .pager
            .next(&scope, &rows, size, |(r, _)| (r.kind, r.tenant.0, r.id));
        Ok((rows.into_iter().map(|(_, m)| m).collect(), next))
    }

    /// R22: the distinct users reached from the group, a page at a time.
    pub async fn list_effective_members(
        &self,
        caller: &Caller,
        tenant: TenantId,
        group: GroupRef,
        page: PageRequest,
    ) -> Result<(Vec<UserKey>, String)> {
        self.list_users_of(caller, tenant, group, page, UserList::Effective)
            .await
    }

    pub async fn list_masters(
        &self,
        caller: &Caller,
        tenant: TenantId,
        group: GroupRef,
        page: PageRequest,
    ) -> Result<(Vec<UserKey>, String)> {
        self.list_users_of(caller, tenant, group, page, UserList::Masters)
            .await
    }

    async fn list_users_of(
        &self,
        caller: &Caller,
        tenant: TenantId,
        group: GroupRef,
        page: PageRequest,
        list: UserList,
    ) -> Result<(Vec<UserKey>, String)> {
        let scope = format!("{list:?}|{tenant}|{group}");
        let (size, after) = self.pager.start::<UserKey>(&scope, &page)?;
        let page = Page { after, limit: size };
        let rows = self
            .read(Operation::ListUsersOf, caller, group, |tx, actor, group| {
                Box::pin(async move {
                    let group = visible_group(tx, actor, tenant, group, Lock::No).await?.id;
                    match list {
                        UserList::Effective => tx.list_effective_users(tenant, group, page).await,
                        UserList::Masters => tx.list_masters(tenant, group, page).await,
                    }
                })
            })
            .await?;
        let next = self.pager.next(&scope, &rows, size, |u| *u);
        Ok((rows, next))
    }

    /// R22: whether `user` is a member of the group, transitively.
    pub async fn check_membership(
        &self,
        caller: &Caller,
        tenant: TenantId,
        group: GroupRef,
        user: UserKey,
    ) -> Result<Membership> {
        let groups = [GroupPath { tenant, group }];
        let fill = |_| {
            self.read_resolving(
                Operation::CheckMembership,
                caller,
                &groups[0].group,
                |tx, caller, group| {
                    Box::pin(async move {
                        let (group, own) =
                            group_and_own_membership(tx, caller, tenant, group).await?;
                        let (direct, member) = match own {
                            Some(own) if caller.user_key() == Some(user) => own,
                            _ => tx.membership_of(tenant, group.id, user).await?,
                        };
                        Ok(vec![Some(Membership::of(direct, member))])
                    })
                },
            )
        };
        let mut answers = self.cached_memberships(caller, user, &groups, fill).await?;
        answers.pop().flatten().ok_or_else(group_not_found)
    }

    /// R22 for up to `MAX_BATCH` groups at once: for each group, in request order, whether
    /// `user` is a member, or `None` when the group is missing or hidden from the caller (what
    /// CheckMembership answers NOT_FOUND for). The groups the cache does not answer are read in
    /// one transaction.
    pub async fn batch_check_membership(
        &self,
        caller: &Caller,
        user: UserKey,
        groups: &[GroupPath],
    ) -> Result<Vec<Option<Membership>>> {
        let mut v = Violations::default();
        v.check(!groups.is_empty(), "groups", || {
            "name at least one group".into()
        });
        v.check(groups.len() <= MAX_BATCH, "groups", || {
            format!("at most {MAX_BATCH} groups in one call")
        });
        v.finish()?;
        let fill = |missing: Vec<usize>| {
            let wanted: Vec<GroupPath> = missing.iter().map(|&i| groups[i].clone()).collect();
            self.read(
                Operation::BatchCheckMembership,
                caller,
                wanted,
                move |tx, actor, wanted| {
                    Box::pin(async move {
                        let mut out = Vec::with_capacity(wanted.len());
                        for g in wanted {
                            let group = match visible_group(tx, actor, g.tenant, &g.group, Lock::No)
                                .await
                            {
                                Ok(group) => group.id,
                                Err(Error::NotFound(_)) => {
                                    out.push(None);
                                    continue;
                                }
                                Err(e) => return Err(e),
                            };
                            let (direct, member) = tx.membership_of(g.tenant, group, user).await?;
                            out.push(Some(Membership::of(direct, member)));
                        }
                        Ok(out)
                    })
                },
            )
        };
        self.cached_memberships(caller, user, groups, fill).await
    }

    /// Groups `user` belongs to (directly or transitively) that the caller may see. A page can
    /// hold fewer than `page_size` groups when some are hidden from the caller; the token then
    /// continues after the last group looked at.
    pub async fn list_groups_of_user(
        &self,
        caller: &Caller,
        user: UserKey,
        page: PageRequest,
    ) -> Result<(Vec<(Group, bool)>, String)> {
        let scope = format!(
            "groups-of-user|{}|{}|{}|{:?}",
            user.tenant, user.user, caller.tenant, caller.principal
        );
        let (size, after) = self.pager.start::<(i64, i64)>(&scope, &page)?;
        let after = after.map(|(t, g)| (TenantId(t), GroupId(g)));
        let page = Page { after, limit: size };
        let (rows, last) = self
            .read(Operation::ListGroupsOfUser, caller, (), |tx, actor, ()| {
                Box::pin(async move {
                    require_own_tenant(actor, user)?;
                    // A user listing their own groups was just read from the directory.
                    if !sees_own_groups(actor, user) && tx.get_user(user).await?.is_none() {
                        return Err(Error::NotFound("user"));
                    }
                    let scanned = tx.groups_of_user(user, page).await?;
                    let last = if scanned.len() as i64 == size {
                        scanned.last().map(|(g, _)| (g.tenant.0, g.id.0))
                    } else {
                        None
                    };
                    if sees_own_groups(actor, user) {
                        return Ok((scanned, last));
                    }
                    let mut out = Vec::with_capacity(scanned.len());
                    for (group, direct) in scanned {
                        if can_see(tx, actor, &group).await? {
                            out.push((group, direct));
                        }
                    }
                    Ok((out, last))
                })
            })
            .await?;
        let next = last.map_or_else(String::new, |key| self.pager.token(&scope, &key));
        Ok((rows, next))
    }

    /// `list_groups_of_user`, names only (and whether directly): up to `MAX_NAMES_PAGE` a
    /// page, that many unless `page_size` says fewer. The user's whole visible membership is
    /// read in one statement and cached like the checks (`cache::Key::GroupsOfUser`); pages
    /// are cut from it. A user in more groups than a page holds is read page by page instead.
    pub async fn list_group_names_of_user(
        &self,
        caller: &Caller,
        user: UserKey,
        page: PageRequest,
    ) -> Result<(Vec<GroupKeyOfUser>, String)> {
        let scope = format!(
            "group-names-of-user|{}|{}|{}|{:?}",
            user.tenant, user.user, caller.tenant, caller.principal
        );
        let (size, after) =
            self.pager
                .start_sized::<(i64, i64)>(&scope, &page, MAX_NAMES_PAGE, MAX_NAMES_PAGE)?;
        let after = after.map(|(t, g)| (TenantId(t), GroupId(g)));
        let key = Key::GroupsOfUser {
            caller: caller.clone(),
            user,
        };
        let read_whole = self.visible_group_keys_of_user(caller, user, None, MAX_NAMES_PAGE);
        let to = |a| match a {
            Answer::GroupsOfUser(g) => Some(g),
            _ => None,
        };
        let whole = self
            .cached(key, to, |g| Answer::GroupsOfUser(g.clone()), read_whole)
            .await?;
        let (rows, last) = if whole.complete {
            let start = after.map_or(0, |a| whole.keys.partition_point(|k| (k.tenant, k.id) <= a));
            let rows: Vec<GroupKeyOfUser> = whole.keys[start..]
                .iter()
                .take(size as usize)
                .copied()
                .collect();
            let more = start + rows.len() < whole.keys.len();
            let last = rows.last().filter(|_| more).map(|k| (k.tenant, k.id));
            (rows, last)
        } else {
            let page = self
                .visible_group_keys_of_user(caller, user, after, size)
                .await?;
            let more = page.last_scanned.filter(|_| !page.complete);
            (page.keys.clone(), more)
        };
        let next = last.map_or_else(String::new, |(t, g)| self.pager.token(&scope, &(t.0, g.0)));
        Ok((rows, next))
    }

    /// The groups of `user` after `after` that the caller may see, scanning at most `limit`
    /// of the user's groups (R07, R20, R24 as `list_groups_of_user`).
    async fn visible_group_keys_of_user(
        &self,
        caller: &Caller,
        user: UserKey,
        after: Option<(TenantId, GroupId)>,
        limit: i64,
    ) -> Result<Arc<GroupKeysOfUser>> {
        self.read(
            Operation::ListGroupNamesOfUser,
            caller,
            (),
            move |tx, actor, ()| {
                Box::pin(async move {
                    require_own_tenant(actor, user)?;
                    if !sees_own_groups(actor, user) && tx.get_user(user).await?.is_none() {
                        return Err(Error::NotFound("user"));
                    }
                    let page = Page { after, limit };
                    let scanned = tx.group_keys_of_user(user, page).await?;
                    let complete = (scanned.len() as i64) < limit;
                    let last_scanned = scanned.last().map(|k| (k.tenant, k.id));
                    let mut keys = Vec::with_capacity(scanned.len());
                    // The caller's own groups, read once if membership must decide.
                    let mut callers: Option<HashSet<(TenantId, GroupId)>> = None;
                    for k in scanned {
                        let seen = if sees_own_groups(actor, user) {
                            true
                        } else if let Some(seen) =
                            seen_without_membership(actor, k.tenant, k.kind, k.is_public)
                        {
                            seen
                        } else if let Some(me) = actor.user_key() {
                            if callers.is_none() {
                                let all = Page {
                                    after: None,
                                    limit: i64::MAX,
                                };
                                let mine = tx.group_keys_of_user(me, all).await?;
                                callers = Some(mine.iter().map(|m| (m.tenant, m.id)).collect());
                            }
                            callers
                                .as_ref()
                                .is_some_and(|c| c.contains(&(k.tenant, k.id)))
                        } else {
                            false
                        };
                        if seen {
                            keys.push(k);
                        }
                    }
                    Ok(Arc::new(GroupKeysOfUser {
                        keys,
                        complete,
                        last_scanned,
                    }))
                })
            },
        )
        .await
    }

    /// R17, R23: members cannot leave by themselves.
    pub async fn leave(&self, caller: &Caller, tenant: TenantId, group: GroupRef) -> Result<()> {
        self.read(Operation::Leave, caller, group, |tx, actor, group| {
            Box::pin(async move {
                let g = visible_group(tx, actor, tenant, group, Lock::No).await?;
                let Some(user) = actor.user_key() else {
                    return Err(Error::permission(
                        Reason::UserCallerRequired,
                        "only a user can leave a group",
                    ));
                };
                if tx.is_effective_member(tenant, g.id, user).await? {
                    return Err(Error::precondition(
                        Reason::MembersCannotLeave,
                        "members cannot leave a group by themselves; a Group Master or an \
                         admin removes them",
                    ));
                }
                Err(Error::precondition(
                    Reason::NotAMember,
                    format!("the caller is not a member of {}", g.resource_name()),
                ))
            })
        })
        .await
    }
}
