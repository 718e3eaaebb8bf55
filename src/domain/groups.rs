//! Groups: create, read, delete. R01 (names), R02 (sizes of the fields), R04 (who may
//! create), R12 (deletion reaches every member company and purges the group's data).

use std::sync::Arc;

use serde::Serialize;

use super::access::{Lock, Managed, group_for_caller, group_not_found, may_delete, visible_group};
use super::cache::{Answer, Key};
use super::caller::{Actor, Caller};
use super::error::{Error, Reason, Result, Violations};
use super::events::{EventKind, Excluded, GroupCreated, GroupDeleted, Origin, emit};
use super::idempotency::{self, RequestKey};
use super::limits::{MAX_INITIAL_MEMBERS, MAX_REQUEST_ID_CHARS};
use super::members::{Admission, add_members_in, with_keyed_groups};
use super::model::*;
use super::names::{TenantName, external_key_problem};
use super::operation::Operation;
use super::repo::Tx;
use super::service::Service;
use super::text;

pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_DESCRIPTION_CHARS: usize = 300;
pub const MAX_PHOTO_URI_CHARS: usize = 2_000;

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
    /// Nested groups named by external key.
    pub member_keys: Vec<String>,
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
        !text::is_blank(&spec.display_name),
        &field("display_name"),
        || "is required (white space and invisible characters alone are no name)".into(),
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
    if let Some(problem) = spec.external_key.as_deref().and_then(external_key_problem) {
        v.add(field("external_key"), problem);
    }
    // R08 (features need message) is a rule on the stored group, checked after an update's
    // mask is applied: see settings::check_settings.
    if let Some(list) = &spec.mailing_list {
        super::settings::validate_mailing_list(list, prefix, v);
    }
}

fn fingerprint(caller: &Caller, cmd: &CreateGroup) -> String {
    let content = format!(
        "{:?}|{:?}|{}",
        cmd.spec.kind,
        cmd.spec.features,
        serde_json::to_string(cmd).unwrap_or_default()
    );
    idempotency::fingerprint("create", caller, &content)
}

fn validate_create(cmd: &CreateGroup) -> Result<()> {
    let mut v = Violations::default();
    validate_spec(&cmd.spec, "group.", &mut v);
    v.check(!cmd.masters.is_empty(), "master_user_ids", || {
        "name at least one Group Master".into()
    });
    v.check(
        cmd.masters.len() + cmd.members.len() + cmd.member_keys.len() <= MAX_INITIAL_MEMBERS,
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
    v.finish()
}

impl Service {
    /// Creates a group (R01-R04). All or nothing: the group, its masters and members, the quota
    /// counters and the event are written in one transaction.
    pub async fn create_group(&self, caller: &Caller, mut cmd: CreateGroup) -> Result<Created> {
        validate_create(&cmd)?;
        super::settings::normalize_mailing_list(&mut cmd.spec.mailing_list);
        cmd.masters.sort();
        cmd.masters.dedup();
        cmd.members.sort();
        cmd.members.dedup();
        let fingerprint = fingerprint(caller, &cmd);
        let args = (cmd, fingerprint);
        self.write(
            Operation::CreateGroup,
            caller,
            args,
            |tx, actor, (cmd, fingerprint)| {
                Box::pin(async move { create_in(tx, actor, cmd, fingerprint).await })
            },
        )
        .await
    }

    pub async fn get_group(
        &self,
        caller: &Caller,
        tenant: TenantId,
        id: GroupRef,
    ) -> Result<Group> {
        let key = Key::Group {
            caller: caller.clone(),
            tenant,
            id: id.clone(),
        };
        let read = self.read_resolving(Operation::GetGroup, caller, id, |tx, caller, id| {
            Box::pin(async move {
                let mut group = group_for_caller(tx, caller, tenant, id).await?;
                tx.load_mailing_list(&mut group).await?;
                Ok(Arc::new(group))
            })
        });
        let to = |a| match a {
            Answer::Group(g) => Some(g),
            _ => None,
        };
        let group = self
            .cached(key, to, |g| Answer::Group(g.clone()), read)
            .await?;
        Ok(Arc::unwrap_or_clone(group))
    }

    /// Deletes a group with all its data (R12): admins of the owning tenant, and for an external
    /// group its Group Masters from any tenant (`access::may_delete`).
    pub async fn delete_group(
        &self,
        caller: &Caller,
        tenant: TenantId,
        id: GroupRef,
        etag: Option<String>,
    ) -> Result<()> {
        self.write(
            Operation::DeleteGroup,
            caller,
            (id, etag),
            |tx, actor, (id, etag)| {
                Box::pin(async move {
                    let group = visible_group(tx, actor, tenant, id, Lock::ForUpdate).await?;
                    if !may_delete(tx, actor, &group).await? {
                        return Err(Error::permission(
                            Reason::NotGroupManager,
                            "only admins of the owning tenant (and, for an external group, its \
                         Group Masters) may delete it",
                        ));
                    }
                    check_etag(&group, etag.as_deref())?;
                    delete_in(tx, &group).await
                })
            },
        )
        .await
    }
}

/// AIP-154: a given etag must match the group as stored.
pub(crate) fn check_etag(group: &Group, etag: Option<&str>) -> Result<()> {
    match etag {
        Some(etag) if etag != group.etag() => Err(Error::Aborted {
            reason: Reason::EtagMismatch,
            message: "the group changed since it was read".into(),
        }),
        _ => Ok(()),
    }
}

/// R12: the group goes with its members, counters, storage and data; one event names every
/// tenant it reached.
pub(crate) async fn delete_in(tx: &mut dyn Tx, group: &Group) -> Result<()> {
    let (tenant, id) = (group.tenant, group.id);
    let recipients = if group.notify_all_members {
        tx.effective_users(tenant, id).await?
    } else {
        Vec::new()
    };
    let now = tx.now();
    let parents = tx.parent_groups(tenant, &[id]).await?;
    for parent in &parents {
        tx.touch_group(tenant, *parent, now).await?;
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
    tx.add_storage(tenant, id, -group.storage_used_bytes)
        .await?;
    tx.delete_group(tenant, id).await?;
    let deleted = GroupDeleted {
        group: group.resource_name(),
        kind: group.kind.as_str(),
        purged: vec!["message", "note", "event", "task", "folder", "mailing_list"],
        tenants,
        removed_from: parents.iter().map(|p| group_name(tenant, *p)).collect(),
        notify: recipients.iter().map(|u| [u.tenant.0, u.user.0]).collect(),
    };
    emit(tx, group, EventKind::GroupDeleted(deleted), now).await
}

async fn create_in(
    tx: &mut dyn Tx,
    actor: &Actor,
    cmd: &CreateGroup,
    fingerprint: &str,
) -> Result<Created> {
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
    // R06: what UpdateGroup lets only admins change, only admins set at creation.
    if !actor.is_admin_of(tenant.id) && !super::settings::admin_fields_set(&cmd.spec).is_empty() {
        return Err(super::settings::fields_refused());
    }
    let masters: Vec<UserKey> = cmd
        .masters
        .iter()
        .map(|u| UserKey {
            tenant: tenant.id,
            user: *u,
        })
        .collect();
    let request = cmd
        .request_id
        .as_deref()
        .map(|id| RequestKey { id, fingerprint });
    let members = with_keyed_groups(tx, actor, tenant.id, &cmd.members, &cmd.member_keys).await?;
    let new = NewGroup {
        by: actor,
        tenant: &tenant,
        spec: &cmd.spec,
        masters: &masters,
        members: &members,
        request,
        origin: Origin::Created {},
    };
    insert_new_group(tx, new).await
}

/// A new group and what was left out of it (R14).
#[derive(Clone, Debug)]
pub struct Created {
    pub group: Group,
    pub excluded: Vec<(UserKey, Reason)>,
}

/// A group to insert once the caller's right to create it is settled.
pub(crate) struct NewGroup<'a> {
    /// The creator, whose right to create is settled.
    pub by: &'a Actor,
    pub tenant: &'a Tenant,
    pub spec: &'a GroupSpec,
    pub masters: &'a [UserKey],
    pub members: &'a [MemberRef],
    pub request: Option<RequestKey<'a>>,
    pub origin: Origin,
}

/// Creates a group: request-id replay, R13, the tenant quota (R03), the row, first masters
/// and members, settings, the event.
pub(crate) async fn insert_new_group(tx: &mut dyn Tx, new: NewGroup<'_>) -> Result<Created> {
    let (tenant, spec) = (new.tenant, new.spec);
    let now = tx.now();
    let id = GroupId(next_id());
    if let Some(key) = new.request
        && let Some(first) = idempotency::claim_create(tx, tenant.id, key, id, now).await?
    {
        let group = tx
            .get_group(tenant.id, first)
            .await?
            .ok_or_else(group_not_found)?;
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
    let group = spec.new_group(tenant.id, id, now);
    tx.insert_group(&group).await?;
    // The caller's right to create is settled: that is the right to name the first members.
    let managed = Managed {
        group: group.clone(),
        by: new.by.clone(),
    };
    let added = add_members_in(
        tx,
        &managed,
        new.members,
        new.masters,
        Admission::Initial,
        None,
        now,
    )
    .await?;
    super::settings::check_settings(tx, &group).await?;
    // A new group has no list rows to clear: only a list given at creation is written.
    if group.mailing_list.is_some() {
        tx.save_mailing_list(&group).await?;
    }
    let created = GroupCreated {
        group: group.resource_name(),
        kind: group.kind.as_str(),
        masters: new.masters.to_vec(),
        members: added.added,
        excluded: added
            .excluded
            .iter()
            .map(|(user, r)| Excluded {
                user: *user,
                reason: r.as_str(),
            })
            .collect(),
        origin: new.origin,
    };
    // R03: the tenant's quota. Taken last: the conditional update holds the tenant's row
    // lock to the commit, and creates in one tenant queue on it.
    if !tx.take_group_slot(tenant.id).await? {
        return Err(Error::QuotaExceeded {
            reason: Reason::TenantGroupLimit,
            subject: TenantName { tenant: tenant.id }.to_string(),
            description: format!(
                "the tenant holds its plan's limit of {} groups",
                tenant.plan.group_limit()
            ),
        });
    }
    emit(tx, &group, EventKind::GroupCreated(created), now).await?;
    Ok(Created {
        group,
        excluded: added.excluded,
    })
}

impl GroupSpec {
    /// A new group with these settings.
    fn new_group(&self, tenant: TenantId, id: GroupId, now: i64) -> Group {
        Group {
            tenant,
            id,
            display_name: self.display_name.clone(),
            description: self.description.clone(),
            photo_uri: self.photo_uri.clone(),
            kind: self.kind,
            is_public: self.is_public,
            features: self.features,
            notify_all_members: self.notify_all_members,
            master_manages_features: self.master_manages_features,
            external_key: self.external_key.clone(),
            mailing_list: self.mailing_list.clone(),
            storage_used_bytes: 0,
            version: 1,
            create_time: now,
            update_time: now,
            message_purge_time: None,
        }
    }
}
