//! Creating an external group (R07, R13, R14): Core, the masters' permission, who the
//! initial members may be, and privacy.

use std::collections::BTreeSet;

use group_service::grpc::pb;
use tonic::Code;

use super::{A, B, excluded};
use crate::fixtures::*;
use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r13_external_group_needs_core() {
    let Some(srv) = server().await else { return };
    srv.company(A, 3).await;
    set_tenant(&srv, A, |t| t.core_enabled = false).await;
    let partners = group(A, "Partners").master(2).external();
    let err = partners
        .clone()
        .member(user_of(A, 3))
        .try_create(&srv)
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "CORE_REQUIRED");
    assert_eq!(srv.group_count(A).await, 0);
    // Internal groups do not need Core.
    group(A, "Internal").master(2).create(&srv).await;
    set_tenant(&srv, A, |t| t.core_enabled = true).await;
    partners.create(&srv).await;
    assert_eq!(srv.group_count(A).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r13_every_master_needs_the_external_permission() {
    let Some(srv) = server().await else { return };
    srv.company(A, 2).await;
    person(&srv, A, 3, false, pb::UserKind::Works).await;
    person(&srv, A, 4, true, pb::UserKind::Line).await;
    let partners = |masters: &[i64]| group(A, "Partners").masters(masters).external();
    let err = partners(&[2, 3]).try_create(&srv).await.unwrap_err();
    assert_reason(
        &err,
        Code::FailedPrecondition,
        "EXTERNAL_PERMISSION_REQUIRED",
    );
    let err = partners(&[2, 4]).try_create(&srv).await.unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "LINE_USER_NOT_ALLOWED");
    assert_eq!(srv.group_count(A).await, 0);
    // The same masters may run an internal group.
    group(A, "Partners").masters(&[3, 4]).create(&srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r14_initial_members_without_permission_are_left_out_and_reported() {
    let Some(srv) = server().await else { return };
    srv.company(A, 2).await;
    person(&srv, A, 3, false, pb::UserKind::Works).await;
    person(&srv, A, 4, true, pb::UserKind::Line).await;
    person(&srv, A, 5, false, pb::UserKind::Line).await;
    person(&srv, A, 6, true, pb::UserKind::Works).await;
    let g = group(A, "Partners")
        .master(2)
        .members([3, 4, 5, 6].map(|u| user_of(A, u)))
        .external()
        .try_create(&srv)
        .await
        .expect("left-out members are not an error");
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
        member_users(&srv, &g.name).await,
        BTreeSet::from([(A, 2), (A, 6)])
    );
    assert_eq!(master_keys(&srv, &g.name).await, [(A, 2)]);
    // Reading the group back does not repeat the report.
    let got = get(&srv, &g.name).await;
    assert!(got.excluded_members.is_empty(), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r14_initial_members_are_users_of_the_owning_tenant() {
    let Some(srv) = server().await else { return };
    srv.company(A, 3).await;
    srv.company(B, 3).await;
    add_contact(&srv, (A, 2), (B, 2)).await;
    let err = group(A, "Partners")
        .master(2)
        .members([user_of(A, 3), user_of(B, 2)])
        .external()
        .try_create(&srv)
        .await
        .unwrap_err();
    assert_bad_field(&err, "members");
    assert_eq!(srv.group_count(A).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r14_external_groups_have_only_users_as_members() {
    let Some(srv) = server().await else { return };
    srv.company(A, 4).await;
    srv.team(A, 10, &[3, 4]).await;
    let inner = group(A, "Inner").master(3).create(&srv).await.name;
    let inner_ref = group_member(&inner);
    for member in [team_member(10), inner_ref.clone()] {
        let partners = group(A, "Partners").master(2).member(member).external();
        let err = partners.try_create(&srv).await.unwrap_err();
        assert_reason(&err, Code::FailedPrecondition, "EXTERNAL_GROUP_USERS_ONLY");
    }
    assert_eq!(srv.group_count(A).await, 1);
    let g = group(A, "Partners")
        .master(2)
        .external()
        .create(&srv)
        .await
        .name;
    for member in [team_member(10), inner_ref] {
        let err = add_as(&srv, (A, 2), &g, vec![user_of(A, 3), member])
            .await
            .unwrap_err();
        assert_reason(&err, Code::FailedPrecondition, "EXTERNAL_GROUP_USERS_ONLY");
    }
    assert_eq!(member_users(&srv, &g).await, BTreeSet::from([(A, 2)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_external_groups_are_always_private() {
    let Some(srv) = server().await else { return };
    srv.company(A, 3).await;
    let partners = group(A, "Partners").master(2).external();
    let err = partners
        .clone()
        .public()
        .try_create(&srv)
        .await
        .unwrap_err();
    assert_reason(
        &err,
        Code::FailedPrecondition,
        "EXTERNAL_GROUP_ALWAYS_PRIVATE",
    );
    assert_eq!(srv.group_count(A).await, 0);

    let g = partners.create(&srv).await.name;
    let before = get(&srv, &g).await;
    let public = pb::Group {
        visibility: pb::Visibility::Public as i32,
        description: "now public".into(),
        ..patch(&g)
    };
    for (tenant, user, is_admin) in [(A, 1, true), (A, 2, false)] {
        let mut c = srv.groups(tenant, user, is_admin);
        let err = try_update(&mut c, public.clone(), &["visibility", "description"])
            .await
            .unwrap_err();
        assert_reason(
            &err,
            Code::FailedPrecondition,
            "EXTERNAL_GROUP_ALWAYS_PRIVATE",
        );
    }
    assert_eq!(get(&srv, &g).await, before, "nothing is half-written");
    // A user of the tenant who is not a member does not see it.
    let err = srv
        .groups(A, 3, false)
        .get_group(get_req(&g))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}
