//! Broken gRPC framing through the real server, over a bare HTTP/2 connection: each kind of
//! broken body answers its own code and ErrorInfo reason, never a bare INTERNAL, and a unary
//! call takes exactly one message.

use group_service::grpc::pb;
use prost::Message;
use tonic::Code;

use crate::fixtures::*;
use crate::harness::*;

const CREATE: &str = "/groups.v1.GroupService/CreateGroup";

/// Sends `body` to CreateGroup as admin user 1 of tenant 1 with `headers`; the status.
async fn send(srv: &TestServer, headers: &[(&str, String)], body: Vec<u8>) -> tonic::Status {
    let mut all = vec![(
        "authorization",
        format!("Bearer {}", srv.token(1, "1", true, false)),
    )];
    all.extend_from_slice(headers);
    let conn = bare_h2(srv.addr).await;
    bare_call(&conn, CREATE, &all, body).await.status()
}

fn create(name: &str) -> Vec<u8> {
    create_req(1, name, &[1]).encode_to_vec()
}

/// A company, and the check that nothing of a refused create was written.
async fn company(srv: &TestServer) {
    srv.company(1, 2).await;
}

async fn assert_nothing_written(srv: &TestServer) {
    assert_eq!(
        srv.group_count(1).await,
        0,
        "a refused request wrote a group"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_errors_are_invalid_argument() {
    let Some(srv) = server().await else { return };
    company(&srv).await;
    let message = create("Design");
    let whole = framed(0, &message);
    let mut longer_prefix = whole.clone();
    longer_prefix[4] += 10;
    let mut bad_flag = whole.clone();
    bad_flag[0] = 7;
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "a length prefix longer than the body",
            longer_prefix,
            "TRUNCATED_MESSAGE",
        ),
        ("half a frame header", vec![0, 0, 0], "TRUNCATED_MESSAGE"),
        (
            "a message cut short",
            whole[..whole.len() - 3].to_vec(),
            "TRUNCATED_MESSAGE",
        ),
        ("no message at all", Vec::new(), "MISSING_MESSAGE"),
        ("a flag of 7", bad_flag, "INVALID_COMPRESSED_FLAG"),
    ];
    for (what, body, reason) in cases {
        let status = send(&srv, &[], body).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert_reason(&status, Code::InvalidArgument, reason);
    }
    assert_nothing_written(&srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_its_encoding_is_invalid_argument() {
    let Some(srv) = server().await else { return };
    company(&srv).await;
    let gzip = [("grpc-encoding", "gzip".to_owned())];
    // Flag 1 and grpc-encoding gzip, but the message is plain protobuf.
    let status = send(&srv, &gzip, framed(1, &create("Design"))).await;
    assert_reason(&status, Code::InvalidArgument, "BAD_COMPRESSION");
    // A gzip header followed by garbage.
    let mut broken = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    broken.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    let status = send(&srv, &gzip, framed(1, &broken)).await;
    assert_reason(&status, Code::InvalidArgument, "BAD_COMPRESSION");
    // An encoding the server does not take: UNIMPLEMENTED, as gRPC's compression.md says.
    let br = [("grpc-encoding", "br".to_owned())];
    let status = send(&srv, &br, framed(1, &create("Design"))).await;
    assert_reason(&status, Code::Unimplemented, "UNSUPPORTED_ENCODING");
    assert_nothing_written(&srv).await;
}

/// gRPC's compression.md: a message with its Compressed-Flag set but no grpc-encoding other
/// than identity MUST fail with INTERNAL. It does, with a reason that says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_flag_without_encoding_is_internal_with_a_reason() {
    let Some(srv) = server().await else { return };
    company(&srv).await;
    for headers in [vec![], vec![("grpc-encoding", "identity".to_owned())]] {
        let status = send(&srv, &headers, framed(1, &create("Design"))).await;
        assert_reason(&status, Code::Internal, "COMPRESSED_FLAG_WITHOUT_ENCODING");
        assert!(status.message().contains("grpc-encoding"), "{status:?}");
    }
    assert_nothing_written(&srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_call_with_two_messages_is_refused() {
    let Some(srv) = server().await else { return };
    company(&srv).await;
    let mut body = framed(0, &create("First"));
    body.extend(framed(0, &create("Second")));
    let status = send(&srv, &[], body).await;
    assert_reason(&status, Code::InvalidArgument, "TOO_MANY_MESSAGES");
    // A second message that is only a header, or a header cut short.
    let mut body = framed(0, &create("First"));
    body.extend([0, 0, 0, 0, 0]);
    let status = send(&srv, &[], body).await;
    assert_reason(&status, Code::InvalidArgument, "TOO_MANY_MESSAGES");
    let mut body = framed(0, &create("First"));
    body.push(0);
    let status = send(&srv, &[], body).await;
    assert_reason(&status, Code::InvalidArgument, "TOO_MANY_MESSAGES");
    assert_nothing_written(&srv).await;
    // The same message alone is created.
    let status = send(&srv, &[], framed(0, &create("First"))).await;
    assert_eq!(status.code(), Code::Ok, "{status:?}");
    assert_eq!(srv.group_count(1).await, 1);
    let listed = srv
        .groups(1, 1, true)
        .list_groups(pb::ListGroupsRequest {
            parent: "tenants/1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = listed
        .groups
        .iter()
        .map(|g| g.display_name.as_str())
        .collect();
    assert_eq!(names, ["First"]);
}
