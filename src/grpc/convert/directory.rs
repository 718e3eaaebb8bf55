//! DirectoryService: tenants, users, teams, contacts and message rooms, and the requests that
//! name them by numeric ids.

use tonic::Status;

use super::{Listing, invalid, listing, page, positive, required, tenant_id, user_key};
use super::{user_ref, user_refs_out};
use crate::domain::model::*;
use crate::domain::names::{GroupName, RoomName, TeamName};
use crate::domain::page::PageRequest;
use crate::grpc::pb;

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
            id: tenant_id("tenant.id", t.id)?,
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
            key: user_key(("user.tenant_id", u.tenant_id), ("user.id", u.id))?,
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
            tenant: tenant_id("team.tenant_id", t.tenant_id)?,
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
            owner: user_key(
                ("contact.tenant_id", c.tenant_id),
                ("contact.user_id", c.user_id),
            )?,
            contact: user_key(
                ("contact.contact_tenant_id", c.contact_tenant_id),
                ("contact.contact_user_id", c.contact_user_id),
            )?,
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
        // Every member's violation names the repeated field without an index, as it always has.
        let members = r
            .members
            .iter()
            .map(|m| user_ref("room.members", m))
            .collect::<Result<_, _>>()?;
        Ok(MessageRoom {
            tenant: tenant_id("room.tenant_id", r.tenant_id)?,
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
            members: user_refs_out(r.members),
            converted_group: r
                .converted_group
                .map(|group| {
                    GroupName {
                        tenant: r.tenant,
                        group,
                    }
                    .to_string()
                })
                .unwrap_or_default(),
        }
    }
}

fn team_key(tenant: i64, team: i64) -> Result<TeamName, Status> {
    Ok(TeamName {
        tenant: tenant_id("tenant_id", tenant)?,
        team: TeamId(positive("team_id", team)?),
    })
}

fn room_key(tenant: i64, room: i64) -> Result<RoomName, Status> {
    Ok(RoomName {
        tenant: tenant_id("tenant_id", tenant)?,
        room: RoomId(positive("room_id", room)?),
    })
}

fn user_ids(tenant: i64, user: i64) -> Result<UserKey, Status> {
    user_key(("tenant_id", tenant), ("user_id", user))
}

decode! {
    pb::UpsertTenantRequest => Tenant = |r| required("tenant", r.tenant)?.try_into();
    pb::GetTenantRequest => TenantId = |r| tenant_id("tenant_id", r.tenant_id);
    pb::ListTenantsRequest => PageRequest = |r| Ok(page(r.page_size, r.page_token));
    pb::DeleteTenantRequest => TenantId = |r| tenant_id("tenant_id", r.tenant_id);

    pb::UpsertUserRequest => User = |r| required("user", r.user)?.try_into();
    pb::GetUserRequest => UserKey = |r| user_ids(r.tenant_id, r.user_id);
    pb::ListUsersRequest => Listing<TenantId> =
        |r| Ok(listing(tenant_id("tenant_id", r.tenant_id)?, r.page_size, r.page_token));
    pb::DeleteUserRequest => UserKey = |r| user_ids(r.tenant_id, r.user_id);

    pb::UpsertTeamRequest => Team = |r| required("team", r.team)?.try_into();
    pb::GetTeamRequest => TeamName = |r| team_key(r.tenant_id, r.team_id);
    pb::ListTeamsRequest => Listing<TenantId> =
        |r| Ok(listing(tenant_id("tenant_id", r.tenant_id)?, r.page_size, r.page_token));
    pb::DeleteTeamRequest => TeamName = |r| team_key(r.tenant_id, r.team_id);

    pb::AddContactRequest => Contact = |r| required("contact", r.contact)?.try_into();
    pb::ListContactsRequest => Listing<UserKey> =
        |r| Ok(listing(user_ids(r.tenant_id, r.user_id)?, r.page_size, r.page_token));
    pb::RemoveContactRequest => Contact = |r| required("contact", r.contact)?.try_into();

    pb::UpsertMessageRoomRequest => MessageRoom = |r| required("room", r.room)?.try_into();
    pb::GetMessageRoomRequest => RoomName = |r| room_key(r.tenant_id, r.room_id);
    pb::ListMessageRoomsRequest => Listing<TenantId> =
        |r| Ok(listing(tenant_id("tenant_id", r.tenant_id)?, r.page_size, r.page_token));
    pb::DeleteMessageRoomRequest => RoomName = |r| room_key(r.tenant_id, r.room_id);
}

page_response! {
    ListTenantsResponse { tenants: Tenant }
    ListUsersResponse { users: User }
    ListTeamsResponse { teams: Team }
    ListContactsResponse { contacts: Contact }
    ListMessageRoomsResponse { rooms: MessageRoom }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::tests::{one, violations};
    use super::*;

    #[test]
    fn a_tenant_round_trips() {
        let sent = pb::Tenant {
            id: 4,
            display_name: "Acme".into(),
            plan: pb::Plan::Paid as i32,
            core_enabled: true,
            group_creation: pb::GroupCreation::AllMembers as i32,
            masters_may_manage_settings: true,
            storage_quota_bytes: 10,
            storage_used_bytes: 0,
            group_count: 0,
        };
        let tenant = Tenant::try_from(sent.clone()).unwrap();
        assert_eq!(tenant.plan, Plan::Paid);
        assert_eq!(pb::Tenant::from(tenant), sent);
    }

    #[test]
    fn rooms_answer_the_converted_group_by_name() {
        let room = MessageRoom {
            tenant: TenantId(3),
            id: RoomId(8),
            display_name: "Lobby".into(),
            members: vec![UserKey {
                tenant: TenantId(4),
                user: UserId(1),
            }],
            converted_group: Some(GroupId(9)),
        };
        let answered = pb::MessageRoom::from(room);
        assert_eq!(answered.converted_group, "tenants/3/groups/9");
        assert_eq!(answered.members[0].tenant_id, 4);

        let mut sent = answered;
        sent.members[0].user_id = 0;
        assert_eq!(
            violations(MessageRoom::try_from(sent).unwrap_err()),
            one("room.members.user_id", "must be a positive id")
        );
    }

    #[test]
    fn numeric_keys_name_their_fields_tenant_first() {
        let get = pb::GetTeamRequest {
            tenant_id: 0,
            team_id: 0,
        };
        assert_eq!(
            violations(TeamName::try_from(get).unwrap_err()),
            one("tenant_id", "must be a positive id")
        );
        let contact = pb::Contact {
            tenant_id: 1,
            user_id: 2,
            contact_tenant_id: 3,
            contact_user_id: -1,
        };
        assert_eq!(
            violations(Contact::try_from(contact).unwrap_err()),
            one("contact.contact_user_id", "must be a positive id")
        );
        let upsert = pb::UpsertUserRequest { user: None };
        assert_eq!(
            violations(User::try_from(upsert).unwrap_err()),
            one("user", "is required")
        );
    }
}
