//! R09: feature data and usage. Services report sizes; data is deleted on request, only where
//! it exists, for good; deleting a group gives its storage back (R12).

use group_service::grpc::pb;
use tonic::Code;

use crate::fixtures::*;
use crate::harness::*;

fn delete_data(name: &str, features: &[pb::DataFeature]) -> pb::DeleteFeatureDataRequest {
    pb::DeleteFeatureDataRequest {
        name: name.to_owned(),
        features: features.iter().map(|f| *f as i32).collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r09_report_feature_usage_needs_a_service_caller_and_valid_input() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    srv.company(2, 1).await;
    let g = group(1, "Measured").master(2).create(&srv).await;
    let req = |feature: &str, bytes: i64| pb::ReportFeatureUsageRequest {
        name: g.name.clone(),
        feature: feature.into(),
        bytes,
    };
    for mut user in [srv.groups(1, 1, true), srv.groups(1, 2, false)] {
        let err = user
            .report_feature_usage(req("note", 10))
            .await
            .unwrap_err();
        assert_reason(&err, Code::PermissionDenied, "SERVICE_CALLER_REQUIRED");
    }
    let err = srv
        .groups_service(2)
        .report_feature_usage(req("note", 10))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let mut service = srv.groups_service(1);
    for bytes in [-1, i64::MIN] {
        let err = service
            .report_feature_usage(req("note", bytes))
            .await
            .unwrap_err();
        assert_bad_field(&err, "bytes");
    }
    for feature in ["", "photos", "mailing_list", "notes"] {
        let err = service
            .report_feature_usage(req(feature, 10))
            .await
            .unwrap_err();
        assert_bad_field(&err, "feature");
    }
    let err = service
        .report_feature_usage(pb::ReportFeatureUsageRequest {
            name: missing_group(1),
            ..req("note", 10)
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let got = get(&srv, &g.name).await;
    assert_eq!(got.storage_used_bytes, 0);
    assert_eq!(srv.get_tenant(1).await.storage_used_bytes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r09_group_and_tenant_storage_follow_the_reports() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    srv.company(2, 2).await;
    let a = group(1, "A").master(2).create(&srv).await.name;
    let b = group(1, "B").master(2).create(&srv).await.name;
    let elsewhere = group(2, "Elsewhere").master(2).create(&srv).await.name;
    for feature in ["message", "note", "event", "task", "folder"] {
        reported(&srv, &a, feature, 100).await;
    }
    let used = |g: pb::Group| g.storage_used_bytes;
    assert_eq!(used(reported(&srv, &b, "folder", 7_000).await), 7_000);
    reported(&srv, &elsewhere, "folder", 123).await;
    assert_eq!(get(&srv, &a).await.storage_used_bytes, 500);
    assert_eq!(srv.get_tenant(1).await.storage_used_bytes, 7_500);
    // A report is the size now, not an increment.
    assert_eq!(used(reported(&srv, &a, "note", 30).await), 430);
    assert_eq!(used(reported(&srv, &a, "note", 30).await), 430);
    assert_eq!(used(reported(&srv, &b, "folder", 0).await), 0);
    assert_eq!(get(&srv, &a).await.storage_used_bytes, 430);
    assert_eq!(get(&srv, &b).await.storage_used_bytes, 0);
    assert_eq!(srv.get_tenant(1).await.storage_used_bytes, 430);
    assert_eq!(srv.get_tenant(2).await.storage_used_bytes, 123);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r09_concurrent_reports_keep_group_and_tenant_storage_consistent() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let a = group(1, "A").master(2).create(&srv).await.name;
    let b = group(1, "B").master(2).create(&srv).await.name;
    let service = srv.groups_service(1);
    let answers = race(40, 0..40_i64, |i| {
        let mut client = service.clone();
        let (name, feature) = match i % 4 {
            0 => (a.clone(), "note"),
            1 => (a.clone(), "event"),
            2 => (b.clone(), "note"),
            _ => (b.clone(), "folder"),
        };
        let req = pb::ReportFeatureUsageRequest {
            name,
            feature: feature.into(),
            bytes: 1_000 + i,
        };
        async move { client.report_feature_usage(req).await }
    })
    .await;
    for answer in answers {
        answer.unwrap();
    }
    let (a, b) = (get(&srv, &a).await, get(&srv, &b).await);
    // Each group holds two features, each at one of the values reported for it.
    for g in [&a, &b] {
        assert!(
            (2_000..=2_080).contains(&g.storage_used_bytes),
            "{}: {}",
            g.display_name,
            g.storage_used_bytes
        );
    }
    assert_eq!(
        srv.get_tenant(1).await.storage_used_bytes,
        a.storage_used_bytes + b.storage_used_bytes
    );
}

/// A group of tenant 1 with every feature on holding message 5, note 1,000, event 500 and
/// folder 0 bytes.
async fn archive(srv: &TestServer) -> pb::Group {
    let g = group(1, "Archive")
        .master(2)
        .with(|g| g.features = Some(features(true, true, true, true, true)))
        .create(srv)
        .await;
    reported(srv, &g.name, "message", 5).await;
    reported(srv, &g.name, "note", 1_000).await;
    reported(srv, &g.name, "event", 500).await;
    reported(srv, &g.name, "folder", 0).await;
    get(srv, &g.name).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r09_delete_feature_data_only_where_it_exists_and_for_good() {
    use pb::DataFeature::{Event as EventData, Folder, Note};

    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let before = archive(&srv).await;
    let g = before.clone();
    assert_eq!(before.storage_used_bytes, 1_505);
    let mut admin = srv.groups(1, 1, true);
    // Folder reported empty: nothing to delete; one missing feature fails the whole call.
    for features in [&[Folder][..], &[EventData, Folder], &[Note, Folder]] {
        let err = admin
            .delete_feature_data(delete_data(&g.name, features))
            .await
            .unwrap_err();
        assert_reason(&err, Code::FailedPrecondition, "NO_FEATURE_DATA");
    }
    assert_eq!(get(&srv, &g.name).await, before);

    let got = admin
        .delete_feature_data(delete_data(&g.name, &[Note]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.storage_used_bytes, 505);
    assert_ne!(got.etag, before.etag);
    assert_eq!(get(&srv, &g.name).await, got);
    assert_eq!(srv.get_tenant(1).await.storage_used_bytes, 505);
    // Gone for good: a second delete finds nothing.
    let err = admin
        .delete_feature_data(delete_data(&g.name, &[Note]))
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "NO_FEATURE_DATA");

    // One event per purge, naming the features and their sizes.
    let purged = payloads(&srv, &g.name, "feature_data.purged").await;
    assert_eq!(purged.len(), 1, "{purged:?}");
    assert_eq!(purged[0]["group"], g.name.as_str());
    assert_eq!(
        purged[0]["purged"],
        serde_json::json!([{"feature": "note", "bytes": 1_000}])
    );

    // Event data, named twice, goes in one purge.
    let got = admin
        .delete_feature_data(delete_data(&g.name, &[EventData, EventData]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.storage_used_bytes, 5);
    assert_eq!(srv.get_tenant(1).await.storage_used_bytes, 5);
    let purges = payloads(&srv, &g.name, "feature_data.purged").await;
    assert_eq!(purges.len(), 2);
    // The features stay on: only their data went.
    assert_eq!(got.features, Some(features(true, true, true, true, true)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r09_delete_feature_data_follows_the_feature_permission() {
    let Some(srv) = server().await else { return };
    srv.company(1, 4).await;
    let g = group(1, "Guarded")
        .master(2)
        .member(user_member(3))
        .create(&srv)
        .await;
    reported(&srv, &g.name, "folder", 64).await;
    let delete_as = |user: i64| {
        let mut c = srv.groups(1, user, false);
        let req = delete_data(&g.name, &[pb::DataFeature::Folder]);
        async move { c.delete_feature_data(req).await.map(|r| r.into_inner()) }
    };
    let err = delete_as(3).await.unwrap_err();
    assert_reason(&err, Code::PermissionDenied, "NOT_GROUP_MANAGER");
    let err = delete_as(4).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    // A master only when the group grants it.
    let err = delete_as(2).await.unwrap_err();
    assert_reason(&err, Code::PermissionDenied, "NOT_GROUP_MANAGER");
    assert_eq!(get(&srv, &g.name).await.storage_used_bytes, 64);
    let grant = pb::Group {
        master_manages_features: true,
        ..patch(&g.name)
    };
    try_update(
        &mut srv.groups(1, 1, true),
        grant,
        &["master_manages_features"],
    )
    .await
    .unwrap();
    let got = delete_as(2).await.unwrap();
    assert_eq!(got.storage_used_bytes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r09_delete_feature_data_names_bad_features() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let g = group(1, "Picky").master(2).create(&srv).await;
    reported(&srv, &g.name, "note", 10).await;
    let mut admin = srv.groups(1, 1, true);
    let err = admin
        .delete_feature_data(delete_data(&g.name, &[]))
        .await
        .unwrap_err();
    assert_bad_field(&err, "features");
    for bad in [0, 99] {
        let err = admin
            .delete_feature_data(pb::DeleteFeatureDataRequest {
                name: g.name.clone(),
                features: vec![pb::DataFeature::Note as i32, bad],
            })
            .await
            .unwrap_err();
        assert_bad_field(&err, "features[1]");
    }
    assert_eq!(get(&srv, &g.name).await.storage_used_bytes, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r09_reported_usage_leaves_the_etag_alone() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let g = group(1, "Growing").master(2).create(&srv).await;
    let after = reported(&srv, &g.name, "message", 4_096).await;
    assert_eq!(after.storage_used_bytes, 4_096);
    // Usage is measured by other services, not edited: it must not make a pending edit of
    // the group's settings fail with ETAG_MISMATCH (docs/decisions.md).
    assert_eq!(after.etag, g.etag);
    let mut edit = g.clone();
    edit.description = "still mine to edit".into();
    let updated = try_update(&mut srv.groups(1, 1, true), edit, &["description"])
        .await
        .unwrap();
    assert_eq!(updated.storage_used_bytes, 4_096);
    assert_ne!(updated.etag, g.etag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r12_deleting_a_group_gives_its_storage_back_to_the_tenant() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let kept = group(1, "Kept").master(2).create(&srv).await.name;
    let doomed = group(1, "Doomed").master(2).create(&srv).await.name;
    reported(&srv, &kept, "note", 100).await;
    reported(&srv, &doomed, "folder", 900).await;
    assert_eq!(srv.get_tenant(1).await.storage_used_bytes, 1_000);
    srv.groups(1, 1, true)
        .delete_group(delete_req(&doomed, ""))
        .await
        .unwrap();
    assert_eq!(srv.get_tenant(1).await.storage_used_bytes, 100);
}
