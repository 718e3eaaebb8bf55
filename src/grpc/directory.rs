//! `groups.v1.DirectoryService`.

use super::convert::Listing;
use super::pb;
use super::pb::directory_service_server::DirectoryService;
use crate::domain::Service;
use crate::domain::model::{Contact, MessageRoom, Team, Tenant, TenantId, User, UserKey};
use crate::domain::names::{RoomName, TeamName};
use crate::domain::page::PageRequest;

pub struct DirectoryApi {
    service: Service,
}

impl DirectoryApi {
    pub fn new(service: Service) -> Self {
        DirectoryApi { service }
    }
}

handlers! {
    impl DirectoryService for DirectoryApi |s, caller| {
        upsert_tenant(pb::UpsertTenantRequest) -> pb::Tenant =
            |tenant: Tenant| s.upsert_tenant(caller, tenant).await?;
        get_tenant(pb::GetTenantRequest) -> pb::Tenant =
            |id: TenantId| s.get_tenant(caller, id).await?;
        list_tenants(pb::ListTenantsRequest) -> pb::ListTenantsResponse =
            |page: PageRequest| s.list_tenants(caller, page).await?;
        delete_tenant(pb::DeleteTenantRequest) -> () =
            |id: TenantId| s.delete_tenant(caller, id).await?;

        upsert_user(pb::UpsertUserRequest) -> pb::User =
            |user: User| s.upsert_user(caller, user).await?;
        get_user(pb::GetUserRequest) -> pb::User = |key: UserKey| s.get_user(caller, key).await?;
        list_users(pb::ListUsersRequest) -> pb::ListUsersResponse =
            |l: Listing<TenantId>| s.list_users(caller, l.of, l.page).await?;
        delete_user(pb::DeleteUserRequest) -> () = |key: UserKey| s.delete_user(caller, key).await?;

        upsert_team(pb::UpsertTeamRequest) -> pb::Team =
            |team: Team| s.upsert_team(caller, team).await?;
        get_team(pb::GetTeamRequest) -> pb::Team =
            |t: TeamName| s.get_team(caller, t.tenant, t.team).await?;
        list_teams(pb::ListTeamsRequest) -> pb::ListTeamsResponse =
            |l: Listing<TenantId>| s.list_teams(caller, l.of, l.page).await?;
        delete_team(pb::DeleteTeamRequest) -> () =
            |t: TeamName| s.delete_team(caller, t.tenant, t.team).await?;

        add_contact(pb::AddContactRequest) -> pb::Contact =
            |contact: Contact| s.add_contact(caller, contact).await?;
        list_contacts(pb::ListContactsRequest) -> pb::ListContactsResponse =
            |l: Listing<UserKey>| s.list_contacts(caller, l.of, l.page).await?;
        remove_contact(pb::RemoveContactRequest) -> () =
            |contact: Contact| s.remove_contact(caller, contact).await?;

        upsert_message_room(pb::UpsertMessageRoomRequest) -> pb::MessageRoom =
            |room: MessageRoom| s.upsert_room(caller, room).await?;
        get_message_room(pb::GetMessageRoomRequest) -> pb::MessageRoom =
            |r: RoomName| s.get_room(caller, r.tenant, r.room).await?;
        list_message_rooms(pb::ListMessageRoomsRequest) -> pb::ListMessageRoomsResponse =
            |l: Listing<TenantId>| s.list_rooms(caller, l.of, l.page).await?;
        delete_message_room(pb::DeleteMessageRoomRequest) -> () =
            |r: RoomName| s.delete_room(caller, r.tenant, r.room).await?;
    }
}
