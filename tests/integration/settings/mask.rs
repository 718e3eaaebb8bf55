//! UpdateGroup's field mask (AIP-134; R06, R25): only the named fields change, `*` replaces
//! every updatable one, a mask naming anything else changes nothing, and an omitted mask
//! changes the populated fields.

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
    let changed = pb::Group {
        description: "after".into(),
        ..g.clone()
    };
    assert_changed_to(&srv, &g, &got, changed).await;
}

/// `got`, the answer of an update of `before`, is `changed` with a new etag and update time,
/// and is what is stored.
async fn assert_changed_to(
    srv: &TestServer,
    before: &pb::Group,
    got: &pb::Group,
    changed: pb::Group,
) {
    let expected = pb::Group {
        etag: got.etag.clone(),
        update_time: got.update_time,
        ..changed
    };
    assert_eq!(*got, expected);
    assert_ne!(got.etag, before.etag);
    assert_eq!(get(srv, &before.name).await, *got);
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
    // A mask that is present but names nothing is not an omitted one.
    let body = pb::Group {
        description: "changed".into(),
        ..patch(&g.name)
    };
    let err = try_update(&mut admin, body, &[]).await.unwrap_err();
    assert_bad_field(&err, "update_mask");
    // An omitted mask with nothing populated but the name and the etag.
    let err = admin
        .update_group(without_mask(pb::Group {
            etag: g.etag.clone(),
            ..patch(&g.name)
        }))
        .await
        .unwrap_err();
    assert_bad_field(&err, "update_mask");
    assert_eq!(get(&srv, &g.name).await, g);
}

fn without_mask(group: pb::Group) -> pb::UpdateGroupRequest {
    pb::UpdateGroupRequest {
        group: Some(group),
        update_mask: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r06_omitted_mask_updates_the_populated_fields() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let g = GroupBuilder::with_spec(
        1,
        pb::Group {
            description: "before".into(),
            photo_uri: "https://cdn.example.com/before.png".into(),
            features: Some(features(true, true, true, false, false)),
            notify_all_members: true,
            mailing_list: Some(mailing_list("implied")),
            ..group_named("Implied")
        },
    )
    .master(2)
    .create(&srv)
    .await;
    let body = pb::Group {
        // Populated: a non-empty string, a non-zero enum, a present message (replaced whole:
        // note and event go off).
        description: "after".into(),
        visibility: pb::Visibility::Public as i32,
        features: Some(features(true, false, false, false, true)),
        external_key: "implied-1".into(),
        // Not populated, so kept: an empty string, a false bool, an absent message.
        display_name: String::new(),
        photo_uri: String::new(),
        notify_all_members: false,
        mailing_list: None,
        // Not updatable: ignored as by `*`.
        kind: pb::GroupKind::External as i32,
        storage_used_bytes: 77,
        etag: g.etag.clone(),
        ..patch(&g.name)
    };
    let got = srv
        .groups(1, 1, true)
        .update_group(without_mask(body))
        .await
        .unwrap()
        .into_inner();
    let changed = pb::Group {
        description: "after".into(),
        visibility: pb::Visibility::Public as i32,
        features: Some(features(true, false, false, false, true)),
        external_key: "implied-1".into(),
        ..g.clone()
    };
    assert_changed_to(&srv, &g, &got, changed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r06_omitted_mask_takes_a_group_read_and_sent_back() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let g = group(1, "Round trip").master(2).create(&srv).await;
    let mut admin = srv.groups(1, 1, true);
    // Read, change one field, send the whole group back: its output-only fields are ignored.
    let mut body = get(&srv, &g.name).await;
    body.description = "edited".into();
    let got = admin
        .update_group(without_mask(body.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.description, "edited");
    assert_eq!(got.display_name, g.display_name);
    assert_eq!(got.create_time, g.create_time);
    // The etag it carried is now stale.
    let err = admin.update_group(without_mask(body)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Aborted, "{err:?}");
    assert_eq!(get(&srv, &g.name).await, got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r06_omitted_mask_needs_the_rights_of_the_populated_fields() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let g = group(1, "Granted").master(2).create(&srv).await;
    let mut master = srv.groups(1, 2, false);
    // notify_all_members is the admin's grant (R06): populating it is naming it.
    let body = pb::Group {
        description: "by the master".into(),
        notify_all_members: true,
        ..patch(&g.name)
    };
    let err = master.update_group(without_mask(body)).await.unwrap_err();
    assert_reason(&err, tonic::Code::PermissionDenied, "NOT_GROUP_MANAGER");
    assert_eq!(get(&srv, &g.name).await, g);
    let body = pb::Group {
        description: "by the master".into(),
        ..patch(&g.name)
    };
    let got = master
        .update_group(without_mask(body))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.description, "by the master");
}
