//! Groups: create, read, delete (R01, R02, R03, R04, R07, R12).

use serde::Serialize;
use serde_json::json;

use super::caller::{Actor, Caller};
use super::error::{Error, Reason, Result, Violations};
use super::membership::{Admission, Managed, add_members_in};
use super::model::*;
use super::repo::Tx;
use super::{Service, group_event, request_fingerprint};

pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_DESCRIPTION_CHARS: usize = 300;
pub const MAX_PHOTO_URI_CHARS: usize = 2_000;
pub const MAX_EXTERNAL_KEY_CHARS: usize = 100;
pub const MAX_REQUEST_ID_CHARS: usize = 100;
/// Masters plus members named in one create.
pub const MAX_INITIAL_MEMBERS: usize = 100;
/// R03: a user is a direct member of at most this many groups.
pub const USER_GROUP_LIMIT: i64 = 2_000;

/// A member reference in a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
pub enum MemberRef {
    User(UserKey),
    Team(TeamId),
    Group(GroupId),
}

/// The settings a client gives a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupSpec {
    pub display_name: String,
    pub description: String,
    pub photo_uri: String,
    #[serde(skip)]
    pub kind: GroupKind,
    pub is_public: bool,
    #[serde(skip)]
    pub features: Features,
    pub notify_all_members: bool,
    pub master_manages_features: bool,
    pub external_key: Option<String>,
    pub mailing_list: Option<MailingList>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CreateGroup {
    pub tenant: TenantId,
    pub spec: GroupSpec,
    pub masters: Vec<UserId>,
    pub members: Vec<MemberRef>,
    #[serde(skip)]
    pub request_id: Option<String>,
}

/// R01 and R02, naming each bad field.
/// `prefix` is where the group's fields sit in the request (`group.` for CreateGroup and
/// UpdateGroup, empty for ConvertMessageRoom), so violations name the client's own field.
pub fn validate_spec(spec: &GroupSpec, prefix: &str, v: &mut Violations) {
    let field = |name: &str| format!("{prefix}{name}");
    let name_chars = spec.display_name.chars().count();
    v.check(
        name_chars > 0 && !spec.display_name.trim().is_empty(),
        &field("display_name"),
        || "is required".into(),
    );
    v.check(name_chars <= MAX_NAME_CHARS, &field("display_name"), || {
        format!("must be at most {MAX_NAME_CHARS} characters, is {name_chars}")
    });
    let desc_chars = spec.description.chars().count();
    v.check(
        desc_chars <= MAX_DESCRIPTION_CHARS,
        &field("description"),
        || format!("must be at most {MAX_DESCRIPTION_CHARS} characters, is {desc_chars}"),
    );
    v.check(
        spec.photo_uri.chars().count() <= MAX_PHOTO_URI_CHARS,
        &field("photo_uri"),
        || format!("must be at most {MAX_PHOTO_URI_CHARS} characters"),
    );
    if let Some(key) = &spec.external_key {
        v.check(
            !key.is_empty() && key.chars().count() <= MAX_EXTERNAL_KEY_CHARS,
            &field("external_key"),
            || format!("must be 1-{MAX_EXTERNAL_KEY_CHARS} characters"),
        );
    }
    for (name, s) in [
        (field("display_name"), &spec.display_name),
        (field("description"), &spec.description),
    ] {
        v.check(
            !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t'),
            &name,
            || "must not contain control characters".into(),
        );
    }
    // R08 (features need message) is a rule on the stored group, checked after an update's
    // mask is applied: see settings::check_settings.
    if let Some(list) = &spec.mailing_list {
        super::settings::validate_mailing_list(list, prefix, v);
    }
}

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

/// Admins of the owning tenant delete any group; the Group Masters of an external group may
/// delete it too (user guide), unless the tenant does not let masters manage groups.
async fn may_delete(tx: &mut dyn Tx, actor: &Actor, group: &Group) -> Result<bool> {
    Ok(match standing(tx, actor, group).await? {
        Standing::Admin => true,
        Standing::Master => group.kind == GroupKind::External,
        Standing::Other => false,
    })
}

fn not_found() -> Error {
    Error::NotFound("group")
}

/// R07: whether the actor may see the group at all. An invisible group answers as a missing one.
pub(crate) async fn can_see(tx: &mut dyn Tx, actor: &Actor, group: &Group) -> Result<bool> {
    if actor.is_admin_of(group.tenant) {
        return Ok(true);
    }
    let Some(user) = actor.user_key() else {
        return Ok(false);
    };
    if group.is_public && group.kind == GroupKind::Internal && user.tenant == group.tenant {
        return Ok(true);
    }
    tx.is_effective_member(group.tenant, group.id, user).await
}

/// Reads a group the actor may see, or NOT_FOUND.
pub(crate) async fn visible_group(
    tx: &mut dyn Tx,
    actor: &Actor,
    tenant: TenantId,
    id: GroupId,
    lock: bool,
) -> Result<Group> {
    let group = if lock {
        tx.lock_group(tenant, id).await?
    } else {
        tx.get_group(tenant, id).await?
    };
    let group = group.ok_or_else(not_found)?;
    if can_see(tx, actor, &group).await? {
        Ok(group)
    } else {
        Err(not_found())
    }
}

fn fingerprint(caller: &Caller, cmd: &CreateGroup) -> String {
    let content = format!(
        "{:?}|{:?}|{}",
        cmd.spec.kind,
        cmd.spec.features,
        serde_json::to_string(cmd).unwrap_or_default()
    );
    request_fingerprint("create", caller, &content)
}

impl Service {
    /// Creates a group (R01-R04). All or nothing: the group, its masters and members, the quota
    /// counters and the event are written in one transaction.
    pub async fn create_group(&self, caller: &Caller, mut cmd: CreateGroup) -> Result<Created> {
        let mut v = Violations::default();
        validate_spec(&cmd.spec, "group.", &mut v);
        v.check(!cmd.masters.is_empty(), "master_user_ids", || {
            "name at least one Group Master".into()
        });
        v.check(
            cmd.masters.len() + cmd.members.len() <= MAX_INITIAL_MEMBERS,
            "members",
            || format!("at most {MAX_INITIAL_MEMBERS} masters and members in one create"),
        );
        if let Some(id) = &cmd.request_id {
            v.check(
                id.chars().count() <= MAX_REQUEST_ID_CHARS,
                "request_id",
                || format!("must be at most {MAX_REQUEST_ID_CHARS} characters"),
            );
        }
        for m in &cmd.members {
            if let MemberRef::User(k) = m {
                v.check(k.tenant == cmd.tenant, "members", || {
                    format!("user {} is not a user of tenant {}", k.user, cmd.tenant)
                });
            }
        }
        v.finish()?;
        super::settings::normalize_mailing_list(&mut cmd.spec.mailing_list);
        cmd.masters.sort();
        cmd.masters.dedup();
        cmd.members.sort();
        cmd.members.dedup();
        let fingerprint = fingerprint(caller, &cmd);
        let caller = caller.clone();
        self.store
            .write(move |tx| {
                let (cmd, caller, fingerprint) = (cmd.clone(), caller.clone(), fingerprint.clone());
                Box::pin(async move { create_in(tx, &caller, &cmd, &fingerprint).await })
            })
            .await
    }

    pub async fn get_group(&self, caller: &Caller, tenant: TenantId, id: GroupId) -> Result<Group> {
        let caller = caller.clone();
        self.store
            .read(move |tx| {
                let caller = caller.clone();
                Box::pin(async move {
                    let actor = caller.resolve(tx).await?;
                    let mut group = visible_group(tx, &actor, tenant, id, false).await?;
                    tx.load_mailing_list(&mut group).await?;
                    Ok(group)
                })
            })
            .await
    }

    /// Deletes a group with all its data (R12). Only admins of the owning tenant may.
    pub async fn delete_group(
        &self,
        caller: &Caller,
        tenant: TenantId,
        id: GroupId,
        etag: Option<String>,
    ) -> Result<()> {
        let caller = caller.clone();
        self.store
            .write(move |tx| {
                let (caller, etag) = (caller.clone(), etag.clone());
                Box::pin(async move {
                    let actor = caller.resolve(tx).await?;
                    let group = visible_group(tx, &actor, tenant, id, true).await?;
                    if !may_delete(tx, &actor, &group).await? {
                        return Err(Error::permission(
                            Reason::NotGroupManager,
                            "only admins of the owning tenant (and, for an external group, its Group Masters) may delete it",
                        ));
                    }
                    if let Some(etag) = etag
                        && etag != group.etag() {
                            return Err(Error::Aborted {
                                reason: Reason::EtagMismatch,
                                message: "the group changed since it was read".into(),
                            });
                        }
                    let recipients = if group.notify_all_members {
                        tx.effective_users(tenant, id).await?
                    } else {
                        Vec::new()
                    };
                    let parents = tx.parent_groups(tenant, &[id]).await?;
                    for parent in &parents {
                        tx.touch_group(tenant, *parent, now_micros()).await?;
                    }
                    let direct = tx.direct_members(tenant, id).await?;
                    let users: Vec<UserKey> = direct.users.iter().map(|(k, _)| *k).collect();
                    // R12: an external group's deletion reaches every member company at once.
                    let mut tenants: Vec<i64> = users.iter().map(|u| u.tenant.0).chain([tenant.0]).collect();
                    tenants.sort();
                    tenants.dedup();
                    tx.release_user_group_slots(&users).await?;
                    tx.release_group_slot(tenant).await?;
                    // The group's storage goes back to the tenant that was charged (R19).
                    tx.add_storage(tenant, id, -group.storage_used_bytes).await?;
                    tx.delete_group(tenant, id).await?;
                    let now = now_micros();
                    tx.insert_event(&group_event(
                        &group,
                        "group.deleted",
                        json!({
                            "group": group.resource_name(),
                            "kind": group.kind.as_str(),
                            "purged": ["message", "note", "event", "task", "folder", "mailing_list"],
                            "tenants": tenants,
                            "removed_from": parents.iter().map(|p| group_name(tenant, *p)).collect::<Vec<_>>(),
                            "notify": recipients.iter().map(|u| [u.tenant.0, u.user.0]).collect::<Vec<_>>(),
                        }),
                        now,
                    ))
                    .await?;
                    Ok(())
                })
            })
            .await
    }
}

async fn create_in(
    tx: &mut dyn Tx,
    caller: &Caller,
    cmd: &CreateGroup,
    fingerprint: &str,
) -> Result<Created> {
    let actor = caller.resolve(tx).await?;
    if actor.tenant() != cmd.tenant {
        return Err(Error::NotFound("tenant"));
    }
    let tenant = tx
        .get_tenant(cmd.tenant)
        .await?
        .ok_or(Error::NotFound("tenant"))?;
    // R04: who may create.
    if !actor.is_admin_of(tenant.id) && tenant.group_creation == GroupCreation::AdminsOnly {
        return Err(Error::permission(
            Reason::GroupCreationRestricted,
            "only admins may create groups in this tenant",
        ));
    }
    let masters: Vec<UserKey> = cmd
        .masters
        .iter()
        .map(|u| UserKey {
            tenant: tenant.id,
            user: *u,
        })
        .collect();
    let request = cmd.request_id.as_deref().map(|id| (id, fingerprint));
    insert_new_group(
        tx,
        &tenant,
        &cmd.spec,
        &masters,
        &cmd.members,
        request,
        json!({}),
    )
    .await
}

/// A new group and what was left out of it (R14).
#[derive(Clone, Debug)]
pub struct Created {
    pub group: Group,
    pub excluded: Vec<(UserKey, Reason)>,
}

/// Creates a group once the caller's right to do so is settled: request-id replay, R13,
/// the tenant quota (R03), the row, first masters and members, settings, the event.
pub(crate) async fn insert_new_group(
    tx: &mut dyn Tx,
    tenant: &Tenant,
    spec: &GroupSpec,
    masters: &[UserKey],
    members: &[MemberRef],
    request: Option<(&str, &str)>,
    origin: serde_json::Value,
) -> Result<Created> {
    let now = now_micros();
    let id = GroupId(next_id());
    if let Some((request_id, fingerprint)) = request
        && !tx
            .insert_create_request(tenant.id, request_id, fingerprint, id, now)
            .await?
    {
        let (first_fingerprint, group) = tx
            .get_create_request(tenant.id, request_id)
            .await?
            .ok_or_else(|| Error::Retry("request id claimed by a rolled back call".into()))?;
        if first_fingerprint != fingerprint {
            return Err(Error::InvalidArgumentReason {
                reason: Reason::RequestIdReused,
                field: "request_id",
                description: "this request_id was used for a different request".into(),
            });
        }
        let group = tx
            .get_group(tenant.id, group)
            .await?
            .ok_or_else(not_found)?;
        return Ok(Created {
            group,
            excluded: Vec::new(),
        });
    }
    // R13: external groups need Core.
    if spec.kind == GroupKind::External && !tenant.core_enabled {
        return Err(Error::precondition(
            Reason::CoreRequired,
            "external groups need NAVER WORKS Core",
        ));
    }
    // R03: the tenant's quota, taken under the tenant's row lock.
    if !tx.take_group_slot(tenant.id).await? {
        return Err(Error::QuotaExceeded {
            reason: Reason::TenantGroupLimit,
            subject: format!("tenants/{}", tenant.id),
            description: format!(
                "the tenant holds its plan's limit of {} groups",
                tenant.plan.group_limit()
            ),
        });
    }
    let group = Group {
        tenant: tenant.id,
        id,
        display_name: spec.display_name.clone(),
        description: spec.description.clone(),
        photo_uri: spec.photo_uri.clone(),
        kind: spec.kind,
        is_public: spec.is_public,
        features: spec.features,
        notify_all_members: spec.notify_all_members,
        master_manages_features: spec.master_manages_features,
        external_key: spec.external_key.clone(),
        mailing_list: spec.mailing_list.clone(),
        storage_used_bytes: 0,
        version: 1,
        create_time: now,
        update_time: now,
    };
    tx.insert_group(&group).await?;
    // The caller's right to create is settled: that is the right to name the first members.
    let managed = Managed {
        group: group.clone(),
        by: None,
    };
    let added = add_members_in(tx, &managed, members, masters, Admission::Initial, now).await?;
    super::settings::check_settings(tx, &group).await?;
    tx.save_mailing_list(&group).await?;
    tx.insert_event(&group_event(
        &group,
        "group.created",
        json!({
            "group": group.resource_name(),
            "kind": group.kind.as_str(),
            "masters": masters,
            "members": added.added,
            "excluded": added.excluded.iter().map(|(u, r)| json!({"user": u, "reason": r.as_str()})).collect::<Vec<_>>(),
            "origin": origin,
        }),
        now,
    ))
    .await?;
    Ok(Created {
        group,
        excluded: added.excluded,
    })
}

/// R21: adding `member` into `parent` must not close a cycle nor make a chain of nested
/// groups longer than `MAX_NESTING` edges. Both walks are level by level (one query a level,
/// de-duplicated), so their cost grows with the depth and width of the two neighbourhoods,
/// never with the size of the tenant.
pub(crate) async fn check_nesting(
    tx: &mut dyn Tx,
    tenant: TenantId,
    parent: GroupId,
    member: GroupId,
) -> Result<()> {
    if parent == member {
        return Err(Error::precondition(
            Reason::MembershipCycle,
            "a group cannot contain itself",
        ));
    }
    // Longest chain below `member`, and above `parent`. Levels are de-duplicated within a
    // level only, so a group reached by a short and a long path counts at the long one.
    let mut below = 0;
    let mut frontier = vec![member];
    while below <= MAX_NESTING {
        let next = tx.child_groups(tenant, &frontier).await?;
        if next.contains(&parent) {
            return Err(Error::precondition(
                Reason::MembershipCycle,
                "the group is already contained in the member group",
            ));
        }
        if next.is_empty() {
            break;
        }
        below += 1;
        frontier = next;
    }
    let mut above = 0;
    let mut frontier = vec![parent];
    while above <= MAX_NESTING {
        let next = tx.parent_groups(tenant, &frontier).await?;
        if next.is_empty() {
            break;
        }
        above += 1;
        frontier = next;
    }
    if above + 1 + below > MAX_NESTING {
        return Err(Error::precondition(
            Reason::NestingTooDeep,
            format!("nested groups may be at most {MAX_NESTING} levels deep"),
        ));
    }
    Ok(())
}

/// R21: the longest chain of group-in-group edges.
pub const MAX_NESTING: usize = 10;
