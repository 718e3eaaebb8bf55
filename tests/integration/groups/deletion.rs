//! Deleting a group (R12): admins only, etag-checked, for good, with one event naming what
//! went and whom to tell (R11).

use tonic::Code;

use crate::fixtures::*;
use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r12_admin_deletes_group() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let mut admin = srv.groups(1, 1, true);
    let g = group(1, "Doomed").master(2).create(&srv).await;
    admin.delete_group(delete_req(&g.name, "")).await.unwrap();
    let err = admin.get_group(get_req(&g.name)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = srv
        .groups(1, 2, false)
        .get_group(get_req(&g.name))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    // Deleting again: it is gone.
    let err = admin
        .delete_group(delete_req(&g.name, ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    // The name is free again.
    group(1, "doomed").master(2).create(&srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r12_master_or_member_cannot_delete_group() {
    let Some(srv) = server().await else { return };
    srv.company(1, 3).await;
    let g = group(1, "Kept")
        .master(2)
        .member(user_member(3))
        .create(&srv)
        .await;
    for user in [2, 3] {
        let err = srv
            .groups(1, user, false)
            .delete_group(delete_req(&g.name, ""))
            .await
            .unwrap_err();
        assert_reason(&err, Code::PermissionDenied, "NOT_GROUP_MANAGER");
    }
    assert_eq!(get(&srv, &g.name).await, g);
    assert_eq!(srv.group_count(1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r12_delete_with_stale_etag_is_aborted() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let mut admin = srv.groups(1, 1, true);
    let g = group(1, "Versioned").master(2).create(&srv).await;
    assert!(!g.etag.is_empty());
    for stale in ["\"0\"", "W/\"1\"", "not-an-etag"] {
        assert_ne!(stale, g.etag);
        let err = admin
            .delete_group(delete_req(&g.name, stale))
            .await
            .unwrap_err();
        assert_reason(&err, Code::Aborted, "ETAG_MISMATCH");
    }
    assert_eq!(srv.group_count(1).await, 1);
    admin
        .delete_group(delete_req(&g.name, &g.etag))
        .await
        .unwrap();
    let err = admin.get_group(get_req(&g.name)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r12_delete_frees_the_tenants_group_count() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let mut admin = srv.groups(1, 1, true);
    let a = group(1, "A").master(2).create(&srv).await;
    group(1, "B").master(2).create(&srv).await;
    assert_eq!(srv.group_count(1).await, 2);
    admin.delete_group(delete_req(&a.name, "")).await.unwrap();
    assert_eq!(srv.group_count(1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r12_delete_records_one_event_naming_purged_data_and_recipients() {
    let Some(srv) = server().await else { return };
    srv.company(1, 6).await;
    srv.team(1, 10, &[4]).await;
    let mut admin = srv.groups(1, 1, true);
    let inner = group(1, "Inner")
        .master(5)
        .member(user_member(6))
        .create(&srv)
        .await;
    let g = group(1, "Announced")
        .master(2)
        .members([user_member(3), team_member(10), group_member(&inner.name)])
        .with(|g| g.notify_all_members = true)
        .create(&srv)
        .await;
    admin.delete_group(delete_req(&g.name, "")).await.unwrap();

    let deleted = payloads(&srv, &g.name, "group.deleted").await;
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    let payload = &deleted[0];
    assert_eq!(payload["group"], g.name.as_str());
    let purged: Vec<&str> = payload["purged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for data in ["message", "note", "event", "folder", "mailing_list"] {
        assert!(purged.contains(&data), "{data} not purged: {purged:?}");
    }
    // R11: every member, resolved to users: master 2, member 3, 4 through the team, 5 and 6
    // through the nested group.
    let mut notified: Vec<(i64, i64)> = payload["notify"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_i64().unwrap(), p[1].as_i64().unwrap()))
        .collect();
    notified.sort();
    assert_eq!(notified, [(1, 2), (1, 3), (1, 4), (1, 5), (1, 6)]);
    // The nested group survives its parent.
    admin.get_group(get_req(&inner.name)).await.unwrap();
}
