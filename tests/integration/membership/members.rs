//! AddMembers and RemoveMembers: what they report, batches, tenants and retries (R24, R25).

use std::collections::{BTreeMap, BTreeSet};

use group_service::grpc::pb;
use tonic::Code;

use super::T;
use crate::fixtures::*;
use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_members_reports_added_and_already_present() {
    let Some(srv) = server().await else { return };
    srv.company(T, 6).await;
    srv.team(T, 10, &[5]).await;
    let nested = group(T, "Nested").master(6).create(&srv).await.name;
    let g = group(T, "Design").master(2).create(&srv).await.name;
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

    let members = members(&mut admin, &g).await;
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
    let Some(srv) = server().await else { return };
    srv.company(T, 4).await;
    let g = group(T, "Design").master(2).create(&srv).await.name;
    let mut admin = srv.membership(T, 1, true);
    let before = member_keys(&mut admin, &g).await;

    for unknown in [
        user_member(99),
        team_member(77),
        member_of(GROUP, 0, 987_654_321),
    ] {
        let err = add(&mut admin, &g, vec![user_member(3), unknown.clone()])
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
    let Some(srv) = server().await else { return };
    srv.company(T, 102).await;
    let g = group(T, "Design").master(2).create(&srv).await.name;
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
    let unspecified = member_of(pb::MemberType::Unspecified as i32, 0, 4);
    let err = add(&mut admin, &g, vec![user_member(3), unspecified])
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
            request_id: "x".repeat(101),
            ..add_req(&g, vec![user_member(3)])
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
    let Some(srv) = server().await else { return };
    srv.company(T, 4).await;
    srv.company(2, 5).await;
    srv.team(2, 20, &[5]).await;
    let theirs = group(2, "Theirs").master(2).create(&srv).await.name;
    let g = group(T, "Design").master(2).create(&srv).await.name;
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
    let theirs_by_tenant = member_of(GROUP, 2, group_id(&theirs));
    let err = add(&mut admin, &g, vec![theirs_by_tenant, user_member(3)])
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
    let err = add_master_users(&mut admin, &g, &[(2, 5)])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "USER_NOT_IN_TENANT");

    assert_eq!(member_keys(&mut admin, &g).await, BTreeSet::from([u(2)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_makes_a_retry_return_the_first_answer() {
    let Some(srv) = server().await else { return };
    srv.company(T, 6).await;
    let g = group(T, "Design")
        .master(2)
        .member(user_member(3))
        .create(&srv)
        .await
        .name;
    let other = group(T, "Other").master(2).create(&srv).await.name;
    let mut admin = srv.membership(T, 1, true);
    let first_add = pb::AddMembersRequest {
        request_id: "add-1".into(),
        ..add_req(&g, vec![user_member(3), user_member(4)])
    };
    retried_adds(&mut admin, &first_add, &other).await;

    let first_remove = pb::RemoveMembersRequest {
        request_id: "remove-1".into(),
        ..remove_req(&g, vec![user_member(4), user_member(6)])
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

/// `first_add` (3 and 4 into a group holding master 2 and member 3), its retries, and its
/// request id reused for other requests.
async fn retried_adds(admin: &mut Membership, first_add: &pb::AddMembersRequest, other: &str) {
    let g = &first_add.group;
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
            group: other.to_owned(),
            ..first_add.clone()
        },
    ] {
        let err = admin.add_members(different).await.unwrap_err();
        assert_reason(&err, Code::InvalidArgument, "REQUEST_ID_REUSED");
        assert_bad_field(&err, "request_id");
    }
    let err = admin
        .remove_members(pb::RemoveMembersRequest {
            request_id: "add-1".into(),
            ..remove_req(g, vec![user_member(3), user_member(4)])
        })
        .await
        .unwrap_err();
    assert_reason(&err, Code::InvalidArgument, "REQUEST_ID_REUSED");
    assert_eq!(
        member_keys(admin, g).await,
        BTreeSet::from([u(2), u(3), u(4)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_with_one_request_id_apply_once() {
    let Some(srv) = server().await else { return };
    srv.company(T, 5).await;
    let g = group(T, "Design").master(2).create(&srv).await.name;
    let admin = srv.membership(T, 1, true);
    let req = pb::AddMembersRequest {
        request_id: "burst".into(),
        ..add_req(&g, vec![user_member(3), user_member(4)])
    };
    let answers = race(8, 0..8, |_| {
        let (mut c, req) = (admin.clone(), req.clone());
        async move { c.add_members(req).await.map(|r| r.into_inner()) }
    })
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
async fn remove_members_reports_removed_and_not_members() {
    let Some(srv) = server().await else { return };
    srv.company(T, 6).await;
    srv.team(T, 10, &[5]).await;
    let nested = group(T, "Nested").master(6).create(&srv).await.name;
    let g = group(T, "Design")
        .master(2)
        .members([user_member(3), team_member(10), group_member(&nested)])
        .create(&srv)
        .await
        .name;
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
