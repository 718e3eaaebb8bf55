//! `groups.v1.MembershipService`.

use super::convert::{BatchCheck, CheckMember, Expiry, GroupsOfUser, Listing, Masters};
use super::pb;
use super::pb::membership_service_server::MembershipService;
use crate::domain::Service;
use crate::domain::members::MemberBatch;
use crate::domain::names::GroupPath;

pub struct MembershipApi {
    service: Service,
}

impl MembershipApi {
    pub fn new(service: Service) -> Self {
        MembershipApi { service }
    }
}

// Member references in answers need the group's tenant, so those rows answer (tenant, outcome).
handlers! {
    impl MembershipService for MembershipApi |s, caller| {
        add_members(pb::AddMembersRequest) -> pb::AddMembersResponse =
            |b: MemberBatch| (b.tenant, s.add_members(caller, b).await?);
        remove_members(pb::RemoveMembersRequest) -> pb::RemoveMembersResponse =
            |b: MemberBatch| (b.tenant, s.remove_members(caller, b).await?);
        set_members_expiry(pb::SetMembersExpiryRequest) -> pb::SetMembersExpiryResponse =
            |e: Expiry| (e.0.tenant, s.set_members_expiry(caller, e.0).await?);
        list_members(pb::ListMembersRequest) -> pb::ListMembersResponse =
            |l: Listing<GroupPath>| {
                let GroupPath { tenant, group } = l.of;
                (tenant, s.list_members(caller, tenant, group, l.page).await?)
            };
        list_effective_members(pb::ListEffectiveMembersRequest)
            -> pb::ListEffectiveMembersResponse = |l: Listing<GroupPath>| {
                s.list_effective_members(caller, l.of.tenant, l.of.group, l.page).await?
            };
        add_masters(pb::AddMastersRequest) -> pb::AddMastersResponse =
            |m: Masters| s.add_masters(caller, m.group.tenant, m.group.group, m.users).await?;
        remove_masters(pb::RemoveMastersRequest) -> pb::RemoveMastersResponse =
            |m: Masters| s.remove_masters(caller, m.group.tenant, m.group.group, m.users).await?;
        list_masters(pb::ListMastersRequest) -> pb::ListMastersResponse =
            |l: Listing<GroupPath>| s.list_masters(caller, l.of.tenant, l.of.group, l.page).await?;
        check_membership(pb::CheckMembershipRequest) -> pb::CheckMembershipResponse =
            |c: CheckMember| {
                s.check_membership(caller, c.group.tenant, c.group.group, c.user).await?
            };
        batch_check_membership(pb::BatchCheckMembershipRequest)
            -> pb::BatchCheckMembershipResponse = |b: BatchCheck| {
                let answers = s.batch_check_membership(caller, b.user, &b.groups).await?;
                (b.names, answers)
            };
        list_groups_of_user(pb::ListGroupsOfUserRequest) -> pb::ListGroupsOfUserResponse =
            |l: GroupsOfUser| {
                let Listing { of, page } = l.listing;
                if l.names_only {
                    s.list_group_names_of_user(caller, of, page).await?.into()
                } else {
                    pb::ListGroupsOfUserResponse::from(s.list_groups_of_user(caller, of, page).await?)
                }
            };
        leave(pb::LeaveRequest) -> () = |g: GroupPath| s.leave(caller, g.tenant, g.group).await?;
    }
}
