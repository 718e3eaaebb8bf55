//! Revoking the external permission (R18): the user leaves every external group at once, with
//! the R11 notification, and never fails, not even for the last master.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use group_service::grpc::pb;
use tonic::Code;

use super::{A, B, shared_group};
use crate::fixtures::*;
use crate::harness::*;

/// R18: the admin turns off the user's "Manage External Message Users".
async fn revoke(srv: &TestServer, (tenant, id): Key) {
    person(srv, tenant, id, false, pb::UserKind::Works).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r18_revocation_removes_user_from_external_groups_only() {
    let Some(srv) = server().await else { return };
    srv.company(A, 4).await;
    srv.company(B, 3).await;
    add_contact(&srv, (A, 2), (B, 2)).await;
    // B's user 2 in two external groups of A (one notifying all members), an internal
    // group of B; A's user 2 (same id, other tenant) in the same groups of A.
    let e1 = group(A, "Notified")
        .master(2)
        .member(user_of(A, 3))
        .external()
        .with(|g| g.notify_all_members = true)
        .create(&srv)
        .await
        .name;
    let e2 = group(A, "Quiet")
        .master(2)
        .member(user_of(A, 3))
        .external()
        .create(&srv)
        .await
        .name;
    for g in [&e1, &e2] {
        add_as(&srv, (A, 2), g, vec![user_of(B, 2)]).await.unwrap();
    }
    let internal_b = group(B, "B Internal")
        .master(3)
        .member(user_of(B, 2))
        .create(&srv)
        .await
        .name;
    let internal_a = group(A, "A Internal")
        .master(2)
        .member(user_of(A, 3))
        .create(&srv)
        .await
        .name;

    revoke(&srv, (B, 2)).await;
    for g in [&e1, &e2] {
        assert_eq!(
            member_users(&srv, g).await,
            BTreeSet::from([(A, 2), (A, 3)]),
            "{g}"
        );
        let ev = payloads(&srv, g, "members.removed").await;
        assert_eq!(ev.len(), 1, "{g}: {ev:?}");
        assert_eq!(ev[0]["detail"]["cause"], "external_permission_revoked");
        assert_eq!(ev[0]["group"], g.as_str());
    }
    // R11: the notifying group tells the removed user.
    let ev = payloads(&srv, &e1, "members.removed").await;
    assert_eq!(
        ev[0]["notify"],
        serde_json::json!([{"tenant": B, "user": 2}])
    );
    // Internal groups keep them, with no removal event.
    assert!(is_member(&srv, &internal_b, (B, 2)).await);
    assert!(
        payloads(&srv, &internal_b, "members.removed")
            .await
            .is_empty()
    );
    assert_eq!(
        visible_groups_of(&srv, (B, 2), false, (B, 2)).await,
        BTreeSet::from([internal_b.clone()])
    );

    // Now A's user 3, with an internal group of A.
    revoke(&srv, (A, 3)).await;
    for g in [&e1, &e2] {
        assert_eq!(member_users(&srv, g).await, BTreeSet::from([(A, 2)]), "{g}");
    }
    assert!(is_member(&srv, &internal_a, (A, 3)).await);
    // Giving the permission back does not give the groups back.
    person(&srv, B, 2, true, pb::UserKind::Works).await;
    assert!(!is_member(&srv, &e1, (B, 2)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r18_becoming_a_line_user_removes_from_external_groups() {
    let Some(srv) = server().await else { return };
    srv.company(A, 3).await;
    srv.company(B, 3).await;
    let g = shared_group(&srv, "Partners", &[3], &[(B, 2)]).await;
    person(&srv, B, 2, true, pb::UserKind::Line).await;
    person(&srv, A, 3, true, pb::UserKind::Line).await;
    assert_eq!(member_users(&srv, &g).await, BTreeSet::from([(A, 2)]));
    let ev = payloads(&srv, &g, "members.removed").await;
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
    let Some(srv) = server().await else { return };
    srv.company(A, 6).await;
    srv.company(B, 7).await;
    add_contact(&srv, (A, 2), (B, 5)).await;
    add_contact(&srv, (A, 2), (B, 7)).await;
    let g = group(A, "Partners")
        .master(2)
        .external()
        .create(&srv)
        .await
        .name;
    // Join order: B5, B7 (another tenant), then A6, then A3.
    for m in [user_of(B, 5), user_of(B, 7), user_of(A, 6), user_of(A, 3)] {
        add_as(&srv, (A, 2), &g, vec![m]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    revoke(&srv, (A, 2)).await;
    assert_eq!(master_keys(&srv, &g).await, [(A, 6)]);
    assert!(!is_member(&srv, &g, (A, 2)).await);
    let ev = payloads(&srv, &g, "members.removed").await;
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(
        ev[0]["detail"]["last_master_replaced_by"],
        serde_json::json!({"tenant": A, "user": 6})
    );
    assert_eq!(ev[0]["detail"]["without_master"], false);

    // A master from B who is the last one: a member of the owning tenant takes over.
    let h = group(A, "Second")
        .master(3)
        .member(user_of(A, 4))
        .external()
        .create(&srv)
        .await
        .name;
    add_contact(&srv, (A, 3), (B, 5)).await;
    tokio::time::sleep(Duration::from_millis(2)).await;
    add_as(&srv, (A, 3), &h, vec![user_of(B, 5)]).await.unwrap();
    add_master_users(&mut srv.membership(A, 3, false), &h, &[(B, 5)])
        .await
        .unwrap();
    remove_masters(&mut srv.membership(A, 1, true), &h, &[3])
        .await
        .unwrap();
    assert_eq!(master_keys(&srv, &h).await, [(B, 5)]);
    revoke(&srv, (B, 5)).await;
    // A3 and A4 joined together at creation; the lower id breaks the tie.
    assert_eq!(master_keys(&srv, &h).await, [(A, 3)]);
    assert_eq!(master_keys(&srv, &g).await, [(A, 6)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r18_group_without_a_permitted_owner_member_has_no_master_until_an_admin_names_one() {
    let Some(srv) = server().await else { return };
    srv.company(A, 3).await;
    srv.company(B, 3).await;
    let g = shared_group(&srv, "Partners", &[], &[(B, 2), (B, 3)]).await;

    // Never fails, even for the last master.
    revoke(&srv, (A, 2)).await;
    assert!(master_keys(&srv, &g).await.is_empty());
    assert_eq!(
        member_users(&srv, &g).await,
        BTreeSet::from([(B, 2), (B, 3)])
    );
    let ev = payloads(&srv, &g, "members.removed").await;
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["detail"]["without_master"], true);
    assert_eq!(ev[0]["detail"]["cause"], "external_permission_revoked");
    // The members still read it; nobody but the owning tenant's admins changes it.
    srv.groups(B, 2, false)
        .get_group(get_req(&g))
        .await
        .unwrap();
    let err = remove(&mut srv.membership(B, 2, false), &g, vec![user_of(B, 3)])
        .await
        .unwrap_err();
    assert_reason(&err, Code::PermissionDenied, "NOT_GROUP_MANAGER");

    add_master_users(&mut srv.membership(A, 1, true), &g, &[(B, 2)])
        .await
        .unwrap();
    assert_eq!(master_keys(&srv, &g).await, [(B, 2)]);
    // The new master manages the group again.
    remove(&mut srv.membership(B, 2, false), &g, vec![user_of(B, 3)])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r18_revocation_under_concurrent_adds_leaves_no_external_membership() {
    let Some(srv) = server().await else { return };
    const GROUPS: usize = 20;
    srv.company(A, 2).await;
    srv.company(B, 3).await;
    let u: Key = (B, 2);
    add_contact(&srv, (A, 2), u).await;
    let internal_b = group(B, "B Internal")
        .master(3)
        .member(user_of(B, 2))
        .create(&srv)
        .await
        .name;
    let mut groups = Vec::with_capacity(GROUPS);
    for i in 0..GROUPS {
        groups.push(
            group(A, &format!("Shared {i}"))
                .master(2)
                .external()
                .create(&srv)
                .await
                .name,
        );
    }
    let started = Instant::now();
    let (mut ok, mut refused) = (0, 0);
    for round in 0..4u64 {
        if round > 0 {
            person(&srv, B, 2, true, pb::UserKind::Works).await;
        }
        let adds = Race::start(GROUPS, groups.clone(), |g| {
            let mut c = srv.membership(A, 2, false);
            async move { add(&mut c, &g, vec![user_of(u.0, u.1)]).await }
        });
        tokio::time::sleep(Duration::from_millis(round * 4)).await;
        // A revocation never fails.
        revoke(&srv, u).await;
        let added = winners(
            adds.answers().await,
            Code::FailedPrecondition,
            "EXTERNAL_PERMISSION_REQUIRED",
        );
        ok += added.len();
        refused += GROUPS - added.len();
        for g in &groups {
            assert!(!is_member(&srv, g, u).await, "round {round}: still in {g}");
        }
        assert_eq!(
            visible_groups_of(&srv, u, false, u).await,
            BTreeSet::from([internal_b.clone()]),
            "round {round}"
        );
        // Every add that went through was undone by the revocation, with its event.
        let mut removed = 0;
        for g in &groups {
            removed += payloads(&srv, g, "members.removed").await.len();
        }
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
