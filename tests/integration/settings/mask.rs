//! UpdateGroup's field mask (AIP-134; R06, R25): only the named fields change, `*` replaces
//! every updatable one, and a mask naming anything else changes nothing.

use group_service::grpc::pb;

use crate::fixtures::*;
use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r06_update_changes_only_the_masked_fields() {
    let Some(srv) = server().await else { return };
    srv.company(1, 3).await;
    let g = GroupBuilder::with_spec(
        1,
        pb::Group {
            description: "before".into(),
            photo_uri: "https://cdn.example.com/before.png".into(),
            features: Some(features(true, true, false, false, false)),
            ..group_named("Masked")
        },
    )
    .master(2)
    .create(&srv)
    .await;
    let mut admin = srv.groups(1, 1, true);
    // Every field carries a new value; only the description is named.
    let body = pb::Group {
        display_name: "Other name".into(),
        description: "after".into(),
        photo_uri: "https://cdn.example.com/after.png".into(),
        visibility: pb::Visibility::Public as i32,
        features: Some(features(false, false, false, false, false)),
        notify_all_members: true,
        master_manages_features: true,
        mailing_list: Some(mailing_list("masked")),
        ..patch(&g.name)
    };
    let got = try_update(&mut admin, body, &["description"])
        .await
        .unwrap();
    assert_eq!(got.description, "after");
    let expected = pb::Group {
        description: "after".into(),
        etag: got.etag.clone(),
        update_time: got.update_time,
        ..g.clone()
    };
    assert_eq!(got, expected);
    assert_ne!(got.etag, g.etag);
    assert_eq!(get(&srv, &g.name).await, got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r06_unmasked_empty_name_is_not_a_change() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let g = group(1, "Keeps its name").master(2).create(&srv).await;
    let body = pb::Group {
        photo_uri: "https://cdn.example.com/p.png".into(),
        ..patch(&g.name)
    };
    let got = try_update(&mut srv.groups(1, 1, true), body, &["photo_uri"])
        .await
        .unwrap();
    assert_eq!(got.display_name, "Keeps its name");
    assert_eq!(got.photo_uri, "https://cdn.example.com/p.png");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r06_star_mask_replaces_every_updatable_field() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let starred = pb::Group {
        description: "old description".into(),
        photo_uri: "https://cdn.example.com/old.png".into(),
        visibility: pb::Visibility::Public as i32,
        features: Some(features(true, true, true, true, true)),
        notify_all_members: true,
        master_manages_features: true,
        external_key: "ext-1".into(),
        mailing_list: Some(mailing_list("starred")),
        ..group_named("Starred")
    };
    let g = GroupBuilder::with_spec(1, starred)
        .master(2)
        .create(&srv)
        .await;
    let body = pb::Group {
        display_name: "Replaced".into(),
        ..patch(&g.name)
    };
    let got = try_update(&mut srv.groups(1, 1, true), body, &["*"])
        .await
        .unwrap();
    assert_eq!(got.display_name, "Replaced");
    assert_eq!(got.description, "");
    assert_eq!(got.photo_uri, "");
    assert_eq!(got.visibility, pb::Visibility::Private as i32);
    assert_eq!(got.features, Some(pb::Features::default()));
    assert!(!got.notify_all_members);
    assert!(!got.master_manages_features);
    assert_eq!(got.mailing_list, None);
    assert_eq!(got.external_key, "", "`*` replaces the external key too");
    // Not updatable: kept.
    assert_eq!(got.kind, g.kind);
    assert_eq!(got.create_time, g.create_time);
    assert_eq!(get(&srv, &g.name).await, got);
    // The list's address is free again.
    group(1, "Heir")
        .master(2)
        .with(|g| g.mailing_list = Some(mailing_list("starred")))
        .create(&srv)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_unknown_mask_path_is_invalid_and_changes_nothing() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let g = group(1, "Strict").master(2).create(&srv).await;
    let mut admin = srv.groups(1, 1, true);
    for paths in [
        &["name"][..],
        &["etag"],
        &["kind"],
        &["storage_used_bytes"],
        &["create_time"],
        &["features.photos"],
        &["mailing_list.address"],
        &["displayName"],
        &["DISPLAY_NAME"],
        &[""],
        &["description", "no_such_field"],
        &["*", "bogus"],
    ] {
        let body = pb::Group {
            display_name: "Changed".into(),
            description: "changed".into(),
            ..patch(&g.name)
        };
        let err = try_update(&mut admin, body, paths).await.unwrap_err();
        assert_bad_field(&err, "update_mask");
    }
    assert_eq!(get(&srv, &g.name).await, g);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_empty_mask_is_invalid() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let g = group(1, "Unmasked").master(2).create(&srv).await;
    let mut admin = srv.groups(1, 1, true);
    let body = pb::Group {
        description: "changed".into(),
        ..patch(&g.name)
    };
    let err = try_update(&mut admin, body.clone(), &[]).await.unwrap_err();
    assert_bad_field(&err, "update_mask");
    let err = admin
        .update_group(pb::UpdateGroupRequest {
            group: Some(body),
            update_mask: None,
        })
        .await
        .unwrap_err();
    assert_bad_field(&err, "update_mask");
    assert_eq!(get(&srv, &g.name).await, g);
}
