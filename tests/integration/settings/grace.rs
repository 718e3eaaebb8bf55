//! The message grace period: turning message off records when the group's message-room data
//! is purged (`message_purge_time`, 30 days later unless configured); turning it back on in
//! time cancels the purge and keeps the data; at that time the purge runs with a
//! `message_data.purged` event. The clock is the server's own, moved by the test.

use std::time::Duration;

use group_service::grpc::pb;

use crate::fixtures::*;
use crate::harness::*;

const DAY: Duration = Duration::from_secs(86_400);

/// A group of tenant 1 with message and note on, 100 bytes of message data and 50 of note.
async fn room_with_data(srv: &TestServer) -> pb::Group {
    let g = group(1, "Room")
        .master(2)
        .with(|g| g.features = Some(features(true, true, false, false, false)))
        .create(srv)
        .await;
    reported(srv, &g.name, "message", 100).await;
    let g = reported(srv, &g.name, "note", 50).await;
    assert_eq!(g.storage_used_bytes, 150);
    g
}

async fn set_message(srv: &TestServer, name: &str, on: bool) -> pb::Group {
    let body = pb::Group {
        features: Some(features(on, false, false, false, false)),
        ..patch(name)
    };
    try_update(&mut srv.groups(1, 1, true), body, &["features.message"])
        .await
        .expect("switch message")
}

fn micros(t: Option<prost_types::Timestamp>) -> i64 {
    let t = t.expect("a message purge time");
    t.seconds * 1_000_000 + i64::from(t.nanos) / 1000
}

async fn tenant_storage(srv: &TestServer) -> i64 {
    srv.groups(1, 1, true)
        .get_tenant_usage(pb::GetTenantUsageRequest {
            name: "tenants/1".into(),
        })
        .await
        .expect("tenant usage")
        .into_inner()
        .storage_used_bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r08_message_off_shows_the_purge_time_and_back_on_in_time_keeps_the_data() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let g = room_with_data(&srv).await;
    assert_eq!(g.message_purge_time, None);
    let before = srv.clock().now_micros();
    let off = set_message(&srv, &g.name, false).await;
    let after = srv.clock().now_micros();
    let due = micros(off.message_purge_time);
    let grace = 30 * 86_400 * 1_000_000;
    assert!((before + grace..=after + grace).contains(&due), "due {due}");
    assert_eq!(
        get(&srv, &g.name).await.message_purge_time,
        off.message_purge_time
    );
    assert_eq!(
        off.features,
        Some(pb::Features::default()),
        "R08: note went off with it"
    );

    srv.clock().advance(29 * DAY);
    srv.run_timers().await;
    let on = set_message(&srv, &g.name, true).await;
    assert_eq!(on.message_purge_time, None, "the purge is cancelled");
    assert_eq!(on.storage_used_bytes, 150, "the data is kept");
    srv.clock().advance(2 * DAY);
    srv.run_timers().await;
    assert_eq!(get(&srv, &g.name).await.storage_used_bytes, 150);
    assert!(
        payloads(&srv, &g.name, "message_data.purged")
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r08_the_purge_runs_when_the_grace_period_ends() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let g = room_with_data(&srv).await;
    let tenant_before = tenant_storage(&srv).await;
    set_message(&srv, &g.name, false).await;
    srv.clock().advance(30 * DAY - Duration::from_secs(60));
    srv.run_timers().await;
    assert!(
        payloads(&srv, &g.name, "message_data.purged")
            .await
            .is_empty(),
        "not yet"
    );

    srv.clock().advance(Duration::from_secs(120));
    srv.run_timers().await;
    let purged = payloads(&srv, &g.name, "message_data.purged").await;
    assert_eq!(purged.len(), 1, "{purged:?}");
    let bytes: Vec<(String, i64)> = purged[0]["purged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["feature"].as_str().unwrap().to_owned(),
                p["bytes"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(bytes.contains(&("message".into(), 100)) && bytes.contains(&("note".into(), 50)));
    let now = get(&srv, &g.name).await;
    assert_eq!((now.storage_used_bytes, now.message_purge_time), (0, None));
    assert_eq!(tenant_storage(&srv).await, tenant_before - 150);
    srv.run_timers().await;
    assert_eq!(
        payloads(&srv, &g.name, "message_data.purged").await.len(),
        1,
        "purged once"
    );
    // Message back on: a fresh room, nothing to restore.
    let on = set_message(&srv, &g.name, true).await;
    assert_eq!((on.storage_used_bytes, on.message_purge_time), (0, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r08_message_back_on_after_the_period_purges_first() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let g = room_with_data(&srv).await;
    set_message(&srv, &g.name, false).await;
    srv.clock().advance(31 * DAY);
    let on = set_message(&srv, &g.name, true).await;
    assert_eq!((on.storage_used_bytes, on.message_purge_time), (0, None));
    let kinds: Vec<String> = events(&srv, &g.name)
        .await
        .into_iter()
        .map(|e| e.kind)
        .collect();
    let purged = kinds
        .iter()
        .position(|k| k == "message_data.purged")
        .expect("{kinds:?}");
    assert!(
        purged < kinds.len() - 1,
        "the purge comes before the update: {kinds:?}"
    );
    srv.run_timers().await;
    assert_eq!(
        payloads(&srv, &g.name, "message_data.purged").await.len(),
        1
    );
}

/// (kind, actor) of tenant 1's events after the group's creation and data reports, as
/// WatchEvents gives them.
async fn later_events(srv: &TestServer) -> Vec<(String, String)> {
    kinds_and_actors(srv, 1)
        .await
        .into_iter()
        .filter(|(kind, _)| kind != "group.created" && kind != "feature_usage.reported")
        .collect()
}

/// R11: the purge at the end of the grace period is the service's own work: its
/// `message_data.purged` has no actor, whether the timers run it or a late "message on" finds
/// it due (that update itself has its user).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_message_grace_purge_events_have_no_actor() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let by_timers = room_with_data(&srv).await;
    set_message(&srv, &by_timers.name, false).await;
    srv.clock().advance(31 * DAY);
    srv.run_timers().await;
    assert_eq!(
        later_events(&srv).await,
        [
            pair("group.updated", "tenants/1/users/1"),
            pair("message_data.purged", ""),
        ]
    );

    let by_update = group(1, "Late room")
        .master(2)
        .with(|g| g.features = Some(features(true, false, false, false, false)))
        .create(&srv)
        .await;
    reported(&srv, &by_update.name, "message", 10).await;
    set_message(&srv, &by_update.name, false).await;
    srv.clock().advance(31 * DAY);
    set_message(&srv, &by_update.name, true).await;
    assert_eq!(
        later_events(&srv).await[2..],
        [
            pair("group.updated", "tenants/1/users/1"),
            pair("message_data.purged", ""),
            pair("group.updated", "tenants/1/users/1"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r08_the_grace_period_is_configurable() {
    let Some(srv) = TestServer::start_setup(|s| s.message_grace = DAY).await else {
        return;
    };
    srv.company(1, 2).await;
    let g = room_with_data(&srv).await;
    let before = srv.clock().now_micros();
    let off = set_message(&srv, &g.name, false).await;
    let due = micros(off.message_purge_time);
    assert!((before + 86_400_000_000..before + 86_401_000_000).contains(&due));
    srv.clock().advance(DAY + Duration::from_secs(1));
    srv.run_timers().await;
    assert_eq!(get(&srv, &g.name).await.storage_used_bytes, 0);
}
