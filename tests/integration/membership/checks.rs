//! Transitive membership (R22): CheckMembership, ListEffectiveMembers, ListGroupsOfUser, and
//! what the directory deleting users, teams and groups leaves behind.

use std::collections::BTreeSet;

use group_service::grpc::pb;
use tonic::Code;

use super::T;
use crate::fixtures::*;
use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r22_effective_members_through_teams_and_nested_groups() {
    let Some(srv) = server().await else { return };
    srv.company(T, 10).await;
    srv.team(T, 10, &[4, 5]).await;
    srv.team(T, 11, &[5, 6]).await;
    let c = group(T, "C")
        .master(7)
        .member(team_member(11))
        .create(&srv)
        .await
        .name;
    let b = group(T, "B")
        .master(8)
        .members([group_member(&c), user_member(9)])
        .create(&srv)
        .await
        .name;
    let a = group(T, "A")
        .master(2)
        .members([
            user_member(3),
            team_member(10),
            group_member(&b),
            user_member(5),
        ])
        .create(&srv)
        .await
        .name;
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
    srv.team(T, 11, &[10]).await;
    assert_eq!(check(&mut admin, &a, 10).await, (true, false, false));
    assert_eq!(check(&mut admin, &a, 6).await, (false, false, false));
    assert_eq!(
        effective_of(&mut admin, &a, 50).await,
        [2, 3, 4, 5, 7, 8, 9, 10]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_groups_of_user_direct_and_transitive_as_the_caller_may_see() {
    let Some(srv) = server().await else { return };
    srv.company(T, 6).await;
    srv.company(2, 4).await;
    srv.team(T, 10, &[4]).await;
    let public = group(T, "Public")
        .master(2)
        .member(user_member(4))
        .public()
        .create(&srv)
        .await
        .name;
    let (x, y) = nested(
        &srv,
        group(T, "X").master(2).member(team_member(10)),
        group(T, "Y").master(3),
    )
    .await;
    let z = group(T, "Z")
        .master(3)
        .members([user_member(4), user_member(5)])
        .create(&srv)
        .await
        .name;
    let _w = group(T, "W")
        .master(2)
        .member(user_member(6))
        .create(&srv)
        .await;

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
            let got = groups_of_user(&mut c, (T, 4), page_size).await;
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
async fn deleting_a_user_removes_their_memberships() {
    let Some(srv) = server().await else { return };
    srv.company(T, 5).await;
    let (a, b) = nested(
        &srv,
        group(T, "A")
            .master(2)
            .members([user_member(3), user_member(4)]),
        group(T, "B").masters(&[3, 4]),
    )
    .await;
    delete_user(&srv, T, 4).await;
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
async fn r22_deleting_a_team_removes_it_from_groups() {
    let Some(srv) = server().await else { return };
    srv.company(T, 5).await;
    srv.team(T, 10, &[4, 5]).await;
    let (g, parent) = nested(
        &srv,
        group(T, "Design")
            .master(2)
            .members([team_member(10), user_member(5)]),
        group(T, "Parent").master(3),
    )
    .await;
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
    let Some(srv) = server().await else { return };
    srv.company(T, 5).await;
    let (child, parent) = nested(
        &srv,
        group(T, "Child").master(3).member(user_member(4)),
        group(T, "Parent").master(2),
    )
    .await;
    let mut admin = srv.membership(T, 1, true);
    assert_eq!(effective_of(&mut admin, &parent, 50).await, [2, 3, 4]);

    srv.groups(T, 1, true)
        .delete_group(delete_req(&child, ""))
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
