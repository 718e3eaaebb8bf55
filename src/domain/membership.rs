//! Members, Group Masters, nested groups and transitive membership (R03, R05, R06, R11, R17,
//! R21, R22, R23).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::caller::Caller;
use super::error::{Error, Reason, Result, Violations};
use super::groups::{
    MemberRef, Standing, USER_GROUP_LIMIT, check_nesting, standing, visible_group,
};
use super::model::*;
use super::page::PageRequest;
use super::repo::{MemberRow, Page, Tx};
use super::{Service, group_event, request_fingerprint};

/// Members named in one batch call.
pub const MAX_BATCH: usize = 100;

/// Proof that the actor passed the R06 check for changing the group's membership. Only
/// `manage_membership` makes one, so no change can skip the check.
pub(crate) struct Managed {
    pub group: Group,
    /// The user who passed the check (none for a service), for R15's contacts rule.
    pub by: Option<UserKey>,
}

/// R06: admins of the owning tenant always; Group Masters unless the tenant's
/// `masters_may_manage_settings` is off; nobody else. Locks the group row.
pub(crate) async fn manage_membership(
    tx: &mut dyn Tx,
    caller: &Caller,
    tenant: TenantId,
    id: GroupId,
) -> Result<Managed> {
    let actor = caller.resolve(tx).await?;
    let group = visible_group(tx, &actor, tenant, id, true).await?;
    if standing(tx, &actor, &group).await? == Standing::Other {
        return Err(Error::permission(
            Reason::NotGroupManager,
            "only admins and (where the tenant lets them) Group Masters change members",
        ));
    }
    Ok(Managed {
        group,
        by: actor.user_key(),
    })
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddOutcome {
    pub added: Vec<MemberRef>,
    pub already_present: Vec<MemberRef>,
    /// Users left out of an external group at creation or conversion (R14).
    #[serde(skip)]
    pub excluded: Vec<(UserKey, Reason)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveOutcome {
    pub removed: Vec<MemberRef>,
    pub not_members: Vec<MemberRef>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MastersOutcome {
    pub changed: Vec<UserKey>,
    pub unchanged: Vec<UserKey>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Membership {
    pub member: bool,
    pub master: bool,
    pub direct: bool,
}

/// A direct member as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectMember {
    pub member: MemberRef,
    pub master: bool,
    pub display_name: String,
}

/// Which users of a group a list returns.
#[derive(Clone, Copy, Debug)]
enum UserList {
    Effective,
    Masters,
}

/// A membership batch call.
#[derive(Clone, Debug, Serialize)]
pub struct MemberBatch {
    pub tenant: TenantId,
    pub group: GroupId,
    pub members: Vec<MemberRef>,
    #[serde(skip)]
    pub request_id: Option<String>,
}

fn validate_batch(batch: &mut MemberBatch) -> Result<()> {
    let mut v = Violations::default();
    v.check(!batch.members.is_empty(), "members", || {
        "name at least one member".into()
    });
    v.check(batch.members.len() <= MAX_BATCH, "members", || {
        format!("at most {MAX_BATCH} members in one call")
    });
    if let Some(id) = &batch.request_id {
        v.check(id.chars().count() <= 100, "request_id", || {
            "must be at most 100 characters".into()
        });
    }
    v.finish()?;
    batch.members.sort();
    batch.members.dedup();
    Ok(())
}

fn user_subject(u: UserKey) -> String {
    format!("tenants/{}/users/{}", u.tenant, u.user)
}

/// The users a change of `members` concerns, for R11 notifications.
async fn recipients(tx: &mut dyn Tx, group: &Group, members: &[MemberRef]) -> Result<Vec<UserKey>> {
    let mut out = BTreeSet::new();
    for m in members {
        match m {
            MemberRef::User(u) => {
                out.insert(*u);
            }
            MemberRef::Team(t) => {
                if let Some(team) = tx.get_team(group.tenant, *t).await? {
                    out.extend(team.members.iter().map(|u| UserKey {
                        tenant: group.tenant,
                        user: *u,
                    }));
                }
            }
            MemberRef::Group(g) => out.extend(tx.effective_users(group.tenant, *g).await?),
        }
    }
    Ok(out.into_iter().collect())
}

/// Writes a membership event; with `notify_all_members` on, it names the users to notify.
async fn member_event(
    tx: &mut dyn Tx,
    group: &Group,
    kind: &str,
    members: &[MemberRef],
    extra: serde_json::Value,
    now: i64,
) -> Result<()> {
    let notify = if group.notify_all_members {
        recipients(tx, group, members).await?
    } else {
        Vec::new()
    };
    tx.insert_event(&group_event(
        group,
        kind,
        json!({
            "group": group.resource_name(),
            "members": members,
            "notify": notify,
            "detail": extra,
        }),
        now,
    ))
    .await
}

/// How the external-group rules (R13-R15) admit users.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Admission {
    /// Initial members (create, room conversion): users without the external permission and
    /// LINE users are left out and reported; a master without the permission fails.
    Initial,
    /// Added later by the managing user (`Managed::by`): users of another company than theirs
    /// must be in their contacts, and every user must have the permission.
    Added,
}

fn excluded_reason(user: &User) -> Option<Reason> {
    if user.kind == UserKind::Line {
        Some(Reason::LineUserNotAllowed)
    } else if !user.external_messaging_allowed {
        Some(Reason::ExternalPermissionRequired)
    } else {
        None
    }
}

/// Adds members to a group the caller may manage; members already present are reported.
/// `masters` are added (or promoted) as Group Masters.
pub(crate) async fn add_members_in(
    tx: &mut dyn Tx,
    m: &Managed,
    members: &[MemberRef],
    masters: &[UserKey],
    admission: Admission,
    now: i64,
) -> Result<AddOutcome> {
    let group = &m.group;
    let tenant = group.tenant;
    let external = group.kind == GroupKind::External;
    let mut users: Vec<UserKey> = members
        .iter()
        .filter_map(|x| {
            if let MemberRef::User(u) = x {
                Some(*u)
            } else {
                None
            }
        })
        .chain(masters.iter().copied())
        .collect();
    users.sort();
    users.dedup();
    if !external {
        if let Some(u) = users.iter().find(|u| u.tenant != tenant) {
            return Err(Error::precondition(
                Reason::UserNotInTenant,
                format!("{} is not a user of the group's tenant", user_subject(*u)),
            ));
        }
    } else if members.iter().any(|x| !matches!(x, MemberRef::User(_))) {
        return Err(Error::precondition(
            Reason::ExternalGroupUsersOnly,
            "external groups have users as members, not teams or groups",
        ));
    }
    let found: std::collections::HashMap<UserKey, User> = tx
        .get_users(&users)
        .await?
        .into_iter()
        .map(|u| (u.key, u))
        .collect();
    if let Some(missing) = users.iter().find(|k| !found.contains_key(k)) {
        return Err(Error::precondition(
            Reason::UnknownMember,
            format!("{} does not exist", user_subject(*missing)),
        ));
    }
    let teams: Vec<TeamId> = members
        .iter()
        .filter_map(|x| {
            if let MemberRef::Team(t) = x {
                Some(*t)
            } else {
                None
            }
        })
        .collect();
    let found_teams = tx.existing_teams(tenant, &teams).await?;
    if let Some(missing) = teams.iter().find(|t| !found_teams.contains(t)) {
        return Err(Error::precondition(
            Reason::UnknownMember,
            format!("tenants/{tenant}/teams/{missing} does not exist"),
        ));
    }
    let nested: Vec<GroupId> = members
        .iter()
        .filter_map(|x| {
            if let MemberRef::Group(g) = x {
                Some(*g)
            } else {
                None
            }
        })
        .collect();
    let found_groups = tx.existing_groups(tenant, &nested).await?;
    if let Some(missing) = nested.iter().find(|g| !found_groups.contains(g)) {
        return Err(Error::precondition(
            Reason::UnknownMember,
            format!("tenants/{tenant}/groups/{missing} does not exist"),
        ));
    }
    if !nested.is_empty() {
        tx.lock_nesting(tenant).await?;
    }
    // An external group inside another group would make its members from other companies
    // members of that group too (R24): only users join external groups, and external groups
    // join nothing.
    for g in &nested {
        if tx
            .get_group(tenant, *g)
            .await?
            .is_some_and(|g| g.kind == GroupKind::External)
        {
            return Err(Error::precondition(
                Reason::ExternalGroupNotNestable,
                format!(
                    "tenants/{tenant}/groups/{g} is an external group; it cannot be a member of a group"
                ),
            ));
        }
    }

    let mut out = AddOutcome::default();
    let master_set: BTreeSet<UserKey> = masters.iter().copied().collect();
    // R13-R15 for external groups.
    let mut admitted: BTreeSet<UserKey> = BTreeSet::new();
    for u in &users {
        let user = &found[u];
        if !external {
            admitted.insert(*u);
            continue;
        }
        if let Some(reason) = excluded_reason(user) {
            match admission {
                Admission::Initial if !master_set.contains(u) => {
                    out.excluded.push((*u, reason));
                    continue;
                }
                _ => {
                    return Err(Error::precondition(
                        reason,
                        format!("{} cannot be in an external group", user_subject(*u)),
                    ));
                }
            }
        }
        if let Admission::Added = admission {
            let adder = m.by;
            // R15: a user of another company than the adder's comes from the adder's
            // contacts (a service adds for its own tenant only).
            let adder_tenant = adder.map_or(tenant, |a| a.tenant);
            let is_present = tx.user_member(tenant, group.id, *u).await?.is_some();
            if u.tenant != adder_tenant && !is_present {
                let in_contacts = match adder {
                    Some(a) => tx.has_contact(a, *u).await?,
                    None => false,
                };
                if !in_contacts {
                    return Err(Error::precondition(
                        Reason::NotInContacts,
                        format!(
                            "{} is not in the adding master's contacts",
                            user_subject(*u)
                        ),
                    ));
                }
            }
        }
        admitted.insert(*u);
    }

    let mut all: Vec<MemberRef> = members
        .iter()
        .filter(|x| match x {
            MemberRef::User(u) => admitted.contains(u),
            _ => true,
        })
        .copied()
        .collect();
    all.extend(masters.iter().map(|u| MemberRef::User(*u)));
    all.sort();
    all.dedup();
    for member in all {
        let present = match member {
            MemberRef::User(u) => match tx.user_member(tenant, group.id, u).await? {
                Some(is_master) => {
                    if master_set.contains(&u) && !is_master {
                        tx.set_master(tenant, group.id, u, true).await?;
                    }
                    true
                }
                None => {
                    // R03 (and R14 for external groups), under the user's row lock.
                    if !tx
                        .take_user_group_slot(u, USER_GROUP_LIMIT, external)
                        .await?
                    {
                        return Err(slot_refused(tx, u, external).await);
                    }
                    tx.insert_user_member(tenant, group.id, u, master_set.contains(&u), now)
                        .await?;
                    false
                }
            },
            MemberRef::Team(t) => {
                let present = tx.has_team_member(tenant, group.id, t).await?;
                if !present {
                    tx.insert_team_member(tenant, group.id, t, now).await?;
                }
                present
            }
            MemberRef::Group(g) => {
                let present = tx.has_group_member(tenant, group.id, g).await?;
                if !present {
                    check_nesting(tx, tenant, group.id, g).await?;
                    tx.insert_group_member(tenant, group.id, g, now).await?;
                }
                present
            }
        };
        if present {
            out.already_present.push(member);
        } else {
            out.added.push(member);
        }
    }
    Ok(out)
}

/// Why a user's slot was refused: the R03 limit, or (external groups) a permission revoked
/// since it was checked.
async fn slot_refused(tx: &mut dyn Tx, u: UserKey, external: bool) -> Error {
    if external {
        match tx.get_user(u).await {
            Ok(Some(user)) => {
                if let Some(reason) = excluded_reason(&user) {
                    return Error::precondition(
                        reason,
                        format!("{} cannot be in an external group", user_subject(u)),
                    );
                }
            }
            Ok(None) => {
                return Error::precondition(
                    Reason::UnknownMember,
                    format!("{} does not exist", user_subject(u)),
                );
            }
            Err(e) => return e,
        }
    }
    Error::QuotaExceeded {
        reason: Reason::UserGroupLimit,
        subject: user_subject(u),
        description: format!("the user is a direct member of {USER_GROUP_LIMIT} groups"),
    }
}

fn fingerprint(caller: &Caller, method: &str, batch: &MemberBatch) -> String {
    request_fingerprint(
        method,
        caller,
        &serde_json::to_string(batch).unwrap_or_default(),
    )
}

/// Runs a batch body once per request id: a retry with the same id gets the stored answer.
macro_rules! idempotent {
    ($tx:expr, $batch:expr, $fingerprint:expr, $out:ty, $now:ident => $body:expr) => {{
        let $now = now_micros();
        if let Some(request_id) = &$batch.request_id {
            if !$tx
                .claim_batch_request($batch.tenant, request_id, $fingerprint, $now)
                .await?
            {
                let (first, response) = $tx
                    .get_batch_request($batch.tenant, request_id)
                    .await?
                    .ok_or_else(|| {
                        Error::Retry("request id claimed by a rolled back call".into())
                    })?;
                if first.as_str() != $fingerprint {
                    return Err(Error::InvalidArgumentReason {
                        reason: Reason::RequestIdReused,
                        field: "request_id",
                        description: "this request_id was used for a different request".into(),
                    });
                }
                return serde_json::from_str::<$out>(&response)
                    .map_err(|e| Error::Internal(format!("stored response: {e}")));
            }
        }
        let out: $out = $body;
        if let Some(request_id) = &$batch.request_id {
            let response =
                serde_json::to_string(&out).map_err(|e| Error::Internal(e.to_string()))?;
            $tx.save_batch_response($batch.tenant, request_id, &response)
                .await?;
        }
        Ok(out)
    }};
}

impl Service {
    pub async fn add_members(&self, caller: &Caller, mut batch: MemberBatch) -> Result<AddOutcome> {
        validate_batch(&mut batch)?;
        let fp = fingerprint(caller, "add", &batch);
        let caller = caller.clone();
        self.store
            .write(move |tx| {
                let (caller, batch, fp) = (caller.clone(), batch.clone(), fp.clone());
                Box::pin(async move {
                    let m = manage_membership(tx, &caller, batch.tenant, batch.group).await?;
                    idempotent!(tx, batch, fp.as_str(), AddOutcome, now => {
                        let out = add_members_in(tx, &m, &batch.members, &[], Admission::Added, now).await?;
                        if out.added.is_empty() {
                            return Err(Error::AlreadyExists {
                                reason: Reason::AlreadyMember,
                                message: "every named member is already a member".into(),
                            });
                        }
                        tx.touch_group(m.group.tenant, m.group.id, now).await?;
                        member_event(tx, &m.group, "members.added", &out.added, json!({}), now).await?;
                        out
                    })
                })
            })
            .await
    }

    pub async fn remove_members(
        &self,
        caller: &Caller,
        mut batch: MemberBatch,
    ) -> Result<RemoveOutcome> {
        validate_batch(&mut batch)?;
        let fp = fingerprint(caller, "remove", &batch);
        let caller = caller.clone();
        self.store
            .write(move |tx| {
                let (caller, batch, fp) = (caller.clone(), batch.clone(), fp.clone());
                Box::pin(async move {
                    let m = manage_membership(tx, &caller, batch.tenant, batch.group).await?;
                    idempotent!(tx, batch, fp.as_str(), RemoveOutcome, now => {
                        let out = remove_members_in(tx, &m.group, &batch.members, now).await?;
                        if out.removed.is_empty() {
                            return Err(Error::precondition(Reason::NotAMember, "none of the named members is a member"));
                        }
                        tx.touch_group(m.group.tenant, m.group.id, now).await?;
                        member_event(tx, &m.group, "members.removed", &out.removed, json!({}), now).await?;
                        out
                    })
                })
            })
            .await
    }

    pub async fn add_masters(
        &self,
        caller: &Caller,
        tenant: TenantId,
        group: GroupId,
        users: Vec<UserKey>,
    ) -> Result<MastersOutcome> {
        let users = master_batch(users)?;
        let caller = caller.clone();
        self.store
            .write(move |tx| {
                let (caller, users) = (caller.clone(), users.clone());
                Box::pin(async move {
                    let m = manage_membership(tx, &caller, tenant, group).await?;
                    let mut out = MastersOutcome::default();
                    for u in &users {
                        if tx.user_member(tenant, group, *u).await? == Some(true) {
                            out.unchanged.push(*u);
                        } else {
                            out.changed.push(*u);
                        }
                    }
                    if out.changed.is_empty() {
                        return Err(Error::AlreadyExists {
                            reason: Reason::AlreadyMaster,
                            message: "every named user is already a Group Master".into(),
                        });
                    }
                    let now = now_micros();
                    let added =
                        add_members_in(tx, &m, &[], &out.changed, Admission::Added, now).await?;
                    tx.touch_group(tenant, group, now).await?;
                    if !added.added.is_empty() {
                        member_event(tx, &m.group, "members.added", &added.added, json!({}), now)
                            .await?;
                    }
                    let changed: Vec<MemberRef> =
                        out.changed.iter().map(|u| MemberRef::User(*u)).collect();
                    member_event(tx, &m.group, "masters.added", &changed, json!({}), now).await?;
                    Ok(out)
                })
            })
            .await
    }

    pub async fn remove_masters(
        &self,
        caller: &Caller,
        tenant: TenantId,
        group: GroupId,
        users: Vec<UserKey>,
    ) -> Result<MastersOutcome> {
        let users = master_batch(users)?;
        let caller = caller.clone();
        self.store
            .write(move |tx| {
                let (caller, users) = (caller.clone(), users.clone());
                Box::pin(async move {
                    let m = manage_membership(tx, &caller, tenant, group).await?;
                    let mut out = MastersOutcome::default();
                    for u in &users {
                        if tx.user_member(tenant, group, *u).await? == Some(true) {
                            out.changed.push(*u);
                        } else {
                            out.unchanged.push(*u);
                        }
                    }
                    if out.changed.is_empty() {
                        return Err(Error::precondition(
                            Reason::NotAMaster,
                            "none of the named users is a Group Master",
                        ));
                    }
                    // R05: at least one Group Master stays.
                    if tx.count_masters(tenant, group).await? <= out.changed.len() as i64 {
                        return Err(Error::precondition(
                            Reason::LastMaster,
                            "a group keeps at least one Group Master",
                        ));
                    }
                    for u in &out.changed {
                        tx.set_master(tenant, group, *u, false).await?;
                    }
                    let now = now_micros();
                    tx.touch_group(tenant, group, now).await?;
                    let changed: Vec<MemberRef> =
                        out.changed.iter().map(|u| MemberRef::User(*u)).collect();
                    member_event(tx, &m.group, "masters.removed", &changed, json!({}), now).await?;
                    Ok(out)
                })
            })
            .await
    }

    pub async fn list_members(
        &self,
        caller: &Caller,
        tenant: TenantId,
        group: GroupId,
        page: PageRequest,
    ) -> Result<(Vec<DirectMember>, String)> {
        let scope = format!("members|{tenant}|{group}");
        let (size, after) = self.pager.start::<(MemberKind, i64, i64)>(&scope, &page)?;
        let caller = caller.clone();
        let rows = self
            .store
            .read(move |tx| {
                let caller = caller.clone();
                Box::pin(async move {
                    let actor = caller.resolve(tx).await?;
                    visible_group(tx, &actor, tenant, group, false).await?;
                    let rows = tx
                        .list_members(tenant, group, Page { after, limit: size })
                        .await?;
                    let keys: Vec<UserKey> = rows
                        .iter()
                        .filter(|r| r.kind == MemberKind::User)
                        .map(|r| UserKey {
                            tenant: r.tenant,
                            user: UserId(r.id),
                        })
                        .collect();
                    let names: std::collections::HashMap<UserKey, String> = tx
                        .get_users(&keys)
                        .await?
                        .into_iter()
                        .map(|u| (u.key, u.display_name))
                        .collect();
                    Ok(rows
                        .into_iter()
                        .map(|r| {
                            let member = member_of_row(&r);
                            let display_name = match member {
                                MemberRef::User(k) => names.get(&k).cloned().unwrap_or_default(),
                                _ => String::new(),
                            };
                            (
                                r,
                                DirectMember {
                                    member,
                                    master: r.is_master,
                                    display_name,
                                },
                            )
                        })
                        .collect::<Vec<_>>())
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
        group: GroupId,
        page: PageRequest,
    ) -> Result<(Vec<UserKey>, String)> {
        self.list_users_of(caller, tenant, group, page, UserList::Effective)
            .await
    }

    pub async fn list_masters(
        &self,
        caller: &Caller,
        tenant: TenantId,
        group: GroupId,
        page: PageRequest,
    ) -> Result<(Vec<UserKey>, String)> {
        self.list_users_of(caller, tenant, group, page, UserList::Masters)
            .await
    }

    async fn list_users_of(
        &self,
        caller: &Caller,
        tenant: TenantId,
        group: GroupId,
        page: PageRequest,
        list: UserList,
    ) -> Result<(Vec<UserKey>, String)> {
        let scope = format!("{list:?}|{tenant}|{group}");
        let (size, after) = self.pager.start::<UserKey>(&scope, &page)?;
        let caller = caller.clone();
        let rows = self
            .store
            .read(move |tx| {
                let caller = caller.clone();
                Box::pin(async move {
                    let actor = caller.resolve(tx).await?;
                    visible_group(tx, &actor, tenant, group, false).await?;
                    let page = Page { after, limit: size };
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
        group: GroupId,
        user: UserKey,
    ) -> Result<Membership> {
        let caller = caller.clone();
        self.store
            .read(move |tx| {
                let caller = caller.clone();
                Box::pin(async move {
                    let actor = caller.resolve(tx).await?;
                    visible_group(tx, &actor, tenant, group, false).await?;
                    let direct = tx.user_member(tenant, group, user).await?;
                    let member =
                        direct.is_some() || tx.is_effective_member(tenant, group, user).await?;
                    Ok(Membership {
                        member,
                        master: direct == Some(true),
                        direct: direct.is_some(),
                    })
                })
            })
            .await
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
        let caller = caller.clone();
        let (rows, last) = self
            .store
            .read(move |tx| {
                let caller = caller.clone();
                Box::pin(async move {
                    let actor = caller.resolve(tx).await?;
                    // R24: a caller asks about users of its own tenant only.
                    if user.tenant != actor.tenant() || tx.get_user(user).await?.is_none() {
                        return Err(Error::NotFound("user"));
                    }
                    let after = after.map(|(t, g)| (TenantId(t), GroupId(g)));
                    let scanned = tx.groups_of_user(user, Page { after, limit: size }).await?;
                    let last = if scanned.len() as i64 == size {
                        scanned.last().map(|(g, _)| (g.tenant.0, g.id.0))
                    } else {
                        None
                    };
                    let mut out = Vec::with_capacity(scanned.len());
                    for (group, direct) in scanned {
                        if super::groups::can_see(tx, &actor, &group).await? {
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

    /// R17, R23: members cannot leave by themselves.
    pub async fn leave(&self, caller: &Caller, tenant: TenantId, group: GroupId) -> Result<()> {
        let caller = caller.clone();
        self.store
            .read(move |tx| {
                let caller = caller.clone();
                Box::pin(async move {
                    let actor = caller.resolve(tx).await?;
                    let g = visible_group(tx, &actor, tenant, group, false).await?;
                    let Some(user) = actor.user_key() else {
                        return Err(Error::permission(Reason::UserCallerRequired, "only a user can leave a group"));
                    };
                    if tx.is_effective_member(tenant, group, user).await? {
                        return Err(Error::precondition(
                            Reason::MembersCannotLeave,
                            "members cannot leave a group by themselves; a Group Master or an admin removes them",
                        ));
                    }
                    Err(Error::precondition(Reason::NotAMember, format!("the caller is not a member of {}", g.resource_name())))
                })
            })
            .await
    }
}

fn master_batch(mut users: Vec<UserKey>) -> Result<Vec<UserKey>> {
    let mut v = Violations::default();
    v.check(!users.is_empty(), "users", || {
        "name at least one user".into()
    });
    v.check(users.len() <= MAX_BATCH, "users", || {
        format!("at most {MAX_BATCH} users in one call")
    });
    v.finish()?;
    users.sort();
    users.dedup();
    Ok(users)
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

/// Removes direct members; R05 holds (removing the last Group Master fails). Returns what was
/// removed and what was not a member.
pub(crate) async fn remove_members_in(
    tx: &mut dyn Tx,
    group: &Group,
    members: &[MemberRef],
    _now: i64,
) -> Result<RemoveOutcome> {
    let tenant = group.tenant;
    let mut out = RemoveOutcome::default();
    let mut masters_removed = 0;
    let mut present = Vec::new();
    for m in members {
        let is_member = match m {
            MemberRef::User(u) => match tx.user_member(tenant, group.id, *u).await? {
                Some(is_master) => {
                    masters_removed += i64::from(is_master);
                    true
                }
                None => false,
            },
            MemberRef::Team(t) => tx.has_team_member(tenant, group.id, *t).await?,
            MemberRef::Group(g) => tx.has_group_member(tenant, group.id, *g).await?,
        };
        if is_member {
            present.push(*m);
        } else {
            out.not_members.push(*m);
        }
    }
    if masters_removed > 0 && tx.count_masters(tenant, group.id).await? <= masters_removed {
        return Err(Error::precondition(
            Reason::LastMaster,
            "a group keeps at least one Group Master",
        ));
    }
    let mut released = Vec::new();
    for m in &present {
        match m {
            MemberRef::User(u) => {
                tx.delete_user_member(tenant, group.id, *u).await?;
                released.push(*u);
            }
            MemberRef::Team(t) => {
                tx.delete_team_member(tenant, group.id, *t).await?;
            }
            MemberRef::Group(g) => {
                tx.delete_group_member(tenant, group.id, *g).await?;
            }
        }
    }
    tx.release_user_group_slots(&released).await?;
    out.removed = present;
    Ok(out)
}

/// A user leaves every group they are a direct member of, because the directory deleted
/// them (or, for external groups, revoked their permission). Never fails on R05: where they
/// were the last Group Master, the member of the owning tenant who joined first (and, for an
/// external group, has the external permission) becomes master; if there is none the group
/// has no master until an admin names one. The event says which.
pub(crate) async fn remove_user_everywhere(
    tx: &mut dyn Tx,
    user: UserKey,
    only_external: bool,
    cause: &str,
    now: i64,
) -> Result<()> {
    for (tenant, group_id, _) in tx.direct_groups_of_user(user).await? {
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
            successor = tx
                .earliest_member(
                    tenant,
                    group_id,
                    tenant,
                    user,
                    group.kind == GroupKind::External,
                )
                .await?;
            if let Some(s) = successor {
                tx.set_master(tenant, group_id, s, true).await?;
            }
        }
        tx.delete_user_member(tenant, group_id, user).await?;
        tx.release_user_group_slots(&[user]).await?;
        tx.touch_group(tenant, group_id, now).await?;
        let without_master =
            is_master && successor.is_none() && tx.count_masters(tenant, group_id).await? == 0;
        member_event(
            tx,
            &group,
            "members.removed",
            &[MemberRef::User(user)],
            json!({
                "cause": cause,
                "last_master_replaced_by": successor,
                "without_master": without_master,
            }),
            now,
        )
        .await?;
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
    // The recipients are resolved before the team's members go.
    for group_id in tx.groups_with_team(tenant, team).await? {
        let Some(group) = tx.lock_group(tenant, group_id).await? else {
            continue;
        };
        let notify = if group.notify_all_members {
            recipients(tx, &group, &[MemberRef::Team(team)]).await?
        } else {
            Vec::new()
        };
        tx.delete_team_member(tenant, group_id, team).await?;
        tx.touch_group(tenant, group_id, now).await?;
        tx.insert_event(&group_event(
            &group,
            "members.removed",
            json!({
                "group": group.resource_name(),
                "members": [MemberRef::Team(team)],
                "notify": notify,
                "detail": {"cause": "team_deleted"},
            }),
            now,
        ))
        .await?;
    }
    Ok(())
}
