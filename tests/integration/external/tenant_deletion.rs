//! Deleting a tenant (R05, R12, R18): what it leaves in other tenants' groups, and the events.

use group_service::grpc::pb;

use super::{A, B, C, shared_group, three_companies};
use crate::fixtures::*;
use crate::harness::*;

async fn delete_tenant(srv: &TestServer, tenant: i64) {
    srv.directory(tenant)
        .delete_tenant(pb::DeleteTenantRequest { tenant_id: tenant })
        .await
        .expect("delete tenant");
}

/// A member company goes: its users leave the owner's external group with succession and a
/// `members.removed` event each, as deleted users do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r05_r18_a_deleted_member_company_leaves_with_succession_and_events() {
    let Some(srv) = server().await else { return };
    three_companies(&srv).await;
    let g = shared_group(&srv, "Joint Venture", &[3], &[(B, 2), (C, 2)]).await;
    let mut a2 = srv.membership(A, 2, false);
    add_master_users(&mut a2, &g, &[(B, 2)]).await.unwrap();
    remove_master_users(&mut srv.membership(B, 2, false), &g, &[(A, 2)])
        .await
        .unwrap();
    assert_eq!(master_keys(&srv, &g).await, [(B, 2)]);

    delete_tenant(&srv, B).await;
    let masters = master_keys(&srv, &g).await;
    assert_eq!(masters.len(), 1, "{masters:?}");
    assert_eq!(
        masters[0].0, A,
        "an owner's member succeeds the last master (R05)"
    );
    let removed = payloads(&srv, &g, "members.removed").await;
    let last = removed.last().expect("a members.removed event");
    assert_eq!(last["detail"]["cause"], "tenant_deleted", "{last}");
    assert!(
        last["members"]
            .to_string()
            .contains(&format!("\"tenant\":{B}")),
        "{last}"
    );
    assert!(
        !last["detail"]["last_master_replaced_by"].is_null(),
        "{last}"
    );
    // C's member stays.
    assert!(
        visible_groups_of(&srv, (C, 2), false, (C, 2))
            .await
            .contains(&g)
    );
}

/// The owner goes: every group of it is deleted as DeleteGroup would (an event each, the
/// other companies' members out), then `tenant.deleted` ends its feed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r12_a_deleted_owner_writes_its_groups_deletions_and_a_last_event() {
    let Some(srv) = server().await else { return };
    three_companies(&srv).await;
    let shared = shared_group(&srv, "Partner Desk", &[], &[(C, 2)]).await;
    let own = group(A, "Internal")
        .master(2)
        .member(user_of(A, 3))
        .create(&srv)
        .await
        .name;

    delete_tenant(&srv, A).await;
    assert!(
        !visible_groups_of(&srv, (C, 2), false, (C, 2))
            .await
            .contains(&shared),
        "C's member is out of the deleted group"
    );
    let mut stream = srv
        .events(A)
        .watch_events(pb::WatchEventsRequest {
            parent: format!("tenants/{A}"),
            after_cursor: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut kinds = Vec::new();
    let mut deleted = Vec::new();
    loop {
        let item = tokio::time::timeout(std::time::Duration::from_secs(10), stream.message())
            .await
            .expect("in time")
            .unwrap()
            .unwrap();
        match item.item.unwrap() {
            pb::watch_events_response::Item::Event(e) => {
                if e.kind == "group.deleted" {
                    deleted.push(e.group.clone());
                }
                kinds.push(e.kind);
            }
            pb::watch_events_response::Item::Checkpoint(_) => break,
        }
    }
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("tenant.deleted"),
        "{kinds:?}"
    );
    deleted.sort();
    let mut expected = vec![shared, own];
    expected.sort();
    assert_eq!(deleted, expected);
    let err = srv
        .directory(A)
        .delete_tenant(pb::DeleteTenantRequest { tenant_id: A })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
}
