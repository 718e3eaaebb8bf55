//! R11 through the feed: each kind names the users to tell, resolved through teams and nested
//! groups, when the group notifies all members; nobody when it does not.

use std::collections::BTreeSet;

use group_service::grpc::pb;

use super::*;
use crate::fixtures::*;

/// User ids of an event's `notify`: `{tenant, user}` objects or `[tenant, user]` pairs.
fn notified(e: &pb::Event) -> BTreeSet<i64> {
    let payload: serde_json::Value = serde_json::from_str(&e.payload_json).unwrap();
    payload["notify"]
        .as_array()
        .unwrap_or_else(|| panic!("{} has no notify: {payload}", e.kind))
        .iter()
        .map(|u| {
            u.get("user")
                .or_else(|| u.get(1))
                .and_then(|v| v.as_i64())
                .unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_each_kind_notifies_the_users_it_concerns_through_teams_and_nesting() {
    let Some(srv) = server().await else { return };
    tenant_with_users(&srv, 1, 9).await;
    srv.team(1, 1, &[5, 6]).await;
    srv.team(1, 2, &[8]).await;
    let inner = group(1, "Inner")
        .master(2)
        .members([user_member(7), team_member(1)])
        .create(&srv)
        .await;
    let outer = group(1, "Outer")
        .master(2)
        .member(user_member(3))
        .with(|g| g.notify_all_members = true)
        .create(&srv)
        .await;
    let quiet = group(1, "Quiet").master(2).create(&srv).await.name;
    let start = newest_cursor(&srv, 1).await;

    let mut admin = srv.membership(1, 1, true);
    let o = outer.name.clone();
    add(
        &mut admin,
        &o,
        vec![team_member(2), group_member(&inner.name)],
    )
    .await
    .unwrap();
    remove(&mut admin, &o, vec![group_member(&inner.name)])
        .await
        .unwrap();
    add_masters(&mut admin, &o, &[3]).await.unwrap();
    remove_masters(&mut admin, &o, &[3]).await.unwrap();
    let current = srv.groups(1, 1, true).get_group(get_req(&o)).await.unwrap();
    let renamed = pb::Group {
        display_name: "Outer renamed".into(),
        ..current.into_inner()
    };
    try_update(&mut srv.groups(1, 1, true), renamed, &["display_name"])
        .await
        .unwrap();
    add(&mut admin, &quiet, vec![user_member(9)]).await.unwrap();
    srv.groups(1, 1, true)
        .delete_group(delete_req(&o, ""))
        .await
        .unwrap();

    let end = newest_cursor(&srv, 1).await;
    let mut stream = watch(&srv, 1, start).await;
    let events = events_until(&mut stream, end).await;
    let got: Vec<(&str, BTreeSet<i64>)> = events
        .iter()
        .map(|e| (e.kind.as_str(), notified(e)))
        .collect();
    let set = |ids: &[i64]| ids.iter().copied().collect::<BTreeSet<i64>>();
    assert_eq!(
        got,
        [
            // Team 2's user, and the nested group's users: master 2, 7, and team 1's 5 and 6.
            ("members.added", set(&[2, 5, 6, 7, 8])),
            ("members.removed", set(&[2, 5, 6, 7])),
            ("masters.added", set(&[3])),
            ("masters.removed", set(&[3])),
            // A rename and a deletion tell every member: 2, 3, and 8 through team 2.
            ("group.renamed", set(&[2, 3, 8])),
            ("members.added", set(&[])),
            ("group.deleted", set(&[2, 3, 8])),
        ]
    );
}
