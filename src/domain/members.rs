//! Direct members of a group: AddMembers and RemoveMembers (R06 through `access`), R03's
//! per-user limit under the user's row lock, the external-group admission rules R13, R14
//! and R15, and R11's recipients of a membership change.

use std::collections::{BTreeSet, HashMap};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::access::{Managed, manage_membership, visible_member_group};
use super::caller::{Actor, Caller};
use super::error::{Error, Reason, Result, Violations};
use super::events::{ChangeDetail, EventKind, MemberChange, emit};
use super::idempotency::{self, RequestKey};
use super::limits::{MAX_BATCH, MAX_REQUEST_ID_CHARS, USER_GROUP_LIMIT};
use super::masters::keep_a_master;
use super::model::*;
use super::names::{TeamName, UserName};
use super::nesting::check_nesting;
use super::operation::Operation;
use super::repo::Tx;
use super::service::Service;
use super::text::quote;

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

/// A membership batch call.
#[derive(Clone, Debug, Serialize)]
pub struct MemberBatch {
    pub tenant: TenantId,
    pub group: GroupRef,
    pub members: Vec<MemberRef>,
    /// Nested groups named by external key.
    pub group_keys: Vec<String>,
    /// AddMembers: when the members it adds stop counting (microseconds); `None`: never.
    pub expire_time: Option<i64>,
    #[serde(skip)]
    pub request_id: Option<String>,
}

impl MemberBatch {
    pub(crate) fn validate(&mut self) -> Result<()> {
        let mut v = Violations::default();
        let named = self.members.len() + self.group_keys.len();
        v.check(named > 0, "members", || "name at least one member".into());
        v.check(named <= MAX_BATCH, "members", || {
            format!("at most {MAX_BATCH} members in one call")
        });
        if let Some(id) = &self.request_id {
            v.check(
                id.chars().count() <= MAX_REQUEST_ID_CHARS,
                "request_id",
                || format!("must be at most {MAX_REQUEST_ID_CHARS} characters"),
            );
        }
        v.finish()?;
        self.members.sort();
        self.members.dedup();
        self.group_keys.sort();
        self.group_keys.dedup();
        Ok(())
    }

    fn fingerprint(&self, caller: &Caller, method: &str) -> String {
        let content = serde_json::to_string(self).unwrap_or_default();
        idempotency::fingerprint(method, caller, &content)
    }

    fn request_key<'a>(&'a self, fingerprint: &'a str) -> Option<RequestKey<'a>> {
        self.request_id
            .as_deref()
            .map(|id| RequestKey { id, fingerprint })
    }
}

pub(crate) fn user_subject(u: UserKey) -> String {
    UserName::from(u).to_string()
}

/// The users a change of `members` concerns, for R11 notifications.
pub(crate) async fn recipients(
    tx: &mut dyn Tx,
    group: &Group,
    members: &[MemberRef],
) -> Result<Vec<UserKey>> {
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

/// A membership change as an event; with `notify_all_members` on, it names the users to
/// notify (R11).
pub(crate) async fn member_change(
    tx: &mut dyn Tx,
    group: &Group,
    members: &[MemberRef],
    detail: ChangeDetail,
) -> Result<MemberChange> {
    let notify = if group.notify_all_members {
        recipients(tx, group, members).await?
    } else {
        Vec::new()
    };
    Ok(MemberChange {
        group: group.resource_name(),
        members: members.to_vec(),
        notify,
        detail,
    })
}

/// Writes the event of a change a caller asked for.
pub(crate) async fn emit_change(
    tx: &mut dyn Tx,
    group: &Group,
    kind: fn(MemberChange) -> EventKind,
    members: &[MemberRef],
    now: i64,
) -> Result<()> {
    let change = member_change(tx, group, members, ChangeDetail::Requested {}).await?;
    emit(tx, group, kind(change), now).await
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

/// R13, R14: why a user cannot be in an external group, if they cannot.
pub(crate) fn excluded_reason(user: &User) -> Option<Reason> {
    if user.kind == UserKind::Line {
        Some(Reason::LineUserNotAllowed)
    } else if !user.external_messaging_allowed {
        Some(Reason::ExternalPermissionRequired)
    } else {
        None
    }
}

/// The members a call names, by kind, with the masters among the users.
struct Named {
    users: Vec<UserKey>,
    teams: Vec<TeamId>,
    groups: Vec<GroupId>,
}

impl Named {
    fn of(members: &[MemberRef], masters: &[UserKey]) -> Named {
        let mut named = Named {
            users: masters.to_vec(),
            teams: Vec::new(),
            groups: Vec::new(),
        };
        for m in members {
            match m {
                MemberRef::User(u) => named.users.push(*u),
                MemberRef::Team(t) => named.teams.push(*t),
                MemberRef::Group(g) => named.groups.push(*g),
            }
        }
        named.users.sort();
        named.users.dedup();
        named
    }
}

/// `members` with the nested groups named by external key added as ids, sorted and without
/// repeats. A key that names no group the actor may see (R07) is an unknown member, as an
/// unknown id is: a hidden group's key answers exactly as a key no group has.
pub(crate) async fn with_keyed_groups(
    tx: &mut dyn Tx,
    actor: &Actor,
    tenant: TenantId,
    members: &[MemberRef],
    keys: &[String],
) -> Result<Vec<MemberRef>> {
    let mut out = members.to_vec();
    for key in keys {
        let named = GroupRef::Key(key.clone());
        match visible_member_group(tx, actor, tenant, &named).await? {
            Some(group) => out.push(MemberRef::Group(group.id)),
            None => {
                let name = format!("tenants/{tenant}/groups/key:{key}");
                return Err(unknown(quote(&name)));
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn unknown(subject: String) -> Error {
    Error::precondition(Reason::UnknownMember, format!("{subject} does not exist"))
}

/// Every named member exists and may be a member of this kind of group; the users, read.
/// Users of another company than the adder's pass R15's contacts rule before anything about
/// them is read, and a nested group must be one the adder may see (R07): so the answer about
/// a user of another tenant, or a hidden group, never depends on whether it exists (R24).
async fn check_named(
    tx: &mut dyn Tx,
    m: &Managed,
    members: &[MemberRef],
    named: &Named,
    admission: Admission,
) -> Result<HashMap<UserKey, User>> {
    let group = &m.group;
    let tenant = group.tenant;
    if group.kind == GroupKind::Internal {
        if let Some(u) = named.users.iter().find(|u| u.tenant != tenant) {
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
    if let Admission::Added = admission {
        for u in &named.users {
            check_contact(tx, m, *u).await?;
        }
    }
    let found: HashMap<UserKey, User> = tx
        .get_users(&named.users)
        .await?
        .into_iter()
        .map(|u| (u.key, u))
        .collect();
    if let Some(missing) = named.users.iter().find(|k| !found.contains_key(k)) {
        return Err(unknown(user_subject(*missing)));
    }
    let teams = tx.existing_teams(tenant, &named.teams).await?;
    if let Some(missing) = named.teams.iter().find(|t| !teams.contains(t)) {
        let team = TeamName {
            tenant,
            team: *missing,
        };
        return Err(unknown(team.to_string()));
    }
    let mut groups = Vec::with_capacity(named.groups.len());
    for g in &named.groups {
        match visible_member_group(tx, &m.by, tenant, &GroupRef::Id(*g)).await? {
            Some(group) => groups.push(group),
            None => return Err(unknown(group_name(tenant, *g))),
        }
    }
    check_nestable(tx, tenant, &groups).await?;
    Ok(found)
}

/// An external group inside another group would make its members from other companies
/// members of that group too (R24): only users join external groups, and external groups
/// join nothing. Takes the tenant's nesting lock (R21) before any group joins.
async fn check_nestable(tx: &mut dyn Tx, tenant: TenantId, groups: &[Group]) -> Result<()> {
    if groups.is_empty() {
        return Ok(());
    }
    tx.lock_nesting(tenant).await?;
    if let Some(g) = groups.iter().find(|g| g.kind == GroupKind::External) {
        return Err(Error::precondition(
            Reason::ExternalGroupNotNestable,
            format!(
                "{} is an external group; it cannot be a member of a group",
                g.resource_name()
            ),
        ));
    }
    Ok(())
}

/// R13, R14: which named users an external group admits; the ones left out at creation go
/// into `out.excluded`. (R15's contacts rule ran in `check_named`.)
fn admit(
    m: &Managed,
    found: &HashMap<UserKey, User>,
    masters: &BTreeSet<UserKey>,
    admission: Admission,
    out: &mut AddOutcome,
) -> Result<BTreeSet<UserKey>> {
    let group = &m.group;
    if group.kind == GroupKind::Internal {
        return Ok(found.keys().copied().collect());
    }
    let mut admitted = BTreeSet::new();
    let mut users: Vec<&User> = found.values().collect();
    users.sort_by_key(|u| u.key);
    for user in users {
        let u = user.key;
        if let Some(reason) = excluded_reason(user) {
            if matches!(admission, Admission::Initial) && !masters.contains(&u) {
                out.excluded.push((u, reason));
                continue;
            }
            return Err(Error::precondition(
                reason,
                format!("{} cannot be in an external group", user_subject(u)),
            ));
        }
        admitted.insert(u);
    }
    Ok(admitted)
}

/// R15: a user of another company than the adder's comes from the adder's contacts (a
/// service adds for its own tenant only), or is a member already. Decided from contacts and
/// member rows alone, never from the directory's users, so that a user of another tenant
/// who is neither gets this answer whether or not they exist (R24).
async fn check_contact(tx: &mut dyn Tx, m: &Managed, u: UserKey) -> Result<()> {
    let group = &m.group;
    let adder = m.by.user_key();
    let adder_tenant = adder.map_or(group.tenant, |a| a.tenant);
    if u.tenant == adder_tenant || tx.user_member(group.tenant, group.id, u).await?.is_some() {
        return Ok(());
    }
    let in_contacts = match adder {
        Some(a) => tx.has_contact(a, u).await?,
        None => false,
    };
    if in_contacts {
        Ok(())
    } else {
        Err(Error::precondition(
            Reason::NotInContacts,
            format!("{} is not in the adding master's contacts", user_subject(u)),
        ))
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
    expire_time: Option<i64>,
    now: i64,
) -> Result<AddOutcome> {
    let named = Named::of(members, masters);
    let found = check_named(tx, m, members, &named, admission).await?;
    let mut out = AddOutcome::default();
    let master_set: BTreeSet<UserKey> = masters.iter().copied().collect();
    let admitted = admit(m, &found, &master_set, admission, &mut out)?;
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
    // Initial members go into a group created by this transaction: none can be there yet.
    let fresh = matches!(admission, Admission::Initial);
    for member in all {
        let master = matches!(member, MemberRef::User(u) if master_set.contains(&u));
        // A Group Master never expires (R05 cannot be broken by the clock).
        let expires = if master { None } else { expire_time };
        if insert_member(tx, &m.group, member, (master, expires), fresh, now).await? {
            out.added.push(member);
        } else {
            out.already_present.push(member);
        }
    }
    Ok(out)
}

/// Inserts one member; false when it was present (a named master is promoted then). `fresh`:
/// the group was created by this transaction, so the member cannot be present.
async fn insert_member(
    tx: &mut dyn Tx,
    group: &Group,
    member: MemberRef,
    (master, expire_time): (bool, Option<i64>),
    fresh: bool,
    now: i64,
) -> Result<bool> {
    let (tenant, id) = (group.tenant, group.id);
    let external = group.kind == GroupKind::External;
    if let MemberRef::User(u) = member {
        if !fresh && let Some(is_master) = tx.user_member(tenant, id, u).await? {
            if master && !is_master {
                tx.set_master(tenant, id, u, true).await?;
            }
            return Ok(false);
        }
        // R03 (and R14 for external groups), under the user's row lock.
        if !tx
            .take_user_group_slot(u, USER_GROUP_LIMIT, external)
            .await?
        {
            return Err(slot_refused(tx, u, external).await);
        }
    } else if !fresh && tx.has_member(tenant, id, member).await? {
        return Ok(false);
    }
    if let MemberRef::Group(g) = member {
        check_nesting(tx, tenant, id, g).await?;
    }
    tx.insert_member(tenant, id, member, master, expire_time, now)
        .await?;
    Ok(true)
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
            Ok(None) => return unknown(user_subject(u)),
            Err(e) => return e,
        }
    }
    Error::QuotaExceeded {
        reason: Reason::UserGroupLimit,
        subject: user_subject(u),
        description: format!("the user is a direct member of {USER_GROUP_LIMIT} groups"),
    }
}

/// Removes direct members; R05 holds (removing the last Group Master fails). Returns what was
/// removed and what was not a member.
pub(crate) async fn remove_members_in(
    tx: &mut dyn Tx,
    group: &Group,
    members: &[MemberRef],
) -> Result<RemoveOutcome> {
    let (tenant, id) = (group.tenant, group.id);
    let mut out = RemoveOutcome::default();
    let mut masters_removed = 0;
    for m in members {
        let is_member = match m {
            MemberRef::User(u) => match tx.user_member(tenant, id, *u).await? {
                Some(is_master) => {
                    masters_removed += i64::from(is_master);
                    true
                }
                None => false,
            },
            _ => tx.has_member(tenant, id, *m).await?,
        };
        if is_member {
            out.removed.push(*m);
        } else {
            out.not_members.push(*m);
        }
    }
    keep_a_master(tx, tenant, id, masters_removed).await?;
    let mut released = Vec::new();
    for m in &out.removed {
        tx.delete_member(tenant, id, *m).await?;
        if let MemberRef::User(u) = m {
            released.push(*u);
        }
    }
    tx.release_user_group_slots(&released).await?;
    Ok(out)
}

/// A batch call after the R06 check and the request-id claim: the proof of the check, and
/// the answer of an earlier call with the same request id, if there was one.
async fn start_batch<T: DeserializeOwned>(
    tx: &mut dyn Tx,
    actor: &Actor,
    batch: &MemberBatch,
    key: Option<RequestKey<'_>>,
    now: i64,
) -> Result<(Managed, Option<T>)> {
    let m = manage_membership(tx, actor, batch.tenant, &batch.group).await?;
    let replay = idempotency::claim_batch(tx, batch.tenant, key, now).await?;
    Ok((m, replay))
}

/// The group changed: its etag, the event, and the answer kept for the request id.
async fn finish_batch<T: Serialize>(
    tx: &mut dyn Tx,
    group: &Group,
    change: (fn(MemberChange) -> EventKind, &[MemberRef]),
    key: Option<RequestKey<'_>>,
    answer: &T,
    now: i64,
) -> Result<()> {
    tx.touch_group(group.tenant, group.id, now).await?;
    emit_change(tx, group, change.0, change.1, now).await?;
    idempotency::save_batch(tx, group.tenant, key, answer).await
}

async fn add_batch(
    tx: &mut dyn Tx,
    actor: &Actor,
    batch: &MemberBatch,
    fp: &str,
) -> Result<AddOutcome> {
    let (key, now) = (batch.request_key(fp), tx.now());
    let (m, replay) = start_batch(tx, actor, batch, key, now).await?;
    if let Some(done) = replay {
        return Ok(done);
    }
    let members =
        with_keyed_groups(tx, actor, batch.tenant, &batch.members, &batch.group_keys).await?;
    let expire = batch.expire_time;
    super::expiry::check_expire_time(expire, now)?;
    let out = add_members_in(tx, &m, &members, &[], Admission::Added, expire, now).await?;
    if out.added.is_empty() {
        return Err(Error::AlreadyExists {
            reason: Reason::AlreadyMember,
            message: "every named member is already a member".into(),
        });
    }
    let change = (EventKind::MembersAdded as fn(_) -> _, out.added.as_slice());
    finish_batch(tx, &m.group, change, key, &out, now).await?;
    Ok(out)
}

async fn remove_batch(
    tx: &mut dyn Tx,
    actor: &Actor,
    batch: &MemberBatch,
    fp: &str,
) -> Result<RemoveOutcome> {
    let (key, now) = (batch.request_key(fp), tx.now());
    let (m, replay) = start_batch(tx, actor, batch, key, now).await?;
    if let Some(done) = replay {
        return Ok(done);
    }
    let members =
        with_keyed_groups(tx, actor, batch.tenant, &batch.members, &batch.group_keys).await?;
    let out = remove_members_in(tx, &m.group, &members).await?;
    if out.removed.is_empty() {
        return Err(Error::precondition(
            Reason::NotAMember,
            "none of the named members is a member",
        ));
    }
    let change = (
        EventKind::MembersRemoved as fn(_) -> _,
        out.removed.as_slice(),
    );
    finish_batch(tx, &m.group, change, key, &out, now).await?;
    Ok(out)
}

impl Service {
    pub async fn add_members(&self, caller: &Caller, mut batch: MemberBatch) -> Result<AddOutcome> {
        batch.validate()?;
        let fp = batch.fingerprint(caller, "add");
        self.write(
            Operation::AddMembers,
            caller,
            (batch, fp),
            |tx, actor, (b, fp)| Box::pin(add_batch(tx, actor, b, fp)),
        )
        .await
    }

    pub async fn remove_members(
        &self,
        caller: &Caller,
        mut batch: MemberBatch,
    ) -> Result<RemoveOutcome> {
        batch.validate()?;
        let fp = batch.fingerprint(caller, "remove");
        self.write(
            Operation::RemoveMembers,
            caller,
            (batch, fp),
            |tx, actor, (b, fp)| Box::pin(remove_batch(tx, actor, b, fp)),
        )
        .await
    }
}
