//! WatchEvents and its cursor: replay, live follow, checkpoints, resumption, retention.

use std::collections::BTreeSet;
use std::time::Duration;

use group_service::domain::Service;
use group_service::domain::model::{Event, EventId, TenantId, next_id};
use group_service::domain::service::{Database, Mode};
use group_service::grpc::pb;
use pb::watch_events_response::Item;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_types::StatusExt;

use super::*;
use crate::fixtures::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_watch_replays_in_order_then_follows_live_with_checkpoints() {
    let Some(srv) = server().await else { return };
    tenant_with_users(&srv, 1, 5).await;
    let g = group(1, "Feed").master(2).create(&srv).await.name;
    add(&mut srv.membership(1, 1, true), &g, vec![user_of(1, 3)])
        .await
        .unwrap();

    let mut stream = watch(&srv, 1, 0).await;
    let replayed = events_until(&mut stream, 2).await;
    let kinds: Vec<&str> = replayed.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["group.created", "members.added"]);
    assert_eq!(replayed[1].cursor, 2);
    assert_eq!(replayed[1].group, g);
    assert_eq!(replayed[1].actor, "tenants/1/users/1");
    let payload: serde_json::Value = serde_json::from_str(&replayed[1].payload_json).unwrap();
    assert_eq!(payload["group"], g.as_str(), "{payload}");

    // Live: a commit wakes the follower.
    add(&mut srv.membership(1, 1, true), &g, vec![user_of(1, 4)])
        .await
        .unwrap();
    match next_item(&mut stream, Duration::from_secs(4)).await {
        Item::Event(e) => assert_eq!((e.cursor, e.kind.as_str()), (3, "members.added")),
        other => panic!("expected the new event, got {other:?}"),
    }
    // Idle: a checkpoint with the current cursor within 5 s (and a margin).
    match next_item(&mut stream, Duration::from_secs(7)).await {
        Item::Checkpoint(c) => assert_eq!(c.cursor, 3),
        other => panic!("expected a checkpoint, got {other:?}"),
    }
}

/// Every tenant's commits wake every follower; an idle tenant's follower still gets its
/// checkpoint within 5 s while another tenant writes without pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_an_idle_feed_gets_its_checkpoint_while_other_tenants_write() {
    let Some(srv) = server().await else { return };
    tenant_with_users(&srv, 1, 1).await;
    tenant_with_users(&srv, 2, 3).await;
    let g = group(2, "Busy elsewhere").master(1).create(&srv).await.name;
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let writer = {
        let (mut c, g) = (srv.membership(2, 1, true), g.clone());
        tokio::spawn(async move {
            let mut writes = 0;
            while !*stopped.borrow_and_update() {
                let who = vec![user_of(2, 2)];
                if writes % 2 == 0 {
                    add(&mut c, &g, who).await.unwrap();
                } else {
                    remove(&mut c, &g, who).await.unwrap();
                }
                writes += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            writes
        })
    };
    let mut stream = watch(&srv, 1, 0).await;
    let item = next_item(&mut stream, Duration::from_secs(7)).await;
    stop.send(true).unwrap();
    assert!(writer.await.unwrap() > 20, "the other tenant kept writing");
    assert_eq!(item, Item::Checkpoint(pb::Cursor { cursor: 0 }));
}

/// A writer that adds user `user` of tenant 1 to `group` and removes them again, `writes`
/// changes in all, as the admin: one event per write.
fn churn(srv: &TestServer, group: &str, user: i64, writes: i64) -> tokio::task::JoinHandle<()> {
    let (mut c, g) = (srv.membership(1, 1, true), group.to_owned());
    tokio::spawn(async move {
        for i in 0..writes {
            let who = vec![user_of(1, user)];
            if i % 2 == 0 {
                add(&mut c, &g, who).await.unwrap();
            } else {
                remove(&mut c, &g, who).await.unwrap();
            }
        }
    })
}

/// 10,000 acknowledged writes from 16 writers; a watcher that drops its stream every 700
/// events and resumes from its last cursor sees each event exactly once, in cursor order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_resuming_watcher_sees_every_event_once_across_10000_concurrent_writes() {
    const WRITERS: i64 = 16;
    const PER_WRITER: i64 = 625;
    let Some(srv) = server().await else { return };
    tenant_with_users(&srv, 1, WRITERS + 1).await;
    let mut groups = Vec::new();
    for i in 0..4 {
        groups.push(
            group(1, &format!("Busy {i}"))
                .master(1)
                .create(&srv)
                .await
                .name,
        );
    }
    let setup = newest_cursor(&srv, 1).await;

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| churn(&srv, &groups[(w % 4) as usize], w + 2, PER_WRITER))
        .collect();
    let total = setup + WRITERS * PER_WRITER;
    let (mut seen, mut cursor, mut reconnects) = (Vec::new(), 0, 0);
    while cursor < total {
        let mut stream = watch(&srv, 1, cursor).await;
        reconnects += 1;
        let mut taken = 0;
        while taken < 700 && cursor < total {
            match next_item(&mut stream, Duration::from_secs(30)).await {
                Item::Event(e) => {
                    assert_eq!(e.cursor, cursor + 1, "no gap, no repeat");
                    cursor = e.cursor;
                    seen.push(e.name);
                    taken += 1;
                }
                Item::Checkpoint(c) => assert_eq!(c.cursor, cursor),
            }
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(
        newest_cursor(&srv, 1).await,
        total,
        "one event per acknowledged write"
    );
    assert_eq!(seen.len() as i64, total);
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), seen.len());
    assert!(reconnects > 10, "{reconnects}");
}

/// A snapshot (the audit log at its newest cursor), then a watch from that cursor while
/// writes go on: together they hold every event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_snapshot_then_watch_from_its_cursor_loses_nothing() {
    let Some(srv) = server().await else { return };
    tenant_with_users(&srv, 1, 30).await;
    let g = group_adding(&srv, "Snap", 2..12).await;
    let at = newest_cursor(&srv, 1).await;
    let snapshot = audit_all(&srv, 1, "").await;
    let later = {
        let (mut c, g) = (srv.membership(1, 1, true), g.clone());
        tokio::spawn(async move {
            for u in 12..30 {
                add(&mut c, &g, vec![user_of(1, u)]).await.unwrap();
            }
        })
    };
    let mut stream = watch(&srv, 1, at).await;
    later.await.unwrap();
    let end = newest_cursor(&srv, 1).await;
    let followed = events_until(&mut stream, end).await;
    let mut cursors: Vec<i64> = snapshot.iter().map(|e| e.cursor).collect();
    cursors.reverse();
    cursors.extend(followed.iter().map(|e| e.cursor));
    assert_eq!(cursors, (1..=end).collect::<Vec<_>>());
    assert_eq!(end, at + 18);
}

pub(super) async fn audit_all(srv: &TestServer, tenant: i64, filter: &str) -> Vec<pb::Event> {
    let mut c = srv.events(tenant);
    let (mut out, mut token) = (Vec::new(), String::new());
    loop {
        let page = c
            .list_audit_events(pb::ListAuditEventsRequest {
                parent: format!("tenants/{tenant}"),
                filter: filter.into(),
                page_size: 4,
                page_token: token,
            })
            .await
            .expect("audit page")
            .into_inner();
        out.extend(page.events);
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_a_cursor_older_than_retention_is_out_of_range_with_the_earliest_cursor() {
    let Some(srv) = server().await else { return };
    tenant_with_users(&srv, 1, 6).await;
    let g = group_adding(&srv, "Old", 2..6).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let service = Service::new(srv.store.clone(), b"k");
    assert_eq!(
        service.prune_events(Duration::ZERO, false).await.unwrap(),
        1
    );

    let err = srv
        .events(1)
        .watch_events(pb::WatchEventsRequest {
            parent: "tenants/1".into(),
            after_cursor: 2,
        })
        .await
        .unwrap_err();
    assert_reason(&err, Code::OutOfRange, "CURSOR_EXPIRED");
    let info = err.get_error_details().error_info().cloned().unwrap();
    assert_eq!(info.metadata["earliest_cursor"], "5");
    assert_eq!(earliest_cursor(&srv, 1).await, 5);
    assert!(
        audit_all(&srv, 1, "").await.is_empty(),
        "pruned events are gone"
    );
    let mut stream = watch(&srv, 1, 5).await;
    add(&mut srv.membership(1, 1, true), &g, vec![user_of(1, 6)])
        .await
        .unwrap();
    assert_eq!(events_until(&mut stream, 6).await.len(), 1);
}

/// A cursor past the tenant's last (another database's or another tenant's) fails the call at
/// once with OUT_OF_RANGE `CURSOR_AHEAD`, the last cursor in the details; the last cursor
/// itself is a good resume point.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_refuses_a_cursor_past_the_last_event() {
    let Some(srv) = server().await else { return };
    tenant_with_users(&srv, 1, 4).await;
    tenant_with_users(&srv, 2, 1).await;
    group_adding(&srv, "Ahead", 2..4).await;
    let last = newest_cursor(&srv, 1).await;
    assert_eq!(last, 3);
    for (tenant, after, last) in [
        (1, last + 1, last),
        (1, 1_000_000, last),
        (1, 1 << 62, last),
        (1, i64::MAX, last),
        // Tenant 1's cursor where tenant 2 has no event.
        (2, 1, 0),
    ] {
        let mut client = srv.events(tenant);
        let call = client.watch_events(pb::WatchEventsRequest {
            parent: format!("tenants/{tenant}"),
            after_cursor: after,
        });
        let err = tokio::time::timeout(Duration::from_secs(2), call)
            .await
            .expect("refused at once, not after waiting")
            .unwrap_err();
        assert_reason(&err, Code::OutOfRange, "CURSOR_AHEAD");
        let info = err.get_error_details().error_info().cloned().unwrap();
        assert_eq!(info.metadata["last_cursor"], last.to_string(), "{after}");
        let bad = err.get_error_details().bad_request().cloned().unwrap();
        assert_eq!(bad.field_violations[0].field, "after_cursor");
    }
    let mut stream = watch(&srv, 1, last).await;
    match next_item(&mut stream, Duration::from_secs(7)).await {
        Item::Checkpoint(c) => assert_eq!(c.cursor, last),
        other => panic!("expected a checkpoint, got {other:?}"),
    }
    // Tenant 2's own last cursor, 0, opens its feed.
    watch(&srv, 2, 0).await;
}

/// Every cursor the feed gives, taken the moment its event arrives while writers commit
/// beside it, is a cursor a new WatchEvents accepts: the refusal of cursors past the last
/// never catches one that committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_accepts_every_cursor_it_gave_while_writes_race() {
    const WRITERS: i64 = 4;
    const PER_WRITER: i64 = 50;
    let Some(srv) = server().await else { return };
    tenant_with_users(&srv, 1, WRITERS + 1).await;
    let g = group(1, "Racing").master(1).create(&srv).await.name;
    let mut stream = watch(&srv, 1, 0).await;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| churn(&srv, &g, w + 2, PER_WRITER))
        .collect();
    let end = 1 + WRITERS * PER_WRITER;
    let mut resumed = 0;
    let mut cursor = 0;
    while cursor < end {
        cursor = match next_item(&mut stream, Duration::from_secs(20)).await {
            Item::Event(e) => e.cursor,
            Item::Checkpoint(c) => c.cursor,
        };
        srv.events(1)
            .watch_events(pb::WatchEventsRequest {
                parent: "tenants/1".into(),
                after_cursor: cursor,
            })
            .await
            .unwrap_or_else(|e| panic!("cursor {cursor} refused: {e:?}"));
        resumed += 1;
    }
    for w in writers {
        w.await.unwrap();
    }
    assert!(resumed >= end, "{resumed} resumes");
}

/// Where a relay runs, retention never removes an event it has yet to publish: only the run
/// of oldest events that are old and published goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_retention_keeps_every_unpublished_event() {
    let Some(srv) = server().await else { return };
    tenant_with_users(&srv, 1, 5).await;
    group_adding(&srv, "Kept", 2..5).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let service = Service::new(srv.store.clone(), b"k");
    assert_eq!(service.prune_events(Duration::ZERO, true).await.unwrap(), 0);
    assert_eq!(
        audit_all(&srv, 1, "").await.len(),
        4,
        "nothing published, nothing pruned"
    );
    // Events 1, 2 and 4 published; 3 not: only 1 and 2 may go.
    let feed = srv
        .store
        .read(|tx| Box::pin(async move { tx.events_after(TenantId(1), 0, 10).await }))
        .await
        .unwrap();
    let published: Vec<(TenantId, EventId)> = [0, 1, 3]
        .iter()
        .map(|i| (feed[*i].tenant, feed[*i].id))
        .collect();
    service.relay_published(&published).await.unwrap();
    assert_eq!(service.prune_events(Duration::ZERO, true).await.unwrap(), 1);
    let kept: Vec<i64> = audit_all(&srv, 1, "")
        .await
        .iter()
        .map(|e| e.cursor)
        .collect();
    assert_eq!(kept, [4, 3]);
    assert_eq!(earliest_cursor(&srv, 1).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r24_the_feed_is_for_the_tenants_services_and_the_audit_log_for_its_admins() {
    let Some(srv) = server().await else { return };
    tenant_with_users(&srv, 1, 3).await;
    tenant_with_users(&srv, 2, 1).await;
    let g = group(1, "Private").master(2).create(&srv).await.name;
    add(&mut srv.membership(1, 2, false), &g, vec![user_of(1, 3)])
        .await
        .unwrap();
    let watch_as = |token: String| {
        let mut c = srv.events_as(Some(token));
        async move {
            c.watch_events(pb::WatchEventsRequest {
                parent: "tenants/1".into(),
                after_cursor: 0,
            })
            .await
            .map(|_| ())
        }
    };
    for token in [
        srv.token(1, "2", false, false),
        srv.token(2, "indexer", false, true),
    ] {
        let err = watch_as(token).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    }
    let bad = srv
        .events(1)
        .watch_events(pb::WatchEventsRequest {
            parent: "tenants/1".into(),
            after_cursor: -1,
        })
        .await
        .unwrap_err();
    assert_bad_field(&bad, "after_cursor");

    let audit_as = |tenant: i64, user: i64, admin: bool, filter: &str| {
        let mut c = srv.events_as(Some(srv.token(tenant, &user.to_string(), admin, false)));
        let filter = filter.to_owned();
        async move {
            c.list_audit_events(pb::ListAuditEventsRequest {
                parent: "tenants/1".into(),
                filter,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().events)
        }
    };
    let all = audit_as(1, 1, true, "").await.unwrap();
    assert_eq!(all.len(), 2);
    let by_master = audit_as(
        1,
        1,
        true,
        "actor = \"tenants/1/users/2\" AND kind = \"members.added\"",
    )
    .await
    .unwrap();
    assert_eq!(by_master.len(), 1);
    assert_eq!(by_master[0].group, g);
    let filter = format!("group = \"{g}\" AND create_time >= \"2000-01-01T00:00:00Z\"");
    assert_eq!(audit_as(1, 1, true, &filter).await.unwrap().len(), 2);
    let err = audit_as(1, 2, false, "").await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = audit_as(2, 1, true, "").await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = audit_as(1, 1, true, "owner = \"x\"").await.unwrap_err();
    assert_bad_field(&err, "filter");
}

fn event(tenant: i64) -> Event {
    Event {
        tenant: TenantId(tenant),
        id: EventId(next_id()),
        seq: 0,
        group: None,
        kind: "test.ordered".into(),
        payload: "{}".into(),
        create_time: 0,
        actor: String::new(),
        own_account: false,
    }
}

/// A later sequence number cannot commit before an earlier one: the second writer gets its
/// number only after the first commits, so a follower that read N+1 can never miss N.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_a_later_cursor_never_commits_before_an_earlier_one() {
    let Some(srv) = server().await else { return };
    let mut first = srv.store.begin(Mode::Write).await.unwrap();
    first.insert_event(&event(7)).await.unwrap();
    first.announce("").await.unwrap();
    let store = srv.store.clone();
    let second = tokio::spawn(async move {
        let mut t = store.begin(Mode::Write).await.unwrap();
        t.insert_event(&event(7)).await.unwrap();
        t.announce("").await.unwrap();
        t.commit().await.unwrap();
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "the second writer waits for the first to commit"
    );
    let visible = srv
        .store
        .read(|tx| Box::pin(async move { tx.events_after(TenantId(7), 0, 10).await }))
        .await
        .unwrap();
    assert!(
        visible.is_empty(),
        "nothing is visible before the first commit"
    );
    first.commit().await.unwrap();
    second.await.unwrap();
    let events = srv
        .store
        .read(|tx| Box::pin(async move { tx.events_after(TenantId(7), 0, 10).await }))
        .await
        .unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_watch_stream_survives_idle_clients_and_ends_with_the_server() {
    let Some(mut srv) = server().await else {
        return;
    };
    tenant_with_users(&srv, 1, 2).await;
    let mut stream = watch(&srv, 1, 0).await;
    srv.shutdown().await;
    let end = tokio::time::timeout(Duration::from_secs(10), stream.next()).await;
    assert!(
        matches!(end, Ok(None) | Ok(Some(Err(_)))),
        "the stream ends when the server stops: {end:?}"
    );
}
