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
