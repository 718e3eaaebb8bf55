//! Visibility basics (R07): a private group is missing to outsiders, a public one is there
//! for every user of its tenant and for nobody else.

use group_service::grpc::pb;
use tonic::Code;

use crate::fixtures::*;
use crate::harness::*;

/// Asserts that user `user` of tenant `tenant` reads `name` as missing.
async fn assert_hidden_from(srv: &TestServer, (tenant, user): Key, name: &str) {
    let err = srv
        .groups(tenant, user, false)
        .get_group(get_req(name))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_private_group_is_not_found_for_non_members() {
    let Some(srv) = server().await else { return };
    srv.company(1, 4).await;
    let g = group(1, "Secret").master(2).create(&srv).await;
    let mut outsider = srv.groups(1, 3, false);
    let hidden = outsider.get_group(get_req(&g.name)).await.unwrap_err();
    let absent = outsider
        .get_group(get_req(&missing_group(1)))
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound, "{hidden:?}");
    assert_eq!(fingerprint(&hidden), fingerprint(&absent));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_private_group_is_visible_to_members_and_admins() {
    let Some(srv) = server().await else { return };
    srv.company(1, 5).await;
    srv.team(1, 10, &[4]).await;
    let g = group(1, "Inner circle")
        .master(2)
        .members([user_member(3), team_member(10)])
        .with(|g| g.visibility = pb::Visibility::Private as i32)
        .create(&srv)
        .await;
    // Master 2, member 3, member 4 through team 10, admin 1.
    for (user, admin) in [(2, false), (3, false), (4, false), (1, true)] {
        let got = srv
            .groups(1, user, admin)
            .get_group(get_req(&g.name))
            .await
            .unwrap_or_else(|e| panic!("user {user} cannot see it: {e:?}"))
            .into_inner();
        assert_eq!(got, g);
    }
    assert_hidden_from(&srv, (1, 5), &g.name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_private_group_is_visible_to_members_of_a_nested_group() {
    let Some(srv) = server().await else { return };
    srv.company(1, 5).await;
    srv.team(1, 10, &[4]).await;
    let inner = group(1, "Inner")
        .master(2)
        .members([user_member(3), team_member(10)]);
    let (inner, outer) = nested(&srv, inner, group(1, "Outer").master(5)).await;
    // 3 directly in Inner, 4 through Team 10 in Inner, 2 a master of Inner (R22).
    for user in [2, 3, 4] {
        srv.groups(1, user, false)
            .get_group(get_req(&outer))
            .await
            .unwrap_or_else(|e| panic!("user {user} cannot see Outer: {e:?}"));
    }
    // Membership flows down, not up: the master of Outer is no member of Inner.
    assert_hidden_from(&srv, (1, 5), &inner).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_public_group_is_visible_to_every_user_of_the_tenant() {
    let Some(srv) = server().await else { return };
    srv.company(1, 4).await;
    srv.company(2, 2).await;
    let g = group(1, "Town hall").master(2).public().create(&srv).await;
    assert_eq!(g.visibility, pb::Visibility::Public as i32);
    for user in [2, 3, 4] {
        let got = srv
            .groups(1, user, false)
            .get_group(get_req(&g.name))
            .await
            .unwrap_or_else(|e| panic!("user {user} cannot see it: {e:?}"))
            .into_inner();
        assert_eq!(got, g);
    }
    // Every user of *its* tenant: not users of other tenants (R24).
    assert_hidden_from(&srv, (2, 2), &g.name).await;
}
