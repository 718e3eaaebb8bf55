//! R03: the tenant's group limit across plan changes.

use std::collections::BTreeSet;

use group_service::grpc::pb;
use tonic::Code;

use crate::fixtures::*;
use crate::harness::*;

/// Every group of tenant 1, each listed once.
async fn listed(admin: &mut Groups) -> BTreeSet<String> {
    let mut listed = BTreeSet::new();
    for g in list_all(admin, "tenants/1", "", 100).await.unwrap() {
        assert!(listed.insert(g.name.clone()), "{} listed twice", g.name);
    }
    listed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r03_free_limit_holds_for_1500_concurrent_creates_and_a_downgrade_keeps_every_group() {
    let Some(srv) = server().await else { return };
    srv.company(1, 1).await;
    let started = std::time::Instant::now();
    let answers = create_concurrently(&srv, 1, 48, 1_500, |i| (format!("q{i}"), 1)).await;
    println!(
        "r03: 1,500 creates on {} in {:?}",
        backend(),
        started.elapsed()
    );
    let (mut ok, mut exhausted) = (0, 0);
    for r in &answers {
        match r {
            Ok(_) => ok += 1,
            Err(err) => {
                assert_quota(err, "TENANT_GROUP_LIMIT", "tenants/1");
                exhausted += 1;
            }
        }
    }
    assert_eq!((ok, exhausted), (1_000, 500));
    assert_eq!(srv.group_count(1).await, 1_000);

    // PAID raises the limit at once.
    set_tenant(&srv, 1, |t| t.plan = pb::Plan::Paid as i32).await;
    let mut admin = srv.groups(1, 1, true);
    let extra = admin
        .create_group(create_req(1, "after upgrade", &[1]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(srv.group_count(1).await, 1_001);

    // Back to FREE: no group is deleted, new ones are blocked while over the limit.
    set_tenant(&srv, 1, |t| t.plan = pb::Plan::Free as i32).await;
    let tenant = srv.get_tenant(1).await;
    assert_eq!(tenant.plan, pb::Plan::Free as i32);
    assert_eq!(tenant.group_count, 1_001);
    let listed = listed(&mut admin).await;
    assert_eq!(listed.len(), 1_001);
    assert!(listed.contains(&extra.name));
    let err = admin
        .create_group(create_req(1, "while over", &[1]))
        .await
        .unwrap_err();
    assert_reason(&err, Code::ResourceExhausted, "TENANT_GROUP_LIMIT");
    // One deletion brings it to the limit, still full; a second makes room for one.
    let mut names = listed.into_iter();
    admin
        .delete_group(delete_req(&names.next().unwrap(), ""))
        .await
        .unwrap();
    assert_eq!(srv.group_count(1).await, 1_000);
    let err = admin
        .create_group(create_req(1, "at the limit", &[1]))
        .await
        .unwrap_err();
    assert_reason(&err, Code::ResourceExhausted, "TENANT_GROUP_LIMIT");
    admin
        .delete_group(delete_req(&names.next().unwrap(), ""))
        .await
        .unwrap();
    admin
        .create_group(create_req(1, "under again", &[1]))
        .await
        .unwrap();
    assert_eq!(srv.group_count(1).await, 1_000);
}
