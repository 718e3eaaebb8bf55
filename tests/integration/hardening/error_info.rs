//! AIP-193: every error the server answers carries an `ErrorInfo` of domain `groups.v1` with
//! a stable reason, whichever layer made it: the codec, the framing and size checks, the
//! token check, admission, routing, the handlers and the domain.

use group_service::grpc::pb;
use group_service::guard::rate::Rate;
use prost::Message;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use super::call_raw;
use crate::fixtures::*;
use crate::harness::*;

const GET: &str = "/groups.v1.GroupService/GetGroup";

/// Bare-h2 call of `path` with `body` (already framed) and `headers`, as admin user 1.
async fn bare(
    srv: &TestServer,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> tonic::Status {
    let mut all = vec![(
        "authorization",
        format!("Bearer {}", srv.token(1, "1", true, false)),
    )];
    all.extend_from_slice(headers);
    bare_call(&bare_h2(srv.addr).await, path, &all, body)
        .await
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_carries_error_info() {
    let Some(srv) = TestServer::start_setup(|s| {
        s.options.max_request_bytes = 4096;
        s.options.max_response_bytes = 2048;
    })
    .await
    else {
        return;
    };
    srv.company(1, 2).await;
    let design = group(1, "Design").master(2).create(&srv).await;
    for i in 0..8 {
        group(1, &format!("Group {i}"))
            .master(2)
            .with(|g| g.description = "d".repeat(300))
            .create(&srv)
            .await;
    }
    let get = framed(0, &get_req(&design.name).encode_to_vec());
    let admin = || srv.groups(1, 1, true);
    let mut answers: Vec<(&str, Code, &str, tonic::Status)> = Vec::new();
    let mut expect = |what, code, reason, status| answers.push((what, code, reason, status));

    // Tokens.
    let err = srv.groups_as(None).get_group(get_req(&design.name)).await;
    expect(
        "no token",
        Code::Unauthenticated,
        "TOKEN_MISSING",
        err.unwrap_err(),
    );
    let err = srv
        .groups_as(Some("not-a-jwt".into()))
        .get_group(get_req(&design.name))
        .await;
    expect(
        "not a JWT",
        Code::Unauthenticated,
        "TOKEN_MALFORMED",
        err.unwrap_err(),
    );
    let err = srv
        .groups_as(Some("a".repeat(9000)))
        .get_group(get_req(&design.name))
        .await;
    expect(
        "a huge token",
        Code::Unauthenticated,
        "TOKEN_TOO_LARGE",
        err.unwrap_err(),
    );

    // Bad fields, bad messages, bad framing.
    let err = admin().get_group(get_req("groups/x")).await.unwrap_err();
    expect("a bad name", Code::InvalidArgument, "INVALID_FIELD", err);
    let err = admin()
        .create_group(create_req(1, "a\u{0}b", &[2]))
        .await
        .unwrap_err();
    expect(
        "a control character",
        Code::InvalidArgument,
        "INVALID_FIELD",
        err,
    );
    let err = call_raw(&srv, GET, vec![0x0a, 0x05, b'a'])
        .await
        .unwrap_err();
    expect(
        "a truncated message",
        Code::InvalidArgument,
        "MALFORMED_MESSAGE",
        err,
    );
    let err = bare(&srv, GET, &[], vec![0, 0]).await;
    expect(
        "half a frame header",
        Code::InvalidArgument,
        "TRUNCATED_MESSAGE",
        err,
    );
    let err = bare(&srv, GET, &[], Vec::new()).await;
    expect("no message", Code::InvalidArgument, "MISSING_MESSAGE", err);
    let err = bare(&srv, GET, &[], [get.clone(), get.clone()].concat()).await;
    expect(
        "two messages",
        Code::InvalidArgument,
        "TOO_MANY_MESSAGES",
        err,
    );
    let mut flag = get.clone();
    flag[0] = 2;
    let err = bare(&srv, GET, &[], flag).await;
    expect(
        "flag 2",
        Code::InvalidArgument,
        "INVALID_COMPRESSED_FLAG",
        err,
    );
    let mut flag = get.clone();
    flag[0] = 1;
    let err = bare(&srv, GET, &[], flag.clone()).await;
    expect(
        "flag 1 without an encoding",
        Code::Internal,
        "COMPRESSED_FLAG_WITHOUT_ENCODING",
        err,
    );
    let gzip = [("grpc-encoding", "gzip".to_owned())];
    let err = bare(&srv, GET, &gzip, flag.clone()).await;
    expect("not gzip", Code::InvalidArgument, "BAD_COMPRESSION", err);
    let br = [("grpc-encoding", "br".to_owned())];
    let err = bare(&srv, GET, &br, flag).await;
    expect(
        "an unknown encoding",
        Code::Unimplemented,
        "UNSUPPORTED_ENCODING",
        err,
    );

    // Sizes.
    let err = admin()
        .create_group(create_req(1, &"x".repeat(5000), &[2]))
        .await
        .unwrap_err();
    expect(
        "a large request",
        Code::ResourceExhausted,
        "REQUEST_TOO_LARGE",
        err,
    );
    let err = admin()
        .list_groups(pb::ListGroupsRequest {
            parent: "tenants/1".into(),
            page_size: 10,
            ..Default::default()
        })
        .await
        .unwrap_err();
    expect(
        "a large answer",
        Code::ResourceExhausted,
        "RESPONSE_TOO_LARGE",
        err,
    );

    // Routing and health.
    let err = bare(
        &srv,
        "/groups.v1.GroupService/NoSuchMethod",
        &[],
        get.clone(),
    )
    .await;
    expect(
        "an unknown method",
        Code::Unimplemented,
        "UNKNOWN_METHOD",
        err,
    );
    let err = bare(&srv, "/groups.v1.NoSuchService/Get", &[], get.clone()).await;
    expect(
        "an unknown service",
        Code::Unimplemented,
        "UNKNOWN_METHOD",
        err,
    );
    let err = HealthClient::new(srv.channel.clone())
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    expect(
        "health of an unknown service",
        Code::NotFound,
        "UNKNOWN_SERVICE",
        err,
    );

    // Admission: the caller's deadline spent before the write could commit.
    let timeout = [("grpc-timeout", "1n".to_owned())];
    let late = framed(0, &create_req(1, "Late", &[2]).encode_to_vec());
    let err = bare(&srv, "/groups.v1.GroupService/CreateGroup", &timeout, late).await;
    expect(
        "a spent deadline",
        Code::DeadlineExceeded,
        "DEADLINE_EXCEEDED",
        err,
    );

    // The domain.
    let err = admin()
        .get_group(get_req("tenants/1/groups/999999"))
        .await
        .unwrap_err();
    expect("a missing group", Code::NotFound, "NOT_FOUND", err);
    let err = srv
        .groups(1, 2, false)
        .create_group(create_req(1, "Mine", &[2]))
        .await
        .unwrap_err();
    expect(
        "creation restricted",
        Code::PermissionDenied,
        "GROUP_CREATION_RESTRICTED",
        err,
    );

    for (what, code, reason, status) in &answers {
        assert_eq!(status.code(), *code, "{what}: {status:?}");
        assert_reason(status, *code, reason);
    }
    assert_eq!(srv.group_count(1).await, 9, "a refused request wrote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_refusals_carry_error_info() {
    let Some(srv) = TestServer::start_setup(|s| {
        s.options.tenant_rate = Some(Rate {
            per_second: 0.01,
            burst: 1,
        });
    })
    .await
    else {
        return;
    };
    let mut directory = srv.directory(1);
    let tenant = pb::GetTenantRequest { tenant_id: 1 };
    let _ = directory.get_tenant(tenant).await;
    let err = directory.get_tenant(tenant).await.unwrap_err();
    assert_reason(&err, Code::ResourceExhausted, "RATE_LIMITED");
}
