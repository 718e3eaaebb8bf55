//! `groups.v1.MembershipService`.

use tonic::{Request, Response, Status};

use super::convert::{member_ref, page, parse_group_name, positive};
use super::pb;
use super::pb::membership_service_server::MembershipService;
use super::{caller, to_status};
use crate::domain::Service;
use crate::domain::groups::MemberRef;
use crate::domain::members::MemberBatch;
use crate::domain::model::*;

pub struct MembershipApi {
    service: Service,
}

impl MembershipApi {
    pub fn new(service: Service) -> Self {
        MembershipApi { service }
    }
}

fn user_ref(field: &str, u: Option<&pb::UserRef>) -> Result<UserKey, Status> {
    let u = u.ok_or_else(|| super::convert::invalid(field, "is required"))?;
    Ok(UserKey {
        tenant: TenantId(positive(&format!("{field}.tenant_id"), u.tenant_id)?),
        user: UserId(positive(&format!("{field}.user_id"), u.user_id)?),
    })
}

fn user_refs(field: &str, users: &[pb::UserRef]) -> Result<Vec<UserKey>, Status> {
    users
        .iter()
        .enumerate()
        .map(|(i, u)| user_ref(&format!("{field}[{i}]"), Some(u)))
        .collect()
}

fn to_user_ref(u: UserKey) -> pb::UserRef {
    pb::UserRef {
        tenant_id: u.tenant.0,
        user_id: u.user.0,
    }
}

fn to_member_ref(tenant: TenantId, m: MemberRef) -> pb::MemberRef {
    let (t, id, tenant_id) = match m {
        MemberRef::User(u) => (pb::MemberType::User, u.user.0, u.tenant.0),
        MemberRef::Team(t) => (pb::MemberType::Team, t.0, tenant.0),
        MemberRef::Group(g) => (pb::MemberType::Group, g.0, tenant.0),
    };
    pb::MemberRef {
        r#type: t as i32,
        id,
        tenant_id,
    }
}

fn to_member_refs(tenant: TenantId, members: Vec<MemberRef>) -> Vec<pb::MemberRef> {
    members
        .into_iter()
        .map(|m| to_member_ref(tenant, m))
        .collect()
}

fn batch(
    group: &str,
    members: &[pb::MemberRef],
    request_id: String,
) -> Result<MemberBatch, Status> {
    let (tenant, group) = parse_group_name("group", group)?;
    let members = members
        .iter()
        .enumerate()
        .map(|(i, m)| member_ref(&format!("members[{i}]"), tenant, m))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(MemberBatch {
        tenant,
        group,
        members,
        request_id: Some(request_id).filter(|r| !r.is_empty()),
    })
}

#[tonic::async_trait]
impl MembershipService for MembershipApi {
    async fn add_members(
        &self,
        req: Request<pb::AddMembersRequest>,
    ) -> Result<Response<pb::AddMembersResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let b = batch(&r.group, &r.members, r.request_id)?;
        let tenant = b.tenant;
        let out = self
            .service
            .add_members(&caller, b)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::AddMembersResponse {
            added: to_member_refs(tenant, out.added),
            already_present: to_member_refs(tenant, out.already_present),
        }))
    }

    async fn remove_members(
        &self,
        req: Request<pb::RemoveMembersRequest>,
    ) -> Result<Response<pb::RemoveMembersResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let b = batch(&r.group, &r.members, r.request_id)?;
        let tenant = b.tenant;
        let out = self
            .service
            .remove_members(&caller, b)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::RemoveMembersResponse {
            removed: to_member_refs(tenant, out.removed),
            not_members: to_member_refs(tenant, out.not_members),
        }))
    }

    async fn list_members(
        &self,
        req: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let (tenant, group) = parse_group_name("group", &r.group)?;
        let (rows, next_page_token) = self
            .service
            .list_members(&caller, tenant, group, page(r.page_size, r.page_token))
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListMembersResponse {
            members: rows
                .into_iter()
                .map(|m| pb::Member {
                    member: Some(to_member_ref(tenant, m.member)),
                    master: m.master,
                    display_name: m.display_name,
                })
                .collect(),
            next_page_token,
        }))
    }

    async fn list_effective_members(
        &self,
        req: Request<pb::ListEffectiveMembersRequest>,
    ) -> Result<Response<pb::ListEffectiveMembersResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let (tenant, group) = parse_group_name("group", &r.group)?;
        let (rows, next_page_token) = self
            .service
            .list_effective_members(&caller, tenant, group, page(r.page_size, r.page_token))
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListEffectiveMembersResponse {
            users: rows.into_iter().map(to_user_ref).collect(),
            next_page_token,
        }))
    }

    async fn add_masters(
        &self,
        req: Request<pb::AddMastersRequest>,
    ) -> Result<Response<pb::AddMastersResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let (tenant, group) = parse_group_name("group", &r.group)?;
        let users = user_refs("users", &r.users)?;
        let out = self
            .service
            .add_masters(&caller, tenant, group, users)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::AddMastersResponse {
            added: out.changed.into_iter().map(to_user_ref).collect(),
            already_masters: out.unchanged.into_iter().map(to_user_ref).collect(),
        }))
    }

    async fn remove_masters(
        &self,
        req: Request<pb::RemoveMastersRequest>,
    ) -> Result<Response<pb::RemoveMastersResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let (tenant, group) = parse_group_name("group", &r.group)?;
        let users = user_refs("users", &r.users)?;
        let out = self
            .service
            .remove_masters(&caller, tenant, group, users)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::RemoveMastersResponse {
            removed: out.changed.into_iter().map(to_user_ref).collect(),
            not_masters: out.unchanged.into_iter().map(to_user_ref).collect(),
        }))
    }

    async fn list_masters(
        &self,
        req: Request<pb::ListMastersRequest>,
    ) -> Result<Response<pb::ListMastersResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let (tenant, group) = parse_group_name("group", &r.group)?;
        let (rows, next_page_token) = self
            .service
            .list_masters(&caller, tenant, group, page(r.page_size, r.page_token))
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListMastersResponse {
            masters: rows.into_iter().map(to_user_ref).collect(),
            next_page_token,
        }))
    }

    async fn check_membership(
        &self,
        req: Request<pb::CheckMembershipRequest>,
    ) -> Result<Response<pb::CheckMembershipResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let (tenant, group) = parse_group_name("group", &r.group)?;
        let user = user_ref("user", r.user.as_ref())?;
        let m = self
            .service
            .check_membership(&caller, tenant, group, user)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::CheckMembershipResponse {
            member: m.member,
            master: m.master,
            direct: m.direct,
        }))
    }

    async fn list_groups_of_user(
        &self,
        req: Request<pb::ListGroupsOfUserRequest>,
    ) -> Result<Response<pb::ListGroupsOfUserResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let user = user_ref("user", r.user.as_ref())?;
        let (rows, next_page_token) = self
            .service
            .list_groups_of_user(&caller, user, page(r.page_size, r.page_token))
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListGroupsOfUserResponse {
            groups: rows
                .into_iter()
                .map(|(g, direct)| pb::GroupOfUser {
                    group: Some(g.into()),
                    direct,
                })
                .collect(),
            next_page_token,
        }))
    }

    async fn leave(&self, req: Request<pb::LeaveRequest>) -> Result<Response<()>, Status> {
        let caller = caller(&req)?;
        let (tenant, group) = parse_group_name("group", &req.get_ref().group)?;
        self.service
            .leave(&caller, tenant, group)
            .await
            .map_err(to_status)?;
        Ok(Response::new(()))
    }
}
