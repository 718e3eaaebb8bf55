//! External groups across companies (R12-R20, R24): creation rules, contacts, leaving, room
//! conversion, revocation of the external permission, cross-tenant access, deletion and
//! storage. Tenants A, B and C are three companies; A owns the groups unless a test says
//! otherwise. User ids repeat across tenants on purpose (user 2 of A is not user 2 of B).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use group_service::domain::model::{GroupId, TenantId};
use group_service::grpc::pb;
use tonic::{Code, Status};

use crate::harness::*;

const A: i64 = 1;
const B: i64 = 2;
const C: i64 = 3;

/// (tenant, user).
type Key = (i64, i64);

// ---- fixtures ----

/// A user of `tenant` (any tenant) as a member reference.
fn user_of(tenant: i64, id: i64) -> pb::MemberRef {
    pb::MemberRef {
        r#type: pb::MemberType::User as i32,
        id,
        tenant_id: tenant,
    }
}

fn user_ref((tenant, user): Key) -> pb::UserRef {
    pb::UserRef {
        tenant_id: tenant,
        user_id: user,
    }
}

/// `tenants/{t}/groups/{g}` as (t, g).
fn parse_name(name: &str) -> Key {
    let parts: Vec<&str> = name.split('/').collect();
    match parts.as_slice() {
        ["tenants", t, "groups", g] => (t.parse().unwrap(), g.parse().unwrap()),
        _ => panic!("{name:?} is not tenants/T/groups/G"),
    }
}

/// A group name of `tenant` that does not exist.
fn missing_group(tenant: i64) -> String {
    format!("tenants/{tenant}/groups/987654321")
}

/// Creates or replaces a user with the given external permission and kind (not an admin).
async fn person(srv: &TestServer, tenant: i64, id: i64, allowed: bool, kind: pb::UserKind) {
    srv.directory(tenant)
        .upsert_user(pb::UpsertUserRequest {
            user: Some(pb::User {
                tenant_id: tenant,
                id,
                email: format!("user{id}@t{tenant}.example"),
                display_name: format!("User {id}"),
                is_admin: false,
                external_messaging_allowed: allowed,
                kind: kind as i32,
            }),
        })
        .await
        .expect("upsert user");
}

/// R18: the admin turns off the user's "Manage External Message Users".
async fn revoke(srv: &TestServer, (tenant, id): Key) {
    person(srv, tenant, id, false, pb::UserKind::Works).await;
}

/// Puts `other` (a user of another tenant) into `owner`'s contacts.
async fn contact(srv: &TestServer, owner: Key, other: Key) {
    srv.directory(owner.0)
        .add_contact(pb::AddContactRequest {
            contact: Some(pb::Contact {
                tenant_id: owner.0,
                user_id: owner.1,
                contact_tenant_id: other.0,
                contact_user_id: other.1,
            }),
        })
        .await
        .expect("add contact");
}

/// Rewrites a tenant's plan, Core and storage quota (ADMINS_ONLY, masters manage settings).
async fn set_tenant(srv: &TestServer, id: i64, plan: pb::Plan, core: bool, quota: i64) {
    srv.directory(id)
        .upsert_tenant(pb::UpsertTenantRequest {
            tenant: Some(pb::Tenant {
                id,
                display_name: format!("Tenant {id}"),
                plan: plan as i32,
                group_creation: pb::GroupCreation::AdminsOnly as i32,
                core_enabled: core,
                masters_may_manage_settings: true,
                storage_quota_bytes: quota,
                ..Default::default()
            }),
        })
        .await
        .expect("upsert tenant");
}

/// A create request for an external group of `tenant`.
fn external_req(
    tenant: i64,
    name: &str,
    masters: &[i64],
    members: Vec<pb::MemberRef>,
) -> pb::CreateGroupRequest {
    let mut req = create_req(tenant, name, masters);
    req.members = members;
    if let Some(g) = req.group.as_mut() {
        g.kind = pb::GroupKind::External as i32;
    }
    req
}

/// Creates an external group of `tenant` as its admin (user 1); returns its name.
async fn external_group(
    srv: &TestServer,
    tenant: i64,
    name: &str,
    masters: &[i64],
    members: Vec<pb::MemberRef>,
) -> String {
    srv.groups(tenant, 1, true)
        .create_group(external_req(tenant, name, masters, members))
        .await
        .expect("create external group")
        .into_inner()
        .name
}

/// Creates an internal group of `tenant` as its admin; returns its name.
async fn internal_group(
    srv: &TestServer,
    tenant: i64,
    name: &str,
    masters: &[i64],
    members: Vec<pb::MemberRef>,
) -> String {
    let mut req = create_req(tenant, name, masters);
    req.members = members;
    srv.groups(tenant, 1, true)
        .create_group(req)
        .await
        .expect("create internal group")
        .into_inner()
        .name
}

fn add_req(group: &str, members: Vec<pb::MemberRef>) -> pb::AddMembersRequest {
    pb::AddMembersRequest {
        group: group.to_owned(),
        members,
        request_id: String::new(),
    }
}

fn remove_req(group: &str, members: Vec<pb::MemberRef>) -> pb::RemoveMembersRequest {
    pb::RemoveMembersRequest {
        group: group.to_owned(),
        members,
        request_id: String::new(),
    }
}

/// Adds members as user `by`.
async fn add(
    srv: &TestServer,
    by: Key,
    group: &str,
    members: Vec<pb::MemberRef>,
) -> Result<pb::AddMembersResponse, Status> {
    srv.membership(by.0, by.1, false)
        .add_members(add_req(group, members))
        .await
        .map(|r| r.into_inner())
}

fn update_req(group: &str, spec: pb::Group, paths: &[&str]) -> pb::UpdateGroupRequest {
    pb::UpdateGroupRequest {
        group: Some(pb::Group {
            name: group.to_owned(),
            ..spec
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }),
    }
}

/// Direct user members, read by the owning tenant's admin.
async fn member_keys(srv: &TestServer, group: &str) -> BTreeSet<Key> {
    let (tenant, _) = parse_name(group);
    let r = srv
        .membership(tenant, 1, true)
        .list_members(pb::ListMembersRequest {
            group: group.to_owned(),
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .expect("list members")
        .into_inner();
    assert!(r.next_page_token.is_empty(), "more than one page");
    r.members
        .into_iter()
        .filter_map(|m| m.member)
        .map(|m| (m.tenant_id, m.id))
        .collect()
}

/// Group Masters, read by the owning tenant's admin.
async fn masters_of(srv: &TestServer, group: &str) -> Vec<Key> {
    let (tenant, _) = parse_name(group);
    srv.membership(tenant, 1, true)
        .list_masters(pb::ListMastersRequest {
            group: group.to_owned(),
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .expect("list masters")
        .into_inner()
        .masters
        .into_iter()
        .map(|u| (u.tenant_id, u.user_id))
        .collect()
}

/// Whether `user` is a member, asked by the owning tenant's admin.
async fn is_member(srv: &TestServer, group: &str, user: Key) -> bool {
    let (tenant, _) = parse_name(group);
    srv.membership(tenant, 1, true)
        .check_membership(pb::CheckMembershipRequest {
            group: group.to_owned(),
            user: Some(user_ref(user)),
        })
        .await
        .expect("check membership")
        .into_inner()
        .member
}

/// Names of the groups of `user` that the caller `by` may see.
async fn groups_of_user(srv: &TestServer, by: Key, admin: bool, user: Key) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut page_token = String::new();
    loop {
        let r = srv
            .membership(by.0, by.1, admin)
            .list_groups_of_user(pb::ListGroupsOfUserRequest {
                user: Some(user_ref(user)),
                page_size: 100,
                page_token,
            })
            .await
            .expect("list groups of user")
            .into_inner();
        out.extend(r.groups.into_iter().filter_map(|g| g.group).map(|g| g.name));
        if r.next_page_token.is_empty() {
            return out;
        }
        page_token = r.next_page_token;
    }
}

/// Whether the user (asking about themselves) belongs to any group.
async fn is_member_anywhere(srv: &TestServer, user: Key) -> bool {
    !groups_of_user(srv, user, false, user).await.is_empty()
}

/// Names found by SearchGroups, AutocompleteGroups and ListGroups under `tenants/{parent}` for
/// the caller.
async fn discovered(
    srv: &TestServer,
    by: Key,
    admin: bool,
    parent: i64,
    text: &str,
) -> [BTreeSet<String>; 3] {
    let mut c = srv.groups(by.0, by.1, admin);
    let search = c
        .search_groups(pb::SearchGroupsRequest {
            parent: format!("tenants/{parent}"),
            query: text.to_owned(),
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .expect("search")
        .into_inner()
        .groups;
    let auto = c
        .autocomplete_groups(pb::AutocompleteGroupsRequest {
            parent: format!("tenants/{parent}"),
            prefix: text.to_owned(),
            limit: 20,
        })
        .await
        .expect("autocomplete")
        .into_inner()
        .groups;
    let list = c
        .list_groups(pb::ListGroupsRequest {
            parent: format!("tenants/{parent}"),
            page_size: 100,
            page_token: String::new(),
            filter: String::new(),
        })
        .await
        .expect("list groups")
        .into_inner()
        .groups;
    [search, auto, list].map(|gs| gs.into_iter().map(|g| g.name).collect())
}

/// Payloads of the group's outbox events of `kind`, oldest first.
async fn events(srv: &TestServer, group: &str, kind: &str) -> Vec<serde_json::Value> {
    let (t, g) = parse_name(group);
    srv.store
        .read(move |tx| Box::pin(async move { tx.list_events(TenantId(t), GroupId(g)).await }))
        .await
        .expect("list events")
        .into_iter()
        .filter(|e| e.kind == kind)
        .map(|e| serde_json::from_str(&e.payload).expect("event payload is JSON"))
        .collect()
}

/// Creates or replaces a general message room of `tenant`.
async fn room(srv: &TestServer, tenant: i64, id: i64, members: &[Key]) {
    srv.directory(tenant)
        .upsert_message_room(pb::UpsertMessageRoomRequest {
            room: Some(pb::MessageRoom {
                tenant_id: tenant,
                id,
                display_name: format!("Room {id}"),
                members: members.iter().copied().map(user_ref).collect(),
                converted_group: String::new(),
            }),
        })
        .await
        .expect("upsert room");
}

/// The group a room was converted into ("" if none).
async fn converted_group(srv: &TestServer, tenant: i64, id: i64) -> String {
    srv.directory(tenant)
        .get_message_room(pb::GetMessageRoomRequest {
            tenant_id: tenant,
            room_id: id,
        })
        .await
        .expect("get room")
        .into_inner()
        .converted_group
}

fn convert_req(
    tenant: i64,
    room: i64,
    name: &str,
    request_id: &str,
) -> pb::ConvertMessageRoomRequest {
    pb::ConvertMessageRoomRequest {
        room: format!("tenants/{tenant}/rooms/{room}"),
        display_name: name.to_owned(),
        description: format!("converted from room {room}"),
        features: Some(pb::Features {
            message: true,
            note: true,
            ..Default::default()
        }),
        request_id: request_id.to_owned(),
    }
}

async fn convert(
    srv: &TestServer,
    by: Key,
    req: pb::ConvertMessageRoomRequest,
) -> Result<pb::Group, Status> {
    srv.groups(by.0, by.1, false)
        .convert_message_room(req)
        .await
        .map(|r| r.into_inner())
}

/// (user, reason) of the excluded members of a create or conversion answer.
fn excluded(g: &pb::Group) -> BTreeSet<(Key, String)> {
    g.excluded_members
        .iter()
        .map(|e| {
            let u = e.user.expect("excluded user");
            ((u.tenant_id, u.user_id), e.reason.clone())
        })
        .collect()
}

/// Reports a feature's data size as the owning tenant's service.
async fn report(
    srv: &TestServer,
    group: &str,
    feature: &str,
    bytes: i64,
) -> Result<pb::ReportFeatureUsageResponse, Status> {
    let (tenant, _) = parse_name(group);
    srv.groups_service(tenant)
        .report_feature_usage(pb::ReportFeatureUsageRequest {
            name: group.to_owned(),
            feature: feature.to_owned(),
            bytes,
        })
        .await
        .map(|r| r.into_inner())
}

async fn usage(c: &mut Groups, tenant: i64) -> Result<pb::TenantUsage, Status> {
    c.get_tenant_usage(pb::GetTenantUsageRequest {
        name: format!("tenants/{tenant}"),
    })
    .await
    .map(|r| r.into_inner())
}

/// (groups, storage bytes) of a kind in a usage answer.
fn kind_usage(k: Option<pb::KindUsage>) -> (i64, i64) {
    let k = k.expect("kind usage");
    (k.groups, k.storage_used_bytes)
}

/// Three companies: A (admin 1, users 2-6), B (admin 1, users 2-6), C (admin 1, users 2-4);
/// every user may message other companies.
async fn three_companies(srv: &TestServer) {
    srv.company(A, 6).await;
    srv.company(B, 6).await;
    srv.company(C, 4).await;
}

// ---- R13: who may create an external group ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r13_external_group_needs_core() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(A, 3).await;
    set_tenant(&srv, A, pb::Plan::Free, false, 1 << 30).await;
    let err = srv
        .groups(A, 1, true)
        .create_group(external_req(A, "Partners", &[2], vec![user_of(A, 3)]))
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "CORE_REQUIRED");
    assert_eq!(srv.group_count(A).await, 0);
    // Internal groups do not need Core.
    internal_group(&srv, A, "Internal", &[2], vec![]).await;
    set_tenant(&srv, A, pb::Plan::Free, true, 1 << 30).await;
    external_group(&srv, A, "Partners", &[2], vec![]).await;
    assert_eq!(srv.group_count(A).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r13_every_master_needs_the_external_permission() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(A, 2).await;
    person(&srv, A, 3, false, pb::UserKind::Works).await;
    person(&srv, A, 4, true, pb::UserKind::Line).await;
    let mut admin = srv.groups(A, 1, true);
    let err = admin
        .create_group(external_req(A, "Partners", &[2, 3], vec![]))
        .await
        .unwrap_err();
    assert_reason(
        &err,
        Code::FailedPrecondition,
        "EXTERNAL_PERMISSION_REQUIRED",
    );
    let err = admin
        .create_group(external_req(A, "Partners", &[2, 4], vec![]))
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "LINE_USER_NOT_ALLOWED");
    assert_eq!(srv.group_count(A).await, 0);
    // The same masters may run an internal group.
    internal_group(&srv, A, "Partners", &[3, 4], vec![]).await;
}

// ---- R14: initial members ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r14_initial_members_without_permission_are_left_out_and_reported() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(A, 2).await;
    person(&srv, A, 3, false, pb::UserKind::Works).await;
    person(&srv, A, 4, true, pb::UserKind::Line).await;
    person(&srv, A, 5, false, pb::UserKind::Line).await;
    person(&srv, A, 6, true, pb::UserKind::Works).await;
    let g = srv
        .groups(A, 1, true)
        .create_group(external_req(
            A,
            "Partners",
            &[2],
            vec![user_of(A, 3), user_of(A, 4), user_of(A, 5), user_of(A, 6)],
        ))
        .await
        .expect("left-out members are not an error")
        .into_inner();
    assert_eq!(g.kind, pb::GroupKind::External as i32);
    assert_eq!(g.visibility, pb::Visibility::Private as i32);
    assert_eq!(
        excluded(&g),
        BTreeSet::from([
            ((A, 3), "EXTERNAL_PERMISSION_REQUIRED".to_owned()),
            ((A, 4), "LINE_USER_NOT_ALLOWED".to_owned()),
            ((A, 5), "LINE_USER_NOT_ALLOWED".to_owned()),
        ])
    );
    assert_eq!(
        member_keys(&srv, &g.name).await,
        BTreeSet::from([(A, 2), (A, 6)])
    );
    assert_eq!(masters_of(&srv, &g.name).await, [(A, 2)]);
    // Reading the group back does not repeat the report.
    let got = srv
        .groups(A, 1, true)
        .get_group(get_req(&g.name))
        .await
        .unwrap()
        .into_inner();
    assert!(got.excluded_members.is_empty(), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r14_initial_members_are_users_of_the_owning_tenant() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(A, 3).await;
    srv.company(B, 3).await;
    contact(&srv, (A, 2), (B, 2)).await;
    let err = srv
        .groups(A, 1, true)
        .create_group(external_req(
            A,
            "Partners",
            &[2],
            vec![user_of(A, 3), user_of(B, 2)],
        ))
        .await
        .unwrap_err();
    assert_bad_field(&err, "members");
    assert_eq!(srv.group_count(A).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r14_external_groups_have_only_users_as_members() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(A, 4).await;
    srv.team(A, 10, &[3, 4]).await;
    let inner = internal_group(&srv, A, "Inner", &[3], vec![]).await;
    let inner_ref = pb::MemberRef {
        r#type: pb::MemberType::Group as i32,
        id: parse_name(&inner).1,
        tenant_id: 0,
    };
    let mut admin = srv.groups(A, 1, true);
    for member in [team_member(10), inner_ref] {
        let err = admin
            .create_group(external_req(A, "Partners", &[2], vec![member]))
            .await
            .unwrap_err();
        assert_reason(&err, Code::FailedPrecondition, "EXTERNAL_GROUP_USERS_ONLY");
    }
    assert_eq!(srv.group_count(A).await, 1);
    let g = external_group(&srv, A, "Partners", &[2], vec![]).await;
    for member in [team_member(10), inner_ref] {
        let err = add(&srv, (A, 2), &g, vec![user_of(A, 3), member])
            .await
            .unwrap_err();
        assert_reason(&err, Code::FailedPrecondition, "EXTERNAL_GROUP_USERS_ONLY");
    }
    assert_eq!(member_keys(&srv, &g).await, BTreeSet::from([(A, 2)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_external_groups_are_always_private() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(A, 3).await;
    let mut admin = srv.groups(A, 1, true);
    let mut req = external_req(A, "Partners", &[2], vec![]);
    if let Some(g) = req.group.as_mut() {
        g.visibility = pb::Visibility::Public as i32;
    }
    let err = admin.create_group(req).await.unwrap_err();
    assert_reason(
        &err,
        Code::FailedPrecondition,
        "EXTERNAL_GROUP_ALWAYS_PRIVATE",
    );
    assert_eq!(srv.group_count(A).await, 0);

    let g = external_group(&srv, A, "Partners", &[2], vec![]).await;
    let before = admin.get_group(get_req(&g)).await.unwrap().into_inner();
    let public = pb::Group {
        visibility: pb::Visibility::Public as i32,
        description: "now public".into(),
        ..Default::default()
    };
    for (tenant, user, is_admin) in [(A, 1, true), (A, 2, false)] {
        let err = srv
            .groups(tenant, user, is_admin)
            .update_group(update_req(
                &g,
                public.clone(),
                &["visibility", "description"],
            ))
            .await
            .unwrap_err();
        assert_reason(
            &err,
            Code::FailedPrecondition,
            "EXTERNAL_GROUP_ALWAYS_PRIVATE",
        );
    }
    let after = admin.get_group(get_req(&g)).await.unwrap().into_inner();
    assert_eq!(after, before, "nothing is half-written");
    // A user of the tenant who is not a member does not see it.
    let err = srv
        .groups(A, 3, false)
        .get_group(get_req(&g))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

// ---- R14, R15: adding members later ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r15_external_members_come_from_the_adding_masters_contacts() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(A, 3).await;
    srv.company(B, 4).await;
    let g = external_group(&srv, A, "Partners", &[2], vec![]).await;

    let err = add(&srv, (A, 2), &g, vec![user_of(B, 2)])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "NOT_IN_CONTACTS");
    // The other direction of the address book does not count.
    contact(&srv, (B, 2), (A, 2)).await;
    let err = add(&srv, (A, 2), &g, vec![user_of(B, 2)])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "NOT_IN_CONTACTS");
    // Nor does another master's address book.
    srv.membership(A, 1, true)
        .add_masters(pb::AddMastersRequest {
            group: g.clone(),
            users: vec![user_ref((A, 3))],
        })
        .await
        .unwrap();
    contact(&srv, (A, 3), (B, 3)).await;
    let err = add(&srv, (A, 2), &g, vec![user_of(B, 3)])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "NOT_IN_CONTACTS");

    contact(&srv, (A, 2), (B, 2)).await;
    let added = add(&srv, (A, 2), &g, vec![user_of(B, 2)]).await.unwrap();
    assert_eq!(added.added.len(), 1, "{added:?}");
    assert_eq!(added.added[0].tenant_id, B);
    add(&srv, (A, 3), &g, vec![user_of(B, 3)]).await.unwrap();
    assert_eq!(
        member_keys(&srv, &g).await,
        BTreeSet::from([(A, 2), (A, 3), (B, 2), (B, 3)])
    );
    // The new members reach the group by its name in tenant A.
    let got = srv
        .groups(B, 2, false)
        .get_group(get_req(&g))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.name, g);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r14_added_members_need_the_permission_and_are_never_line_users() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(A, 2).await;
    person(&srv, A, 3, false, pb::UserKind::Works).await;
    person(&srv, A, 4, true, pb::UserKind::Line).await;
    srv.company(B, 2).await;
    person(&srv, B, 3, false, pb::UserKind::Works).await;
    person(&srv, B, 4, true, pb::UserKind::Line).await;
    for u in [2, 3, 4] {
        contact(&srv, (A, 2), (B, u)).await;
    }
    let g = external_group(&srv, A, "Partners", &[2], vec![]).await;
    for (who, reason) in [
        ((A, 3), "EXTERNAL_PERMISSION_REQUIRED"),
        ((A, 4), "LINE_USER_NOT_ALLOWED"),
        ((B, 3), "EXTERNAL_PERMISSION_REQUIRED"),
        ((B, 4), "LINE_USER_NOT_ALLOWED"),
    ] {
        // All or nothing: the allowed user in the same batch is not added either.
        let err = add(&srv, (A, 2), &g, vec![user_of(B, 2), user_of(who.0, who.1)])
            .await
            .unwrap_err();
        assert_reason(&err, Code::FailedPrecondition, reason);
        // Not as a master either.
        let err = srv
            .membership(A, 1, true)
            .add_masters(pb::AddMastersRequest {
                group: g.clone(),
                users: vec![user_ref(who)],
            })
            .await
            .unwrap_err();
        assert_reason(&err, Code::FailedPrecondition, reason);
    }
    assert_eq!(member_keys(&srv, &g).await, BTreeSet::from([(A, 2)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r15_master_from_another_tenant_manages_with_own_contacts() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    three_companies(&srv).await;
    contact(&srv, (A, 2), (B, 4)).await;
    contact(&srv, (A, 2), (C, 4)).await;
    contact(&srv, (B, 4), (C, 3)).await;
    let g = external_group(&srv, A, "Partners", &[2], vec![]).await;
    // A master of A names a contact of B a Group Master: it joins as a master.
    srv.membership(A, 2, false)
        .add_masters(pb::AddMastersRequest {
            group: g.clone(),
            users: vec![user_ref((B, 4))],
        })
        .await
        .unwrap();
    assert_eq!(masters_of(&srv, &g).await, [(A, 2), (B, 4)]);

    // The B master adds their own contact from C, not one of A's master.
    add(&srv, (B, 4), &g, vec![user_of(C, 3)]).await.unwrap();
    let err = add(&srv, (B, 4), &g, vec![user_of(C, 4)])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "NOT_IN_CONTACTS");
    // ...manages members and the basic settings...
    srv.membership(B, 4, false)
        .remove_members(remove_req(&g, vec![user_of(C, 3)]))
        .await
        .unwrap();
    add(&srv, (B, 4), &g, vec![user_of(C, 3)]).await.unwrap();
    let updated = srv
        .groups(B, 4, false)
        .update_group(update_req(
            &g,
            pb::Group {
                description: "run from B".into(),
                ..Default::default()
            },
            &["description"],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.description, "run from B");
    // ...and a plain member may not delete it.
    let err = srv
        .groups(C, 3, false)
        .delete_group(delete_req(&g, ""))
        .await
        .unwrap_err();
    assert_reason(&err, Code::PermissionDenied, "NOT_GROUP_MANAGER");
    assert_eq!(
        member_keys(&srv, &g).await,
        BTreeSet::from([(A, 2), (B, 4), (C, 3)])
    );
    // The C member reads it too.
    srv.groups(C, 3, false)
        .get_group(get_req(&g))
        .await
        .unwrap();
    // A Group Master of an external group may delete it (user guide), from any tenant.
    srv.groups(B, 4, false)
        .delete_group(delete_req(&g, ""))
        .await
        .unwrap();
    let err = srv
        .groups(C, 3, false)
        .get_group(get_req(&g))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

// ---- R17: nobody leaves by themselves ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r17_members_cannot_leave_and_removed_members_lose_the_group() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(A, 3).await;
    srv.company(B, 3).await;
    contact(&srv, (A, 2), (B, 2)).await;
    let g = external_group(&srv, A, "Partners", &[2], vec![user_of(A, 3)]).await;
    add(&srv, (A, 2), &g, vec![user_of(B, 2)]).await.unwrap();

    for (tenant, user) in [(B, 2), (A, 3), (A, 2)] {
        let err = srv
            .membership(tenant, user, false)
            .leave(pb::LeaveRequest { group: g.clone() })
            .await
            .unwrap_err();
        assert_reason(&err, Code::FailedPrecondition, "MEMBERS_CANNOT_LEAVE");
    }
    assert_eq!(
        member_keys(&srv, &g).await,
        BTreeSet::from([(A, 2), (A, 3), (B, 2)])
    );

    // The master removes the B member: the group is gone for them, as a missing one.
    let removed = srv
        .membership(A, 2, false)
        .remove_members(remove_req(&g, vec![user_of(B, 2)]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(removed.removed.len(), 1, "{removed:?}");
    let mut b2 = srv.groups(B, 2, false);
    let hidden = b2.get_group(get_req(&g)).await.unwrap_err();
    let missing = b2.get_group(get_req(&missing_group(A))).await.unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    assert_eq!(fingerprint(&hidden), fingerprint(&missing));
    assert!(groups_of_user(&srv, (B, 2), false, (B, 2)).await.is_empty());
    let [search, auto, list] = discovered(&srv, (B, 2), false, B, "partners").await;
    assert!(search.is_empty() && auto.is_empty() && list.is_empty());
    let err = srv
        .membership(B, 2, false)
        .leave(pb::LeaveRequest { group: g.clone() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // Removing them is what the event records.
    let ev = events(&srv, &g, "members.removed").await;
    assert_eq!(ev.len(), 1, "{ev:?}");
}

// ---- R16: converting a general message room ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r16_conversion_makes_room_members_members_and_the_caller_the_only_master() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(A, 2).await;
    person(&srv, A, 3, false, pb::UserKind::Works).await;
    person(&srv, A, 4, true, pb::UserKind::Line).await;
    person(&srv, A, 5, true, pb::UserKind::Works).await;
    srv.company(B, 2).await;
    person(&srv, B, 3, false, pb::UserKind::Works).await;
    srv.company(C, 1).await;
    person(&srv, C, 2, true, pb::UserKind::Line).await;
    person(&srv, C, 3, true, pb::UserKind::Works).await;
    let members = [
        (A, 2),
        (A, 3),
        (A, 4),
        (A, 5),
        (B, 2),
        (B, 3),
        (C, 2),
        (C, 3),
    ];
    room(&srv, A, 10, &members).await;

    let g = convert(&srv, (A, 2), convert_req(A, 10, "Launch Room", ""))
        .await
        .unwrap();
    assert_eq!(g.display_name, "Launch Room");
    assert_eq!(g.description, "converted from room 10");
    assert_eq!(g.kind, pb::GroupKind::External as i32);
    assert_eq!(g.visibility, pb::Visibility::Private as i32);
    let f = g.features.unwrap();
    assert!(f.message && f.note && !f.event, "{f:?}");
    assert_eq!(
        excluded(&g),
        BTreeSet::from([
            ((A, 3), "EXTERNAL_PERMISSION_REQUIRED".to_owned()),
            ((A, 4), "LINE_USER_NOT_ALLOWED".to_owned()),
            ((B, 3), "EXTERNAL_PERMISSION_REQUIRED".to_owned()),
            ((C, 2), "LINE_USER_NOT_ALLOWED".to_owned()),
        ])
    );
    assert_eq!(
        member_keys(&srv, &g.name).await,
        BTreeSet::from([(A, 2), (A, 5), (B, 2), (C, 3)])
    );
    assert_eq!(masters_of(&srv, &g.name).await, [(A, 2)]);
    assert_eq!(converted_group(&srv, A, 10).await, g.name);
    assert_eq!(srv.group_count(A).await, 1);
    // Members from the other companies reach it.
    for (t, u) in [(B, 2), (C, 3)] {
        srv.groups(t, u, false)
            .get_group(get_req(&g.name))
            .await
            .unwrap();
    }
    for (t, u) in [(B, 3), (C, 2)] {
        let err = srv
            .groups(t, u, false)
            .get_group(get_req(&g.name))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
    }
    // One way: the room cannot be converted again.
    let err = convert(&srv, (A, 5), convert_req(A, 10, "Again", ""))
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "ROOM_ALREADY_CONVERTED");
    assert_eq!(srv.group_count(A).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r16_converter_must_be_a_permitted_member_of_a_core_tenant() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(A, 2).await;
    person(&srv, A, 3, false, pb::UserKind::Works).await;
    person(&srv, A, 4, true, pb::UserKind::Line).await;
    person(&srv, A, 6, true, pb::UserKind::Works).await;
    srv.company(B, 2).await;
    room(&srv, A, 10, &[(A, 2), (A, 3), (A, 4), (B, 2)]).await;

    // Not in the room: answered exactly as a missing room.
    let hidden = convert(&srv, (A, 6), convert_req(A, 10, "Launch", ""))
        .await
        .unwrap_err();
    let missing = convert(&srv, (A, 6), convert_req(A, 999, "Launch", ""))
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    assert_eq!(fingerprint(&hidden), fingerprint(&missing));

    let err = convert(&srv, (A, 3), convert_req(A, 10, "Launch", ""))
        .await
        .unwrap_err();
    assert_reason(
        &err,
        Code::FailedPrecondition,
        "EXTERNAL_PERMISSION_REQUIRED",
    );
    let err = convert(&srv, (A, 4), convert_req(A, 10, "Launch", ""))
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "LINE_USER_NOT_ALLOWED");

    set_tenant(&srv, A, pb::Plan::Free, false, 1 << 30).await;
    let err = convert(&srv, (A, 2), convert_req(A, 10, "Launch", ""))
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "CORE_REQUIRED");

    assert_eq!(converted_group(&srv, A, 10).await, "");
    assert_eq!(srv.group_count(A).await, 0);
    set_tenant(&srv, A, pb::Plan::Free, true, 1 << 30).await;
    let g = convert(&srv, (A, 2), convert_req(A, 10, "Launch", ""))
        .await
        .unwrap();
    assert_eq!(converted_group(&srv, A, 10).await, g.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r16_failed_conversion_leaves_the_room_unconverted() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(A, 3).await;
    srv.company(B, 2).await;
    room(&srv, A, 10, &[(A, 2), (A, 3), (B, 2)]).await;
    internal_group(&srv, A, "Taken", &[3], vec![]).await;

    let err = convert(&srv, (A, 2), convert_req(A, 10, "TAKEN", ""))
        .await
        .unwrap_err();
    assert_reason(&err, Code::AlreadyExists, "GROUP_NAME_TAKEN");
    assert_eq!(converted_group(&srv, A, 10).await, "");
    assert_eq!(srv.group_count(A).await, 1);

    // R03: the FREE tenant at its 1,000 groups. The other 999 slots are taken behind the
    // server's back: only the counter matters to the limit.
    srv.store
        .write(|tx| {
            Box::pin(async move {
                for _ in 0..999 {
                    assert!(tx.take_group_slot(TenantId(A)).await?);
                }
                Ok(())
            })
        })
        .await
        .unwrap();
    assert_eq!(srv.group_count(A).await, 1_000);
    let err = convert(&srv, (A, 2), convert_req(A, 10, "Launch", ""))
        .await
        .unwrap_err();
    assert_reason(&err, Code::ResourceExhausted, "TENANT_GROUP_LIMIT");
    assert_eq!(converted_group(&srv, A, 10).await, "");
    assert_eq!(srv.group_count(A).await, 1_000);
    assert!(!is_member_anywhere(&srv, (B, 2)).await);

    set_tenant(&srv, A, pb::Plan::Paid, true, 1 << 30).await;
    let g = convert(&srv, (A, 2), convert_req(A, 10, "Launch", ""))
        .await
        .unwrap();
    assert_eq!(converted_group(&srv, A, 10).await, g.name);
    assert_eq!(srv.group_count(A).await, 1_001);
    assert!(is_member_anywhere(&srv, (B, 2)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r16_retried_conversion_returns_the_same_group() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(A, 3).await;
    srv.company(B, 2).await;
    room(&srv, A, 10, &[(A, 2), (A, 3), (B, 2)]).await;
    let first = convert(&srv, (A, 2), convert_req(A, 10, "Launch", "conv-1"))
        .await
        .unwrap();
    let again = convert(&srv, (A, 2), convert_req(A, 10, "Launch", "conv-1"))
        .await
        .unwrap();
    assert_eq!(again.name, first.name);
    assert_eq!(srv.group_count(A).await, 1);
    assert_eq!(converted_group(&srv, A, 10).await, first.name);
    // The same id for a different request is refused.
    let err = convert(&srv, (A, 2), convert_req(A, 10, "Other", "conv-1"))
        .await
        .unwrap_err();
    assert_bad_field(&err, "request_id");
    assert_eq!(srv.group_count(A).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r16_concurrent_retries_of_one_conversion_return_the_same_group() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(A, 3).await;
    srv.company(B, 2).await;
    room(&srv, A, 10, &[(A, 2), (A, 3), (B, 2)]).await;
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let mut c = srv.groups(A, 2, false);
            tokio::spawn(async move {
                c.convert_message_room(convert_req(A, 10, "Launch", "conv-1"))
                    .await
                    .map(|r| r.into_inner().name)
            })
        })
        .collect();
    let mut names = BTreeSet::new();
    let mut failed = Vec::new();
    for call in calls {
        match call.await.unwrap() {
            Ok(name) => {
                names.insert(name);
            }
            Err(e) => failed.push((e.code(), e.message().to_owned())),
        }
    }
    assert!(
        failed.is_empty(),
        "{} of 6 retries of one conversion failed: {failed:?}",
        failed.len()
    );
    assert_eq!(names.len(), 1, "{names:?}");
    assert_eq!(srv.group_count(A).await, 1);
    assert_eq!(
        converted_group(&srv, A, 10).await,
        names.into_iter().next().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r16_a_converted_room_is_never_converted_again() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(A, 3).await;
    srv.company(B, 2).await;
    room(&srv, A, 10, &[(A, 2), (A, 3), (B, 2)]).await;
    let g = convert(&srv, (A, 2), convert_req(A, 10, "Launch", "conv-1"))
        .await
        .unwrap();
    // Whatever the name and request id of the second attempt, the answer is the rule it breaks.
    for (by, name, request_id) in [
        ((A, 3), "Second", ""),
        ((A, 3), "Second", "conv-2"),
        ((A, 2), "Launch", ""),
        ((A, 3), "Launch", "conv-3"),
    ] {
        let err = convert(&srv, by, convert_req(A, 10, name, request_id))
            .await
            .unwrap_err();
        assert_reason(&err, Code::FailedPrecondition, "ROOM_ALREADY_CONVERTED");
    }
    assert_eq!(srv.group_count(A).await, 1);
    assert_eq!(converted_group(&srv, A, 10).await, g.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r16_concurrent_conversions_of_one_room_convert_it_once() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(A, 6).await;
    srv.company(B, 2).await;
    room(
        &srv,
        A,
        10,
        &[(A, 2), (A, 3), (A, 4), (A, 5), (A, 6), (B, 2)],
    )
    .await;
    let calls: Vec<_> = (2..=6)
        .map(|u| {
            let mut c = srv.groups(A, u, false);
            tokio::spawn(async move {
                c.convert_message_room(convert_req(A, 10, &format!("Launch {u}"), ""))
                    .await
                    .map(|r| r.into_inner().name)
            })
        })
        .collect();
    let mut converted = Vec::new();
    for call in calls {
        match call.await.unwrap() {
            Ok(name) => converted.push(name),
            Err(e) => assert_reason(&e, Code::FailedPrecondition, "ROOM_ALREADY_CONVERTED"),
        }
    }
    assert_eq!(converted.len(), 1, "{converted:?}");
    assert_eq!(srv.group_count(A).await, 1);
    assert_eq!(converted_group(&srv, A, 10).await, converted[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_conversion_names_the_bad_field_of_its_own_request() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(A, 2).await;
    srv.company(B, 2).await;
    room(&srv, A, 10, &[(A, 2), (B, 2)]).await;
    // ConvertMessageRoomRequest has `display_name` and `description`, no `group`.
    let err = convert(&srv, (A, 2), convert_req(A, 10, "", ""))
        .await
        .unwrap_err();
    assert_bad_field(&err, "display_name");
    let mut req = convert_req(A, 10, "Launch", "");
    req.description = "d".repeat(301);
    let err = convert(&srv, (A, 2), req).await.unwrap_err();
    assert_bad_field(&err, "description");
    let err = convert(
        &srv,
        (A, 2),
        pb::ConvertMessageRoomRequest {
            room: "rooms/10".into(),
            ..convert_req(A, 10, "Launch", "")
        },
    )
    .await
    .unwrap_err();
    assert_bad_field(&err, "room");
    assert_eq!(converted_group(&srv, A, 10).await, "");
}

// ---- R18: revoking the external permission ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r18_revocation_removes_user_from_external_groups_only() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(A, 4).await;
    srv.company(B, 3).await;
    contact(&srv, (A, 2), (B, 2)).await;
    // B's user 2 in two external groups of A (one notifying all members), an internal
    // group of B; A's user 2 (same id, other tenant) in the same groups of A.
    let mut req = external_req(A, "Notified", &[2], vec![user_of(A, 3)]);
    if let Some(g) = req.group.as_mut() {
        g.notify_all_members = true;
    }
    let e1 = srv
        .groups(A, 1, true)
        .create_group(req)
        .await
        .unwrap()
        .into_inner()
        .name;
    let e2 = external_group(&srv, A, "Quiet", &[2], vec![user_of(A, 3)]).await;
    for g in [&e1, &e2] {
        add(&srv, (A, 2), g, vec![user_of(B, 2)]).await.unwrap();
    }
    let internal_b = internal_group(&srv, B, "B Internal", &[3], vec![user_of(B, 2)]).await;
    let internal_a = internal_group(&srv, A, "A Internal", &[2], vec![user_of(A, 3)]).await;

    revoke(&srv, (B, 2)).await;
    for g in [&e1, &e2] {
        assert_eq!(
            member_keys(&srv, g).await,
            BTreeSet::from([(A, 2), (A, 3)]),
            "{g}"
        );
        let ev = events(&srv, g, "members.removed").await;
        assert_eq!(ev.len(), 1, "{g}: {ev:?}");
        assert_eq!(ev[0]["detail"]["cause"], "external_permission_revoked");
        assert_eq!(ev[0]["group"], g.as_str());
    }
    // R11: the notifying group tells the removed user.
    let ev = events(&srv, &e1, "members.removed").await;
    assert_eq!(
        ev[0]["notify"],
        serde_json::json!([{"tenant": B, "user": 2}])
    );
    // Internal groups keep them, with no removal event.
    assert!(is_member(&srv, &internal_b, (B, 2)).await);
    assert!(
        events(&srv, &internal_b, "members.removed")
            .await
            .is_empty()
    );
    assert_eq!(
        groups_of_user(&srv, (B, 2), false, (B, 2)).await,
        BTreeSet::from([internal_b.clone()])
    );

    // Now A's user 3, with an internal group of A.
    revoke(&srv, (A, 3)).await;
    for g in [&e1, &e2] {
        assert_eq!(member_keys(&srv, g).await, BTreeSet::from([(A, 2)]), "{g}");
    }
    assert!(is_member(&srv, &internal_a, (A, 3)).await);
    // Giving the permission back does not give the groups back.
    person(&srv, B, 2, true, pb::UserKind::Works).await;
    assert!(!is_member(&srv, &e1, (B, 2)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r18_becoming_a_line_user_removes_from_external_groups() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(A, 3).await;
    srv.company(B, 3).await;
    contact(&srv, (A, 2), (B, 2)).await;
    let g = external_group(&srv, A, "Partners", &[2], vec![user_of(A, 3)]).await;
    add(&srv, (A, 2), &g, vec![user_of(B, 2)]).await.unwrap();
    person(&srv, B, 2, true, pb::UserKind::Line).await;
    person(&srv, A, 3, true, pb::UserKind::Line).await;
    assert_eq!(member_keys(&srv, &g).await, BTreeSet::from([(A, 2)]));
    let ev = events(&srv, &g, "members.removed").await;
    assert_eq!(ev.len(), 2, "{ev:?}");
    for e in &ev {
        assert_eq!(e["detail"]["cause"], "external_permission_revoked");
    }
    let err = srv
        .groups(B, 2, false)
        .get_group(get_req(&g))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r18_revoked_last_master_is_replaced_by_the_earliest_permitted_member_of_the_owner() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(A, 6).await;
    srv.company(B, 7).await;
    contact(&srv, (A, 2), (B, 5)).await;
    contact(&srv, (A, 2), (B, 7)).await;
    let g = external_group(&srv, A, "Partners", &[2], vec![]).await;
    // Join order: B5, B7 (another tenant), then A6, then A3.
    for m in [user_of(B, 5), user_of(B, 7), user_of(A, 6), user_of(A, 3)] {
        add(&srv, (A, 2), &g, vec![m]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    revoke(&srv, (A, 2)).await;
    assert_eq!(masters_of(&srv, &g).await, [(A, 6)]);
    assert!(!is_member(&srv, &g, (A, 2)).await);
    let ev = events(&srv, &g, "members.removed").await;
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(
        ev[0]["detail"]["last_master_replaced_by"],
        serde_json::json!({"tenant": A, "user": 6})
    );
    assert_eq!(ev[0]["detail"]["without_master"], false);

    // A master from B who is the last one: a member of the owning tenant takes over.
    let h = external_group(&srv, A, "Second", &[3], vec![user_of(A, 4)]).await;
    contact(&srv, (A, 3), (B, 5)).await;
    tokio::time::sleep(Duration::from_millis(2)).await;
    add(&srv, (A, 3), &h, vec![user_of(B, 5)]).await.unwrap();
    srv.membership(A, 3, false)
        .add_masters(pb::AddMastersRequest {
            group: h.clone(),
            users: vec![user_ref((B, 5))],
        })
        .await
        .unwrap();
    srv.membership(A, 1, true)
        .remove_masters(pb::RemoveMastersRequest {
            group: h.clone(),
            users: vec![user_ref((A, 3))],
        })
        .await
        .unwrap();
    assert_eq!(masters_of(&srv, &h).await, [(B, 5)]);
    revoke(&srv, (B, 5)).await;
    // A3 and A4 joined together at creation; the lower id breaks the tie.
    assert_eq!(masters_of(&srv, &h).await, [(A, 3)]);
    assert_eq!(masters_of(&srv, &g).await, [(A, 6)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r18_group_without_a_permitted_owner_member_has_no_master_until_an_admin_names_one() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(A, 3).await;
    srv.company(B, 3).await;
    contact(&srv, (A, 2), (B, 2)).await;
    contact(&srv, (A, 2), (B, 3)).await;
    let g = external_group(&srv, A, "Partners", &[2], vec![]).await;
    add(&srv, (A, 2), &g, vec![user_of(B, 2), user_of(B, 3)])
        .await
        .unwrap();

    // Never fails, even for the last master.
    revoke(&srv, (A, 2)).await;
    assert!(masters_of(&srv, &g).await.is_empty());
    assert_eq!(
        member_keys(&srv, &g).await,
        BTreeSet::from([(B, 2), (B, 3)])
    );
    let ev = events(&srv, &g, "members.removed").await;
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["detail"]["without_master"], true);
    assert_eq!(ev[0]["detail"]["cause"], "external_permission_revoked");
    // The members still read it; nobody but the owning tenant's admins changes it.
    srv.groups(B, 2, false)
        .get_group(get_req(&g))
        .await
        .unwrap();
    let err = srv
        .membership(B, 2, false)
        .remove_members(remove_req(&g, vec![user_of(B, 3)]))
        .await
        .unwrap_err();
    assert_reason(&err, Code::PermissionDenied, "NOT_GROUP_MANAGER");

    srv.membership(A, 1, true)
        .add_masters(pb::AddMastersRequest {
            group: g.clone(),
            users: vec![user_ref((B, 2))],
        })
        .await
        .unwrap();
    assert_eq!(masters_of(&srv, &g).await, [(B, 2)]);
    // The new master manages the group again.
    srv.membership(B, 2, false)
        .remove_members(remove_req(&g, vec![user_of(B, 3)]))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r18_revocation_under_concurrent_adds_leaves_no_external_membership() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    const GROUPS: usize = 20;
    srv.company(A, 2).await;
    srv.company(B, 3).await;
    let u: Key = (B, 2);
    contact(&srv, (A, 2), u).await;
    let internal_b = internal_group(&srv, B, "B Internal", &[3], vec![user_of(B, 2)]).await;
    let mut groups = Vec::with_capacity(GROUPS);
    for i in 0..GROUPS {
        groups.push(external_group(&srv, A, &format!("Shared {i}"), &[2], vec![]).await);
    }
    let started = Instant::now();
    let (mut ok, mut refused) = (0, 0);
    for round in 0..4u64 {
        if round > 0 {
            person(&srv, B, 2, true, pb::UserKind::Works).await;
        }
        let adds: Vec<_> = groups
            .iter()
            .map(|g| {
                let mut c = srv.membership(A, 2, false);
                let g = g.clone();
                tokio::spawn(
                    async move { c.add_members(add_req(&g, vec![user_of(u.0, u.1)])).await },
                )
            })
            .collect();
        let mut directory = srv.directory(B);
        let revocation = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(round * 4)).await;
            directory
                .upsert_user(pb::UpsertUserRequest {
                    user: Some(pb::User {
                        tenant_id: B,
                        id: 2,
                        email: "user2@t2.example".into(),
                        display_name: "User 2".into(),
                        is_admin: false,
                        external_messaging_allowed: false,
                        kind: pb::UserKind::Works as i32,
                    }),
                })
                .await
        });
        revocation.await.unwrap().expect("a revocation never fails");
        for a in adds {
            match a.await.unwrap() {
                Ok(_) => ok += 1,
                Err(e) => {
                    assert_reason(&e, Code::FailedPrecondition, "EXTERNAL_PERMISSION_REQUIRED");
                    refused += 1;
                }
            }
        }
        for g in &groups {
            assert!(!is_member(&srv, g, u).await, "round {round}: still in {g}");
        }
        assert_eq!(
            groups_of_user(&srv, u, false, u).await,
            BTreeSet::from([internal_b.clone()]),
            "round {round}"
        );
        // Every add that went through was undone by the revocation, with its event.
        let removed: usize = {
            let mut n = 0;
            for g in &groups {
                n += events(&srv, g, "members.removed").await.len();
            }
            n
        };
        assert_eq!(removed, ok, "round {round}");
    }
    println!(
        "[{}] r18: {} concurrent adds ({ok} added then removed, {refused} refused) against 4 \
         revocations in {:?}",
        backend(),
        4 * GROUPS,
        started.elapsed()
    );
}

// ---- R20, R24: who sees an external group across tenants ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r20_members_from_other_tenants_find_the_group_and_nobody_else_does() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    three_companies(&srv).await;
    contact(&srv, (A, 2), (B, 2)).await;
    contact(&srv, (A, 2), (C, 2)).await;
    let g = external_group(&srv, A, "Partner Project", &[2], vec![]).await;
    add(&srv, (A, 2), &g, vec![user_of(B, 2), user_of(C, 2)])
        .await
        .unwrap();
    // Groups of the member's own tenant stay in the answers beside it.
    let own_b = internal_group(&srv, B, "Partner Desk", &[2], vec![]).await;

    let as_admin = srv
        .groups(A, 1, true)
        .get_group(get_req(&g))
        .await
        .unwrap()
        .into_inner();
    for (t, u) in [(B, 2), (C, 2)] {
        let got = srv
            .groups(t, u, false)
            .get_group(get_req(&g))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got, as_admin, "{t}/{u} reads the group as it is");
        for (i, found) in discovered(&srv, (t, u), false, t, "partner")
            .await
            .iter()
            .enumerate()
        {
            assert!(found.contains(&g), "{t}/{u}, answer {i}: {found:?}");
        }
        assert!(
            groups_of_user(&srv, (t, u), false, (t, u))
                .await
                .contains(&g)
        );
    }
    let [search, auto, list] = discovered(&srv, (B, 2), false, B, "partner").await;
    assert_eq!(search, BTreeSet::from([g.clone(), own_b.clone()]));
    assert_eq!(auto, search);
    assert_eq!(list, search);

    // Non-members of B, and B's admin, find nothing of it.
    for (u, admin) in [(3, false), (1, true)] {
        for (i, found) in discovered(&srv, (B, u), admin, B, "partner")
            .await
            .iter()
            .enumerate()
        {
            assert!(!found.contains(&g), "{B}/{u}, answer {i}: {found:?}");
        }
        assert!(
            !groups_of_user(&srv, (B, u), admin, (B, 2))
                .await
                .contains(&g)
        );
    }
}

#[derive(Clone, Copy, Debug)]
enum Rpc {
    GetGroup,
    UpdateGroup,
    DeleteGroup,
    ListMembers,
    ListEffectiveMembers,
    ListMasters,
    CheckMembership,
    AddMembers,
    RemoveMembers,
    Leave,
}

/// What a caller gets.
#[derive(Clone, Copy, Debug)]
enum Want {
    Ok,
    Denied(&'static str),
    Precondition(&'static str),
    /// NOT_FOUND, byte for byte the answer for a missing group.
    NotFound,
}

/// (tenant, user, admin claim).
type Who = (i64, i64, bool);

/// What one caller gets from each RPC, in the order the calls are made.
type Row = [(Rpc, Want); 10];

/// Calls `rpc` on `group` as `who`. Changes name user 3 of tenant A: added, then removed.
async fn call(srv: &TestServer, who: Who, rpc: Rpc, group: &str) -> Result<(), Status> {
    let (t, u, admin) = who;
    let mut g = srv.groups(t, u, admin);
    let mut m = srv.membership(t, u, admin);
    let group = group.to_owned();
    match rpc {
        Rpc::GetGroup => g.get_group(get_req(&group)).await.map(drop),
        Rpc::UpdateGroup => g
            .update_group(update_req(
                &group,
                pb::Group {
                    description: format!("changed by {t}/{u}"),
                    ..Default::default()
                },
                &["description"],
            ))
            .await
            .map(drop),
        Rpc::DeleteGroup => g.delete_group(delete_req(&group, "")).await.map(drop),
        Rpc::ListMembers => m
            .list_members(pb::ListMembersRequest {
                group,
                page_size: 10,
                page_token: String::new(),
            })
            .await
            .map(drop),
        Rpc::ListEffectiveMembers => m
            .list_effective_members(pb::ListEffectiveMembersRequest {
                group,
                page_size: 10,
                page_token: String::new(),
            })
            .await
            .map(drop),
        Rpc::ListMasters => m
            .list_masters(pb::ListMastersRequest {
                group,
                page_size: 10,
                page_token: String::new(),
            })
            .await
            .map(drop),
        Rpc::CheckMembership => m
            .check_membership(pb::CheckMembershipRequest {
                group,
                user: Some(user_ref((B, 2))),
            })
            .await
            .map(drop),
        Rpc::AddMembers => m
            .add_members(add_req(&group, vec![user_of(A, 3)]))
            .await
            .map(drop),
        Rpc::RemoveMembers => m
            .remove_members(remove_req(&group, vec![user_of(A, 3)]))
            .await
            .map(drop),
        Rpc::Leave => m.leave(pb::LeaveRequest { group }).await.map(drop),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r24_cross_tenant_matrix_of_an_external_group() {
    use Rpc::*;
    use Want::{Denied, NotFound, Ok as Allowed, Precondition};

    let Some(srv) = TestServer::start().await else {
        return;
    };
    three_companies(&srv).await;
    contact(&srv, (A, 2), (B, 2)).await;
    contact(&srv, (A, 2), (C, 2)).await;
    let g = external_group(&srv, A, "Partners", &[2], vec![]).await;
    add(&srv, (A, 2), &g, vec![user_of(B, 2), user_of(C, 2)])
        .await
        .unwrap();
    let missing = missing_group(A);

    let own_admin: Who = (A, 1, true);
    let member_b: Who = (B, 2, false);
    let member_c: Who = (C, 2, false);
    let outsider_b: Who = (B, 3, false);
    let admin_b: Who = (B, 1, true);
    let admin_c: Who = (C, 1, true);
    let member_row: Row = [
        (GetGroup, Allowed),
        (UpdateGroup, Denied("NOT_GROUP_MANAGER")),
        (ListMembers, Allowed),
        (ListEffectiveMembers, Allowed),
        (ListMasters, Allowed),
        (CheckMembership, Allowed),
        (AddMembers, Denied("NOT_GROUP_MANAGER")),
        (RemoveMembers, Denied("NOT_GROUP_MANAGER")),
        (Leave, Precondition("MEMBERS_CANNOT_LEAVE")),
        (DeleteGroup, Denied("NOT_GROUP_MANAGER")),
    ];
    let stranger_row: Row = [
        (GetGroup, NotFound),
        (UpdateGroup, NotFound),
        (ListMembers, NotFound),
        (ListEffectiveMembers, NotFound),
        (ListMasters, NotFound),
        (CheckMembership, NotFound),
        (AddMembers, NotFound),
        (RemoveMembers, NotFound),
        (Leave, NotFound),
        (DeleteGroup, NotFound),
    ];
    let matrix: Vec<(&str, Who, Row)> = vec![
        ("member from B", member_b, member_row),
        ("member from C", member_c, member_row),
        ("non-member of B", outsider_b, stranger_row),
        ("admin of B", admin_b, stranger_row),
        ("admin of C", admin_c, stranger_row),
        (
            "admin of the owning tenant",
            own_admin,
            [
                (GetGroup, Allowed),
                (UpdateGroup, Allowed),
                (ListMembers, Allowed),
                (ListEffectiveMembers, Allowed),
                (ListMasters, Allowed),
                (CheckMembership, Allowed),
                (AddMembers, Allowed),
                (RemoveMembers, Allowed),
                (Leave, Precondition("NOT_A_MEMBER")),
                // Last: it ends the group.
                (DeleteGroup, Allowed),
            ],
        ),
    ];
    for (label, who, row) in matrix {
        for (rpc, want) in row {
            let got = call(&srv, who, rpc, &g).await;
            let context = format!("{label} {rpc:?}: {got:?}");
            match want {
                Want::Ok => assert!(got.is_ok(), "{context}"),
                Want::Denied(reason) => {
                    assert_reason(&got.unwrap_err(), Code::PermissionDenied, reason)
                }
                Want::Precondition(reason) => {
                    assert_reason(&got.unwrap_err(), Code::FailedPrecondition, reason)
                }
                Want::NotFound => {
                    let err = got.expect_err(&context);
                    assert_eq!(err.code(), Code::NotFound, "{context}");
                    let absent = call(&srv, who, rpc, &missing).await.unwrap_err();
                    assert_eq!(fingerprint(&err), fingerprint(&absent), "{context}");
                }
            }
        }
    }
    // The owning tenant's admin deleted it: gone for every tenant.
    for (t, u, admin) in [own_admin, member_b, member_c] {
        let err = srv
            .groups(t, u, admin)
            .get_group(get_req(&g))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r24_owning_tenant_sees_only_id_name_and_tenant_of_other_members() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(A, 3).await;
    srv.company(B, 3).await;
    srv.directory(B)
        .upsert_user(pb::UpsertUserRequest {
            user: Some(pb::User {
                tenant_id: B,
                id: 2,
                email: "kim.secret@partner-b.example".into(),
                display_name: "Kim from B".into(),
                is_admin: false,
                external_messaging_allowed: true,
                kind: pb::UserKind::Works as i32,
            }),
        })
        .await
        .unwrap();
    contact(&srv, (A, 2), (B, 2)).await;
    let g = external_group(&srv, A, "Partners", &[2], vec![]).await;
    add(&srv, (A, 2), &g, vec![user_of(B, 2)]).await.unwrap();
    let b_public = {
        let mut req = create_req(B, "B Public", &[2]);
        if let Some(spec) = req.group.as_mut() {
            spec.visibility = pb::Visibility::Public as i32;
        }
        srv.groups(B, 1, true)
            .create_group(req)
            .await
            .unwrap()
            .into_inner()
            .name
    };

    let listed = srv
        .membership(A, 1, true)
        .list_members(pb::ListMembersRequest {
            group: g.clone(),
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let kim = listed
        .members
        .iter()
        .find(|m| m.member.is_some_and(|r| r.tenant_id == B && r.id == 2))
        .expect("the B member is listed");
    assert_eq!(kim.display_name, "Kim from B");
    assert!(
        !format!("{listed:?}").contains("partner-b.example"),
        "B's data leaks: {listed:?}"
    );

    // Nothing else of B reaches A's admin.
    let mut a_admin = srv.groups(A, 1, true);
    let err = a_admin.get_group(get_req(&b_public)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let [search, auto, list] = discovered(&srv, (A, 1), true, B, "b").await;
    assert!(search.is_empty() && auto.is_empty() && list.is_empty());
    let err = srv
        .membership(A, 1, true)
        .list_groups_of_user(pb::ListGroupsOfUserRequest {
            user: Some(user_ref((B, 2))),
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r24_nesting_an_external_group_never_opens_an_internal_group_to_other_tenants() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(A, 3).await;
    srv.company(B, 3).await;
    contact(&srv, (A, 2), (B, 2)).await;
    let e = external_group(&srv, A, "Partners", &[2], vec![]).await;
    add(&srv, (A, 2), &e, vec![user_of(B, 2)]).await.unwrap();
    let i = internal_group(&srv, A, "Payroll", &[3], vec![]).await;

    // Whether or not nesting is refused, B's user must not reach the internal group.
    let nested = srv
        .membership(A, 1, true)
        .add_members(add_req(
            &i,
            vec![pb::MemberRef {
                r#type: pb::MemberType::Group as i32,
                id: parse_name(&e).1,
                tenant_id: 0,
            }],
        ))
        .await;
    if let Err(err) = &nested {
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    }
    let mut b2 = srv.groups(B, 2, false);
    let hidden = b2.get_group(get_req(&i)).await;
    let missing = b2.get_group(get_req(&missing_group(A))).await.unwrap_err();
    match hidden {
        Ok(_) => panic!("B's member reads A's internal group (nesting answered {nested:?})"),
        Err(err) => assert_eq!(fingerprint(&err), fingerprint(&missing)),
    }
    assert!(
        !groups_of_user(&srv, (B, 2), false, (B, 2))
            .await
            .contains(&i),
        "the internal group is listed for B's member"
    );
    // An internal group's effective members are users of its own tenant.
    let effective = srv
        .membership(A, 1, true)
        .list_effective_members(pb::ListEffectiveMembersRequest {
            group: i.clone(),
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .users;
    assert!(
        effective.iter().all(|u| u.tenant_id == A),
        "internal group with members of another tenant: {effective:?}"
    );
}

// ---- R12: deletion ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r12_deleting_an_external_group_reaches_every_member_tenant_at_once() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    three_companies(&srv).await;
    contact(&srv, (A, 2), (B, 2)).await;
    contact(&srv, (A, 2), (C, 2)).await;
    let g = external_group(&srv, A, "Partners", &[2], vec![user_of(A, 3)]).await;
    add(&srv, (A, 2), &g, vec![user_of(B, 2), user_of(C, 2)])
        .await
        .unwrap();
    let keep = external_group(&srv, A, "Keep", &[2], vec![]).await;
    add(&srv, (A, 2), &keep, vec![user_of(B, 2)]).await.unwrap();
    assert_eq!(srv.group_count(A).await, 2);

    srv.groups(A, 1, true)
        .delete_group(delete_req(&g, ""))
        .await
        .unwrap();
    for (t, u) in [(A, 2), (A, 3), (B, 2), (C, 2)] {
        let mut c = srv.groups(t, u, false);
        let err = c.get_group(get_req(&g)).await.unwrap_err();
        let missing = c.get_group(get_req(&missing_group(A))).await.unwrap_err();
        assert_eq!(fingerprint(&err), fingerprint(&missing), "{t}/{u}");
        assert!(
            !groups_of_user(&srv, (t, u), false, (t, u))
                .await
                .contains(&g)
        );
    }
    assert_eq!(
        groups_of_user(&srv, (B, 2), false, (B, 2)).await,
        BTreeSet::from([keep.clone()])
    );
    assert_eq!(srv.group_count(A).await, 1);
    let ev = events(&srv, &g, "group.deleted").await;
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["kind"], "EXTERNAL");
    assert_eq!(ev[0]["tenants"], serde_json::json!([A, B, C]));
}

// ---- R19: storage and usage ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r19_external_storage_counts_against_the_owning_tenant() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(A, 3).await;
    srv.company(B, 3).await;
    set_tenant(&srv, A, pb::Plan::Free, true, 1_000).await;
    contact(&srv, (A, 2), (B, 2)).await;
    let internal = internal_group(&srv, A, "Internal", &[2], vec![]).await;
    let external = external_group(&srv, A, "Partners", &[2], vec![]).await;
    add(&srv, (A, 2), &external, vec![user_of(B, 2)])
        .await
        .unwrap();

    let r = report(&srv, &external, "message", 600).await.unwrap();
    assert_eq!(
        (
            r.over_quota,
            r.tenant_storage_used_bytes,
            r.tenant_storage_quota_bytes
        ),
        (false, 600, 1_000)
    );
    assert_eq!(r.group.unwrap().storage_used_bytes, 600);
    let r = report(&srv, &internal, "note", 400).await.unwrap();
    // Exactly at the quota is not over it.
    assert_eq!((r.over_quota, r.tenant_storage_used_bytes), (false, 1_000));
    // Over the quota: recorded anyway, and said so.
    let r = report(&srv, &external, "folder", 200).await.unwrap();
    assert_eq!((r.over_quota, r.tenant_storage_used_bytes), (true, 1_200));
    assert_eq!(r.group.unwrap().storage_used_bytes, 800);

    let u = usage(&mut srv.groups(A, 1, true), A).await.unwrap();
    assert_eq!(u.name, "tenants/1");
    assert_eq!((u.groups_used, u.groups_limit), (2, 1_000));
    assert_eq!(
        (u.storage_used_bytes, u.storage_quota_bytes),
        (1_200, 1_000)
    );
    assert_eq!(kind_usage(u.internal), (1, 400));
    assert_eq!(kind_usage(u.external), (1, 800));
    assert!(u.over_quota);
    // B's member sees the group's size, but B is not charged.
    let seen = srv
        .groups(B, 2, false)
        .get_group(get_req(&external))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(seen.storage_used_bytes, 800);
    let ub = usage(&mut srv.groups_service(B), B).await.unwrap();
    assert_eq!((ub.groups_used, ub.storage_used_bytes), (0, 0));
    assert_eq!(kind_usage(ub.external), (0, 0));
    // Only the owning tenant's services report.
    let err = srv
        .groups_service(B)
        .report_feature_usage(pb::ReportFeatureUsageRequest {
            name: external.clone(),
            feature: "message".into(),
            bytes: 1,
        })
        .await
        .unwrap_err();
    assert_reason(&err, Code::PermissionDenied, "WRONG_TENANT");
    let err = srv
        .groups(A, 2, false)
        .report_feature_usage(pb::ReportFeatureUsageRequest {
            name: external.clone(),
            feature: "message".into(),
            bytes: 1,
        })
        .await
        .unwrap_err();
    assert_reason(&err, Code::PermissionDenied, "SERVICE_CALLER_REQUIRED");

    // Sizes go down, never below zero.
    let r = report(&srv, &external, "message", 0).await.unwrap();
    assert_eq!((r.over_quota, r.tenant_storage_used_bytes), (false, 600));
    let err = report(&srv, &external, "folder", -1).await.unwrap_err();
    assert_bad_field(&err, "bytes");
    for (g, feature) in [
        (&external, "folder"),
        (&internal, "note"),
        (&internal, "note"),
    ] {
        report(&srv, g, feature, 0).await.unwrap();
    }
    let u = usage(&mut srv.groups_service(A), A).await.unwrap();
    assert_eq!(u.storage_used_bytes, 0);
    assert_eq!(kind_usage(u.internal), (1, 0));
    assert_eq!(kind_usage(u.external), (1, 0));
    assert!(!u.over_quota);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r19_zero_quota_means_no_quota() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(C, 2).await;
    set_tenant(&srv, C, pb::Plan::Paid, true, 0).await;
    let g = external_group(&srv, C, "Partners", &[2], vec![]).await;
    let r = report(&srv, &g, "folder", 5_000_000_000).await.unwrap();
    assert!(!r.over_quota, "{r:?}");
    assert_eq!(
        (r.tenant_storage_used_bytes, r.tenant_storage_quota_bytes),
        (5_000_000_000, 0)
    );
    let u = usage(&mut srv.groups(C, 1, true), C).await.unwrap();
    assert!(!u.over_quota);
    assert_eq!((u.groups_used, u.groups_limit), (1, 100_000));
    assert_eq!(kind_usage(u.external), (1, 5_000_000_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r19_usage_is_for_admins_and_services_of_the_tenant() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(A, 3).await;
    srv.company(B, 3).await;
    contact(&srv, (A, 2), (B, 2)).await;
    let g = external_group(&srv, A, "Partners", &[2], vec![]).await;
    add(&srv, (A, 2), &g, vec![user_of(B, 2)]).await.unwrap();

    usage(&mut srv.groups(A, 1, true), A).await.unwrap();
    usage(&mut srv.groups_service(A), A).await.unwrap();
    // A Group Master of the tenant is not an admin.
    let err = usage(&mut srv.groups(A, 2, false), A).await.unwrap_err();
    assert_reason(&err, Code::PermissionDenied, "NOT_GROUP_MANAGER");
    // Another tenant's usage does not exist for B, members of A's groups included.
    let missing = usage(&mut srv.groups(B, 1, true), 99).await.unwrap_err();
    for mut c in [
        srv.groups(B, 1, true),
        srv.groups(B, 2, false),
        srv.groups_service(B),
    ] {
        let err = usage(&mut c, A).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{err:?}");
        assert_eq!(fingerprint(&err), fingerprint(&missing));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r19_deleting_an_external_group_releases_its_storage() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(A, 3).await;
    set_tenant(&srv, A, pb::Plan::Free, true, 1_000).await;
    let keep = internal_group(&srv, A, "Internal", &[2], vec![]).await;
    let g = external_group(&srv, A, "Partners", &[2], vec![]).await;
    report(&srv, &keep, "note", 100).await.unwrap();
    let r = report(&srv, &g, "folder", 1_500).await.unwrap();
    assert!(r.over_quota);

    srv.groups(A, 1, true)
        .delete_group(delete_req(&g, ""))
        .await
        .unwrap();
    let u = usage(&mut srv.groups(A, 1, true), A).await.unwrap();
    assert_eq!(kind_usage(u.external), (0, 0));
    assert_eq!(kind_usage(u.internal), (1, 100));
    assert_eq!(
        u.storage_used_bytes, 100,
        "R12/R19: the deleted group's data no longer counts: {u:?}"
    );
    assert!(!u.over_quota, "{u:?}");
    assert_eq!(srv.get_tenant(A).await.storage_used_bytes, 100);
}
