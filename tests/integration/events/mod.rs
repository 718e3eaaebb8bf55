//! The change feed (R11, R12, R18 delivered): WatchEvents, the cursor's guarantees, the audit
//! log, retention, and the JetStream relay.

mod feed;
mod recipients;
mod relay;

use std::time::Duration;

use group_service::grpc::pb;
use tokio_stream::StreamExt;
use tonic::Streaming;

use crate::harness::*;

/// A tenant with users 1 (admin) to `users`.
async fn tenant_with_users(srv: &TestServer, tenant: i64, users: i64) {
    srv.tenant(tenant, pb::Plan::Paid, pb::GroupCreation::AllMembers)
        .await;
    for u in 1..=users {
        srv.user(tenant, u, u == 1).await;
    }
}

async fn watch(srv: &TestServer, tenant: i64, after: i64) -> Streaming<pb::WatchEventsResponse> {
    srv.events(tenant)
        .watch_events(pb::WatchEventsRequest {
            parent: format!("tenants/{tenant}"),
            after_cursor: after,
        })
        .await
        .expect("watch")
        .into_inner()
}

/// The next item of a stream; fails after `within`.
async fn next_item(
    stream: &mut Streaming<pb::WatchEventsResponse>,
    within: Duration,
) -> pb::watch_events_response::Item {
    let item = tokio::time::timeout(within, stream.next())
        .await
        .expect("an item in time")
        .expect("the stream goes on")
        .expect("an item, not an error");
    item.item.expect("an event or a checkpoint")
}

/// Events of the stream until the one at `cursor` (checkpoints skipped).
async fn events_until(
    stream: &mut Streaming<pb::WatchEventsResponse>,
    cursor: i64,
) -> Vec<pb::Event> {
    let mut out = Vec::new();
    while out.last().is_none_or(|e: &pb::Event| e.cursor < cursor) {
        if let pb::watch_events_response::Item::Event(e) =
            next_item(stream, Duration::from_secs(20)).await
        {
            out.push(e);
        }
    }
    out
}

/// The tenant's newest cursor, from the audit log (newest first).
async fn newest_cursor(srv: &TestServer, tenant: i64) -> i64 {
    let page = srv
        .events(tenant)
        .list_audit_events(pb::ListAuditEventsRequest {
            parent: format!("tenants/{tenant}"),
            page_size: 1,
            ..Default::default()
        })
        .await
        .expect("audit")
        .into_inner();
    page.events.first().map_or(0, |e| e.cursor)
}

/// Group `name` of tenant 1 (master 1) and one `members.added` per user of `users`, each its
/// own call: one event per write.
async fn group_adding(srv: &TestServer, name: &str, users: std::ops::Range<i64>) -> String {
    let g = crate::fixtures::group(1, name)
        .master(1)
        .create(srv)
        .await
        .name;
    for u in users {
        let member = vec![crate::fixtures::user_of(1, u)];
        crate::fixtures::add(&mut srv.membership(1, 1, true), &g, member)
            .await
            .unwrap();
    }
    g
}

/// GetEarliestCursor as a service of the tenant.
async fn earliest_cursor(srv: &TestServer, tenant: i64) -> i64 {
    srv.events(tenant)
        .get_earliest_cursor(pb::GetEarliestCursorRequest {
            parent: format!("tenants/{tenant}"),
        })
        .await
        .expect("earliest cursor")
        .into_inner()
        .cursor
}
