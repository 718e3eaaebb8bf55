//! Who may change membership (R06, R07, R23, R24): masters and admins change it, members only
//! read it, nobody leaves by themselves, and a private group is missing to outsiders.

use std::collections::BTreeSet;

use group_service::grpc::pb;
use tonic::Code;

use super::T;
use crate::fixtures::*;
use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r23_members_cannot_leave_by_themselves() {
    let Some(srv) = server().await else { return };
    srv.company(T, 6).await;
    srv.team(T, 10, &[5]).await;
    let g = group(T, "Design")
        .master(2)
        .members([user_member(3), team_member(10)])
        .create(&srv)
        .await
        .name;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r06_group_masters_manage_members() {
    let Some(srv) = server().await else { return };
    srv.company(T, 5).await;
    let g = group(T, "Design").master(2).create(&srv).await.name;
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
    let Some(srv) = server().await else { return };
    srv.company(T, 5).await;
    let g = group(T, "Design")
        .masters(&[2, 4])
        .member(user_member(3))
        .create(&srv)
        .await
        .name;
    set_tenant(&srv, T, |t| t.masters_may_manage_settings = false).await;
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

    set_tenant(&srv, T, |t| t.masters_may_manage_settings = true).await;
    remove(&mut master, &g, vec![user_member(5)]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r06_plain_members_may_list_but_not_change() {
    let Some(srv) = server().await else { return };
    srv.company(T, 5).await;
    srv.team(T, 10, &[4]).await;
    let g = group(T, "Design")
        .master(2)
        .members([user_member(3), team_member(10)])
        .create(&srv)
        .await
        .name;
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
    let Some(srv) = server().await else { return };
    srv.company(T, 5).await;
    srv.company(2, 2).await;
    let g = group(T, "Design")
        .master(2)
        .member(user_member(3))
        .create(&srv)
        .await
        .name;
    let missing = missing_group(T);

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

        for err in other_calls_of(&mut c, &g).await {
            assert_eq!(err.code(), Code::NotFound, "{err:?}");
        }
    }

    // A public group: a non-member of the tenant reads it but may not change it.
    let public = group(T, "Open")
        .master(2)
        .member(user_member(3))
        .public()
        .create(&srv)
        .await
        .name;
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

/// What the other calls on `g` answer `c`, expected to fail.
async fn other_calls_of(c: &mut Membership, g: &str) -> Vec<tonic::Status> {
    vec![
        remove(c, g, vec![user_member(3)]).await.unwrap_err(),
        add_masters(c, g, &[3]).await.unwrap_err(),
        remove_masters(c, g, &[2]).await.unwrap_err(),
        c.list_effective_members(pb::ListEffectiveMembersRequest {
            group: g.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err(),
        c.list_masters(pb::ListMastersRequest {
            group: g.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err(),
        c.check_membership(pb::CheckMembershipRequest {
            group: g.to_owned(),
            user: Some(user_ref(T, 3)),
        })
        .await
        .unwrap_err(),
    ]
}

/// A GROUP member named by external key.
fn keyed_member(key: &str) -> pb::MemberRef {
    pb::MemberRef {
        r#type: GROUP,
        external_key: key.to_owned(),
        ..Default::default()
    }
}

/// Every call of `by` that names group `id` (key `key`) as a member of `parent`: AddMembers
/// by id and by key, CreateGroup with it as an initial member by id and by key, RemoveMembers
/// and SetMembersExpiry by key. Each answer's code, message and details.
async fn naming_as_member(
    srv: &TestServer,
    by: i64,
    parent: &str,
    id: i64,
    key: &str,
) -> Vec<(Code, String, Vec<u8>)> {
    let by_id = || member_of(GROUP, 0, id);
    let mut c = srv.membership(T, by, false);
    let mut out = Vec::new();
    for m in [by_id(), keyed_member(key)] {
        out.push(add(&mut c, parent, vec![m]).await.map(drop));
    }
    for m in [by_id(), keyed_member(key)] {
        let req = pb::CreateGroupRequest {
            members: vec![m],
            ..create_req(T, "Probe", &[by])
        };
        let answer = srv.groups(T, by, false).create_group(req).await;
        out.push(answer.map(drop));
    }
    out.push(
        remove(&mut c, parent, vec![keyed_member(key)])
            .await
            .map(drop),
    );
    let expiry = pb::SetMembersExpiryRequest {
        group: parent.to_owned(),
        members: vec![keyed_member(key)],
        expire_time: None,
    };
    out.push(c.set_members_expiry(expiry).await.map(drop));
    out.into_iter()
        .map(|a| fingerprint(&a.expect_err("a group the caller cannot see was accepted")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_master_cannot_nest_a_group_they_cannot_see() {
    let Some(srv) = server().await else { return };
    srv.company(T, 6).await;
    set_tenant(&srv, T, |t| {
        t.group_creation = pb::GroupCreation::AllMembers as i32
    })
    .await;
    // User 2 masters P; H (private, users 5 and 6) and X (external) are hidden from them.
    let p = group(T, "P").master(2).create(&srv).await.name;
    let hidden = [
        group(T, "H")
            .master(5)
            .member(user_member(6))
            .with(|g| g.external_key = "h-key".into())
            .create(&srv)
            .await
            .name,
        group(T, "X")
            .master(5)
            .external()
            .with(|g| g.external_key = "x-key".into())
            .create(&srv)
            .await
            .name,
    ];
    let err = srv
        .groups(T, 2, false)
        .get_group(get_req(&hidden[0]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let mut answers = Vec::new();
    for (name, key) in hidden.iter().zip(["h-key", "x-key"]) {
        let seen = naming_as_member(&srv, 2, &p, group_id(name), key).await;
        for answer in &seen {
            assert_eq!(answer.0, Code::FailedPrecondition, "{answer:?}");
        }
        answers.push(seen);
    }
    let mut master = srv.membership(T, 2, false);
    assert_eq!(effective_of(&mut master, &p, 50).await, [2]);
    assert_eq!(member_keys(&mut master, &p).await, BTreeSet::from([u(2)]));
    assert_eq!(srv.group_count(T).await, 3);
    let status = add(&mut master, &p, vec![group_member(&hidden[0])])
        .await
        .unwrap_err();
    assert_reason(&status, Code::FailedPrecondition, "UNKNOWN_MEMBER");

    // Once the groups are gone, the same calls answer byte for byte as they did.
    let mut admin = srv.groups(T, 1, true);
    for name in &hidden {
        admin.delete_group(delete_req(name, "")).await.unwrap();
    }
    for ((name, key), seen) in hidden.iter().zip(["h-key", "x-key"]).zip(&answers) {
        let missing = naming_as_member(&srv, 2, &p, group_id(name), key).await;
        assert_eq!(&missing, seen, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_masters_nest_the_groups_they_see_and_admins_any() {
    let Some(srv) = server().await else { return };
    srv.company(T, 6).await;
    let p = group(T, "P").master(2).create(&srv).await.name;
    let public = group(T, "Public")
        .master(5)
        .public()
        .create(&srv)
        .await
        .name;
    let mine = group(T, "Mine")
        .master(5)
        .member(user_member(2))
        .create(&srv)
        .await
        .name;
    let hidden = group(T, "Hidden")
        .master(5)
        .member(user_member(6))
        .with(|g| g.external_key = "hidden".into())
        .create(&srv)
        .await
        .name;
    let mut master = srv.membership(T, 2, false);
    add(
        &mut master,
        &p,
        vec![group_member(&public), group_member(&mine)],
    )
    .await
    .unwrap();
    // The tenant's admin nests any group of the tenant, by id or by key.
    let mut admin = srv.membership(T, 1, true);
    add(&mut admin, &p, vec![keyed_member("hidden")])
        .await
        .unwrap();
    assert_eq!(effective_of(&mut master, &p, 50).await, [2, 5, 6]);
    // The master sees it among P's members and removes it by id; its key stays unknown.
    let err = remove(&mut master, &p, vec![keyed_member("hidden")])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "UNKNOWN_MEMBER");
    remove(&mut master, &p, vec![group_member(&hidden)])
        .await
        .unwrap();
    assert_eq!(
        member_keys(&mut master, &p).await,
        BTreeSet::from([u(2), (GROUP, group_id(&public)), (GROUP, group_id(&mine))])
    );
}
