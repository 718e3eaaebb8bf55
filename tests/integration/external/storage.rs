//! Deleting an external group (R12) and its storage (R19), charged to the owning tenant.

use std::collections::BTreeSet;

use group_service::grpc::pb;
use tonic::{Code, Status};

use super::{A, B, C, shared_group, three_companies};
use crate::fixtures::*;
use crate::harness::*;

async fn usage(c: &mut Groups, tenant: i64) -> Result<pb::TenantUsage, Status> {
    c.get_tenant_usage(pb::GetTenantUsageRequest {
        name: format!("tenants/{tenant}"),
    })
    .await
    .map(|r| r.into_inner())
}

/// (groups, storage bytes) of a kind in a usage answer.
fn kind_usage(k: Option<pb::KindUsage>) -> (i64, i64) {
    let k = k.expect("kind usage");
    (k.groups, k.storage_used_bytes)
}

/// Deletes a group as the admin of its tenant.
async fn delete(srv: &TestServer, g: &str) {
    srv.groups(ids(g).0, 1, true)
        .delete_group(delete_req(g, ""))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r12_deleting_an_external_group_reaches_every_member_tenant_at_once() {
    let Some(srv) = server().await else { return };
    three_companies(&srv).await;
    let g = shared_group(&srv, "Partners", &[3], &[(B, 2), (C, 2)]).await;
    let keep = group(A, "Keep")
        .master(2)
        .external()
        .create(&srv)
        .await
        .name;
    add_as(&srv, (A, 2), &keep, vec![user_of(B, 2)])
        .await
        .unwrap();
    assert_eq!(srv.group_count(A).await, 2);

    delete(&srv, &g).await;
    for (t, u) in [(A, 2), (A, 3), (B, 2), (C, 2)] {
        let mut c = srv.groups(t, u, false);
        let err = c.get_group(get_req(&g)).await.unwrap_err();
        let missing = c.get_group(get_req(&missing_group(A))).await.unwrap_err();
        assert_eq!(fingerprint(&err), fingerprint(&missing), "{t}/{u}");
        assert!(
            !visible_groups_of(&srv, (t, u), false, (t, u))
                .await
                .contains(&g)
        );
    }
    assert_eq!(
        visible_groups_of(&srv, (B, 2), false, (B, 2)).await,
        BTreeSet::from([keep.clone()])
    );
    assert_eq!(srv.group_count(A).await, 1);
    let ev = payloads(&srv, &g, "group.deleted").await;
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["kind"], "EXTERNAL");
    assert_eq!(ev[0]["tenants"], serde_json::json!([A, B, C]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r19_external_storage_counts_against_the_owning_tenant() {
    let Some(srv) = server().await else { return };
    srv.company(A, 3).await;
    srv.company(B, 3).await;
    set_tenant(&srv, A, |t| t.storage_quota_bytes = 1_000).await;
    add_contact(&srv, (A, 2), (B, 2)).await;
    let internal = group(A, "Internal").master(2).create(&srv).await.name;
    let external = group(A, "Partners")
        .master(2)
        .external()
        .create(&srv)
        .await
        .name;
    add_as(&srv, (A, 2), &external, vec![user_of(B, 2)])
        .await
        .unwrap();

    let r = report_usage(&srv, &external, "message", 600).await.unwrap();
    assert_eq!(
        (
            r.over_quota,
            r.tenant_storage_used_bytes,
            r.tenant_storage_quota_bytes
        ),
        (false, 600, 1_000)
    );
    assert_eq!(r.group.unwrap().storage_used_bytes, 600);
    let r = report_usage(&srv, &internal, "note", 400).await.unwrap();
    // Exactly at the quota is not over it.
    assert_eq!((r.over_quota, r.tenant_storage_used_bytes), (false, 1_000));
    // Over the quota: recorded anyway, and said so.
    let r = report_usage(&srv, &external, "folder", 200).await.unwrap();
    assert_eq!((r.over_quota, r.tenant_storage_used_bytes), (true, 1_200));
    assert_eq!(r.group.unwrap().storage_used_bytes, 800);

    let u = usage(&mut srv.groups(A, 1, true), A).await.unwrap();
    assert_eq!(u.name, "tenants/1");
    assert_eq!((u.groups_used, u.groups_limit), (2, 1_000));
    assert_eq!(
        (u.storage_used_bytes, u.storage_quota_bytes),
        (1_200, 1_000)
    );
    assert_eq!(kind_usage(u.internal), (1, 400));
    assert_eq!(kind_usage(u.external), (1, 800));
    assert!(u.over_quota);
    only_the_owner_is_charged_and_reports(&srv, &external).await;

    // Sizes go down, never below zero.
    let r = report_usage(&srv, &external, "message", 0).await.unwrap();
    assert_eq!((r.over_quota, r.tenant_storage_used_bytes), (false, 600));
    let err = report_usage(&srv, &external, "folder", -1)
        .await
        .unwrap_err();
    assert_bad_field(&err, "bytes");
    for (g, feature) in [
        (&external, "folder"),
        (&internal, "note"),
        (&internal, "note"),
    ] {
        report_usage(&srv, g, feature, 0).await.unwrap();
    }
    let u = usage(&mut srv.groups_service(A), A).await.unwrap();
    assert_eq!(u.storage_used_bytes, 0);
    assert_eq!(kind_usage(u.internal), (1, 0));
    assert_eq!(kind_usage(u.external), (1, 0));
    assert!(!u.over_quota);
}

/// B's member sees the size of A's external group (800 bytes), but B is not charged, and
/// only A's services report its usage.
async fn only_the_owner_is_charged_and_reports(srv: &TestServer, external: &str) {
    let seen = srv
        .groups(B, 2, false)
        .get_group(get_req(external))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(seen.storage_used_bytes, 800);
    let ub = usage(&mut srv.groups_service(B), B).await.unwrap();
    assert_eq!((ub.groups_used, ub.storage_used_bytes), (0, 0));
    assert_eq!(kind_usage(ub.external), (0, 0));
    let req = || pb::ReportFeatureUsageRequest {
        name: external.to_owned(),
        feature: "message".into(),
        bytes: 1,
    };
    let err = srv
        .groups_service(B)
        .report_feature_usage(req())
        .await
        .unwrap_err();
    assert_reason(&err, Code::PermissionDenied, "WRONG_TENANT");
    let err = srv
        .groups(A, 2, false)
        .report_feature_usage(req())
        .await
        .unwrap_err();
    assert_reason(&err, Code::PermissionDenied, "SERVICE_CALLER_REQUIRED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r19_zero_quota_means_no_quota() {
    let Some(srv) = server().await else { return };
    srv.company(C, 2).await;
    set_tenant(&srv, C, |t| {
        t.plan = pb::Plan::Paid as i32;
        t.storage_quota_bytes = 0;
    })
    .await;
    let g = group(C, "Partners")
        .master(2)
        .external()
        .create(&srv)
        .await
        .name;
    let r = report_usage(&srv, &g, "folder", 5_000_000_000)
        .await
        .unwrap();
    assert!(!r.over_quota, "{r:?}");
    assert_eq!(
        (r.tenant_storage_used_bytes, r.tenant_storage_quota_bytes),
        (5_000_000_000, 0)
    );
    let u = usage(&mut srv.groups(C, 1, true), C).await.unwrap();
    assert!(!u.over_quota);
    assert_eq!((u.groups_used, u.groups_limit), (1, 100_000));
    assert_eq!(kind_usage(u.external), (1, 5_000_000_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r19_usage_is_for_admins_and_services_of_the_tenant() {
    let Some(srv) = server().await else { return };
    srv.company(A, 3).await;
    srv.company(B, 3).await;
    shared_group(&srv, "Partners", &[], &[(B, 2)]).await;

    usage(&mut srv.groups(A, 1, true), A).await.unwrap();
    usage(&mut srv.groups_service(A), A).await.unwrap();
    // A Group Master of the tenant is not an admin.
    let err = usage(&mut srv.groups(A, 2, false), A).await.unwrap_err();
    assert_reason(&err, Code::PermissionDenied, "NOT_GROUP_MANAGER");
    // Another tenant's usage does not exist for B, members of A's groups included.
    let missing = usage(&mut srv.groups(B, 1, true), 99).await.unwrap_err();
    for mut c in [
        srv.groups(B, 1, true),
        srv.groups(B, 2, false),
        srv.groups_service(B),
    ] {
        let err = usage(&mut c, A).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{err:?}");
        assert_eq!(fingerprint(&err), fingerprint(&missing));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r19_deleting_an_external_group_releases_its_storage() {
    let Some(srv) = server().await else { return };
    srv.company(A, 3).await;
    set_tenant(&srv, A, |t| t.storage_quota_bytes = 1_000).await;
    let keep = group(A, "Internal").master(2).create(&srv).await.name;
    let g = group(A, "Partners")
        .master(2)
        .external()
        .create(&srv)
        .await
        .name;
    report_usage(&srv, &keep, "note", 100).await.unwrap();
    let r = report_usage(&srv, &g, "folder", 1_500).await.unwrap();
    assert!(r.over_quota);

    delete(&srv, &g).await;
    let u = usage(&mut srv.groups(A, 1, true), A).await.unwrap();
    assert_eq!(kind_usage(u.external), (0, 0));
    assert_eq!(kind_usage(u.internal), (1, 100));
    assert_eq!(
        u.storage_used_bytes, 100,
        "R12/R19: the deleted group's data no longer counts: {u:?}"
    );
    assert!(!u.over_quota, "{u:?}");
    assert_eq!(srv.get_tenant(A).await.storage_used_bytes, 100);
}
