//! MembershipService: member and master batches, lists and checks.

use tonic::Status;

use super::timestamp_micros;
use super::user_refs_out;
use super::{Listing, invalid, listing, non_empty, positive, required, user_ref, user_refs};
use crate::domain::expiry::ExpiryOutcome;
use crate::domain::masters::MastersOutcome;
use crate::domain::members::{AddOutcome, MemberBatch, RemoveOutcome};
use crate::domain::membership::{DirectMember, Membership};
use crate::domain::model::*;
use crate::domain::names::{GroupPath, external_key_problem};
use crate::grpc::pb;

/// AddMasters and RemoveMasters.
#[derive(Debug)]
pub struct Masters {
    pub group: GroupPath,
    pub users: Vec<UserKey>,
}

/// ListGroupsOfUser: the user, the page, and whether names only.
#[derive(Debug)]
pub struct GroupsOfUser {
    pub listing: Listing<UserKey>,
    pub names_only: bool,
}

/// CheckMembership.
#[derive(Debug)]
pub struct CheckMember {
    pub group: GroupPath,
    pub user: UserKey,
}

/// SetMembersExpiry: the members and their new expire time.
#[derive(Debug)]
pub struct Expiry(pub MemberBatch);

/// BatchCheckMembership: the groups parsed, and as the request named them (the answer
/// repeats those names).
#[derive(Debug)]
pub struct BatchCheck {
    pub user: UserKey,
    pub groups: Vec<GroupPath>,
    pub names: Vec<String>,
}

/// A `MemberRef` in request field `field` of a request about a group of `group_tenant`; a
/// member without a tenant is of the group's tenant.
pub(super) fn member_ref(
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

/// The members of request field `field` (`members`), of a group of `group_tenant`: those named
/// by id, and the nested groups named by external key.
pub(super) fn named_members(
    field: &str,
    group_tenant: TenantId,
    members: &[pb::MemberRef],
) -> Result<(Vec<MemberRef>, Vec<String>), Status> {
    let (mut refs, mut keys) = (Vec::new(), Vec::new());
    for (i, m) in members.iter().enumerate() {
        let field = format!("{field}[{i}]");
        if m.external_key.is_empty() {
            refs.push(member_ref(&field, group_tenant, m)?);
            continue;
        }
        if m.r#type != pb::MemberType::Group as i32 {
            return Err(invalid(
                &format!("{field}.external_key"),
                "only a GROUP member is named by external key",
            ));
        }
        if m.id != 0 {
            return Err(invalid(
                &format!("{field}.id"),
                "give the id or the external key, not both",
            ));
        }
        if m.tenant_id != 0 && m.tenant_id != group_tenant.0 {
            return Err(invalid(
                &format!("{field}.tenant_id"),
                "teams and groups must be of the group's tenant",
            ));
        }
        if let Some(problem) = external_key_problem(&m.external_key) {
            return Err(invalid(&format!("{field}.external_key"), problem));
        }
        keys.push(m.external_key.clone());
    }
    Ok((refs, keys))
}

fn batch(
    group: &str,
    members: &[pb::MemberRef],
    request_id: String,
) -> Result<MemberBatch, Status> {
    let GroupPath { tenant, group } = GroupPath::parse("group", group)?;
    let (members, group_keys) = named_members("members", tenant, members)?;
    Ok(MemberBatch {
        tenant,
        group,
        members,
        group_keys,
        expire_time: None,
        request_id: non_empty(request_id),
    })
}

fn group_page(group: &str, size: i32, token: String) -> Result<Listing<GroupPath>, Status> {
    Ok(listing(GroupPath::parse("group", group)?, size, token))
}

decode! {
    pb::AddMembersRequest => MemberBatch = |r| Ok(MemberBatch {
        expire_time: r.expire_time.map(|t| timestamp_micros("expire_time", t)).transpose()?,
        ..batch(&r.group, &r.members, r.request_id)?
    });
    pb::RemoveMembersRequest => MemberBatch = |r| batch(&r.group, &r.members, r.request_id);
    pb::SetMembersExpiryRequest => Expiry = |r| Ok(Expiry(MemberBatch {
        expire_time: r.expire_time.map(|t| timestamp_micros("expire_time", t)).transpose()?,
        ..batch(&r.group, &r.members, String::new())?
    }));
    pb::ListMembersRequest => Listing<GroupPath> =
        |r| group_page(&r.group, r.page_size, r.page_token);
    pb::ListEffectiveMembersRequest => Listing<GroupPath> =
        |r| group_page(&r.group, r.page_size, r.page_token);
    pb::AddMastersRequest => Masters = |r| Ok(Masters {
        group: GroupPath::parse("group", &r.group)?,
        users: user_refs("users", &r.users)?,
    });
    pb::RemoveMastersRequest => Masters = |r| Ok(Masters {
        group: GroupPath::parse("group", &r.group)?,
        users: user_refs("users", &r.users)?,
    });
    pb::ListMastersRequest => Listing<GroupPath> =
        |r| group_page(&r.group, r.page_size, r.page_token);
    pb::CheckMembershipRequest => CheckMember = |r| Ok(CheckMember {
        group: GroupPath::parse("group", &r.group)?,
        user: user_ref("user", &required("user", r.user)?)?,
    });
    pb::BatchCheckMembershipRequest => BatchCheck = |r| Ok(BatchCheck {
        user: user_ref("user", &required("user", r.user)?)?,
        groups: r
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                g.parse::<GroupPath>()
                    .map_err(|e| e.at(&format!("groups[{i}]")))
            })
            .collect::<Result<_, _>>()?,
        names: r.groups,
    });
    pb::ListGroupsOfUserRequest => GroupsOfUser = |r| {
        let user = user_ref("user", &required("user", r.user)?)?;
        let names_only = match pb::GroupOfUserView::try_from(r.view) {
            Ok(pb::GroupOfUserView::Unspecified | pb::GroupOfUserView::Full) => false,
            Ok(pb::GroupOfUserView::NameOnly) => true,
            Err(_) => return Err(invalid("view", "must be FULL or NAME_ONLY")),
        };
        Ok(GroupsOfUser { listing: listing(user, r.page_size, r.page_token), names_only })
    };
    pb::LeaveRequest => GroupPath = |r| Ok(GroupPath::parse("group", &r.group)?);
}

/// A member as answered: teams and groups are of the group's tenant.
fn member_ref_out(tenant: TenantId, m: MemberRef) -> pb::MemberRef {
    let (t, id, tenant_id) = match m {
        MemberRef::User(u) => (pb::MemberType::User, u.user.0, u.tenant.0),
        MemberRef::Team(t) => (pb::MemberType::Team, t.0, tenant.0),
        MemberRef::Group(g) => (pb::MemberType::Group, g.0, tenant.0),
    };
    pb::MemberRef {
        r#type: t as i32,
        id,
        tenant_id,
        external_key: String::new(),
    }
}

fn member_refs_out(tenant: TenantId, members: Vec<MemberRef>) -> Vec<pb::MemberRef> {
    members
        .into_iter()
        .map(|m| member_ref_out(tenant, m))
        .collect()
}

/// The outcome of AddMembers on a group of the tenant.
impl From<(TenantId, AddOutcome)> for pb::AddMembersResponse {
    fn from((tenant, out): (TenantId, AddOutcome)) -> Self {
        pb::AddMembersResponse {
            added: member_refs_out(tenant, out.added),
            already_present: member_refs_out(tenant, out.already_present),
        }
    }
}

/// The outcome of SetMembersExpiry on a group of the tenant.
impl From<(TenantId, ExpiryOutcome)> for pb::SetMembersExpiryResponse {
    fn from((tenant, out): (TenantId, ExpiryOutcome)) -> Self {
        pb::SetMembersExpiryResponse {
            updated: member_refs_out(tenant, out.updated),
            not_members: member_refs_out(tenant, out.not_members),
        }
    }
}

/// The outcome of RemoveMembers on a group of the tenant.
impl From<(TenantId, RemoveOutcome)> for pb::RemoveMembersResponse {
    fn from((tenant, out): (TenantId, RemoveOutcome)) -> Self {
        pb::RemoveMembersResponse {
            removed: member_refs_out(tenant, out.removed),
            not_members: member_refs_out(tenant, out.not_members),
        }
    }
}

/// A page of direct members of a group of the tenant.
impl From<(TenantId, (Vec<DirectMember>, String))> for pb::ListMembersResponse {
    fn from((tenant, (rows, next_page_token)): (TenantId, (Vec<DirectMember>, String))) -> Self {
        pb::ListMembersResponse {
            members: rows
                .into_iter()
                .map(|m| pb::Member {
                    member: Some(member_ref_out(tenant, m.member)),
                    master: m.master,
                    display_name: m.display_name,
                    expire_time: m.expire_time.map(super::groups::timestamp),
                })
                .collect(),
            next_page_token,
        }
    }
}

impl From<MastersOutcome> for pb::AddMastersResponse {
    fn from(out: MastersOutcome) -> Self {
        pb::AddMastersResponse {
            added: user_refs_out(out.changed),
            already_masters: user_refs_out(out.unchanged),
        }
    }
}

impl From<MastersOutcome> for pb::RemoveMastersResponse {
    fn from(out: MastersOutcome) -> Self {
        pb::RemoveMastersResponse {
            removed: user_refs_out(out.changed),
            not_masters: user_refs_out(out.unchanged),
        }
    }
}

impl From<Membership> for pb::CheckMembershipResponse {
    fn from(m: Membership) -> Self {
        pb::CheckMembershipResponse {
            member: m.member,
            master: m.master,
            direct: m.direct,
        }
    }
}

/// The groups as the request named them, each with its answer.
impl From<(Vec<String>, Vec<Option<Membership>>)> for pb::BatchCheckMembershipResponse {
    fn from((names, answers): (Vec<String>, Vec<Option<Membership>>)) -> Self {
        let results = names.into_iter().zip(answers).map(|(group, m)| {
            let m = m.map(pb::CheckMembershipResponse::from);
            pb::BatchCheckMembershipResult {
                group,
                found: m.is_some(),
                member: m.is_some_and(|m| m.member),
                master: m.is_some_and(|m| m.master),
                direct: m.is_some_and(|m| m.direct),
            }
        });
        pb::BatchCheckMembershipResponse {
            results: results.collect(),
        }
    }
}

/// A group of the user, and whether the user is a direct member.
impl From<(Group, bool)> for pb::GroupOfUser {
    fn from((group, direct): (Group, bool)) -> Self {
        pb::GroupOfUser {
            group: Some(group.into()),
            direct,
        }
    }
}

/// A group of the user in the names-only view: its name, and whether directly.
impl From<GroupKeyOfUser> for pb::GroupOfUser {
    fn from(k: GroupKeyOfUser) -> Self {
        pb::GroupOfUser {
            group: Some(pb::Group {
                name: group_name(k.tenant, k.id),
                ..Default::default()
            }),
            direct: k.direct,
        }
    }
}

page_response! {
    ListEffectiveMembersResponse { users: UserKey }
    ListMastersResponse { masters: UserKey }
    ListGroupsOfUserResponse { groups: (Group, bool) }
    ListGroupsOfUserResponse { groups: GroupKeyOfUser }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::tests::{one, violations};
    use super::*;

    fn pb_member(t: pb::MemberType, id: i64, tenant_id: i64) -> pb::MemberRef {
        pb::MemberRef {
            r#type: t as i32,
            id,
            tenant_id,
            ..Default::default()
        }
    }

    #[test]
    fn member_refs_default_to_the_group_tenant_and_round_trip() {
        let tenant = TenantId(1);
        let team = member_ref("m", tenant, &pb_member(pb::MemberType::Team, 5, 0)).unwrap();
        assert_eq!(team, MemberRef::Team(TeamId(5)));
        assert_eq!(
            member_ref_out(tenant, team),
            pb_member(pb::MemberType::Team, 5, 1)
        );
        let guest = pb_member(pb::MemberType::User, 7, 2);
        let user = member_ref("m", tenant, &guest).unwrap();
        assert_eq!(member_ref_out(tenant, user), guest);
    }

    #[test]
    fn member_refs_name_the_bad_part() {
        let tenant = TenantId(1);
        let foreign_team = pb_member(pb::MemberType::Team, 5, 2);
        assert_eq!(
            violations(member_ref("members[0]", tenant, &foreign_team).unwrap_err()),
            one(
                "members[0].tenant_id",
                "teams and groups must be of the group's tenant"
            )
        );
        let untyped = pb_member(pb::MemberType::Unspecified, 5, 0);
        assert_eq!(
            violations(member_ref("members[3]", tenant, &untyped).unwrap_err()),
            one("members[3].type", "must be USER, TEAM or GROUP")
        );
    }

    #[test]
    fn batches_and_checks_name_their_fields() {
        let add = pb::AddMembersRequest {
            group: "tenants/1/groups/2".into(),
            members: vec![pb_member(pb::MemberType::Group, 0, 0)],
            request_id: "r".into(),
            expire_time: None,
        };
        assert_eq!(
            violations(MemberBatch::try_from(add).unwrap_err()),
            one("members[0].id", "must be a positive id")
        );
        let check = pb::CheckMembershipRequest {
            group: "tenants/1/groups/2".into(),
            user: None,
        };
        assert_eq!(
            violations(CheckMember::try_from(check).unwrap_err()),
            one("user", "is required")
        );
        let leave = pb::LeaveRequest {
            group: "tenants/1/teams/2".into(),
        };
        assert_eq!(
            violations(GroupPath::try_from(leave).unwrap_err()),
            one("group", &format!("must be {}", GroupPath::PATTERN))
        );
    }
}
