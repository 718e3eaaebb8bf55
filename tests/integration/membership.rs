//! MembershipService: members, Group Masters, nested groups, transitive membership and
//! cursor pagination (R03, R05, R06, R07, R17, R21, R22, R23, R24, R25).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use futures_util::{StreamExt, stream};
use group_service::grpc::pb;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::harness::*;

/// The tenant most tests work in; user 1 is its admin.
const T: i64 = 1;
const USER: i32 = pb::MemberType::User as i32;
const TEAM: i32 = pb::MemberType::Team as i32;
const GROUP: i32 = pb::MemberType::Group as i32;

// ---- fixtures ----

fn team_member(id: i64) -> pb::MemberRef {
    pb::MemberRef {
        r#type: TEAM,
        id,
        tenant_id: 0,
    }
}

fn group_member(name: &str) -> pb::MemberRef {
    pb::MemberRef {
        r#type: GROUP,
        id: group_id(name),
        tenant_id: 0,
    }
}

/// A member of `tenant`, named explicitly.
fn member_of(kind: i32, tenant: i64, id: i64) -> pb::MemberRef {
    pb::MemberRef {
        r#type: kind,
        id,
        tenant_id: tenant,
    }
}

fn user_ref(tenant: i64, user: i64) -> pb::UserRef {
    pb::UserRef {
        tenant_id: tenant,
        user_id: user,
    }
}

fn group_id(name: &str) -> i64 {
    name.rsplit('/')
        .next()
        .and_then(|id| id.parse().ok())
        .expect("tenants/T/groups/G")
}

/// (type, id) of a member reference: answers fill in tenant ids that requests leave at 0.
fn key(m: &pb::MemberRef) -> (i32, i64) {
    (m.r#type, m.id)
}

fn keys(ms: &[pb::MemberRef]) -> BTreeSet<(i32, i64)> {
    ms.iter().map(key).collect()
}

fn u(id: i64) -> (i32, i64) {
    (USER, id)
}

/// Creates a group of tenant `T` as its admin (private unless `public`).
async fn group(
    srv: &TestServer,
    name: &str,
    masters: &[i64],
    members: Vec<pb::MemberRef>,
) -> String {
    group_in(srv, T, name, masters, members, false).await
}

async fn group_in(
    srv: &TestServer,
    tenant: i64,
    name: &str,
    masters: &[i64],
    members: Vec<pb::MemberRef>,
    public: bool,
) -> String {
    let mut req = create_req(tenant, name, masters);
    req.members = members;
    if public && let Some(g) = req.group.as_mut() {
        g.visibility = pb::Visibility::Public as i32;
    }
    srv.groups(tenant, 1, true)
        .create_group(req)
        .await
        .expect("create group")
        .into_inner()
        .name
}

/// Creates (or replaces) a team of `tenant`.
async fn team(srv: &TestServer, tenant: i64, id: i64, users: &[i64]) {
    srv.directory(tenant)
        .upsert_team(pb::UpsertTeamRequest {
            team: Some(pb::Team {
                tenant_id: tenant,
                id,
                display_name: format!("Team {id}"),
                email: format!("team{id}@t{tenant}.example"),
                member_user_ids: users.to_vec(),
            }),
        })
        .await
        .expect("upsert team");
}

/// Turns the tenant setting `masters_may_manage_settings` on or off (FREE, ADMINS_ONLY).
async fn masters_may_manage(srv: &TestServer, tenant: i64, allowed: bool) {
    srv.directory(tenant)
        .upsert_tenant(pb::UpsertTenantRequest {
            tenant: Some(pb::Tenant {
                id: tenant,
                display_name: format!("Tenant {tenant}"),
                plan: pb::Plan::Free as i32,
                group_creation: pb::GroupCreation::AdminsOnly as i32,
                core_enabled: true,
                masters_may_manage_settings: allowed,
                storage_quota_bytes: 1 << 30,
                ..Default::default()
            }),
        })
        .await
        .expect("upsert tenant");
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

async fn add(
    c: &mut Membership,
    group: &str,
    members: Vec<pb::MemberRef>,
) -> Result<pb::AddMembersResponse, Status> {
    c.add_members(add_req(group, members))
        .await
        .map(|r| r.into_inner())
}

async fn remove(
    c: &mut Membership,
    group: &str,
    members: Vec<pb::MemberRef>,
) -> Result<pb::RemoveMembersResponse, Status> {
    c.remove_members(remove_req(group, members))
        .await
        .map(|r| r.into_inner())
}

async fn add_masters(
    c: &mut Membership,
    group: &str,
    users: &[i64],
) -> Result<pb::AddMastersResponse, Status> {
    c.add_masters(pb::AddMastersRequest {
        group: group.to_owned(),
        users: users.iter().map(|u| user_ref(T, *u)).collect(),
    })
    .await
    .map(|r| r.into_inner())
}

async fn remove_masters(
    c: &mut Membership,
    group: &str,
    users: &[i64],
) -> Result<pb::RemoveMastersResponse, Status> {
    c.remove_masters(pb::RemoveMastersRequest {
        group: group.to_owned(),
        users: users.iter().map(|u| user_ref(T, *u)).collect(),
    })
    .await
    .map(|r| r.into_inner())
}

/// Every direct member, all pages.
async fn members_of(c: &mut Membership, group: &str) -> Vec<pb::Member> {
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let r = c
            .list_members(pb::ListMembersRequest {
                group: group.to_owned(),
                page_size: 100,
                page_token,
            })
            .await
            .expect("list members")
            .into_inner();
        out.extend(r.members);
        if r.next_page_token.is_empty() {
            return out;
        }
        page_token = r.next_page_token;
    }
}

/// (type, id) of every direct member.
async fn member_keys(c: &mut Membership, group: &str) -> BTreeSet<(i32, i64)> {
    members_of(c, group)
        .await
        .iter()
        .filter_map(|m| m.member.as_ref().map(key))
        .collect()
}

/// User ids of every effective member (all of tenant `T`), read `page_size` at a time.
async fn effective_of(c: &mut Membership, group: &str, page_size: i32) -> Vec<i64> {
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let r = c
            .list_effective_members(pb::ListEffectiveMembersRequest {
                group: group.to_owned(),
                page_size,
                page_token,
            })
            .await
            .expect("list effective members")
            .into_inner();
        for user in r.users {
            assert_eq!(user.tenant_id, T, "effective member of another tenant");
            out.push(user.user_id);
        }
        if r.next_page_token.is_empty() {
            return out;
        }
        page_token = r.next_page_token;
    }
}

async fn masters_of(c: &mut Membership, group: &str) -> Vec<i64> {
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let r = c
            .list_masters(pb::ListMastersRequest {
                group: group.to_owned(),
                page_size: 100,
                page_token,
            })
            .await
            .expect("list masters")
            .into_inner();
        out.extend(r.masters.iter().map(|m| m.user_id));
        if r.next_page_token.is_empty() {
            return out;
        }
        page_token = r.next_page_token;
    }
}

/// (member, master, direct) of a user of tenant `T`.
async fn check(c: &mut Membership, group: &str, user: i64) -> (bool, bool, bool) {
    let r = c
        .check_membership(pb::CheckMembershipRequest {
            group: group.to_owned(),
            user: Some(user_ref(T, user)),
        })
        .await
        .expect("check membership")
        .into_inner();
    (r.member, r.master, r.direct)
}

/// Group names and `direct` flags of every group of `user` the caller may see, `page_size` at a
/// time.
async fn groups_of_user(c: &mut Membership, user: i64, page_size: i32) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let r = c
            .list_groups_of_user(pb::ListGroupsOfUserRequest {
                user: Some(user_ref(T, user)),
                page_size,
                page_token,
            })
            .await
            .expect("list groups of user")
            .into_inner();
        for g in r.groups {
            out.push((g.group.map(|g| g.name).unwrap_or_default(), g.direct));
        }
        if r.next_page_token.is_empty() {
            return out;
        }
        page_token = r.next_page_token;
    }
}

/// Asserts RESOURCE_EXHAUSTED with `reason` and a QuotaFailure naming `subject`.
#[track_caller]
fn assert_quota(status: &Status, reason: &str, subject: &str) {
    assert_reason(status, Code::ResourceExhausted, reason);
    let quota = status
        .get_details_quota_failure()
        .unwrap_or_else(|| panic!("no QuotaFailure in {status:?}"));
    let subjects: Vec<&str> = quota
        .violations
        .iter()
        .map(|v| v.subject.as_str())
        .collect();
    assert_eq!(subjects, [subject], "unexpected QuotaFailure in {status:?}");
}

// ---- AddMembers / RemoveMembers ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_add_members_reports_added_and_already_present() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(T, 6).await;
    team(&srv, T, 10, &[5]).await;
    let nested = group(&srv, "Nested", &[6], vec![]).await;
    let g = group(&srv, "Design", &[2], vec![]).await;
    let mut admin = srv.membership(T, 1, true);

    let out = add(&mut admin, &g, vec![user_member(3), team_member(10)])
        .await
        .unwrap();
    assert_eq!(keys(&out.added), BTreeSet::from([u(3), (TEAM, 10)]));
    assert!(out.already_present.is_empty());

    // A mix: what is there is reported, the rest is added.
    let out = add(
        &mut admin,
        &g,
        vec![user_member(3), user_member(4), group_member(&nested)],
    )
    .await
    .unwrap();
    assert_eq!(
        keys(&out.added),
        BTreeSet::from([u(4), (GROUP, group_id(&nested))])
    );
    assert_eq!(keys(&out.already_present), BTreeSet::from([u(3)]));

    // Only members already there: 409-style ALREADY_EXISTS.
    let err = add(&mut admin, &g, vec![user_member(3), team_member(10)])
        .await
        .unwrap_err();
    assert_reason(&err, Code::AlreadyExists, "ALREADY_MEMBER");

    let members = members_of(&mut admin, &g).await;
    let listed: BTreeMap<(i32, i64), (bool, String)> = members
        .iter()
        .map(|m| {
            (
                key(m.member.as_ref().expect("member")),
                (m.master, m.display_name.clone()),
            )
        })
        .collect();
    assert_eq!(
        listed,
        BTreeMap::from([
            (u(2), (true, "User 2".to_owned())),
            (u(3), (false, "User 3".to_owned())),
            (u(4), (false, "User 4".to_owned())),
            ((TEAM, 10), (false, String::new())),
            ((GROUP, group_id(&nested)), (false, String::new())),
        ])
    );
    for m in &members {
        let m = m.member.as_ref().expect("member");
        assert_eq!(m.tenant_id, T, "answers name the tenant of {m:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_add_members_is_all_or_nothing() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(T, 4).await;
    let g = group(&srv, "Design", &[2], vec![]).await;
    let mut admin = srv.membership(T, 1, true);
    let before = member_keys(&mut admin, &g).await;

    for unknown in [
        user_member(99),
        team_member(77),
        member_of(GROUP, 0, 987_654_321),
    ] {
        let err = add(&mut admin, &g, vec![user_member(3), unknown])
            .await
            .unwrap_err();
        assert_reason(&err, Code::FailedPrecondition, "UNKNOWN_MEMBER");
        assert_eq!(member_keys(&mut admin, &g).await, before, "{unknown:?}");
    }
    // A cycle rejects the whole batch too.
    let err = add(&mut admin, &g, vec![user_member(3), group_member(&g)])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "MEMBERSHIP_CYCLE");
    assert_eq!(member_keys(&mut admin, &g).await, before);
    assert_eq!(check(&mut admin, &g, 3).await, (false, false, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_batches_hold_one_to_a_hundred_members() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(T, 102).await;
    let g = group(&srv, "Design", &[2], vec![]).await;
    let mut admin = srv.membership(T, 1, true);

    let err = add(&mut admin, &g, vec![]).await.unwrap_err();
    assert_bad_field(&err, "members");
    let err = remove(&mut admin, &g, vec![]).await.unwrap_err();
    assert_bad_field(&err, "members");
    let too_many: Vec<_> = (2..=102).map(user_member).collect();
    assert_eq!(too_many.len(), 101);
    let err = add(&mut admin, &g, too_many.clone()).await.unwrap_err();
    assert_bad_field(&err, "members");
    let err = remove(&mut admin, &g, too_many).await.unwrap_err();
    assert_bad_field(&err, "members");
    let err = add(
        &mut admin,
        &g,
        vec![
            user_member(3),
            member_of(pb::MemberType::Unspecified as i32, 0, 4),
        ],
    )
    .await
    .unwrap_err();
    assert_bad_field(&err, "members[1].type");
    let err = add(&mut admin, &g, vec![user_member(0)]).await.unwrap_err();
    assert_bad_field(&err, "members[0].id");
    let err = add(&mut admin, "groups/1", vec![user_member(3)])
        .await
        .unwrap_err();
    assert_bad_field(&err, "group");
    let err = admin
        .add_members(pb::AddMembersRequest {
            group: g.clone(),
            members: vec![user_member(3)],
            request_id: "x".repeat(101),
        })
        .await
        .unwrap_err();
    assert_bad_field(&err, "request_id");
    assert_eq!(member_keys(&mut admin, &g).await, BTreeSet::from([u(2)]));

    // Exactly 100 is fine, in both directions.
    let hundred: Vec<_> = (3..=102).map(user_member).collect();
    let out = add(&mut admin, &g, hundred.clone()).await.unwrap();
    assert_eq!(out.added.len(), 100);
    let out = remove(&mut admin, &g, hundred).await.unwrap();
    assert_eq!(out.removed.len(), 100);
    assert_eq!(member_keys(&mut admin, &g).await, BTreeSet::from([u(2)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r24_members_must_be_of_the_groups_tenant() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(T, 4).await;
    srv.company(2, 5).await;
    team(&srv, 2, 20, &[5]).await;
    let theirs = group_in(&srv, 2, "Theirs", &[2], vec![], false).await;
    let g = group(&srv, "Design", &[2], vec![]).await;
    let mut admin = srv.membership(T, 1, true);

    // A user of another tenant in an internal group: a broken rule.
    let err = add(&mut admin, &g, vec![user_member(3), member_of(USER, 2, 5)])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "USER_NOT_IN_TENANT");
    // Teams and groups of another tenant: bad input, naming the field.
    let err = add(&mut admin, &g, vec![user_member(3), member_of(TEAM, 2, 20)])
        .await
        .unwrap_err();
    assert_bad_field(&err, "members[1].tenant_id");
    let err = add(
        &mut admin,
        &g,
        vec![member_of(GROUP, 2, group_id(&theirs)), user_member(3)],
    )
    .await
    .unwrap_err();
    assert_bad_field(&err, "members[0].tenant_id");
    // Named with tenant_id 0 they are looked up in the group's tenant, where they do not exist.
    let err = add(&mut admin, &g, vec![team_member(20)])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "UNKNOWN_MEMBER");
    let err = add(&mut admin, &g, vec![group_member(&theirs)])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "UNKNOWN_MEMBER");
    // AddMasters too.
    let err = admin
        .add_masters(pb::AddMastersRequest {
            group: g.clone(),
            users: vec![user_ref(2, 5)],
        })
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "USER_NOT_IN_TENANT");

    assert_eq!(member_keys(&mut admin, &g).await, BTreeSet::from([u(2)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_request_id_makes_a_retry_return_the_first_answer() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(T, 6).await;
    let g = group(&srv, "Design", &[2], vec![user_member(3)]).await;
    let other = group(&srv, "Other", &[2], vec![]).await;
    let mut admin = srv.membership(T, 1, true);

    let first_add = pb::AddMembersRequest {
        group: g.clone(),
        members: vec![user_member(3), user_member(4)],
        request_id: "add-1".into(),
    };
    let first = admin
        .add_members(first_add.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(keys(&first.added), BTreeSet::from([u(4)]));
    assert_eq!(keys(&first.already_present), BTreeSet::from([u(3)]));
    // The retry gets the first answer, not ALREADY_MEMBER.
    let again = admin
        .add_members(first_add.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, first);
    // The same members in another order are the same request.
    let mut reordered = first_add.clone();
    reordered.members.reverse();
    assert_eq!(
        admin.add_members(reordered).await.unwrap().into_inner(),
        first
    );

    // The same id for a different request.
    for different in [
        pb::AddMembersRequest {
            members: vec![user_member(3), user_member(5)],
            ..first_add.clone()
        },
        pb::AddMembersRequest {
            group: other.clone(),
            ..first_add.clone()
        },
    ] {
        let err = admin.add_members(different).await.unwrap_err();
        assert_reason(&err, Code::InvalidArgument, "REQUEST_ID_REUSED");
        assert_bad_field(&err, "request_id");
    }
    let err = admin
        .remove_members(pb::RemoveMembersRequest {
            group: g.clone(),
            members: vec![user_member(3), user_member(4)],
            request_id: "add-1".into(),
        })
        .await
        .unwrap_err();
    assert_reason(&err, Code::InvalidArgument, "REQUEST_ID_REUSED");
    assert_eq!(
        member_keys(&mut admin, &g).await,
        BTreeSet::from([u(2), u(3), u(4)])
    );

    let first_remove = pb::RemoveMembersRequest {
        group: g.clone(),
        members: vec![user_member(4), user_member(6)],
        request_id: "remove-1".into(),
    };
    let first = admin
        .remove_members(first_remove.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(keys(&first.removed), BTreeSet::from([u(4)]));
    assert_eq!(keys(&first.not_members), BTreeSet::from([u(6)]));
    let again = admin
        .remove_members(first_remove)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, first, "not NOT_A_MEMBER");

    // A retry answers from the record; it does not run the call again.
    let replay = admin.add_members(first_add).await.unwrap().into_inner();
    assert_eq!(keys(&replay.added), BTreeSet::from([u(4)]));
    assert_eq!(
        member_keys(&mut admin, &g).await,
        BTreeSet::from([u(2), u(3)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_concurrent_retries_with_one_request_id_apply_once() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(T, 5).await;
    let g = group(&srv, "Design", &[2], vec![]).await;
    let admin = srv.membership(T, 1, true);
    let req = pb::AddMembersRequest {
        group: g.clone(),
        members: vec![user_member(3), user_member(4)],
        request_id: "burst".into(),
    };
    let answers: Vec<Result<pb::AddMembersResponse, Status>> = stream::iter(0..8)
        .map(|_| {
            let mut c = admin.clone();
            let req = req.clone();
            async move { c.add_members(req).await.map(|r| r.into_inner()) }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    for a in &answers {
        let a = a.as_ref().expect("every retry gets the first answer");
        assert_eq!(keys(&a.added), BTreeSet::from([u(3), u(4)]));
        assert!(a.already_present.is_empty());
    }
    let mut c = admin.clone();
    assert_eq!(
        member_keys(&mut c, &g).await,
        BTreeSet::from([u(2), u(3), u(4)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_remove_members_reports_removed_and_not_members() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(T, 6).await;
    team(&srv, T, 10, &[5]).await;
    let nested = group(&srv, "Nested", &[6], vec![]).await;
    let g = group(
        &srv,
        "Design",
        &[2],
        vec![user_member(3), team_member(10), group_member(&nested)],
    )
    .await;
    let mut admin = srv.membership(T, 1, true);

    let out = remove(
        &mut admin,
        &g,
        vec![user_member(3), user_member(4), team_member(10)],
    )
    .await
    .unwrap();
    assert_eq!(keys(&out.removed), BTreeSet::from([u(3), (TEAM, 10)]));
    assert_eq!(keys(&out.not_members), BTreeSet::from([u(4)]));

    let err = remove(&mut admin, &g, vec![user_member(3), team_member(10)])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "NOT_A_MEMBER");

    let out = remove(&mut admin, &g, vec![group_member(&nested)])
        .await
        .unwrap();
    assert_eq!(
        keys(&out.removed),
        BTreeSet::from([(GROUP, group_id(&nested))])
    );
    assert_eq!(member_keys(&mut admin, &g).await, BTreeSet::from([u(2)]));
    assert_eq!(effective_of(&mut admin, &g, 50).await, [2]);
}

// ---- Group Masters (R05) ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r05_masters_are_members_and_the_last_one_stays() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(T, 5).await;
    let g = group(&srv, "Design", &[2], vec![user_member(4)]).await;
    let mut admin = srv.membership(T, 1, true);

    // A non-member becomes member and master.
    let out = add_masters(&mut admin, &g, &[3]).await.unwrap();
    assert_eq!(out.added, [user_ref(T, 3)]);
    assert_eq!(check(&mut admin, &g, 3).await, (true, true, true));
    let err = add_masters(&mut admin, &g, &[3]).await.unwrap_err();
    assert_reason(&err, Code::AlreadyExists, "ALREADY_MASTER");
    // A member is promoted; a master is reported.
    let out = add_masters(&mut admin, &g, &[3, 4]).await.unwrap();
    assert_eq!(out.added, [user_ref(T, 4)]);
    assert_eq!(out.already_masters, [user_ref(T, 3)]);
    assert_eq!(masters_of(&mut admin, &g).await, [2, 3, 4]);
    let masters: BTreeSet<i64> = members_of(&mut admin, &g)
        .await
        .iter()
        .filter(|m| m.master)
        .filter_map(|m| m.member.as_ref().map(|m| m.id))
        .collect();
    assert_eq!(masters, BTreeSet::from([2, 3, 4]));

    // Demoting all of them fails and changes nothing.
    let err = remove_masters(&mut admin, &g, &[2, 3, 4])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "LAST_MASTER");
    assert_eq!(masters_of(&mut admin, &g).await, [2, 3, 4]);

    let out = remove_masters(&mut admin, &g, &[2, 3, 5]).await.unwrap();
    assert_eq!(out.removed, [user_ref(T, 2), user_ref(T, 3)]);
    assert_eq!(out.not_masters, [user_ref(T, 5)]);
    assert_eq!(masters_of(&mut admin, &g).await, [4]);
    // A demoted master stays a member.
    assert_eq!(check(&mut admin, &g, 2).await, (true, false, true));

    let err = remove_masters(&mut admin, &g, &[4]).await.unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "LAST_MASTER");
    let err = remove_masters(&mut admin, &g, &[2]).await.unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "NOT_A_MASTER");
    assert_eq!(masters_of(&mut admin, &g).await, [4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r05_removing_the_last_master_via_remove_members_fails_and_changes_nothing() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(T, 5).await;
    let g = group(&srv, "Design", &[2], vec![user_member(3), user_member(4)]).await;
    let mut admin = srv.membership(T, 1, true);
    let before = member_keys(&mut admin, &g).await;

    let err = remove(&mut admin, &g, vec![user_member(3), user_member(2)])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "LAST_MASTER");
    assert_eq!(member_keys(&mut admin, &g).await, before);
    assert_eq!(masters_of(&mut admin, &g).await, [2]);

    // With two masters, both at once still fails; one is fine.
    add_masters(&mut admin, &g, &[5]).await.unwrap();
    let err = remove(&mut admin, &g, vec![user_member(2), user_member(5)])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "LAST_MASTER");
    assert_eq!(masters_of(&mut admin, &g).await, [2, 5]);
    remove(&mut admin, &g, vec![user_member(2)]).await.unwrap();
    assert_eq!(masters_of(&mut admin, &g).await, [5]);
    assert_eq!(
        member_keys(&mut admin, &g).await,
        BTreeSet::from([u(3), u(4), u(5)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r05_concurrent_removals_keep_one_master() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(T, 3).await;
    let mut admin = srv.membership(T, 1, true);
    for round in 0..8 {
        let g = group(&srv, &format!("Pair {round}"), &[2, 3], vec![]).await;
        let (mut a, mut b) = (admin.clone(), admin.clone());
        // Demote one, remove the other, at the same time: at most one may win.
        let (x, y) = tokio::join!(
            remove_masters(&mut a, &g, &[2]),
            remove(&mut b, &g, vec![user_member(3)]),
        );
        let failures: Vec<&Status> = [x.as_ref().err(), y.as_ref().err()]
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(failures.len(), 1, "round {round}: {x:?} {y:?}");
        assert_reason(failures[0], Code::FailedPrecondition, "LAST_MASTER");
        assert_eq!(masters_of(&mut admin, &g).await.len(), 1, "round {round}");
    }
}

// ---- CheckMembership, ListEffectiveMembers, ListGroupsOfUser (R22) ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r22_effective_members_through_teams_and_nested_groups() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(T, 10).await;
    team(&srv, T, 10, &[4, 5]).await;
    team(&srv, T, 11, &[5, 6]).await;
    let c = group(&srv, "C", &[7], vec![team_member(11)]).await;
    let b = group(&srv, "B", &[8], vec![group_member(&c), user_member(9)]).await;
    let a = group(
        &srv,
        "A",
        &[2],
        vec![
            user_member(3),
            team_member(10),
            group_member(&b),
            user_member(5),
        ],
    )
    .await;
    let mut admin = srv.membership(T, 1, true);

    // Distinct users: 5 is reached directly and through both teams.
    assert_eq!(
        effective_of(&mut admin, &a, 50).await,
        [2, 3, 4, 5, 6, 7, 8, 9]
    );
    for page_size in [1, 2, 3] {
        assert_eq!(
            effective_of(&mut admin, &a, page_size).await,
            [2, 3, 4, 5, 6, 7, 8, 9],
            "page size {page_size}"
        );
    }
    assert_eq!(effective_of(&mut admin, &b, 50).await, [5, 6, 7, 8, 9]);
    assert_eq!(effective_of(&mut admin, &c, 50).await, [5, 6, 7]);

    assert_eq!(check(&mut admin, &a, 2).await, (true, true, true));
    assert_eq!(check(&mut admin, &a, 3).await, (true, false, true));
    assert_eq!(check(&mut admin, &a, 5).await, (true, false, true));
    assert_eq!(check(&mut admin, &a, 4).await, (true, false, false));
    assert_eq!(check(&mut admin, &a, 6).await, (true, false, false));
    // A master of a nested group is a plain transitive member of the parent.
    assert_eq!(check(&mut admin, &a, 7).await, (true, false, false));
    assert_eq!(check(&mut admin, &c, 7).await, (true, true, true));
    assert_eq!(check(&mut admin, &a, 1).await, (false, false, false));
    assert_eq!(check(&mut admin, &a, 10).await, (false, false, false));
    assert_eq!(check(&mut admin, &c, 9).await, (false, false, false));

    // Team membership changes show through at once.
    team(&srv, T, 11, &[10]).await;
    assert_eq!(check(&mut admin, &a, 10).await, (true, false, false));
    assert_eq!(check(&mut admin, &a, 6).await, (false, false, false));
    assert_eq!(
        effective_of(&mut admin, &a, 50).await,
        [2, 3, 4, 5, 7, 8, 9, 10]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_groups_of_user_direct_and_transitive_as_the_caller_may_see() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(T, 6).await;
    srv.company(2, 4).await;
    team(&srv, T, 10, &[4]).await;
    let public = group_in(&srv, T, "Public", &[2], vec![user_member(4)], true).await;
    let x = group(&srv, "X", &[2], vec![team_member(10)]).await;
    let y = group(&srv, "Y", &[3], vec![group_member(&x)]).await;
    let z = group(&srv, "Z", &[3], vec![user_member(4), user_member(5)]).await;
    let _w = group(&srv, "W", &[2], vec![user_member(6)]).await;

    let expect = |names: &[(&String, bool)]| -> BTreeSet<(String, bool)> {
        names.iter().map(|(n, d)| ((*n).clone(), *d)).collect()
    };
    let all = expect(&[(&public, true), (&x, false), (&y, false), (&z, true)]);
    for (caller, admin, visible) in [
        (1, true, all.clone()),
        (4, false, all.clone()),
        // 6 is in no group of 4's but may see the public one.
        (6, false, expect(&[(&public, true)])),
        // 5 is a member of Z only.
        (5, false, expect(&[(&public, true), (&z, true)])),
        // 2 is in X (so in Y) and in the public group, not in Z.
        (
            2,
            false,
            expect(&[(&public, true), (&x, false), (&y, false)]),
        ),
    ] {
        let mut c = srv.membership(T, caller, admin);
        for page_size in [0, 1, 2] {
            let got = groups_of_user(&mut c, 4, page_size).await;
            let set: BTreeSet<(String, bool)> = got.iter().cloned().collect();
            assert_eq!(set.len(), got.len(), "duplicates for caller {caller}");
            assert_eq!(set, visible, "caller {caller}, page size {page_size}");
        }
    }

    // A user of another tenant is not the caller's to ask about.
    let err = srv
        .membership(2, 1, true)
        .list_groups_of_user(pb::ListGroupsOfUserRequest {
            user: Some(user_ref(T, 4)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r23_members_cannot_leave_by_themselves() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(T, 6).await;
    team(&srv, T, 10, &[5]).await;
    let g = group(&srv, "Design", &[2], vec![user_member(3), team_member(10)]).await;
    let leave = |user: i64| {
        let mut c = srv.membership(T, user, false);
        let group = g.clone();
        async move { c.leave(pb::LeaveRequest { group }).await }
    };
    // A plain member, a member through a team, the only master.
    for user in [3, 5, 2] {
        let err = leave(user).await.unwrap_err();
        assert_reason(&err, Code::FailedPrecondition, "MEMBERS_CANNOT_LEAVE");
    }
    // A non-member of a private group cannot tell it exists.
    let err = leave(6).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");

    let mut admin = srv.membership(T, 1, true);
    assert_eq!(
        member_keys(&mut admin, &g).await,
        BTreeSet::from([u(2), u(3), (TEAM, 10)])
    );
}

// ---- who may change membership (R06, R07, R24) ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r06_group_masters_manage_members() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(T, 5).await;
    let g = group(&srv, "Design", &[2], vec![]).await;
    let mut master = srv.membership(T, 2, false);
    add(&mut master, &g, vec![user_member(3), user_member(4)])
        .await
        .unwrap();
    add_masters(&mut master, &g, &[5]).await.unwrap();
    remove(&mut master, &g, vec![user_member(3)]).await.unwrap();
    remove_masters(&mut master, &g, &[5]).await.unwrap();
    assert_eq!(
        member_keys(&mut master, &g).await,
        BTreeSet::from([u(2), u(4), u(5)])
    );
    assert_eq!(masters_of(&mut master, &g).await, [2]);
}

/// Every membership change as `c`, each expected to fail the same way.
async fn assert_may_not_change(c: &mut Membership, g: &str, code: Code, reason: &str) {
    let err = add(c, g, vec![user_member(5)]).await.unwrap_err();
    assert_reason(&err, code, reason);
    let err = remove(c, g, vec![user_member(3)]).await.unwrap_err();
    assert_reason(&err, code, reason);
    let err = add_masters(c, g, &[3]).await.unwrap_err();
    assert_reason(&err, code, reason);
    let err = remove_masters(c, g, &[2]).await.unwrap_err();
    assert_reason(&err, code, reason);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r06_masters_cannot_change_members_when_the_tenant_says_so() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(T, 5).await;
    let g = group(&srv, "Design", &[2, 4], vec![user_member(3)]).await;
    masters_may_manage(&srv, T, false).await;
    let mut master = srv.membership(T, 2, false);
    assert_may_not_change(&mut master, &g, Code::PermissionDenied, "NOT_GROUP_MANAGER").await;
    // Reading is still fine; admins still change everything.
    assert_eq!(
        member_keys(&mut master, &g).await,
        BTreeSet::from([u(2), u(3), u(4)])
    );
    let mut admin = srv.membership(T, 1, true);
    add(&mut admin, &g, vec![user_member(5)]).await.unwrap();
    remove_masters(&mut admin, &g, &[4]).await.unwrap();

    masters_may_manage(&srv, T, true).await;
    remove(&mut master, &g, vec![user_member(5)]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r06_plain_members_may_list_but_not_change() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(T, 5).await;
    team(&srv, T, 10, &[4]).await;
    let g = group(&srv, "Design", &[2], vec![user_member(3), team_member(10)]).await;
    // A direct member, a member through a team, and a non-admin claiming to be one.
    for (user, admin_claim) in [(3, false), (4, false), (3, true)] {
        let mut c = srv.membership(T, user, admin_claim);
        assert_eq!(
            member_keys(&mut c, &g).await,
            BTreeSet::from([u(2), u(3), (TEAM, 10)])
        );
        assert_eq!(effective_of(&mut c, &g, 50).await, [2, 3, 4]);
        assert_eq!(masters_of(&mut c, &g).await, [2]);
        assert_eq!(check(&mut c, &g, 2).await, (true, true, true));
        assert_may_not_change(&mut c, &g, Code::PermissionDenied, "NOT_GROUP_MANAGER").await;
    }
    let mut admin = srv.membership(T, 1, true);
    assert_eq!(
        member_keys(&mut admin, &g).await,
        BTreeSet::from([u(2), u(3), (TEAM, 10)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_private_group_answers_non_members_as_if_missing() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(T, 5).await;
    srv.company(2, 2).await;
    let g = group(&srv, "Design", &[2], vec![user_member(3)]).await;
    let missing = format!("tenants/{T}/groups/987654321");

    // A plain non-member (claiming admin or not), and the admin of another tenant.
    for mut c in [
        srv.membership(T, 5, false),
        srv.membership(T, 5, true),
        srv.membership(2, 1, true),
    ] {
        let hidden = add(&mut c, &g, vec![user_member(4)]).await.unwrap_err();
        let absent = add(&mut c, &missing, vec![user_member(4)])
            .await
            .unwrap_err();
        assert_eq!(hidden.code(), Code::NotFound, "{hidden:?}");
        assert_eq!(fingerprint(&hidden), fingerprint(&absent));

        let list = |group: &str| pb::ListMembersRequest {
            group: group.to_owned(),
            ..Default::default()
        };
        let hidden = c.list_members(list(&g)).await.unwrap_err();
        let absent = c.list_members(list(&missing)).await.unwrap_err();
        assert_eq!(hidden.code(), Code::NotFound, "{hidden:?}");
        assert_eq!(fingerprint(&hidden), fingerprint(&absent));

        for err in [
            remove(&mut c, &g, vec![user_member(3)]).await.unwrap_err(),
            add_masters(&mut c, &g, &[3]).await.unwrap_err(),
            remove_masters(&mut c, &g, &[2]).await.unwrap_err(),
            c.list_effective_members(pb::ListEffectiveMembersRequest {
                group: g.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
            c.list_masters(pb::ListMastersRequest {
                group: g.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
            c.check_membership(pb::CheckMembershipRequest {
                group: g.clone(),
                user: Some(user_ref(T, 3)),
            })
            .await
            .unwrap_err(),
        ] {
            assert_eq!(err.code(), Code::NotFound, "{err:?}");
        }
    }

    // A public group: a non-member of the tenant reads it but may not change it.
    let public = group_in(&srv, T, "Open", &[2], vec![user_member(3)], true).await;
    let mut c = srv.membership(T, 5, false);
    assert_eq!(
        member_keys(&mut c, &public).await,
        BTreeSet::from([u(2), u(3)])
    );
    assert_may_not_change(&mut c, &public, Code::PermissionDenied, "NOT_GROUP_MANAGER").await;
    // Other tenants do not see it at all.
    let err = srv
        .membership(2, 2, false)
        .list_members(pb::ListMembersRequest {
            group: public.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}

// ---- pagination ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_size_defaults_to_50_and_is_at_most_100() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(T, 121).await;
    let g = group(&srv, "Crowd", &[2], vec![]).await;
    let mut admin = srv.membership(T, 1, true);
    add(&mut admin, &g, (3..=100).map(user_member).collect())
        .await
        .unwrap();
    add(&mut admin, &g, (101..=121).map(user_member).collect())
        .await
        .unwrap();
    add_masters(&mut admin, &g, &(3..=101).collect::<Vec<_>>())
        .await
        .unwrap();

    for (page_size, want) in [(0, 50), (1000, 100), (100, 100), (7, 7)] {
        let r = admin
            .list_members(pb::ListMembersRequest {
                group: g.clone(),
                page_size,
                page_token: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.members.len(), want, "page size {page_size}");
        assert!(!r.next_page_token.is_empty());
        let r = admin
            .list_effective_members(pb::ListEffectiveMembersRequest {
                group: g.clone(),
                page_size,
                page_token: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.users.len(), want, "page size {page_size}");
        let r = admin
            .list_masters(pb::ListMastersRequest {
                group: g.clone(),
                page_size,
                page_token: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.masters.len(), want, "page size {page_size}");
    }
    let err = admin
        .list_members(pb::ListMembersRequest {
            group: g.clone(),
            page_size: -1,
            page_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_bad_field(&err, "page_size");

    // The whole list, page by page, once each.
    assert_eq!(members_of(&mut admin, &g).await.len(), 120);
    assert_eq!(
        effective_of(&mut admin, &g, 0).await,
        (2..=121).collect::<Vec<_>>()
    );
    assert_eq!(
        masters_of(&mut admin, &g).await,
        (2..=101).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_tokens_are_bound_to_the_query_and_the_tenant() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(T, 8).await;
    srv.company(2, 2).await;
    let members: Vec<_> = (3..=8).map(user_member).collect();
    let a = group(&srv, "A", &[2], members.clone()).await;
    let b = group(&srv, "B", &[2], members.clone()).await;
    let mut admin = srv.membership(T, 1, true);

    let list = |group: &str, page_token: &str| pb::ListMembersRequest {
        group: group.to_owned(),
        page_size: 2,
        page_token: page_token.to_owned(),
    };
    let token = admin
        .list_members(list(&a, ""))
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!token.is_empty());
    // The token works where it belongs (another page size is fine).
    admin.list_members(list(&a, &token)).await.unwrap();

    let mut altered = token.clone().into_bytes();
    let i = altered.len() / 3;
    altered[i] = if altered[i] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).expect("ascii");
    let truncated = &token[..token.len() - 1];
    // Same group id under another tenant, in the other tenant's name.
    let other_tenant = format!("tenants/2/groups/{}", group_id(&a));
    let bad: Vec<(&str, Status)> = vec![
        (
            "another group",
            admin.list_members(list(&b, &token)).await.unwrap_err(),
        ),
        (
            "altered",
            admin.list_members(list(&a, &altered)).await.unwrap_err(),
        ),
        (
            "truncated",
            admin.list_members(list(&a, truncated)).await.unwrap_err(),
        ),
        (
            "garbage",
            admin
                .list_members(list(&a, "not-a-token"))
                .await
                .unwrap_err(),
        ),
        (
            "another tenant",
            srv.membership(2, 1, true)
                .list_members(list(&other_tenant, &token))
                .await
                .unwrap_err(),
        ),
        (
            "effective members",
            admin
                .list_effective_members(pb::ListEffectiveMembersRequest {
                    group: a.clone(),
                    page_size: 2,
                    page_token: token.clone(),
                })
                .await
                .unwrap_err(),
        ),
        (
            "masters",
            admin
                .list_masters(pb::ListMastersRequest {
                    group: a.clone(),
                    page_size: 2,
                    page_token: token.clone(),
                })
                .await
                .unwrap_err(),
        ),
        (
            "groups of user",
            admin
                .list_groups_of_user(pb::ListGroupsOfUserRequest {
                    user: Some(user_ref(T, 3)),
                    page_size: 1,
                    page_token: token.clone(),
                })
                .await
                .unwrap_err(),
        ),
    ];
    for (what, err) in &bad {
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err:?}");
        assert_reason(err, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
        assert_bad_field(err, "page_token");
    }

    // ListGroupsOfUser tokens belong to the user asked about and to the caller.
    let groups_req = |user: i64, page_token: &str| pb::ListGroupsOfUserRequest {
        user: Some(user_ref(T, user)),
        page_size: 1,
        page_token: page_token.to_owned(),
    };
    let token = admin
        .list_groups_of_user(groups_req(3, ""))
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!token.is_empty());
    let err = admin
        .list_groups_of_user(groups_req(4, &token))
        .await
        .unwrap_err();
    assert_reason(&err, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
    let err = srv
        .membership(T, 3, false)
        .list_groups_of_user(groups_req(3, &token))
        .await
        .unwrap_err();
    assert_reason(&err, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
}

/// Scans a list `page_size` at a time, calling `churn` between pages; returns every key seen,
/// in order.
async fn scan_with_churn<K, Page, Churn>(
    mut page: impl FnMut(String) -> Page,
    mut churn: impl FnMut(usize) -> Churn,
) -> Vec<K>
where
    Page: std::future::Future<Output = (Vec<K>, String)>,
    Churn: std::future::Future<Output = ()>,
{
    let mut seen = Vec::new();
    let mut token = String::new();
    for n in 0.. {
        let (rows, next) = page(token).await;
        seen.extend(rows);
        if next.is_empty() {
            break;
        }
        assert!(n < 1_000, "the scan does not end");
        token = next;
        churn(n).await;
    }
    seen
}

/// Every stable key seen exactly once, and no key seen twice.
#[track_caller]
fn assert_once<K: Ord + Clone + std::fmt::Debug>(seen: &[K], stable: &BTreeSet<K>) {
    let mut counts: BTreeMap<K, usize> = BTreeMap::new();
    for k in seen {
        *counts.entry(k.clone()).or_default() += 1;
    }
    let twice: Vec<&K> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, _)| k)
        .collect();
    assert!(twice.is_empty(), "seen more than once: {twice:?}");
    let missing: Vec<&K> = stable.iter().filter(|k| !counts.contains_key(*k)).collect();
    assert!(missing.is_empty(), "never seen: {missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_members_pages_have_no_duplicates_or_gaps_while_members_change() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(T, 40).await;
    for id in 10..=17 {
        team(&srv, T, id, &[]).await;
    }
    let mut nested = Vec::new();
    for i in 0..4 {
        nested.push(group(&srv, &format!("Nested {i}"), &[2], vec![]).await);
    }
    // Stable: users 2..=12, teams 10, 12, 14, 16, nested groups 0 and 2. The others churn.
    let mut stable_members: Vec<pb::MemberRef> = (3..=12).map(user_member).collect();
    stable_members.extend([10, 12, 14, 16].map(team_member));
    stable_members.extend([&nested[0], &nested[2]].map(|g| group_member(g)));
    let g = group(&srv, "Busy", &[2], stable_members.clone()).await;
    let mut stable = keys(&stable_members);
    stable.insert(u(2));
    let mut churners: Vec<pb::MemberRef> = (13..=40).map(user_member).collect();
    churners.extend([11, 13, 15, 17].map(team_member));
    churners.extend([&nested[1], &nested[3]].map(|g| group_member(g)));

    let admin = srv.membership(T, 1, true);
    let mut in_group = BTreeSet::<(i32, i64)>::new();
    let mut rng = StdRng::seed_from_u64(7);
    let seen = scan_with_churn(
        |page_token| {
            let mut c = admin.clone();
            let group = g.clone();
            async move {
                let r = c
                    .list_members(pb::ListMembersRequest {
                        group,
                        page_size: 3,
                        page_token,
                    })
                    .await
                    .unwrap()
                    .into_inner();
                let keys = r
                    .members
                    .iter()
                    .filter_map(|m| m.member.as_ref().map(key))
                    .collect::<Vec<_>>();
                (keys, r.next_page_token)
            }
        },
        |_| {
            // Two joins and one leave among the churners, before and after the cursor.
            let present = &mut in_group;
            let absent: Vec<&pb::MemberRef> = churners
                .iter()
                .filter(|m| !present.contains(&key(m)))
                .collect();
            let joins: Vec<pb::MemberRef> =
                absent.choose_multiple(&mut rng, 2).map(|m| **m).collect();
            let leave: Option<pb::MemberRef> = churners
                .iter()
                .filter(|m| present.contains(&key(m)))
                .collect::<Vec<_>>()
                .choose(&mut rng)
                .map(|m| **m);
            for j in &joins {
                present.insert(key(j));
            }
            if let Some(l) = &leave {
                present.remove(&key(l));
            }
            let mut c = admin.clone();
            let group = g.clone();
            async move {
                if !joins.is_empty() {
                    add(&mut c, &group, joins).await.unwrap();
                }
                if let Some(l) = leave {
                    remove(&mut c, &group, vec![l]).await.unwrap();
                }
            }
        },
    )
    .await;
    assert_once(&seen, &stable);
    // The scan really ran beside changes of every kind.
    let churned = in_group;
    assert!(churned.iter().any(|k| k.0 == USER), "{churned:?}");
    assert!(seen.len() > stable.len(), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r22_effective_member_pages_have_no_duplicates_or_gaps_while_members_change() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(T, 40).await;
    // Stable users 2..=16 reached directly, through a team and through a nested group; users
    // 17..=40 come and go, directly or through a team.
    team(&srv, T, 10, &[5, 6, 7, 8]).await;
    team(&srv, T, 11, &[]).await;
    let nested = group(&srv, "Nested", &[9], (10..=12).map(user_member).collect()).await;
    let g = group(
        &srv,
        "Busy",
        &[2],
        [3, 4, 13, 14, 15, 16]
            .map(user_member)
            .into_iter()
            .chain([team_member(10), team_member(11), group_member(&nested)])
            .collect(),
    )
    .await;
    let stable: BTreeSet<i64> = (2..=16).collect();

    let admin = srv.membership(T, 1, true);
    let mut direct = BTreeSet::<i64>::new();
    let mut rng = StdRng::seed_from_u64(11);
    let srv = &srv;
    let seen = scan_with_churn(
        |page_token| {
            let mut c = admin.clone();
            let group = g.clone();
            async move {
                let r = c
                    .list_effective_members(pb::ListEffectiveMembersRequest {
                        group,
                        page_size: 3,
                        page_token,
                    })
                    .await
                    .unwrap()
                    .into_inner();
                let ids = r.users.iter().map(|u| u.user_id).collect();
                (ids, r.next_page_token)
            }
        },
        |_| {
            let present = &mut direct;
            let absent: Vec<i64> = (17..=40).filter(|u| !present.contains(u)).collect();
            let join: Vec<i64> = absent.choose_multiple(&mut rng, 2).copied().collect();
            let leave = present
                .iter()
                .copied()
                .collect::<Vec<_>>()
                .choose(&mut rng)
                .copied();
            present.extend(&join);
            if let Some(l) = leave {
                present.remove(&l);
            }
            // Team 11 is rewritten with a random handful of churners.
            let team_users: Vec<i64> = (17..=40).filter(|_| rng.random_bool(0.2)).collect();
            let mut c = admin.clone();
            let group = g.clone();
            async move {
                add(&mut c, &group, join.into_iter().map(user_member).collect())
                    .await
                    .unwrap();
                if let Some(l) = leave {
                    remove(&mut c, &group, vec![user_member(l)]).await.unwrap();
                }
                team(srv, T, 11, &team_users).await;
            }
        },
    )
    .await;
    assert_once(&seen, &stable);
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "not in order: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r22_groups_of_user_pages_have_no_duplicates_or_gaps_while_groups_change() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(T, 4).await;
    team(&srv, T, 10, &[4]).await;
    // User 4 stays in 12 groups (directly, through team 10, through a nested group) and comes
    // and goes in 12 others.
    let mut stable = BTreeSet::new();
    let mut churners = Vec::new();
    for i in 0..24 {
        let name = format!("G{i:02}");
        if i % 2 == 0 {
            let member = match i % 3 {
                0 => user_member(4),
                _ => team_member(10),
            };
            stable.insert(group(&srv, &name, &[2], vec![member]).await);
        } else {
            churners.push(group(&srv, &name, &[2], vec![]).await);
        }
    }
    let first_stable = stable.iter().next().cloned().expect("stable group");
    stable.insert(group(&srv, "Parent", &[3], vec![group_member(&first_stable)]).await);

    let admin = srv.membership(T, 1, true);
    let mut present = BTreeSet::<String>::new();
    let mut rng = StdRng::seed_from_u64(5);
    let seen = scan_with_churn(
        |page_token| {
            let mut c = admin.clone();
            async move {
                let r = c
                    .list_groups_of_user(pb::ListGroupsOfUserRequest {
                        user: Some(user_ref(T, 4)),
                        page_size: 3,
                        page_token,
                    })
                    .await
                    .unwrap()
                    .into_inner();
                let names = r
                    .groups
                    .iter()
                    .filter_map(|g| g.group.as_ref().map(|g| g.name.clone()))
                    .collect();
                (names, r.next_page_token)
            }
        },
        |_| {
            let now = &mut present;
            let absent: Vec<&String> = churners.iter().filter(|g| !now.contains(*g)).collect();
            let join: Vec<String> = absent
                .choose_multiple(&mut rng, 2)
                .map(|g| (*g).clone())
                .collect();
            let leave = now
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .choose(&mut rng)
                .cloned();
            now.extend(join.iter().cloned());
            if let Some(l) = &leave {
                now.remove(l);
            }
            let mut c = admin.clone();
            async move {
                for g in join {
                    add(&mut c, &g, vec![user_member(4)]).await.unwrap();
                }
                if let Some(l) = leave {
                    remove(&mut c, &l, vec![user_member(4)]).await.unwrap();
                }
            }
        },
    )
    .await;
    assert_once(&seen, &stable);
}

// ---- the directory deletes users, teams; groups are deleted ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_user_removes_their_memberships() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(T, 5).await;
    let a = group(&srv, "A", &[2], vec![user_member(3), user_member(4)]).await;
    let b = group(&srv, "B", &[3, 4], vec![group_member(&a)]).await;
    srv.directory(T)
        .delete_user(pb::DeleteUserRequest {
            tenant_id: T,
            user_id: 4,
        })
        .await
        .unwrap();
    let mut admin = srv.membership(T, 1, true);
    assert_eq!(
        member_keys(&mut admin, &a).await,
        BTreeSet::from([u(2), u(3)])
    );
    assert_eq!(
        member_keys(&mut admin, &b).await,
        BTreeSet::from([u(3), (GROUP, group_id(&a))])
    );
    assert_eq!(masters_of(&mut admin, &b).await, [3]);
    assert_eq!(effective_of(&mut admin, &b, 50).await, [2, 3]);
    assert_eq!(check(&mut admin, &b, 4).await, (false, false, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r05_deleting_the_last_master_promotes_the_earliest_member() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(T, 7).await;
    team(&srv, T, 10, &[7]).await;
    let g = group(&srv, "Design", &[2], vec![team_member(10)]).await;
    let mut admin = srv.membership(T, 1, true);
    // Joined in the order 5, 3, 4: 5 has been a member longest.
    for user in [5, 3, 4] {
        add(&mut admin, &g, vec![user_member(user)]).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    srv.directory(T)
        .delete_user(pb::DeleteUserRequest {
            tenant_id: T,
            user_id: 2,
        })
        .await
        .unwrap();
    assert_eq!(masters_of(&mut admin, &g).await, [5]);
    assert_eq!(check(&mut admin, &g, 5).await, (true, true, true));
    assert_eq!(
        member_keys(&mut admin, &g).await,
        BTreeSet::from([u(3), u(4), u(5), (TEAM, 10)])
    );

    // With another master left, nobody is promoted.
    let h = group(&srv, "Two masters", &[5, 6], vec![]).await;
    add(&mut admin, &h, vec![user_member(3)]).await.unwrap();
    srv.directory(T)
        .delete_user(pb::DeleteUserRequest {
            tenant_id: T,
            user_id: 5,
        })
        .await
        .unwrap();
    assert_eq!(masters_of(&mut admin, &h).await, [6]);
    assert_eq!(masters_of(&mut admin, &g).await, [3], "next earliest in g");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r22_deleting_a_team_removes_it_from_groups() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(T, 5).await;
    team(&srv, T, 10, &[4, 5]).await;
    let g = group(&srv, "Design", &[2], vec![team_member(10), user_member(5)]).await;
    let parent = group(&srv, "Parent", &[3], vec![group_member(&g)]).await;
    let mut admin = srv.membership(T, 1, true);
    assert_eq!(effective_of(&mut admin, &parent, 50).await, [2, 3, 4, 5]);

    srv.directory(T)
        .delete_team(pb::DeleteTeamRequest {
            tenant_id: T,
            team_id: 10,
        })
        .await
        .unwrap();
    assert_eq!(
        member_keys(&mut admin, &g).await,
        BTreeSet::from([u(2), u(5)])
    );
    assert_eq!(effective_of(&mut admin, &g, 50).await, [2, 5]);
    assert_eq!(effective_of(&mut admin, &parent, 50).await, [2, 3, 5]);
    assert_eq!(check(&mut admin, &parent, 4).await, (false, false, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r22_deleting_a_nested_group_removes_it_from_the_parent() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(T, 5).await;
    let child = group(&srv, "Child", &[3], vec![user_member(4)]).await;
    let parent = group(&srv, "Parent", &[2], vec![group_member(&child)]).await;
    let mut admin = srv.membership(T, 1, true);
    assert_eq!(effective_of(&mut admin, &parent, 50).await, [2, 3, 4]);

    srv.groups(T, 1, true)
        .delete_group(pb::DeleteGroupRequest {
            name: child.clone(),
            etag: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(
        member_keys(&mut admin, &parent).await,
        BTreeSet::from([u(2)])
    );
    assert_eq!(effective_of(&mut admin, &parent, 50).await, [2]);
    assert_eq!(check(&mut admin, &parent, 4).await, (false, false, false));
    // The parent is whole: members can be added again.
    add(&mut admin, &parent, vec![user_member(5)])
        .await
        .unwrap();
}

// ---- nested groups (R21) ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r21_group_cannot_contain_itself() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(T, 2).await;
    let mut names = Vec::new();
    for n in ["A", "B", "C", "D"] {
        names.push(group(&srv, n, &[2], vec![]).await);
    }
    let [a, b, c, d] = &names[..] else {
        unreachable!()
    };
    let mut admin = srv.membership(T, 1, true);

    let err = add(&mut admin, a, vec![group_member(a)]).await.unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "MEMBERSHIP_CYCLE");
    add(&mut admin, a, vec![group_member(b)]).await.unwrap();
    let err = add(&mut admin, b, vec![group_member(a)]).await.unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "MEMBERSHIP_CYCLE");
    add(&mut admin, b, vec![group_member(c)]).await.unwrap();
    let err = add(&mut admin, c, vec![group_member(a)]).await.unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "MEMBERSHIP_CYCLE");
    // Batched with a good one: nothing is added.
    let err = add(&mut admin, c, vec![group_member(d), group_member(a)])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "MEMBERSHIP_CYCLE");
    assert_eq!(member_keys(&mut admin, c).await, BTreeSet::from([u(2)]));
    // A diamond is no cycle.
    add(&mut admin, a, vec![group_member(c)]).await.unwrap();
    add(&mut admin, d, vec![group_member(a)]).await.unwrap();
    assert_eq!(nesting_stats(&srv, T).await, (3, 0));
}

/// Creates `n` groups named `{prefix} {i}` with master 2.
async fn groups(srv: &TestServer, prefix: &str, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(group(srv, &format!("{prefix} {i}"), &[2], vec![]).await);
    }
    out
}

/// Nests each group of `chain` in the one before it.
async fn nest_chain(c: &mut Membership, chain: &[String]) {
    for pair in chain.windows(2) {
        add(c, &pair[0], vec![group_member(&pair[1])])
            .await
            .unwrap_or_else(|e| panic!("{} in {}: {e:?}", pair[1], pair[0]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r21_nesting_depth_is_at_most_ten_edges() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(T, 2).await;
    let g = groups(&srv, "Level", 13).await;
    let mut admin = srv.membership(T, 1, true);
    // g0 > g1 > ... > g10: ten edges.
    nest_chain(&mut admin, &g[..11]).await;
    assert_eq!(nesting_stats(&srv, T).await, (10, 0));
    // The eleventh edge fails below the chain and above it.
    let err = add(&mut admin, &g[10], vec![group_member(&g[11])])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "NESTING_TOO_DEEP");
    let err = add(&mut admin, &g[11], vec![group_member(&g[0])])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "NESTING_TOO_DEEP");
    // A group whose own child would become the eleventh level.
    add(&mut admin, &g[11], vec![group_member(&g[12])])
        .await
        .unwrap();
    let err = add(&mut admin, &g[9], vec![group_member(&g[11])])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "NESTING_TOO_DEEP");
    // A short side branch is fine.
    add(&mut admin, &g[5], vec![group_member(&g[11])])
        .await
        .unwrap();
    assert_eq!(nesting_stats(&srv, T).await, (10, 0));
    // Users of the deepest level are members of the top.
    add(&mut admin, &g[10], vec![user_member(1)]).await.unwrap();
    assert_eq!(check(&mut admin, &g[0], 1).await, (true, false, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r21_joining_two_chains_deeper_than_ten_fails() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(T, 2).await;
    let mut admin = srv.membership(T, 1, true);
    let a = groups(&srv, "A", 6).await; // five edges
    let b = groups(&srv, "B", 6).await; // five edges
    let c = groups(&srv, "C", 5).await; // four edges
    nest_chain(&mut admin, &a).await;
    nest_chain(&mut admin, &b).await;
    nest_chain(&mut admin, &c).await;

    // 5 + 1 + 5 = 11 edges, whichever way the join is made.
    let err = add(&mut admin, &a[5], vec![group_member(&b[0])])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "NESTING_TOO_DEEP");
    let err = add(&mut admin, &b[5], vec![group_member(&a[0])])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "NESTING_TOO_DEEP");
    // Joined lower, the total stays in bounds: 2 + 1 + 5 = 8.
    add(&mut admin, &a[2], vec![group_member(&b[0])])
        .await
        .unwrap();
    // 5 + 1 + 4 = 10 is fine, then nothing more fits under the bottom.
    add(&mut admin, &a[5], vec![group_member(&c[0])])
        .await
        .unwrap();
    assert_eq!(nesting_stats(&srv, T).await, (10, 0));
    let d = groups(&srv, "D", 1).await;
    let err = add(&mut admin, &c[4], vec![group_member(&d[0])])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "NESTING_TOO_DEEP");
    // A chain that got long through the B branch: a0 > a1 > a2 > b0 > ... > b5 is 8 edges;
    // hanging c0's chain (4 edges) under b5 would make 13.
    let err = add(&mut admin, &b[5], vec![group_member(&c[0])])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "NESTING_TOO_DEEP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r21_concurrent_nesting_never_forms_a_cycle() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(T, 2).await;
    let started = Instant::now();
    let g = groups(&srv, "Net", 40).await;
    // 1,000 random group-in-group adds, many pairs in both directions, 32 at a time.
    let mut rng = StdRng::seed_from_u64(21);
    let mut pairs = Vec::with_capacity(1_000);
    while pairs.len() < 1_000 {
        let a = rng.random_range(0..g.len());
        let b = rng.random_range(0..g.len());
        if a == b {
            continue;
        }
        pairs.push((a, b));
        if pairs.len() < 1_000 && rng.random_bool(0.5) {
            pairs.push((b, a));
        }
    }
    pairs.shuffle(&mut rng);
    let admin = srv.membership(T, 1, true);
    let results: Vec<Result<(), Status>> = stream::iter(pairs)
        .map(|(a, b)| {
            let mut c = admin.clone();
            let (parent, member) = (g[a].clone(), group_member(&g[b]));
            async move { add(&mut c, &parent, vec![member]).await.map(|_| ()) }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for r in &results {
        let outcome = match r {
            Ok(()) => "OK".to_owned(),
            Err(e) => {
                let reason = e
                    .get_details_error_info()
                    .map(|i| i.reason)
                    .unwrap_or_default();
                format!("{:?} {reason}", e.code())
            }
        };
        *outcomes.entry(outcome).or_default() += 1;
    }
    let elapsed = started.elapsed();
    let (depth, cyclic) = nesting_stats(&srv, T).await;
    println!(
        "[{}] r21 concurrent nesting: {outcomes:?}, max depth {depth}, in {elapsed:?}, \
         deadlocks {:?}",
        backend(),
        pg_deadlocks(&srv).await
    );
    assert_eq!(cyclic, 0, "groups that contain themselves");
    assert!(depth <= 10, "nesting depth {depth}");
    let expected = [
        "OK",
        "FailedPrecondition MEMBERSHIP_CYCLE",
        "FailedPrecondition NESTING_TOO_DEEP",
        "AlreadyExists ALREADY_MEMBER",
    ];
    for outcome in outcomes.keys() {
        assert!(
            expected.contains(&outcome.as_str()),
            "unexpected outcome {outcome}: {outcomes:?}"
        );
    }
    assert!(
        outcomes.get("OK").copied().unwrap_or(0) > 40,
        "{outcomes:?}"
    );
    assert!(
        outcomes.contains_key("FailedPrecondition MEMBERSHIP_CYCLE"),
        "{outcomes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r21_concurrent_nesting_changes_do_not_deadlock() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(T, 2).await;
    let g = groups(&srv, "Knot", 8).await;
    let admin = srv.membership(T, 1, true);
    let mut rng = StdRng::seed_from_u64(42);
    let started = Instant::now();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut deadlocks = 0;
    // Random nesting adds and removes, 16 at a time, in rounds; stop at the first deadlock.
    for _round in 0..16 {
        let ops: Vec<(bool, usize, usize)> = (0..16)
            .map(|_| {
                let a = rng.random_range(0..g.len());
                let b = (a + rng.random_range(1..g.len())) % g.len();
                (rng.random_bool(0.7), a, b)
            })
            .collect();
        let results: Vec<Result<(), Status>> = stream::iter(ops)
            .map(|(is_add, a, b)| {
                let mut c = admin.clone();
                let (parent, member) = (g[a].clone(), group_member(&g[b]));
                async move {
                    if is_add {
                        add(&mut c, &parent, vec![member]).await.map(|_| ())
                    } else {
                        remove(&mut c, &parent, vec![member]).await.map(|_| ())
                    }
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        for r in &results {
            let outcome = match r {
                Ok(()) => "OK".to_owned(),
                Err(e) => format!("{:?}", e.code()),
            };
            *outcomes.entry(outcome).or_default() += 1;
        }
        deadlocks = pg_deadlocks(&srv).await.unwrap_or(0);
        if deadlocks > 0 {
            break;
        }
    }
    // SQLite runs one writer at a time and counts no deadlocks; PostgreSQL backends report
    // theirs within a second of going idle.
    if deadlocks == 0 && backend() == "postgres" {
        tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
        deadlocks = pg_deadlocks(&srv).await.unwrap_or(0);
    }
    println!(
        "[{}] r21 nesting changes: {outcomes:?} in {:?}, deadlocks {deadlocks}",
        backend(),
        started.elapsed()
    );
    assert_eq!(nesting_stats(&srv, T).await.1, 0, "a cycle");
    for code in outcomes.keys() {
        assert!(
            ["OK", "FailedPrecondition", "AlreadyExists"].contains(&code.as_str()),
            "unexpected outcome {code}: {outcomes:?}"
        );
    }
    assert_eq!(
        deadlocks, 0,
        "PostgreSQL detected deadlocks among concurrent membership changes (each stalls the \
         calls involved for deadlock_timeout before a retry): {outcomes:?}"
    );
}

/// Deadlocks PostgreSQL has counted in the test database; `None` on SQLite.
async fn pg_deadlocks(srv: &TestServer) -> Option<i64> {
    if backend() != "postgres" {
        return None;
    }
    let (client, conn) = tokio_postgres::connect(&srv.url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let row = client
        .query_one(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .await
        .expect("pg_stat_database");
    Some(row.get(0))
}

/// (longest chain of nested groups in edges, groups that contain themselves) of `tenant`, by a
/// recursive query run on the database directly, behind the server's back. The walk stops at
/// 40 edges, so it ends even over a cycle.
async fn nesting_stats(srv: &TestServer, tenant: i64) -> (i64, i64) {
    let sql = format!(
        "WITH RECURSIVE walk(start_id, cur_id, depth) AS ( \
           SELECT group_id, member_group_id, 1 FROM group_group_members \
             WHERE tenant_id = {tenant} \
           UNION \
           SELECT w.start_id, m.member_group_id, w.depth + 1 FROM walk w \
             JOIN group_group_members m ON m.tenant_id = {tenant} AND m.group_id = w.cur_id \
             WHERE w.depth < 40) \
         SELECT CAST(COALESCE(MAX(depth), 0) AS BIGINT) AS max_depth, \
           CAST(COUNT(DISTINCT CASE WHEN start_id = cur_id THEN start_id END) AS BIGINT) \
             AS cyclic \
         FROM walk"
    );
    if backend() == "postgres" {
        let (client, conn) = tokio_postgres::connect(&srv.url, tokio_postgres::NoTls)
            .await
            .expect("connect to the test database");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let row = client.query_one(&sql, &[]).await.expect("nesting query");
        (row.get(0), row.get(1))
    } else {
        use diesel::{Connection, RunQueryDsl, SqliteConnection};
        #[derive(diesel::QueryableByName)]
        struct Stats {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            max_depth: i64,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            cyclic: i64,
        }
        let path = srv.url.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = SqliteConnection::establish(&path).expect("open the test database");
            let s: Stats = diesel::sql_query(sql)
                .get_result(&mut conn)
                .expect("nesting query");
            (s.max_depth, s.cyclic)
        })
        .await
        .expect("query thread")
    }
}

// ---- the user's group limit (R03) ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r03_user_is_direct_member_of_at_most_2000_groups_under_concurrent_adds() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.tenant(T, pb::Plan::Paid, pb::GroupCreation::AdminsOnly)
        .await;
    srv.user(T, 1, true).await;
    srv.user(T, 2, false).await;
    // The masters share the groups out, far from their own limit.
    for master in 10..=12 {
        srv.user(T, master, false).await;
    }
    let started = Instant::now();
    let groups_client = srv.groups(T, 1, true);
    let mut names: Vec<String> = stream::iter(0..2_010i64)
        .map(|i| {
            let mut c = groups_client.clone();
            async move {
                c.create_group(create_req(T, &format!("Quota {i}"), &[10 + i % 3]))
                    .await
                    .map(|r| r.into_inner().name)
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("create groups");
    let created = started.elapsed();
    names.sort();

    let admin = srv.membership(T, 1, true);
    let results: Vec<(String, Result<(), Status>)> = stream::iter(names.clone())
        .map(|g| {
            let mut c = admin.clone();
            async move {
                let r = add(&mut c, &g, vec![user_member(2)]).await.map(|_| ());
                (g, r)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let added = started.elapsed() - created;
    println!(
        "[{}] r03: created 2,010 groups in {created:?}, 2,010 concurrent adds in {added:?}",
        backend()
    );
    let mut joined = Vec::new();
    let mut refused = Vec::new();
    for (g, r) in results {
        match r {
            Ok(()) => joined.push(g),
            Err(e) => {
                assert_quota(&e, "USER_GROUP_LIMIT", &format!("tenants/{T}/users/2"));
                refused.push(g);
            }
        }
    }
    assert_eq!(joined.len(), 2_000);
    assert_eq!(refused.len(), 10);

    // The groups agree with the counter.
    let mut c = admin.clone();
    let listed = groups_of_user(&mut c, 2, 100).await;
    assert_eq!(listed.len(), 2_000);
    assert!(listed.iter().all(|(_, direct)| *direct));

    // A freed place can be taken once, not twice.
    remove(&mut c, &joined[0], vec![user_member(2)])
        .await
        .unwrap();
    add(&mut c, &refused[0], vec![user_member(2)])
        .await
        .unwrap();
    let err = add(&mut c, &refused[1], vec![user_member(2)])
        .await
        .unwrap_err();
    assert_quota(&err, "USER_GROUP_LIMIT", &format!("tenants/{T}/users/2"));
    // AddMasters counts too, and so does naming the user a master of a new group.
    let err = add_masters(&mut c, &refused[2], &[2]).await.unwrap_err();
    assert_quota(&err, "USER_GROUP_LIMIT", &format!("tenants/{T}/users/2"));
    let err = srv
        .groups(T, 1, true)
        .create_group(create_req(T, "One too many", &[2]))
        .await
        .unwrap_err();
    assert_quota(&err, "USER_GROUP_LIMIT", &format!("tenants/{T}/users/2"));
}
