//! Who may create a group and with whom (R04).

use group_service::grpc::pb;
use tonic::Code;

use crate::fixtures::*;
use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r04_plain_user_cannot_create_in_admins_only_tenant() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let err = srv
        .groups(1, 2, false)
        .create_group(create_req(1, "Mine", &[2]))
        .await
        .unwrap_err();
    assert_reason(&err, Code::PermissionDenied, "GROUP_CREATION_RESTRICTED");
    assert_eq!(srv.group_count(1).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r04_admin_can_create_in_admins_only_tenant() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let g = group(1, "Admins'").master(2).create(&srv).await;
    assert_eq!(g.kind, pb::GroupKind::Internal as i32);
    assert_eq!(srv.group_count(1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r04_plain_user_can_create_in_all_members_tenant() {
    let Some(srv) = server().await else { return };
    srv.tenant(1, pb::Plan::Free, pb::GroupCreation::AllMembers)
        .await;
    srv.user(1, 1, true).await;
    srv.user(1, 2, false).await;
    let mut user = srv.groups(1, 2, false);
    let g = user
        .create_group(create_req(1, "Book club", &[2]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        user.get_group(get_req(&g.name)).await.unwrap().into_inner(),
        g
    );
    assert_eq!(srv.group_count(1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r04_admin_claim_without_directory_admin_is_not_admin() {
    let Some(srv) = server().await else { return };
    srv.company(1, 3).await;
    // User 2 is not an admin in the directory but their token claims it.
    let mut pretender = srv.groups(1, 2, true);
    let err = pretender
        .create_group(create_req(1, "Mine", &[2]))
        .await
        .unwrap_err();
    assert_reason(&err, Code::PermissionDenied, "GROUP_CREATION_RESTRICTED");
    // Nor may they see or delete a private group they are not in, as an admin could.
    let g = group(1, "Private").master(3).create(&srv).await;
    let err = pretender.get_group(get_req(&g.name)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = pretender
        .delete_group(delete_req(&g.name, ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert_eq!(srv.group_count(1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r04_admin_demoted_in_the_directory_loses_admin_rights() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    srv.user(1, 3, true).await;
    let mut admin3 = srv.groups(1, 3, true);
    admin3
        .create_group(create_req(1, "While admin", &[2]))
        .await
        .unwrap();
    // The directory demotes user 3; their token still claims admin.
    srv.user(1, 3, false).await;
    let err = admin3
        .create_group(create_req(1, "After demotion", &[2]))
        .await
        .unwrap_err();
    assert_reason(&err, Code::PermissionDenied, "GROUP_CREATION_RESTRICTED");
    assert_eq!(srv.group_count(1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r04_master_also_named_as_member_is_one_member() {
    let Some(srv) = server().await else { return };
    srv.company(1, 3).await;
    let g = group(1, "Overlap")
        .masters(&[2, 2])
        .members([user_member(2), user_member(3), user_of(1, 3)])
        .create(&srv)
        .await;
    for user in [2, 3] {
        srv.groups(1, user, false)
            .get_group(get_req(&g.name))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r04_create_without_masters_is_invalid() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let masterless = group(1, "Masterless").member(user_member(2));
    let err = masterless.try_create(&srv).await.unwrap_err();
    assert_bad_field(&err, "master_user_ids");
    assert_eq!(srv.group_count(1).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r04_master_not_a_user_of_the_tenant_is_unknown_member() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    // User 50 exists, but in tenant 2 only.
    srv.company(2, 1).await;
    srv.user(2, 50, false).await;
    for masters in [&[99][..], &[50], &[2, 99]] {
        let ghost_led = group(1, "Ghost-led").masters(masters);
        let err = ghost_led.try_create(&srv).await.unwrap_err();
        assert_reason(&err, Code::FailedPrecondition, "UNKNOWN_MEMBER");
    }
    // Nothing half-written (R25): no slot taken, and the name is still free.
    assert_eq!(srv.group_count(1).await, 0);
    group(1, "Ghost-led").master(2).create(&srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r04_user_member_of_another_tenant_is_rejected() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    srv.company(2, 2).await;
    let mixed = group(1, "Mixed").master(2).member(user_of(2, 2));
    let err = mixed.try_create(&srv).await.unwrap_err();
    assert_bad_field(&err, "members");
    assert_eq!(srv.group_count(1).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r04_unknown_user_member_is_unknown_member() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let half = group(1, "Half").master(2).member(user_member(77));
    let err = half.try_create(&srv).await.unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "UNKNOWN_MEMBER");
    assert_eq!(srv.group_count(1).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r04_masters_count_as_members() {
    let Some(srv) = server().await else { return };
    srv.company(1, 3).await;
    // No members besides the master: an internal group needs one, and the master is one.
    let g = group(1, "Solo").master(2).create(&srv).await;
    assert_eq!(g.visibility, pb::Visibility::Private as i32);
    // The master sees the private group as a member does; user 3 is no member.
    let got = srv
        .groups(1, 2, false)
        .get_group(get_req(&g.name))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, g);
    let err = srv
        .groups(1, 3, false)
        .get_group(get_req(&g.name))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}

/// One clock per transaction: with the server's clock moved a year ahead, what a write
/// stamps (a group's creation, its update by AddMasters) is the clock's time, the instant its
/// rules decide at, not the wall clock's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_stamp_the_transactions_own_clock() {
    let Some(srv) = server().await else { return };
    srv.company(1, 3).await;
    let year = std::time::Duration::from_secs(365 * 24 * 3600);
    srv.clock().advance(year);
    let ahead = (srv.clock().now_micros() / 1_000_000) - 60;
    let g = group(1, "Later").master(2).create(&srv).await;
    let created = g.create_time.expect("create_time").seconds;
    assert!(
        created >= ahead,
        "created at {created}, the clock says {ahead}"
    );
    let mut admin = srv.membership(1, 1, true);
    add_master_users(&mut admin, &g.name, &[(1, 3)])
        .await
        .expect("add a master");
    let updated = srv
        .groups(1, 1, true)
        .get_group(get_req(&g.name))
        .await
        .unwrap()
        .into_inner()
        .update_time
        .expect("update_time")
        .seconds;
    assert!(
        updated >= ahead,
        "updated at {updated}, the clock says {ahead}"
    );
}
