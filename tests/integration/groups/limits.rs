//! The tenant's group limit (R03) under concurrency, and creates retried with one request id.

use std::collections::BTreeSet;

use group_service::grpc::pb;
use tonic::Code;

use crate::fixtures::*;
use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r03_create_retried_with_same_request_id_creates_one_group() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let once = group(1, "Once").master(2).request_id("req-1");
    let first = once.clone().create(&srv).await;
    let second = once.create(&srv).await;
    assert_eq!(first, second);
    assert_eq!(srv.group_count(1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_request_id_reused_for_another_request_is_invalid() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    group(1, "First")
        .master(2)
        .request_id("req-1")
        .create(&srv)
        .await;
    let second = group(1, "Second").master(2).request_id("req-1");
    let err = second.try_create(&srv).await.unwrap_err();
    assert_reason(&err, Code::InvalidArgument, "REQUEST_ID_REUSED");
    assert_bad_field(&err, "request_id");
    assert_eq!(srv.group_count(1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r03_concurrent_creates_with_one_request_id_create_one_group() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let admin = srv.groups(1, 1, true);
    let req = group(1, "Stormy")
        .master(2)
        .request_id("retry-storm")
        .request();
    let answers = race(50, 0..50, |_| {
        let (mut client, req) = (admin.clone(), req.clone());
        async move { client.create_group(req).await.map(|r| r.into_inner()) }
    })
    .await;
    let mut names = BTreeSet::new();
    for answer in answers {
        names.insert(answer.unwrap().name);
    }
    assert_eq!(names.len(), 1, "{names:?}");
    assert_eq!(srv.group_count(1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r03_free_tenant_limit_holds_under_concurrency() {
    let Some(srv) = server().await else { return };
    srv.company(1, 1).await;
    let started = std::time::Instant::now();
    let answers = create_concurrently(&srv, 1, 32, 1_050, |i| (format!("g{i}"), 1)).await;
    println!(
        "r03: 1,050 creates on {} in {:?}",
        backend(),
        started.elapsed()
    );
    let mut ok = 0;
    for r in &answers {
        match r {
            Ok(_) => ok += 1,
            Err(err) => assert_quota(err, "TENANT_GROUP_LIMIT", "tenants/1"),
        }
    }
    assert_eq!(ok, 1_000);
    assert_eq!(srv.group_count(1).await, 1_000);

    // PAID lifts the limit; the count is kept.
    let upgraded = set_tenant(&srv, 1, |t| t.plan = pb::Plan::Paid as i32).await;
    assert_eq!(upgraded.plan, pb::Plan::Paid as i32);
    assert_eq!(upgraded.group_count, 1_000);
    group(1, "one more").master(1).create(&srv).await;
    assert_eq!(srv.group_count(1).await, 1_001);
}
