//! R25: a control character in any text field of any request answers
//! INVALID_ARGUMENT naming that field, on both backends alike (PostgreSQL used to answer
//! INTERNAL for NUL, SQLite stored it). TAB and LF stay allowed in descriptions.

use group_service::grpc::pb;
use prost::Message;
use prost_types::FieldMask;
use tonic::Code;
use tonic_types::StatusExt;

use super::call_raw;
use crate::fixtures::*;
use crate::harness::*;

const G: &str = "/groups.v1.GroupService/";
const M: &str = "/groups.v1.MembershipService/";
const D: &str = "/groups.v1.DirectoryService/";
const E: &str = "/groups.v1.EventService/";

/// One request with `bad` in one text field: (method path, field path, encoded request).
type Row = (String, &'static str, Vec<u8>);

fn row(service: &str, method: &str, field: &'static str, req: impl Message) -> Row {
    (format!("{service}{method}"), field, req.encode_to_vec())
}

fn group_with(change: impl FnOnce(&mut pb::Group)) -> Option<pb::Group> {
    let mut g = group_named("Design");
    change(&mut g);
    Some(g)
}

fn list(address: &str, recipient: &str) -> Option<pb::MailingList> {
    Some(pb::MailingList {
        address: address.into(),
        external_recipients: vec!["a@partner.test".into(), recipient.into()],
        ..Default::default()
    })
}

/// Every text field of every request, each holding `bad`.
fn rows(bad: &str) -> Vec<Row> {
    let b = || bad.to_owned();
    let create = |group| pb::CreateGroupRequest {
        parent: "tenants/1".into(),
        group,
        master_user_ids: vec![1],
        ..Default::default()
    };
    let update = |group: Option<pb::Group>, paths: &[&str]| pb::UpdateGroupRequest {
        group: group.map(|mut g| {
            if g.name.is_empty() {
                g.name = "tenants/1/groups/5".into();
            }
            g
        }),
        update_mask: Some(FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }),
    };
    vec![
        row(
            G,
            "CreateGroup",
            "parent",
            pb::CreateGroupRequest {
                parent: b(),
                ..create(group_with(|_| {}))
            },
        ),
        row(
            G,
            "CreateGroup",
            "group.display_name",
            create(group_with(|g| g.display_name = b())),
        ),
        row(
            G,
            "CreateGroup",
            "group.description",
            create(group_with(|g| g.description = b())),
        ),
        row(
            G,
            "CreateGroup",
            "group.photo_uri",
            create(group_with(|g| g.photo_uri = b())),
        ),
        row(
            G,
            "CreateGroup",
            "group.external_key",
            create(group_with(|g| g.external_key = b())),
        ),
        row(
            G,
            "CreateGroup",
            "group.mailing_list.address",
            create(group_with(|g| g.mailing_list = list(bad, "b@partner.test"))),
        ),
        row(
            G,
            "CreateGroup",
            "group.mailing_list.external_recipients[1]",
            create(group_with(|g| g.mailing_list = list("design", bad))),
        ),
        row(
            G,
            "CreateGroup",
            "request_id",
            pb::CreateGroupRequest {
                request_id: b(),
                ..create(group_with(|_| {}))
            },
        ),
        row(G, "GetGroup", "name", pb::GetGroupRequest { name: b() }),
        row(
            G,
            "DeleteGroup",
            "name",
            pb::DeleteGroupRequest {
                name: b(),
                ..Default::default()
            },
        ),
        row(
            G,
            "DeleteGroup",
            "etag",
            pb::DeleteGroupRequest {
                name: "tenants/1/groups/5".into(),
                etag: b(),
            },
        ),
        row(
            G,
            "UpdateGroup",
            "group.name",
            update(group_with(|g| g.name = b()), &["display_name"]),
        ),
        row(
            G,
            "UpdateGroup",
            "group.display_name",
            update(group_with(|g| g.display_name = b()), &["display_name"]),
        ),
        row(
            G,
            "UpdateGroup",
            "group.description",
            update(group_with(|g| g.description = b()), &["description"]),
        ),
        row(
            G,
            "UpdateGroup",
            "group.photo_uri",
            update(group_with(|g| g.photo_uri = b()), &["photo_uri"]),
        ),
        row(
            G,
            "UpdateGroup",
            "group.etag",
            update(group_with(|g| g.etag = b()), &["display_name"]),
        ),
        row(
            G,
            "UpdateGroup",
            "update_mask.paths[1]",
            update(group_with(|_| {}), &["display_name", bad]),
        ),
        row(
            G,
            "ListGroups",
            "parent",
            pb::ListGroupsRequest {
                parent: b(),
                ..Default::default()
            },
        ),
        row(
            G,
            "ListGroups",
            "page_token",
            pb::ListGroupsRequest {
                parent: "tenants/1".into(),
                page_token: b(),
                ..Default::default()
            },
        ),
        row(
            G,
            "ListGroups",
            "filter",
            pb::ListGroupsRequest {
                parent: "tenants/1".into(),
                filter: b(),
                ..Default::default()
            },
        ),
        row(
            G,
            "SearchGroups",
            "query",
            pb::SearchGroupsRequest {
                parent: "tenants/1".into(),
                query: b(),
                ..Default::default()
            },
        ),
        row(
            G,
            "SearchGroups",
            "page_token",
            pb::SearchGroupsRequest {
                parent: "tenants/1".into(),
                query: "d".into(),
                page_token: b(),
                ..Default::default()
            },
        ),
        row(
            G,
            "AutocompleteGroups",
            "prefix",
            pb::AutocompleteGroupsRequest {
                parent: "tenants/1".into(),
                prefix: b(),
                ..Default::default()
            },
        ),
        row(
            G,
            "DeleteFeatureData",
            "name",
            pb::DeleteFeatureDataRequest {
                name: b(),
                ..Default::default()
            },
        ),
        row(
            G,
            "ReportFeatureUsage",
            "feature",
            pb::ReportFeatureUsageRequest {
                name: "tenants/1/groups/5".into(),
                feature: b(),
                bytes: 1,
            },
        ),
        row(
            G,
            "ConvertMessageRoom",
            "room",
            pb::ConvertMessageRoomRequest {
                room: b(),
                ..Default::default()
            },
        ),
        row(
            G,
            "ConvertMessageRoom",
            "display_name",
            pb::ConvertMessageRoomRequest {
                room: "tenants/1/rooms/1".into(),
                display_name: b(),
                ..Default::default()
            },
        ),
        row(
            G,
            "ConvertMessageRoom",
            "description",
            pb::ConvertMessageRoomRequest {
                room: "tenants/1/rooms/1".into(),
                display_name: "Ops".into(),
                description: b(),
                ..Default::default()
            },
        ),
        row(
            G,
            "ConvertMessageRoom",
            "request_id",
            pb::ConvertMessageRoomRequest {
                room: "tenants/1/rooms/1".into(),
                display_name: "Ops".into(),
                request_id: b(),
                ..Default::default()
            },
        ),
        row(
            G,
            "GetTenantUsage",
            "name",
            pb::GetTenantUsageRequest { name: b() },
        ),
        row(
            M,
            "AddMembers",
            "group",
            pb::AddMembersRequest {
                group: b(),
                ..Default::default()
            },
        ),
        row(
            M,
            "AddMembers",
            "request_id",
            pb::AddMembersRequest {
                group: "tenants/1/groups/5".into(),
                request_id: b(),
                ..Default::default()
            },
        ),
        row(
            M,
            "RemoveMembers",
            "request_id",
            pb::RemoveMembersRequest {
                group: "tenants/1/groups/5".into(),
                request_id: b(),
                ..Default::default()
            },
        ),
        row(
            M,
            "ListMembers",
            "page_token",
            pb::ListMembersRequest {
                group: "tenants/1/groups/5".into(),
                page_token: b(),
                ..Default::default()
            },
        ),
        row(
            M,
            "ListEffectiveMembers",
            "group",
            pb::ListEffectiveMembersRequest {
                group: b(),
                ..Default::default()
            },
        ),
        row(
            M,
            "AddMasters",
            "group",
            pb::AddMastersRequest {
                group: b(),
                ..Default::default()
            },
        ),
        row(
            M,
            "RemoveMasters",
            "group",
            pb::RemoveMastersRequest {
                group: b(),
                ..Default::default()
            },
        ),
        row(
            M,
            "ListMasters",
            "page_token",
            pb::ListMastersRequest {
                group: "tenants/1/groups/5".into(),
                page_token: b(),
                ..Default::default()
            },
        ),
        row(
            M,
            "CheckMembership",
            "group",
            pb::CheckMembershipRequest {
                group: b(),
                ..Default::default()
            },
        ),
        row(
            M,
            "ListGroupsOfUser",
            "page_token",
            pb::ListGroupsOfUserRequest {
                user: Some(user_ref(1, 1)),
                page_token: b(),
                ..Default::default()
            },
        ),
        row(M, "Leave", "group", pb::LeaveRequest { group: b() }),
        row(
            D,
            "UpsertTenant",
            "tenant.display_name",
            pb::UpsertTenantRequest {
                tenant: Some(pb::Tenant {
                    id: 1,
                    display_name: b(),
                    ..Default::default()
                }),
            },
        ),
        row(
            D,
            "ListTenants",
            "page_token",
            pb::ListTenantsRequest {
                page_token: b(),
                ..Default::default()
            },
        ),
        row(
            D,
            "UpsertUser",
            "user.email",
            pb::UpsertUserRequest {
                user: Some(pb::User {
                    email: b(),
                    ..user_spec(1, 2)
                }),
            },
        ),
        row(
            D,
            "UpsertUser",
            "user.display_name",
            pb::UpsertUserRequest {
                user: Some(pb::User {
                    display_name: b(),
                    ..user_spec(1, 2)
                }),
            },
        ),
        row(
            D,
            "ListUsers",
            "page_token",
            pb::ListUsersRequest {
                tenant_id: 1,
                page_token: b(),
                ..Default::default()
            },
        ),
        row(
            D,
            "UpsertTeam",
            "team.display_name",
            pb::UpsertTeamRequest {
                team: Some(pb::Team {
                    display_name: b(),
                    ..team_spec(1, 3, &[])
                }),
            },
        ),
        row(
            D,
            "UpsertTeam",
            "team.email",
            pb::UpsertTeamRequest {
                team: Some(pb::Team {
                    email: b(),
                    ..team_spec(1, 3, &[])
                }),
            },
        ),
        row(
            D,
            "ListTeams",
            "page_token",
            pb::ListTeamsRequest {
                tenant_id: 1,
                page_token: b(),
                ..Default::default()
            },
        ),
        row(
            D,
            "ListContacts",
            "page_token",
            pb::ListContactsRequest {
                tenant_id: 1,
                user_id: 1,
                page_token: b(),
                ..Default::default()
            },
        ),
        row(
            D,
            "UpsertMessageRoom",
            "room.display_name",
            pb::UpsertMessageRoomRequest {
                room: Some(pb::MessageRoom {
                    tenant_id: 1,
                    id: 1,
                    display_name: b(),
                    ..Default::default()
                }),
            },
        ),
        row(
            D,
            "UpsertMessageRoom",
            "room.converted_group",
            pb::UpsertMessageRoomRequest {
                room: Some(pb::MessageRoom {
                    tenant_id: 1,
                    id: 1,
                    display_name: "r".into(),
                    converted_group: b(),
                    ..Default::default()
                }),
            },
        ),
        row(
            D,
            "ListMessageRooms",
            "page_token",
            pb::ListMessageRoomsRequest {
                tenant_id: 1,
                page_token: b(),
                ..Default::default()
            },
        ),
        row(
            E,
            "WatchEvents",
            "parent",
            pb::WatchEventsRequest {
                parent: b(),
                ..Default::default()
            },
        ),
        row(
            E,
            "GetEarliestCursor",
            "parent",
            pb::GetEarliestCursorRequest { parent: b() },
        ),
        row(
            E,
            "ListAuditEvents",
            "parent",
            pb::ListAuditEventsRequest {
                parent: b(),
                ..Default::default()
            },
        ),
        row(
            E,
            "ListAuditEvents",
            "filter",
            pb::ListAuditEventsRequest {
                parent: "tenants/1".into(),
                filter: b(),
                ..Default::default()
            },
        ),
        row(
            E,
            "ListAuditEvents",
            "page_token",
            pb::ListAuditEventsRequest {
                parent: "tenants/1".into(),
                page_token: b(),
                ..Default::default()
            },
        ),
    ]
}

/// Asserts INVALID_ARGUMENT whose only violation is `field`, described as a control
/// character.
#[track_caller]
fn assert_control_character(status: &tonic::Status, field: &str, what: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
    let bad = status
        .get_details_bad_request()
        .unwrap_or_else(|| panic!("{what}: no BadRequest in {status:?}"));
    let fields: Vec<(&str, &str)> = bad
        .field_violations
        .iter()
        .map(|v| (v.field.as_str(), v.description.as_str()))
        .collect();
    assert_eq!(fields.len(), 1, "{what}: {fields:?}");
    assert_eq!(fields[0].0, field, "{what}: {fields:?}");
    assert!(
        fields[0].1.contains("control characters"),
        "{what}: {fields:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_control_character_in_every_text_field_is_invalid_argument() {
    let Some(srv) = server().await else { return };
    srv.company(1, 3).await;
    for bad in ["x\0y", "\u{7}", "a\u{1b}[31m", "\u{7f}", "x\u{85}", "a\rb"] {
        for (path, field, body) in rows(bad) {
            let err = call_raw(&srv, &path, body).await.unwrap_err();
            assert_control_character(&err, field, &format!("{path} {field} {bad:?}"));
        }
    }
    assert_eq!(srv.group_count(1).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_nul_in_photo_uri_is_invalid_argument() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let err = group(1, "Design")
        .master(2)
        .with(|g| g.photo_uri = "https://cdn.test/a\0.png".into())
        .try_create(&srv)
        .await
        .unwrap_err();
    assert_control_character(&err, "group.photo_uri", "photo_uri");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r02_description_keeps_tabs_and_line_breaks() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let text = "Line one\n\tindented\nline three";
    let g = group(1, "Design")
        .master(2)
        .with(|g| g.description = text.into())
        .create(&srv)
        .await;
    assert_eq!(get(&srv, &g.name).await.description, text);
    let err = group(1, "Design\nTwo")
        .master(2)
        .try_create(&srv)
        .await
        .unwrap_err();
    assert_control_character(&err, "group.display_name", "a line break in a name");
}
