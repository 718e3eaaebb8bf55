//! Etags (AIP-154; R06, R12): every change makes a new one, a stale one is ABORTED, and of
//! concurrent writers holding one etag exactly one gets through.

use group_service::grpc::pb;
use tonic::Code;

use crate::fixtures::*;
use crate::harness::*;

/// Updates `g` once per settable field, each time with the etag of the last answer; every
/// etag seen, the creation's first.
async fn update_every_field(admin: &mut Groups, g: &pb::Group) -> Vec<String> {
    let mut seen = vec![g.etag.clone()];
    let mut current = g.clone();
    for (i, paths) in [
        &["description"][..],
        &["display_name"],
        &["photo_uri"],
        &["visibility"],
        &["features"],
        &["mailing_list"],
        &["notify_all_members"],
        &["master_manages_features"],
    ]
    .iter()
    .enumerate()
    {
        let body = pb::Group {
            etag: current.etag.clone(),
            display_name: format!("Tagged {i}"),
            description: format!("version {i}"),
            photo_uri: format!("https://cdn.example.com/{i}.png"),
            visibility: pb::Visibility::Public as i32,
            features: Some(features(true, false, true, false, false)),
            mailing_list: Some(mailing_list("tagged")),
            notify_all_members: true,
            master_manages_features: true,
            ..patch(&g.name)
        };
        let next = try_update(admin, body, paths)
            .await
            .unwrap_or_else(|e| panic!("{paths:?}: {e:?}"));
        assert!(
            !seen.contains(&next.etag),
            "{paths:?} left the etag at {}",
            next.etag
        );
        seen.push(next.etag.clone());
        current = next;
    }
    seen
}

/// A description change of `name` that holds `etag`.
fn described(name: &str, etag: &str, description: &str) -> pb::Group {
    pb::Group {
        etag: etag.to_owned(),
        description: description.to_owned(),
        ..patch(name)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r06_stale_etag_is_aborted_and_the_etag_changes_on_every_change() {
    let Some(srv) = server().await else { return };
    srv.company(1, 3).await;
    let g = group(1, "Tagged").master(2).create(&srv).await;
    let mut admin = srv.groups(1, 1, true);
    let seen = update_every_field(&mut admin, &g).await;
    // Membership changes change the group too.
    add(
        &mut srv.membership(1, 1, true),
        &g.name,
        vec![user_member(3)],
    )
    .await
    .unwrap();
    let after_add = get(&srv, &g.name).await;
    assert!(
        !seen.contains(&after_add.etag),
        "adding a member kept the etag"
    );
    // Every etag seen before is stale now.
    for stale in &seen {
        let body = described(&g.name, stale, "lost update");
        let err = try_update(&mut admin, body, &["description"])
            .await
            .unwrap_err();
        assert_reason(&err, Code::Aborted, "ETAG_MISMATCH");
    }
    assert_eq!(get(&srv, &g.name).await, after_add);
    // The current one applies; an empty one means "no check".
    let body = described(&g.name, &after_add.etag, "checked");
    try_update(&mut admin, body, &["description"])
        .await
        .unwrap();
    let body = described(&g.name, "", "unchecked");
    let got = try_update(&mut admin, body, &["description"])
        .await
        .unwrap();
    assert_eq!(got.description, "unchecked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r06_concurrent_updates_with_one_etag_let_exactly_one_through() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let g = group(1, "Contended").master(2).create(&srv).await;
    let admin = srv.groups(1, 1, true);
    let answers = race(16, 0..16, |i| {
        let mut client = admin.clone();
        let body = described(&g.name, &g.etag, &format!("writer {i}"));
        async move { try_update(&mut client, body, &["description"]).await }
    })
    .await;
    let winners = winners(answers, Code::Aborted, "ETAG_MISMATCH");
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(get(&srv, &g.name).await, winners[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r12_delete_with_an_etag_from_before_an_update_is_aborted() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let g = group(1, "Short-lived").master(2).create(&srv).await;
    let mut admin = srv.groups(1, 1, true);
    let body = described(&g.name, "", "edited");
    let updated = try_update(&mut admin, body, &["description"])
        .await
        .unwrap();
    let err = admin
        .delete_group(delete_req(&g.name, &g.etag))
        .await
        .unwrap_err();
    assert_reason(&err, Code::Aborted, "ETAG_MISMATCH");
    assert_eq!(get(&srv, &g.name).await, updated);
    admin
        .delete_group(delete_req(&g.name, &updated.etag))
        .await
        .unwrap();
    assert_eq!(srv.group_count(1).await, 0);
}
