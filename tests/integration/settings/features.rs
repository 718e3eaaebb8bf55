//! R08: message-room features. Note, event, task and folder need message.

use group_service::grpc::pb;
use tonic::Code;

use crate::fixtures::*;
use crate::harness::*;

/// A change of `name`'s features.
fn with_features(name: &str, f: pb::Features) -> pb::Group {
    pb::Group {
        features: Some(f),
        ..patch(name)
    }
}

/// Creates a group of tenant 1 (master 2) with these features.
async fn room_group(srv: &TestServer, name: &str, f: pb::Features) -> pb::Group {
    group(1, name)
        .master(2)
        .with(|g| g.features = Some(f))
        .create(srv)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r08_feature_without_message_at_create_is_message_required() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    for (i, f) in [
        features(false, true, false, false, false),
        features(false, false, true, false, false),
        features(false, false, false, true, false),
        features(false, false, false, false, true),
        features(false, true, true, true, true),
    ]
    .into_iter()
    .enumerate()
    {
        let err = group(1, &format!("No message {i}"))
            .master(2)
            .with(|g| g.features = Some(f))
            .try_create(&srv)
            .await
            .unwrap_err();
        assert_reason(&err, Code::FailedPrecondition, "MESSAGE_REQUIRED");
    }
    assert_eq!(srv.group_count(1).await, 0);
    // With message, every combination is fine.
    let all = features(true, true, true, true, true);
    let g = room_group(&srv, "Everything", all).await;
    assert_eq!(g.features, Some(all));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r08_enabling_a_feature_without_message_at_update_is_message_required() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let g = group(1, "Silent").master(2).create(&srv).await;
    assert_eq!(g.features, Some(pb::Features::default()));
    let mut admin = srv.groups(1, 1, true);
    for (path, f) in [
        ("features.note", features(false, true, false, false, false)),
        ("features.event", features(false, false, true, false, false)),
        ("features.task", features(false, false, false, true, false)),
        (
            "features.folder",
            features(false, false, false, false, true),
        ),
        ("features", features(false, true, false, false, false)),
        ("features", features(false, false, false, false, true)),
    ] {
        let err = try_update(&mut admin, with_features(&g.name, f), &[path])
            .await
            .unwrap_err();
        assert_reason(&err, Code::FailedPrecondition, "MESSAGE_REQUIRED");
    }
    assert_eq!(get(&srv, &g.name).await, g);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r08_enabling_one_feature_by_its_path_keeps_message_on() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let g = room_group(&srv, "Chatty", features(true, false, false, false, false)).await;
    let mut admin = srv.groups(1, 1, true);
    // The body carries only the named sub-field, as a client following AIP-134 sends it:
    // `features.message` is false in it but not in the mask, so it must not matter.
    let note = with_features(&g.name, features(false, true, false, false, false));
    let got = try_update(&mut admin, note, &["features.note"])
        .await
        .unwrap();
    assert_eq!(
        got.features,
        Some(features(true, true, false, false, false))
    );
    let event_task = with_features(&g.name, features(false, false, true, true, false));
    let got = try_update(&mut admin, event_task, &["features.event", "features.task"])
        .await
        .unwrap();
    assert_eq!(got.features, Some(features(true, true, true, true, false)));
    assert_eq!(get(&srv, &g.name).await, got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r08_turning_message_off_turns_the_others_off() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let g = room_group(&srv, "Full room", features(true, true, true, true, true)).await;
    let mut admin = srv.groups(1, 1, true);
    // The body says nothing about the others: turning message off is enough.
    let off = with_features(&g.name, features(false, false, false, false, false));
    let got = try_update(&mut admin, off, &["features.message"])
        .await
        .unwrap();
    assert_eq!(got.features, Some(pb::Features::default()));
    assert_eq!(get(&srv, &g.name).await, got);
    // Turning message back on turns only message on.
    let on = with_features(&g.name, features(true, false, false, false, false));
    let got = try_update(&mut admin, on, &["features.message"])
        .await
        .unwrap();
    assert_eq!(
        got.features,
        Some(features(true, false, false, false, false))
    );
}
