//! DirectoryService: the local copy of tenants, users, teams, contacts and message rooms;
//! its validation (R25) and its page tokens.

use std::collections::BTreeSet;

use crate::fixtures::*;
use crate::harness::*;
use group_service::grpc::pb;
use tonic::Code;

fn user(tenant: i64, id: i64, email: &str) -> pb::UpsertUserRequest {
    pb::UpsertUserRequest {
        user: Some(pb::User {
            email: email.into(),
            ..user_spec(tenant, id)
        }),
    }
}

fn team(tenant: i64, id: i64, members: &[i64]) -> pb::UpsertTeamRequest {
    pb::UpsertTeamRequest {
        team: Some(team_spec(tenant, id, members)),
    }
}

fn list_users(tenant: i64, size: i32, token: &str) -> pb::ListUsersRequest {
    pb::ListUsersRequest {
        tenant_id: tenant,
        page_size: size,
        page_token: token.into(),
    }
}

// ---- CRUD ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_tenant_upsert_get_list_delete() {
    let Some(srv) = server().await else { return };
    let created = srv
        .tenant(1, pb::Plan::Free, pb::GroupCreation::AdminsOnly)
        .await;
    srv.tenant(2, pb::Plan::Paid, pb::GroupCreation::AllMembers)
        .await;
    assert_eq!(created.id, 1);
    assert_eq!(created.plan, pb::Plan::Free as i32);
    assert_eq!(created.group_creation, pb::GroupCreation::AdminsOnly as i32);
    assert_eq!(created.group_count, 0);
    let mut dir = srv.directory(1);
    let got = dir
        .get_tenant(pb::GetTenantRequest { tenant_id: 1 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, created);

    // An upsert changes the settings and keeps the counters.
    srv.user(1, 1, true).await;
    srv.groups(1, 1, true)
        .create_group(create_req(1, "Counted", &[1]))
        .await
        .unwrap();
    let changed = dir
        .upsert_tenant(pb::UpsertTenantRequest {
            tenant: Some(pb::Tenant {
                display_name: "Renamed".into(),
                group_creation: pb::GroupCreation::AllMembers as i32,
                core_enabled: false,
                group_count: 500,
                storage_used_bytes: 7,
                ..got.clone()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(changed.display_name, "Renamed");
    assert_eq!(changed.group_creation, pb::GroupCreation::AllMembers as i32);
    assert!(!changed.core_enabled);
    assert_eq!(changed.group_count, 1, "group_count is output only");
    assert_eq!(
        changed.storage_used_bytes, 0,
        "storage_used_bytes is output only"
    );

    // A service lists its own tenant only.
    let listed = dir
        .list_tenants(pb::ListTenantsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<i64> = listed.tenants.iter().map(|t| t.id).collect();
    assert_eq!(ids, [1]);
    assert_eq!(listed.next_page_token, "");

    dir.delete_tenant(pb::DeleteTenantRequest { tenant_id: 1 })
        .await
        .unwrap();
    let err = dir
        .get_tenant(pb::GetTenantRequest { tenant_id: 1 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = dir
        .delete_tenant(pb::DeleteTenantRequest { tenant_id: 1 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    // Tenant 2 is untouched.
    assert_eq!(srv.get_tenant(2).await.plan, pb::Plan::Paid as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_user_upsert_get_list_delete() {
    let Some(srv) = server().await else { return };
    srv.tenant(1, pb::Plan::Free, pb::GroupCreation::AdminsOnly)
        .await;
    let mut dir = srv.directory(1);
    let created = dir
        .upsert_user(user(1, 5, "five@t1.example"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.email, "five@t1.example");
    let got = dir
        .get_user(pb::GetUserRequest {
            tenant_id: 1,
            user_id: 5,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, created);

    let mut changed = user(1, 5, "fifth@t1.example");
    if let Some(u) = changed.user.as_mut() {
        u.is_admin = true;
        u.kind = pb::UserKind::Line as i32;
        u.external_messaging_allowed = false;
    }
    let changed = dir.upsert_user(changed).await.unwrap().into_inner();
    let got = dir
        .get_user(pb::GetUserRequest {
            tenant_id: 1,
            user_id: 5,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, changed);
    assert!(got.is_admin);
    assert_eq!(got.kind, pb::UserKind::Line as i32);

    dir.upsert_user(user(1, 6, "six@t1.example")).await.unwrap();
    let listed = dir
        .list_users(list_users(1, 0, ""))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<i64> = listed.users.iter().map(|u| u.id).collect();
    assert_eq!(ids, [5, 6]);

    dir.delete_user(pb::DeleteUserRequest {
        tenant_id: 1,
        user_id: 5,
    })
    .await
    .unwrap();
    let err = dir
        .get_user(pb::GetUserRequest {
            tenant_id: 1,
            user_id: 5,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = dir
        .delete_user(pb::DeleteUserRequest {
            tenant_id: 1,
            user_id: 5,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_team_with_members_upsert_get_list_delete() {
    let Some(srv) = server().await else { return };
    srv.company(1, 4).await;
    let mut dir = srv.directory(1);
    let created = dir
        .upsert_team(team(1, 10, &[3, 2, 3]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.member_user_ids, [2, 3]);
    let get = pb::GetTeamRequest {
        tenant_id: 1,
        team_id: 10,
    };
    let got = dir.get_team(get).await.unwrap().into_inner();
    assert_eq!(got, created);

    // An upsert replaces the member list.
    dir.upsert_team(team(1, 10, &[4])).await.unwrap();
    let got = dir.get_team(get).await.unwrap().into_inner();
    assert_eq!(got.member_user_ids, [4]);

    // A deleted user leaves the team.
    dir.upsert_team(team(1, 11, &[2, 4])).await.unwrap();
    dir.delete_user(pb::DeleteUserRequest {
        tenant_id: 1,
        user_id: 4,
    })
    .await
    .unwrap();
    let got = dir
        .get_team(pb::GetTeamRequest {
            tenant_id: 1,
            team_id: 11,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.member_user_ids, [2]);

    let listed = dir
        .list_teams(pb::ListTeamsRequest {
            tenant_id: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<i64> = listed.teams.iter().map(|t| t.id).collect();
    assert_eq!(ids, [10, 11]);

    dir.delete_team(pb::DeleteTeamRequest {
        tenant_id: 1,
        team_id: 10,
    })
    .await
    .unwrap();
    let err = dir.get_team(get).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_contact_add_list_remove() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    srv.company(2, 3).await;
    let mut dir = srv.directory(1);
    for other in [3, 2] {
        let added = dir
            .add_contact(pb::AddContactRequest {
                contact: Some(contact_of((1, 2), (2, other))),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(added, contact_of((1, 2), (2, other)));
    }
    let listed = dir
        .list_contacts(pb::ListContactsRequest {
            tenant_id: 1,
            user_id: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.contacts,
        [contact_of((1, 2), (2, 2)), contact_of((1, 2), (2, 3))]
    );
    dir.remove_contact(pb::RemoveContactRequest {
        contact: Some(contact_of((1, 2), (2, 2))),
    })
    .await
    .unwrap();
    let err = dir
        .remove_contact(pb::RemoveContactRequest {
            contact: Some(contact_of((1, 2), (2, 2))),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let listed = dir
        .list_contacts(pb::ListContactsRequest {
            tenant_id: 1,
            user_id: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.contacts, [contact_of((1, 2), (2, 3))]);
    // The owner must exist; the contact, a user of another tenant, is not looked up (R24).
    let err = dir
        .add_contact(pb::AddContactRequest {
            contact: Some(contact_of((1, 99), (2, 3))),
        })
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "UNKNOWN_MEMBER");
    dir.add_contact(pb::AddContactRequest {
        contact: Some(contact_of((1, 2), (2, 99))),
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_message_room_upsert_get_list_delete() {
    let Some(srv) = server().await else { return };
    srv.company(1, 3).await;
    srv.company(2, 2).await;
    let mut dir = srv.directory(1);
    let room = pb::MessageRoom {
        tenant_id: 1,
        id: 40,
        display_name: "Launch".into(),
        members: vec![user_ref(2, 2), user_ref(1, 3), user_ref(1, 2)],
        converted_group: String::new(),
    };
    let created = dir
        .upsert_message_room(pb::UpsertMessageRoomRequest {
            room: Some(room.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.display_name, "Launch");
    assert_eq!(
        created.members,
        [user_ref(1, 2), user_ref(1, 3), user_ref(2, 2)]
    );
    assert_eq!(created.converted_group, "");
    let get = pb::GetMessageRoomRequest {
        tenant_id: 1,
        room_id: 40,
    };
    assert_eq!(
        dir.get_message_room(get).await.unwrap().into_inner(),
        created
    );

    // An upsert replaces the members.
    let replaced = dir
        .upsert_message_room(pb::UpsertMessageRoomRequest {
            room: Some(pb::MessageRoom {
                members: vec![user_ref(1, 1)],
                ..room.clone()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replaced.members, [user_ref(1, 1)]);

    // Every member of the room's tenant must be a known user; users of other tenants are not
    // looked up (R24).
    let err = dir
        .upsert_message_room(pb::UpsertMessageRoomRequest {
            room: Some(pb::MessageRoom {
                id: 41,
                members: vec![user_ref(1, 99)],
                ..room.clone()
            }),
        })
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "UNKNOWN_MEMBER");
    dir.upsert_message_room(pb::UpsertMessageRoomRequest {
        room: Some(pb::MessageRoom {
            id: 42,
            members: vec![user_ref(2, 99)],
            ..room.clone()
        }),
    })
    .await
    .unwrap();
    dir.delete_message_room(pb::DeleteMessageRoomRequest {
        tenant_id: 1,
        room_id: 42,
    })
    .await
    .unwrap();

    let listed = dir
        .list_message_rooms(pb::ListMessageRoomsRequest {
            tenant_id: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.rooms, [replaced]);

    dir.delete_message_room(pb::DeleteMessageRoomRequest {
        tenant_id: 1,
        room_id: 40,
    })
    .await
    .unwrap();
    let err = dir.get_message_room(get).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}

// ---- R25: validation ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_bad_email_names_user_email() {
    let Some(srv) = server().await else { return };
    srv.tenant(1, pb::Plan::Free, pb::GroupCreation::AdminsOnly)
        .await;
    let mut dir = srv.directory(1);
    for email in [
        "",
        "not-an-email",
        "a@b",
        "@t1.example",
        "a@@t1.example",
        "a b@t1.example",
        "a@.example",
        "a@example.",
    ] {
        let err = dir.upsert_user(user(1, 5, email)).await.unwrap_err();
        assert_bad_field(&err, "user.email");
    }
    let err = dir
        .get_user(pb::GetUserRequest {
            tenant_id: 1,
            user_id: 5,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_unspecified_plan_names_tenant_plan() {
    let Some(srv) = server().await else { return };
    let err = srv
        .directory(1)
        .upsert_tenant(pb::UpsertTenantRequest {
            tenant: Some(pb::Tenant {
                id: 1,
                display_name: "Planless".into(),
                plan: pb::Plan::Unspecified as i32,
                group_creation: pb::GroupCreation::AdminsOnly as i32,
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_bad_field(&err, "tenant.plan");
    let err = srv
        .directory(1)
        .get_tenant(pb::GetTenantRequest { tenant_id: 1 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_user_of_a_missing_tenant_is_tenant_not_found() {
    let Some(srv) = server().await else { return };
    let err = srv
        .directory(5)
        .upsert_user(user(5, 1, "one@t5.example"))
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "TENANT_NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_team_with_an_unknown_member_is_unknown_member() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    srv.company(2, 3).await;
    let mut dir = srv.directory(1);
    // User 3 exists, but in tenant 2 only.
    for members in [&[2, 99][..], &[3]] {
        let err = dir.upsert_team(team(1, 10, members)).await.unwrap_err();
        assert_reason(&err, Code::FailedPrecondition, "UNKNOWN_MEMBER");
    }
    let err = dir
        .get_team(pb::GetTeamRequest {
            tenant_id: 1,
            team_id: 10,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_contact_in_the_same_tenant_names_contact_tenant_id() {
    let Some(srv) = server().await else { return };
    srv.company(1, 3).await;
    let err = srv
        .directory(1)
        .add_contact(pb::AddContactRequest {
            contact: Some(contact_of((1, 2), (1, 3))),
        })
        .await
        .unwrap_err();
    assert_bad_field(&err, "contact.contact_tenant_id");
}

// ---- Page tokens ----

/// Tenant 1 with users 3, 5, ..., 15 (seven users, ids not contiguous).
async fn seven_users(srv: &TestServer) -> Vec<i64> {
    srv.tenant(1, pb::Plan::Free, pb::GroupCreation::AdminsOnly)
        .await;
    let ids: Vec<i64> = (1..=7).map(|i| 2 * i + 1).collect();
    for id in ids.iter().rev() {
        srv.user(1, *id, false).await;
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_list_users_pages_through_without_duplicates_or_gaps() {
    let Some(srv) = server().await else { return };
    let ids = seven_users(&srv).await;
    let mut dir = srv.directory(1);
    let mut token = String::new();
    let mut sizes = Vec::new();
    let mut seen = Vec::new();
    loop {
        let page = dir
            .list_users(list_users(1, 3, &token))
            .await
            .unwrap()
            .into_inner();
        sizes.push(page.users.len());
        seen.extend(page.users.iter().map(|u| u.id));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
        assert!(sizes.len() < 10, "paging does not end");
    }
    assert_eq!(sizes, [3, 3, 1]);
    let err = dir.list_users(list_users(1, -1, "")).await.unwrap_err();
    assert_bad_field(&err, "page_size");
    assert_eq!(seen, ids, "every user once, in id order");
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_altered_page_token_is_invalid() {
    let Some(srv) = server().await else { return };
    seven_users(&srv).await;
    let mut dir = srv.directory(1);
    let token = dir
        .list_users(list_users(1, 3, ""))
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!token.is_empty());
    // Flip one character at a few places: the payload, the separator, the MAC.
    let mut altered = Vec::new();
    for at in [2, token.len() / 2, token.len() - 2] {
        let mut bytes = token.clone().into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        altered.push(String::from_utf8(bytes).unwrap());
    }
    altered.push(format!("{token}x"));
    altered.push("not a token".into());
    for bad in altered {
        assert_ne!(bad, token);
        let err = dir.list_users(list_users(1, 3, &bad)).await.unwrap_err();
        assert_reason(&err, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
        assert_bad_field(&err, "page_token");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_page_token_of_another_query_is_invalid() {
    let Some(srv) = server().await else { return };
    seven_users(&srv).await;
    srv.tenant(2, pb::Plan::Free, pb::GroupCreation::AdminsOnly)
        .await;
    for id in 1..=7 {
        srv.user(2, id, false).await;
    }
    let token = srv
        .directory(1)
        .list_users(list_users(1, 3, ""))
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!token.is_empty());
    // ListTeams of the same tenant.
    let err = srv
        .directory(1)
        .list_teams(pb::ListTeamsRequest {
            tenant_id: 1,
            page_size: 3,
            page_token: token.clone(),
        })
        .await
        .unwrap_err();
    assert_reason(&err, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
    // ListMessageRooms of the same tenant.
    let err = srv
        .directory(1)
        .list_message_rooms(pb::ListMessageRoomsRequest {
            tenant_id: 1,
            page_size: 3,
            page_token: token.clone(),
        })
        .await
        .unwrap_err();
    assert_reason(&err, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
    // ListUsers of another tenant.
    let err = srv
        .directory(2)
        .list_users(list_users(2, 3, &token))
        .await
        .unwrap_err();
    assert_reason(&err, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
}

// ---- Tenants and their groups ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r24_deleting_a_tenant_makes_its_groups_unreadable() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let g = srv
        .groups(1, 1, true)
        .create_group(create_req(1, "Orphan", &[2]))
        .await
        .unwrap()
        .into_inner();
    srv.directory(1)
        .delete_tenant(pb::DeleteTenantRequest { tenant_id: 1 })
        .await
        .unwrap();
    // The directory system of the tenant reads it as missing.
    let err = srv
        .groups_service(1)
        .get_group(get_req(&g.name))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    // Its users' tokens outlive them, and prove nothing.
    let err = srv
        .groups(1, 1, true)
        .get_group(get_req(&g.name))
        .await
        .unwrap_err();
    assert_reason(&err, Code::PermissionDenied, "CALLER_NOT_IN_DIRECTORY");
    // A tenant re-created with the same id does not get the group back.
    srv.company(1, 2).await;
    assert_eq!(srv.group_count(1).await, 0);
    let err = srv
        .groups(1, 1, true)
        .get_group(get_req(&g.name))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    srv.groups(1, 1, true)
        .create_group(create_req(1, "Orphan", &[2]))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r24_get_group_of_a_missing_tenant_is_not_found() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let err = srv
        .groups(1, 1, true)
        .get_group(get_req("tenants/99/groups/1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = srv
        .groups_service(99)
        .get_group(get_req("tenants/99/groups/1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}
