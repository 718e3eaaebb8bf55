//! Hostile input on the wire: undecodable requests, message size limits both ways, and error
//! answers that stay small whatever the client sent.

use group_service::grpc::pb;
use tonic::Code;
use tonic_types::StatusExt;

use super::{call, call_raw};
use crate::fixtures::*;
use crate::harness::*;

const GET: &str = "/groups.v1.GroupService/GetGroup";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_invalid_utf8_is_invalid_argument_naming_the_field() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    // GetGroupRequest.name (field 1, length 2) holding bytes that are not UTF-8.
    let err = call_raw(&srv, GET, vec![0x0a, 0x02, 0xc3, 0x28])
        .await
        .unwrap_err();
    assert_bad_field(&err, "name");
    // Nested: CreateGroupRequest.group (2) .display_name (2).
    let err = call_raw(
        &srv,
        "/groups.v1.GroupService/CreateGroup",
        vec![0x12, 0x03, 0x12, 0x01, 0xff],
    )
    .await
    .unwrap_err();
    assert_bad_field(&err, "group.display_name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_truncated_message_is_invalid_argument() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    for body in [
        vec![0x0a, 0x05, b'a'],
        vec![0x0a],
        vec![0xff; 11],
        vec![0x0b],
    ] {
        let err = call_raw(&srv, GET, body.clone()).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{body:?}: {err:?}");
        assert!(err.message().contains("GetGroupRequest"), "{err:?}");
    }
}

/// A server whose requests are at most 4 KiB and answers at most 2 KiB.
async fn small_limits() -> Option<TestServer> {
    TestServer::start_setup(|s| {
        s.options.max_request_bytes = 4096;
        s.options.max_response_bytes = 2048;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_is_resource_exhausted() {
    let Some(srv) = small_limits().await else {
        return;
    };
    srv.company(1, 2).await;
    let req = create_req(1, &"x".repeat(5000), &[2]);
    let err = call(&srv, "/groups.v1.GroupService/CreateGroup", req)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("4096"), "{err:?}");
    assert_eq!(srv.group_count(1).await, 0);
    // Under the limit, the same server answers as usual.
    group(1, "Design").master(2).create(&srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_answer_is_resource_exhausted() {
    let Some(srv) = small_limits().await else {
        return;
    };
    srv.company(1, 2).await;
    for i in 0..10 {
        group(1, &format!("Group {i}"))
            .master(2)
            .with(|g| g.description = "d".repeat(250))
            .create(&srv)
            .await;
    }
    let list = |size| pb::ListGroupsRequest {
        parent: "tenants/1".into(),
        page_size: size,
        ..Default::default()
    };
    let err = srv
        .groups(1, 2, true)
        .list_groups(list(10))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("2048"), "{err:?}");
    let page = srv.groups(1, 2, true).list_groups(list(3)).await.unwrap();
    assert_eq!(page.into_inner().groups.len(), 3);
}

/// Asserts that an answer to a huge input is INVALID_ARGUMENT naming `field` and that its
/// message and details stay far below the 16 KiB metadata limit.
#[track_caller]
fn assert_small_invalid(err: &tonic::Status, field: &str) {
    assert_bad_field(err, field);
    assert!(err.message().len() < 200, "{} bytes", err.message().len());
    assert!(err.details().len() < 300, "{} bytes", err.details().len());
    let described = &err.get_details_bad_request().unwrap().field_violations[0].description;
    assert!(described.chars().count() < 120, "{described}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_errors_quote_a_short_prefix_of_huge_input() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let groups = || srv.groups(1, 2, true);
    let huge = "9".repeat(10_000);
    let err = groups()
        .get_group(get_req(&format!("tenants/1/groups/{huge}")))
        .await
        .unwrap_err();
    assert_small_invalid(&err, "name");
    let err = groups()
        .get_group(get_req(&format!("tenants/{huge}x/groups/1")))
        .await
        .unwrap_err();
    assert_small_invalid(&err, "name");
    let err = groups()
        .list_groups(pb::ListGroupsRequest {
            parent: "tenants/1".into(),
            filter: "k".repeat(10_000),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_small_invalid(&err, "filter");
    let err = srv
        .events(1)
        .list_audit_events(pb::ListAuditEventsRequest {
            parent: "tenants/1".into(),
            filter: format!("create_time >= \"{}\"", "2".repeat(10_000)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_small_invalid(&err, "filter");
    let mut g = patch(&group(1, "Design").master(2).create(&srv).await.name);
    g.display_name = "Ops".into();
    let long_path = "p".repeat(10_000);
    let err = try_update(&mut groups(), g, &["display_name", &long_path])
        .await
        .unwrap_err();
    assert_small_invalid(&err, "update_mask");
}

/// A server whose answers are at most 4 KiB.
async fn answers_of_4_kib() -> Option<TestServer> {
    TestServer::start_setup(|s| s.options.max_response_bytes = 4096).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_limit_counts_uncompressed_bytes() {
    let Some(srv) = answers_of_4_kib().await else {
        return;
    };
    srv.company(1, 2).await;
    for i in 0..20 {
        group(1, &format!("Group {i}"))
            .master(2)
            .with(|g| g.description = "d".repeat(300))
            .create(&srv)
            .await;
    }
    let list = pb::ListGroupsRequest {
        parent: "tenants/1".into(),
        page_size: 20,
        ..Default::default()
    };
    // About 7 KB of answer, a few hundred bytes once gzipped: refused either way.
    for gzip in [true, false] {
        let mut groups = srv.groups(1, 2, true);
        if gzip {
            groups = groups
                .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                .send_compressed(tonic::codec::CompressionEncoding::Gzip);
        }
        let err = groups.list_groups(list.clone()).await.unwrap_err();
        assert_reason(&err, Code::ResourceExhausted, "RESPONSE_TOO_LARGE");
        assert!(err.message().contains("4096"), "{err:?}");
    }
    let page = srv
        .groups(1, 2, true)
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
        .list_groups(pb::ListGroupsRequest {
            page_size: 2,
            ..list
        })
        .await
        .unwrap();
    assert_eq!(page.into_inner().groups.len(), 2);
}

/// A write whose answer is over the answer limit has committed by then: it answers what it
/// wrote rather than an error (the limit holds reads, whose pages can be made smaller).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_with_an_oversized_answer_answers_what_it_committed() {
    let Some(srv) = TestServer::start_setup(|s| s.options.max_response_bytes = 256).await else {
        return;
    };
    srv.company(1, 2).await;
    let mut req = create_req(1, "Design", &[2]);
    req.group.as_mut().unwrap().description = "d".repeat(300);
    let created = srv
        .groups(1, 1, true)
        .create_group(req)
        .await
        .expect("a committed create answers OK")
        .into_inner();
    assert_eq!(created.description.len(), 300);
    assert_eq!(srv.group_count(1).await, 1);
    let err = srv
        .groups(1, 1, true)
        .get_group(get_req(&created.name))
        .await
        .unwrap_err();
    assert_reason(&err, Code::ResourceExhausted, "RESPONSE_TOO_LARGE");
}
