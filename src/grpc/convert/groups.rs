//! GroupService: groups, their settings and feature data, room conversion and tenant usage.

use tonic::Status;

use super::membership::named_members;
use super::{invalid, non_empty, page, positive, required, user_refs, user_refs_out};
use crate::domain::error::Violations;
use crate::domain::external::{ConvertRoom, TenantUsage, over_quota};
use crate::domain::features::DataFeature;
use crate::domain::groups::{CreateGroup, Created, GroupSpec};
use crate::domain::model::*;
use crate::domain::names::{GroupName, GroupPath, RoomName, TenantName};
use crate::domain::page::PageRequest;
use crate::domain::settings::{Field, UpdateGroup};
use crate::domain::text::{normalize_name, quote};
use crate::grpc::pb;

/// DeleteGroup: the group, and the etag the client last saw, if it sent one.
#[derive(Debug)]
pub struct DeleteGroup {
    pub name: GroupPath,
    pub etag: Option<String>,
}

/// ListGroups (`text` is the filter) and SearchGroups (`text` is the query).
#[derive(Debug)]
pub struct Query {
    pub tenant: TenantId,
    pub text: String,
    pub page: PageRequest,
}

#[derive(Debug)]
pub struct Autocomplete {
    pub tenant: TenantId,
    pub prefix: String,
    pub limit: i32,
}

#[derive(Debug)]
pub struct DeleteFeatureData {
    pub name: GroupPath,
    pub features: Vec<DataFeature>,
}

/// ReportFeatureUsage: `bytes` of `feature` data the group holds now.
#[derive(Debug)]
pub struct FeatureUsage {
    pub name: GroupPath,
    pub feature: String,
    pub bytes: i64,
}

fn query(parent: &str, text: String, size: i32, token: String) -> Result<Query, Status> {
    Ok(Query {
        tenant: TenantName::parse("parent", parent)?.tenant,
        text,
        page: page(size, token),
    })
}

/// Entry `i` of DeleteFeatureDataRequest.features.
fn data_feature((i, f): (usize, &i32)) -> Result<DataFeature, Status> {
    match pb::DataFeature::try_from(*f) {
        Ok(pb::DataFeature::Note) => Ok(DataFeature::Note),
        Ok(pb::DataFeature::Event) => Ok(DataFeature::Event),
        Ok(pb::DataFeature::Folder) => Ok(DataFeature::Folder),
        _ => Err(invalid(
            &format!("features[{i}]"),
            "must be NOTE, EVENT or FOLDER",
        )),
    }
}

decode! {
    pb::GetGroupRequest => GroupPath = |r| Ok(GroupPath::parse("name", &r.name)?);
    pb::DeleteGroupRequest => DeleteGroup = |r| Ok(DeleteGroup {
        name: GroupPath::parse("name", &r.name)?,
        etag: non_empty(r.etag),
    });
    pb::ListGroupsRequest => Query =
        |r| query(&r.parent, r.filter, r.page_size, r.page_token);
    pb::SearchGroupsRequest => Query =
        |r| query(&r.parent, r.query, r.page_size, r.page_token);
    pb::AutocompleteGroupsRequest => Autocomplete = |r| Ok(Autocomplete {
        tenant: TenantName::parse("parent", &r.parent)?.tenant,
        prefix: r.prefix,
        limit: r.limit,
    });
    pb::DeleteFeatureDataRequest => DeleteFeatureData = |r| Ok(DeleteFeatureData {
        name: GroupPath::parse("name", &r.name)?,
        features: r.features.iter().enumerate().map(data_feature).collect::<Result<_, _>>()?,
    });
    pb::ReportFeatureUsageRequest => FeatureUsage = |r| Ok(FeatureUsage {
        name: GroupPath::parse("name", &r.name)?,
        feature: r.feature,
        bytes: r.bytes,
    });
    pb::GetTenantUsageRequest => TenantName = |r| Ok(TenantName::parse("name", &r.name)?);
}

page_response! {
    ListGroupsResponse { groups: Group }
    SearchGroupsResponse { groups: Group }
}

impl From<Vec<Group>> for pb::AutocompleteGroupsResponse {
    fn from(groups: Vec<Group>) -> Self {
        pb::AutocompleteGroupsResponse {
            groups: groups.into_iter().map(Into::into).collect(),
        }
    }
}

/// The group after the report, and its owner tenant's storage.
impl From<(Group, Tenant)> for pb::ReportFeatureUsageResponse {
    fn from((group, owner): (Group, Tenant)) -> Self {
        pb::ReportFeatureUsageResponse {
            group: Some(group.into()),
            over_quota: over_quota(&owner),
            tenant_storage_used_bytes: owner.storage_used_bytes,
            tenant_storage_quota_bytes: owner.storage_quota_bytes,
        }
    }
}

pub(super) fn timestamp(micros: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1000) as i32,
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

fn group_spec(g: pb::Group) -> Result<GroupSpec, Status> {
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
    v.finish()?;
    Ok(GroupSpec {
        display_name: normalize_name(&g.display_name),
        description: g.description,
        photo_uri: g.photo_uri,
        kind,
        is_public,
        features: features_from(g.features),
        notify_all_members: g.notify_all_members,
        master_manages_features: g.master_manages_features,
        external_key: non_empty(g.external_key),
        mailing_list: g.mailing_list.map(mailing_list_from).transpose()?,
    })
}

fn mailing_list_from(m: pb::MailingList) -> Result<MailingList, Status> {
    let senders = user_refs(
        "group.mailing_list.designated_senders",
        &m.designated_senders,
    )?;
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
        let tenant = TenantName::parse("parent", &r.parent)?.tenant;
        let spec = group_spec(required("group", r.group)?)?;
        let mut masters = Vec::with_capacity(r.master_user_ids.len());
        for id in r.master_user_ids {
            masters.push(UserId(positive("master_user_ids", id)?));
        }
        let (members, member_keys) = named_members("members", tenant, &r.members)?;
        Ok(CreateGroup {
            tenant,
            spec,
            masters,
            members,
            member_keys,
            request_id: non_empty(r.request_id),
        })
    }
}

impl From<Group> for pb::Group {
    fn from(g: Group) -> Self {
        pb::Group {
            name: GroupName {
                tenant: g.tenant,
                group: g.id,
            }
            .to_string(),
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
            message_purge_time: g.message_purge_time.map(timestamp),
            mailing_list: g.mailing_list.map(|m| pb::MailingList {
                address: m.address,
                block_external_senders: m.block_external_senders,
                designated_senders: user_refs_out(m.designated_senders),
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
                user: Some(u.into()),
                reason: reason.as_str().to_owned(),
            })
            .collect();
        g
    }
}

impl TryFrom<pb::ConvertMessageRoomRequest> for ConvertRoom {
    type Error = Status;
    fn try_from(r: pb::ConvertMessageRoomRequest) -> Result<Self, Status> {
        let RoomName { tenant, room } = RoomName::parse("room", &r.room)?;
        Ok(ConvertRoom {
            tenant,
            room,
            display_name: normalize_name(&r.display_name),
            description: r.description,
            features: features_from(r.features),
            request_id: non_empty(r.request_id),
        })
    }
}

impl From<TenantUsage> for pb::TenantUsage {
    fn from(u: TenantUsage) -> Self {
        pb::TenantUsage {
            name: TenantName { tenant: u.tenant }.to_string(),
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

/// The fields an update mask names (`*`: every updatable one), sorted, without repeats.
fn named_fields(paths: &[String]) -> Result<Vec<Field>, Status> {
    let mut mask = Vec::new();
    for p in paths {
        if p == "*" {
            mask.extend(Field::ALL);
        } else {
            mask.push(Field::parse(p).ok_or_else(|| {
                invalid(
                    "update_mask",
                    format!("{} is not an updatable field", quote(p)),
                )
            })?);
        }
    }
    mask.sort();
    mask.dedup();
    Ok(mask)
}

/// AIP-134: the mask an omitted `update_mask` stands for, the updatable fields of `g` that
/// are populated. A string is populated when it is not empty, an enum when it is not its zero
/// value, a bool when it is true, a message (`features`, `mailing_list`) when it is present,
/// and then it is replaced whole, as a mask naming it would. A field can therefore not be
/// cleared without a mask. Fields that are not updatable (`name`, `etag`, `kind`, the output
/// only ones) are not part of it, as they are not of `*`. The populated fields need the
/// rights (R06) that naming them would.
fn populated_fields(g: &pb::Group) -> Vec<Field> {
    [
        (!g.display_name.is_empty(), Field::DisplayName),
        (!g.description.is_empty(), Field::Description),
        (!g.photo_uri.is_empty(), Field::PhotoUri),
        (g.visibility != 0, Field::Visibility),
        (g.features.is_some(), Field::Features),
        (g.mailing_list.is_some(), Field::MailingList),
        (g.notify_all_members, Field::NotifyAllMembers),
        (g.master_manages_features, Field::MasterManagesFeatures),
        (!g.external_key.is_empty(), Field::ExternalKey),
    ]
    .into_iter()
    .filter_map(|(populated, field)| populated.then_some(field))
    .collect()
}

impl TryFrom<pb::UpdateGroupRequest> for UpdateGroup {
    type Error = Status;
    fn try_from(r: pb::UpdateGroupRequest) -> Result<Self, Status> {
        let g = required("group", r.group)?;
        let GroupPath { tenant, group: id } = GroupPath::parse("group.name", &g.name)?;
        let etag = non_empty(g.etag.clone());
        let mask = match r.update_mask {
            Some(m) => named_fields(&m.paths)?,
            None => populated_fields(&g),
        };
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::tests::{one, violations};
    use super::*;

    fn group() -> Group {
        Group {
            tenant: TenantId(1),
            id: GroupId(2),
            display_name: "Ops".into(),
            description: String::new(),
            photo_uri: String::new(),
            kind: GroupKind::External,
            is_public: false,
            features: Features::default(),
            notify_all_members: false,
            master_manages_features: false,
            external_key: None,
            mailing_list: None,
            storage_used_bytes: 0,
            version: 3,
            create_time: -1,
            update_time: 1_500_000,
            message_purge_time: None,
        }
    }

    #[test]
    fn a_group_answers_its_canonical_name_and_times() {
        let g = pb::Group::from(group());
        assert_eq!(g.name, "tenants/1/groups/2");
        assert_eq!(g.etag, "\"3\"");
        assert_eq!(g.kind, pb::GroupKind::External as i32);
        let created = g.create_time.unwrap();
        assert_eq!((created.seconds, created.nanos), (-1, 999_999_000));
        let updated = g.update_time.unwrap();
        assert_eq!((updated.seconds, updated.nanos), (1, 500_000_000));
    }

    #[test]
    fn group_names_in_requests_name_their_field() {
        let err = GroupPath::try_from(pb::GetGroupRequest {
            name: "groups/2".into(),
        })
        .unwrap_err();
        assert_eq!(
            violations(err),
            one("name", &format!("must be {}", GroupPath::PATTERN))
        );
        let update = pb::UpdateGroupRequest {
            group: Some(pb::Group {
                name: "tenants/1/groups/x".into(),
                ..Default::default()
            }),
            update_mask: None,
        };
        let err = UpdateGroup::try_from(update).unwrap_err();
        assert_eq!(
            violations(err),
            one("group.name", "\"x\" is not a positive id")
        );
        let err = Query::try_from(pb::ListGroupsRequest {
            parent: "tenants/0".into(),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(violations(err), one("parent", "\"0\" is not a positive id"));
    }

    #[test]
    fn delete_requests_decode_etag_and_features() {
        let d = DeleteGroup::try_from(pb::DeleteGroupRequest {
            name: "tenants/1/groups/2".into(),
            etag: String::new(),
        })
        .unwrap();
        assert_eq!((d.name.group, d.etag), (GroupRef::Id(GroupId(2)), None));

        let request = |features: Vec<pb::DataFeature>| pb::DeleteFeatureDataRequest {
            name: "tenants/1/groups/2".into(),
            features: features.into_iter().map(|f| f as i32).collect(),
        };
        let d = DeleteFeatureData::try_from(request(vec![pb::DataFeature::Folder])).unwrap();
        assert_eq!(d.features, vec![DataFeature::Folder]);
        let bad = request(vec![pb::DataFeature::Note, pb::DataFeature::Unspecified]);
        let err = DeleteFeatureData::try_from(bad).unwrap_err();
        assert_eq!(
            violations(err),
            one("features[1]", "must be NOTE, EVENT or FOLDER")
        );
    }

    #[test]
    fn bad_kind_and_visibility_are_reported_together() {
        let err = group_spec(pb::Group {
            kind: 9,
            visibility: 9,
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(
            violations(err),
            vec![
                ("group.kind".into(), "must be INTERNAL or EXTERNAL".into()),
                (
                    "group.visibility".into(),
                    "must be PUBLIC or PRIVATE".into()
                ),
            ]
        );
    }
}
