//! Proto messages to strict domain types (`TryFrom`, INVALID_ARGUMENT naming the field) and
//! back (`From`).

use tonic::Status;

use super::pb;
use super::status::to_status;
use crate::domain::error::{Error, Violations};
use crate::domain::external::{ConvertRoom, TenantUsage};
use crate::domain::groups::{CreateGroup, Created, GroupSpec, MemberRef};
use crate::domain::model::*;
use crate::domain::page::PageRequest;
use crate::domain::settings::{Field, UpdateGroup};

pub fn invalid(field: &str, description: impl Into<String>) -> Status {
    to_status(Error::invalid(field, description))
}

/// `tenants/{tenant}`.
pub fn parse_parent(field: &str, name: &str) -> Result<TenantId, Status> {
    let parts: Vec<&str> = name.split('/').collect();
    match parts.as_slice() {
        ["tenants", t] => Ok(TenantId(parse_id(field, t)?)),
        _ => Err(invalid(field, "must be tenants/{tenant}")),
    }
}

/// `tenants/{tenant}/groups/{group}`.
pub fn parse_group_name(field: &str, name: &str) -> Result<(TenantId, GroupId), Status> {
    let parts: Vec<&str> = name.split('/').collect();
    match parts.as_slice() {
        ["tenants", t, "groups", g] => {
            Ok((TenantId(parse_id(field, t)?), GroupId(parse_id(field, g)?)))
        }
        _ => Err(invalid(field, "must be tenants/{tenant}/groups/{group}")),
    }
}

fn parse_id(field: &str, s: &str) -> Result<i64, Status> {
    match s.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(invalid(field, format!("{s:?} is not a positive id"))),
    }
}

pub fn positive(field: &str, id: i64) -> Result<i64, Status> {
    if id > 0 {
        Ok(id)
    } else {
        Err(invalid(field, "must be a positive id"))
    }
}

fn timestamp(micros: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1000) as i32,
    }
}

pub fn page(size: i32, token: String) -> PageRequest {
    PageRequest { size, token }
}

// ---- directory ----

impl TryFrom<pb::Tenant> for Tenant {
    type Error = Status;
    fn try_from(t: pb::Tenant) -> Result<Self, Status> {
        let plan = match pb::Plan::try_from(t.plan) {
            Ok(pb::Plan::Free) => Plan::Free,
            Ok(pb::Plan::Paid) => Plan::Paid,
            _ => return Err(invalid("tenant.plan", "must be FREE or PAID")),
        };
        let group_creation = match pb::GroupCreation::try_from(t.group_creation) {
            Ok(pb::GroupCreation::AdminsOnly) => GroupCreation::AdminsOnly,
            Ok(pb::GroupCreation::AllMembers) => GroupCreation::AllMembers,
            _ => {
                return Err(invalid(
                    "tenant.group_creation",
                    "must be ADMINS_ONLY or ALL_MEMBERS",
                ));
            }
        };
        Ok(Tenant {
            id: TenantId(positive("tenant.id", t.id)?),
            display_name: t.display_name,
            plan,
            core_enabled: t.core_enabled,
            group_creation,
            masters_may_manage_settings: t.masters_may_manage_settings,
            storage_quota_bytes: t.storage_quota_bytes,
            storage_used_bytes: 0,
            group_count: 0,
        })
    }
}

impl From<Tenant> for pb::Tenant {
    fn from(t: Tenant) -> Self {
        pb::Tenant {
            id: t.id.0,
            display_name: t.display_name,
            plan: match t.plan {
                Plan::Free => pb::Plan::Free,
                Plan::Paid => pb::Plan::Paid,
            } as i32,
            core_enabled: t.core_enabled,
            group_creation: match t.group_creation {
                GroupCreation::AdminsOnly => pb::GroupCreation::AdminsOnly,
                GroupCreation::AllMembers => pb::GroupCreation::AllMembers,
            } as i32,
            masters_may_manage_settings: t.masters_may_manage_settings,
            storage_quota_bytes: t.storage_quota_bytes,
            storage_used_bytes: t.storage_used_bytes,
            group_count: t.group_count,
        }
    }
}

impl TryFrom<pb::User> for User {
    type Error = Status;
    fn try_from(u: pb::User) -> Result<Self, Status> {
        let kind = match pb::UserKind::try_from(u.kind) {
            Ok(pb::UserKind::Works | pb::UserKind::Unspecified) => UserKind::Works,
            Ok(pb::UserKind::Line) => UserKind::Line,
            Err(_) => return Err(invalid("user.kind", "must be WORKS or LINE")),
        };
        Ok(User {
            key: UserKey {
                tenant: TenantId(positive("user.tenant_id", u.tenant_id)?),
                user: UserId(positive("user.id", u.id)?),
            },
            email: u.email,
            display_name: u.display_name,
            is_admin: u.is_admin,
            external_messaging_allowed: u.external_messaging_allowed,
            kind,
        })
    }
}

impl From<User> for pb::User {
    fn from(u: User) -> Self {
        pb::User {
            tenant_id: u.key.tenant.0,
            id: u.key.user.0,
            email: u.email,
            display_name: u.display_name,
            is_admin: u.is_admin,
            external_messaging_allowed: u.external_messaging_allowed,
            kind: match u.kind {
                UserKind::Works => pb::UserKind::Works,
                UserKind::Line => pb::UserKind::Line,
            } as i32,
        }
    }
}

impl TryFrom<pb::Team> for Team {
    type Error = Status;
    fn try_from(t: pb::Team) -> Result<Self, Status> {
        let mut members = Vec::with_capacity(t.member_user_ids.len());
        for id in t.member_user_ids {
            members.push(UserId(positive("team.member_user_ids", id)?));
        }
        Ok(Team {
            tenant: TenantId(positive("team.tenant_id", t.tenant_id)?),
            id: TeamId(positive("team.id", t.id)?),
            display_name: t.display_name,
            email: t.email,
            members,
        })
    }
}

impl From<Team> for pb::Team {
    fn from(t: Team) -> Self {
        pb::Team {
            tenant_id: t.tenant.0,
            id: t.id.0,
            display_name: t.display_name,
            email: t.email,
            member_user_ids: t.members.into_iter().map(|u| u.0).collect(),
        }
    }
}

impl TryFrom<pb::Contact> for Contact {
    type Error = Status;
    fn try_from(c: pb::Contact) -> Result<Self, Status> {
        Ok(Contact {
            owner: UserKey {
                tenant: TenantId(positive("contact.tenant_id", c.tenant_id)?),
                user: UserId(positive("contact.user_id", c.user_id)?),
            },
            contact: UserKey {
                tenant: TenantId(positive("contact.contact_tenant_id", c.contact_tenant_id)?),
                user: UserId(positive("contact.contact_user_id", c.contact_user_id)?),
            },
        })
    }
}

impl From<Contact> for pb::Contact {
    fn from(c: Contact) -> Self {
        pb::Contact {
            tenant_id: c.owner.tenant.0,
            user_id: c.owner.user.0,
            contact_tenant_id: c.contact.tenant.0,
            contact_user_id: c.contact.user.0,
        }
    }
}

impl TryFrom<pb::MessageRoom> for MessageRoom {
    type Error = Status;
    fn try_from(r: pb::MessageRoom) -> Result<Self, Status> {
        let mut members = Vec::with_capacity(r.members.len());
        for m in r.members {
            members.push(UserKey {
                tenant: TenantId(positive("room.members.tenant_id", m.tenant_id)?),
                user: UserId(positive("room.members.user_id", m.user_id)?),
            });
        }
        Ok(MessageRoom {
            tenant: TenantId(positive("room.tenant_id", r.tenant_id)?),
            id: RoomId(positive("room.id", r.id)?),
            display_name: r.display_name,
            members,
            converted_group: None,
        })
    }
}

impl From<MessageRoom> for pb::MessageRoom {
    fn from(r: MessageRoom) -> Self {
        pb::MessageRoom {
            tenant_id: r.tenant.0,
            id: r.id.0,
            display_name: r.display_name,
            members: r
                .members
                .into_iter()
                .map(|k| pb::UserRef {
                    tenant_id: k.tenant.0,
                    user_id: k.user.0,
                })
                .collect(),
            converted_group: r
                .converted_group
                .map(|g| group_name(r.tenant, g))
                .unwrap_or_default(),
        }
    }
}

// ---- groups ----

pub fn member_ref(
    field: &str,
    group_tenant: TenantId,
    m: &pb::MemberRef,
) -> Result<MemberRef, Status> {
    let id = positive(&format!("{field}.id"), m.id)?;
    let tenant = if m.tenant_id == 0 {
        group_tenant
    } else {
        TenantId(positive(&format!("{field}.tenant_id"), m.tenant_id)?)
    };
    match pb::MemberType::try_from(m.r#type) {
        Ok(pb::MemberType::User) => Ok(MemberRef::User(UserKey {
            tenant,
            user: UserId(id),
        })),
        Ok(pb::MemberType::Team) if tenant == group_tenant => Ok(MemberRef::Team(TeamId(id))),
        Ok(pb::MemberType::Group) if tenant == group_tenant => Ok(MemberRef::Group(GroupId(id))),
        Ok(pb::MemberType::Team | pb::MemberType::Group) => Err(invalid(
            &format!("{field}.tenant_id"),
            "teams and groups must be of the group's tenant",
        )),
        _ => Err(invalid(
            &format!("{field}.type"),
            "must be USER, TEAM or GROUP",
        )),
    }
}

fn features_from(f: Option<pb::Features>) -> Features {
    let f = f.unwrap_or_default();
    Features {
        message: f.message,
        note: f.note,
        event: f.event,
        task: f.task,
        folder: f.folder,
    }
}

pub fn group_spec(g: pb::Group) -> Result<GroupSpec, Status> {
    let mut v = Violations::default();
    let kind = match pb::GroupKind::try_from(g.kind) {
        Ok(pb::GroupKind::Internal | pb::GroupKind::Unspecified) => GroupKind::Internal,
        Ok(pb::GroupKind::External) => GroupKind::External,
        Err(_) => {
            v.add("group.kind", "must be INTERNAL or EXTERNAL");
            GroupKind::Internal
        }
    };
    let is_public = match pb::Visibility::try_from(g.visibility) {
        Ok(pb::Visibility::Public) => true,
        Ok(pb::Visibility::Private | pb::Visibility::Unspecified) => false,
        Err(_) => {
            v.add("group.visibility", "must be PUBLIC or PRIVATE");
            false
        }
    };
    v.finish().map_err(to_status)?;
    Ok(GroupSpec {
        display_name: g.display_name,
        description: g.description,
        photo_uri: g.photo_uri,
        kind,
        is_public,
        features: features_from(g.features),
        notify_all_members: g.notify_all_members,
        master_manages_features: g.master_manages_features,
        external_key: Some(g.external_key).filter(|k| !k.is_empty()),
        mailing_list: g.mailing_list.map(mailing_list_from).transpose()?,
    })
}

fn mailing_list_from(m: pb::MailingList) -> Result<MailingList, Status> {
    let mut senders = Vec::with_capacity(m.designated_senders.len());
    for (i, u) in m.designated_senders.iter().enumerate() {
        senders.push(UserKey {
            tenant: TenantId(positive(
                &format!("group.mailing_list.designated_senders[{i}].tenant_id"),
                u.tenant_id,
            )?),
            user: UserId(positive(
                &format!("group.mailing_list.designated_senders[{i}].user_id"),
                u.user_id,
            )?),
        });
    }
    // Kept in request order: violations name the index the client sent. The domain sorts and
    // de-duplicates after validating.
    Ok(MailingList {
        address: m.address,
        block_external_senders: m.block_external_senders,
        designated_senders: senders,
        external_recipients: m.external_recipients,
    })
}

impl TryFrom<pb::CreateGroupRequest> for CreateGroup {
    type Error = Status;
    fn try_from(r: pb::CreateGroupRequest) -> Result<Self, Status> {
        let tenant = parse_parent("parent", &r.parent)?;
        let spec = group_spec(r.group.ok_or_else(|| invalid("group", "is required"))?)?;
        let mut masters = Vec::with_capacity(r.master_user_ids.len());
        for id in r.master_user_ids {
            masters.push(UserId(positive("master_user_ids", id)?));
        }
        let mut members = Vec::with_capacity(r.members.len());
        for (i, m) in r.members.iter().enumerate() {
            members.push(member_ref(&format!("members[{i}]"), tenant, m)?);
        }
        Ok(CreateGroup {
            tenant,
            spec,
            masters,
            members,
            request_id: Some(r.request_id).filter(|id| !id.is_empty()),
        })
    }
}

impl From<Group> for pb::Group {
    fn from(g: Group) -> Self {
        pb::Group {
            name: g.resource_name(),
            etag: g.etag(),
            display_name: g.display_name,
            description: g.description,
            photo_uri: g.photo_uri,
            kind: match g.kind {
                GroupKind::Internal => pb::GroupKind::Internal,
                GroupKind::External => pb::GroupKind::External,
            } as i32,
            visibility: if g.is_public {
                pb::Visibility::Public
            } else {
                pb::Visibility::Private
            } as i32,
            features: Some(pb::Features {
                message: g.features.message,
                note: g.features.note,
                event: g.features.event,
                task: g.features.task,
                folder: g.features.folder,
            }),
            notify_all_members: g.notify_all_members,
            master_manages_features: g.master_manages_features,
            external_key: g.external_key.unwrap_or_default(),
            create_time: Some(timestamp(g.create_time)),
            update_time: Some(timestamp(g.update_time)),
            storage_used_bytes: g.storage_used_bytes,
            excluded_members: Vec::new(),
            mailing_list: g.mailing_list.map(|m| pb::MailingList {
                address: m.address,
                block_external_senders: m.block_external_senders,
                designated_senders: m
                    .designated_senders
                    .into_iter()
                    .map(|u| pb::UserRef {
                        tenant_id: u.tenant.0,
                        user_id: u.user.0,
                    })
                    .collect(),
                external_recipients: m.external_recipients,
            }),
        }
    }
}

impl From<Created> for pb::Group {
    fn from(c: Created) -> Self {
        let mut g = pb::Group::from(c.group);
        g.excluded_members = c
            .excluded
            .into_iter()
            .map(|(u, reason)| pb::ExcludedMember {
                user: Some(pb::UserRef {
                    tenant_id: u.tenant.0,
                    user_id: u.user.0,
                }),
                reason: reason.as_str().to_owned(),
            })
            .collect();
        g
    }
}

/// `tenants/{tenant}/rooms/{room}`.
pub fn parse_room_name(field: &str, name: &str) -> Result<(TenantId, RoomId), Status> {
    let parts: Vec<&str> = name.split('/').collect();
    match parts.as_slice() {
        ["tenants", t, "rooms", r] => {
            Ok((TenantId(parse_id(field, t)?), RoomId(parse_id(field, r)?)))
        }
        _ => Err(invalid(field, "must be tenants/{tenant}/rooms/{room}")),
    }
}

impl TryFrom<pb::ConvertMessageRoomRequest> for ConvertRoom {
    type Error = Status;
    fn try_from(r: pb::ConvertMessageRoomRequest) -> Result<Self, Status> {
        let (tenant, room) = parse_room_name("room", &r.room)?;
        Ok(ConvertRoom {
            tenant,
            room,
            display_name: r.display_name,
            description: r.description,
            features: features_from(r.features),
            request_id: Some(r.request_id).filter(|id| !id.is_empty()),
        })
    }
}

impl From<TenantUsage> for pb::TenantUsage {
    fn from(u: TenantUsage) -> Self {
        pb::TenantUsage {
            name: format!("tenants/{}", u.tenant),
            over_quota: u.over_quota(),
            groups_used: u.groups_used,
            groups_limit: u.groups_limit,
            storage_used_bytes: u.storage_used_bytes,
            storage_quota_bytes: u.storage_quota_bytes,
            internal: Some(pb::KindUsage {
                groups: u.internal.0,
                storage_used_bytes: u.internal.1,
            }),
            external: Some(pb::KindUsage {
                groups: u.external.0,
                storage_used_bytes: u.external.1,
            }),
        }
    }
}

impl TryFrom<pb::UpdateGroupRequest> for UpdateGroup {
    type Error = Status;
    fn try_from(r: pb::UpdateGroupRequest) -> Result<Self, Status> {
        let g = r.group.ok_or_else(|| invalid("group", "is required"))?;
        let (tenant, id) = parse_group_name("group.name", &g.name)?;
        let etag = Some(g.etag.clone()).filter(|e| !e.is_empty());
        let paths = r.update_mask.map(|m| m.paths).unwrap_or_default();
        let mut mask = Vec::new();
        for p in &paths {
            if p == "*" {
                mask.extend(Field::ALL);
            } else {
                mask.push(Field::parse(p).ok_or_else(|| {
                    invalid("update_mask", format!("{p:?} is not an updatable field"))
                })?);
            }
        }
        mask.sort();
        mask.dedup();
        let spec = group_spec(g)?;
        Ok(UpdateGroup {
            tenant,
            id,
            spec,
            mask,
            etag,
        })
    }
}
