//! `groups.v1.DirectoryService`.

use tonic::{Request, Response, Status};

use super::convert::{invalid, page, positive};
use super::pb;
use super::pb::directory_service_server::DirectoryService;
use super::{caller, to_status};
use crate::domain::Service;
use crate::domain::model::*;

pub struct DirectoryApi {
    service: Service,
}

impl DirectoryApi {
    pub fn new(service: Service) -> Self {
        DirectoryApi { service }
    }
}

fn tenant_id(id: i64) -> Result<TenantId, Status> {
    Ok(TenantId(positive("tenant_id", id)?))
}

fn user_key(tenant: i64, user: i64) -> Result<UserKey, Status> {
    Ok(UserKey {
        tenant: tenant_id(tenant)?,
        user: UserId(positive("user_id", user)?),
    })
}

#[tonic::async_trait]
impl DirectoryService for DirectoryApi {
    async fn upsert_tenant(
        &self,
        req: Request<pb::UpsertTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        let caller = caller(&req)?;
        let tenant = req
            .into_inner()
            .tenant
            .ok_or_else(|| invalid("tenant", "is required"))?
            .try_into()?;
        let out = self
            .service
            .upsert_tenant(&caller, tenant)
            .await
            .map_err(to_status)?;
        Ok(Response::new(out.into()))
    }

    async fn get_tenant(
        &self,
        req: Request<pb::GetTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        let caller = caller(&req)?;
        let id = tenant_id(req.get_ref().tenant_id)?;
        let out = self
            .service
            .get_tenant(&caller, id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(out.into()))
    }

    async fn list_tenants(
        &self,
        req: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let (rows, next_page_token) = self
            .service
            .list_tenants(&caller, page(r.page_size, r.page_token))
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListTenantsResponse {
            tenants: rows.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn delete_tenant(
        &self,
        req: Request<pb::DeleteTenantRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller(&req)?;
        let id = tenant_id(req.get_ref().tenant_id)?;
        self.service
            .delete_tenant(&caller, id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(()))
    }

    async fn upsert_user(
        &self,
        req: Request<pb::UpsertUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let caller = caller(&req)?;
        let user = req
            .into_inner()
            .user
            .ok_or_else(|| invalid("user", "is required"))?
            .try_into()?;
        let out = self
            .service
            .upsert_user(&caller, user)
            .await
            .map_err(to_status)?;
        Ok(Response::new(out.into()))
    }

    async fn get_user(
        &self,
        req: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let caller = caller(&req)?;
        let key = user_key(req.get_ref().tenant_id, req.get_ref().user_id)?;
        let out = self
            .service
            .get_user(&caller, key)
            .await
            .map_err(to_status)?;
        Ok(Response::new(out.into()))
    }

    async fn list_users(
        &self,
        req: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let (rows, next_page_token) = self
            .service
            .list_users(
                &caller,
                tenant_id(r.tenant_id)?,
                page(r.page_size, r.page_token),
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListUsersResponse {
            users: rows.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn delete_user(
        &self,
        req: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller(&req)?;
        let key = user_key(req.get_ref().tenant_id, req.get_ref().user_id)?;
        self.service
            .delete_user(&caller, key)
            .await
            .map_err(to_status)?;
        Ok(Response::new(()))
    }

    async fn upsert_team(
        &self,
        req: Request<pb::UpsertTeamRequest>,
    ) -> Result<Response<pb::Team>, Status> {
        let caller = caller(&req)?;
        let team = req
            .into_inner()
            .team
            .ok_or_else(|| invalid("team", "is required"))?
            .try_into()?;
        let out = self
            .service
            .upsert_team(&caller, team)
            .await
            .map_err(to_status)?;
        Ok(Response::new(out.into()))
    }

    async fn get_team(
        &self,
        req: Request<pb::GetTeamRequest>,
    ) -> Result<Response<pb::Team>, Status> {
        let caller = caller(&req)?;
        let r = req.get_ref();
        let out = self
            .service
            .get_team(
                &caller,
                tenant_id(r.tenant_id)?,
                TeamId(positive("team_id", r.team_id)?),
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(out.into()))
    }

    async fn list_teams(
        &self,
        req: Request<pb::ListTeamsRequest>,
    ) -> Result<Response<pb::ListTeamsResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let (rows, next_page_token) = self
            .service
            .list_teams(
                &caller,
                tenant_id(r.tenant_id)?,
                page(r.page_size, r.page_token),
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListTeamsResponse {
            teams: rows.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn delete_team(
        &self,
        req: Request<pb::DeleteTeamRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller(&req)?;
        let r = req.get_ref();
        self.service
            .delete_team(
                &caller,
                tenant_id(r.tenant_id)?,
                TeamId(positive("team_id", r.team_id)?),
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(()))
    }

    async fn add_contact(
        &self,
        req: Request<pb::AddContactRequest>,
    ) -> Result<Response<pb::Contact>, Status> {
        let caller = caller(&req)?;
        let contact = req
            .into_inner()
            .contact
            .ok_or_else(|| invalid("contact", "is required"))?
            .try_into()?;
        let out = self
            .service
            .add_contact(&caller, contact)
            .await
            .map_err(to_status)?;
        Ok(Response::new(out.into()))
    }

    async fn list_contacts(
        &self,
        req: Request<pb::ListContactsRequest>,
    ) -> Result<Response<pb::ListContactsResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let (rows, next_page_token) = self
            .service
            .list_contacts(
                &caller,
                user_key(r.tenant_id, r.user_id)?,
                page(r.page_size, r.page_token),
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListContactsResponse {
            contacts: rows.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn remove_contact(
        &self,
        req: Request<pb::RemoveContactRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller(&req)?;
        let contact = req
            .into_inner()
            .contact
            .ok_or_else(|| invalid("contact", "is required"))?
            .try_into()?;
        self.service
            .remove_contact(&caller, contact)
            .await
            .map_err(to_status)?;
        Ok(Response::new(()))
    }

    async fn upsert_message_room(
        &self,
        req: Request<pb::UpsertMessageRoomRequest>,
    ) -> Result<Response<pb::MessageRoom>, Status> {
        let caller = caller(&req)?;
        let room = req
            .into_inner()
            .room
            .ok_or_else(|| invalid("room", "is required"))?
            .try_into()?;
        let out = self
            .service
            .upsert_room(&caller, room)
            .await
            .map_err(to_status)?;
        Ok(Response::new(out.into()))
    }

    async fn get_message_room(
        &self,
        req: Request<pb::GetMessageRoomRequest>,
    ) -> Result<Response<pb::MessageRoom>, Status> {
        let caller = caller(&req)?;
        let r = req.get_ref();
        let out = self
            .service
            .get_room(
                &caller,
                tenant_id(r.tenant_id)?,
                RoomId(positive("room_id", r.room_id)?),
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(out.into()))
    }

    async fn list_message_rooms(
        &self,
        req: Request<pb::ListMessageRoomsRequest>,
    ) -> Result<Response<pb::ListMessageRoomsResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let (rows, next_page_token) = self
            .service
            .list_rooms(
                &caller,
                tenant_id(r.tenant_id)?,
                page(r.page_size, r.page_token),
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListMessageRoomsResponse {
            rooms: rows.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn delete_message_room(
        &self,
        req: Request<pb::DeleteMessageRoomRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller(&req)?;
        let r = req.get_ref();
        self.service
            .delete_room(
                &caller,
                tenant_id(r.tenant_id)?,
                RoomId(positive("room_id", r.room_id)?),
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(()))
    }
}
