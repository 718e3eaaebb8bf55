//! gRPC-Web on the gRPC port: a browser's HTTP/1.1 POST, framed by hand, answered with the
//! message and a trailer frame (errors too), counted by the metrics layer like any call;
//! CORS preflights answered for the configured origins only.

use std::net::SocketAddr;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use prost::Message;

use crate::fixtures::*;
use crate::harness::*;
use crate::observability::{eventually, value};
use group_service::grpc::pb;

const ADMIN_PAGE: &str = "https://admin.example";

/// A server whose gRPC port lets `ADMIN_PAGE` call, with a metrics listener (its address).
async fn web_server() -> Option<(TestServer, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics = listener.local_addr().unwrap();
    let srv = TestServer::start_setup(|s| {
        s.options.metrics_listener = Some(listener);
        s.options.cors_allowed_origins = vec![ADMIN_PAGE.into()];
    })
    .await?;
    Some((srv, metrics))
}

/// One HTTP/1.1 request on a connection of its own: the answer, its body read whole.
async fn http1(addr: SocketAddr, req: hyper::Request<Full<Bytes>>) -> hyper::Response<Bytes> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let res = sender.send_request(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    hyper::Response::from_parts(parts, body)
}

/// A gRPC-Web call as a browser page at `ADMIN_PAGE` makes it: `message` in one frame (flag
/// byte, 4-byte big-endian length, the message).
async fn web_call(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    message: impl Message,
) -> hyper::Response<Bytes> {
    web_call_with(addr, path, token, message, &[]).await
}

/// `web_call` with more request headers.
async fn web_call_with(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    message: impl Message,
    headers: &[(&str, &str)],
) -> hyper::Response<Bytes> {
    let bytes = message.encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    framed.extend_from_slice(&bytes);
    let mut req = hyper::Request::post(path)
        .header("host", addr.to_string())
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("origin", ADMIN_PAGE);
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    http1(addr, req.body(Full::new(Bytes::from(framed))).unwrap()).await
}

/// The frames of a gRPC-Web answer body: its messages, and its trailers as name-value pairs.
fn frames(body: &[u8]) -> (Vec<Vec<u8>>, Vec<(String, String)>) {
    let (mut messages, mut trailers, mut rest) = (Vec::new(), None, body);
    while !rest.is_empty() {
        assert!(rest.len() >= 5, "a frame header is cut short: {body:?}");
        let flag = rest[0];
        let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
        let payload = rest[5..5 + len].to_vec();
        rest = &rest[5 + len..];
        match flag {
            0x00 => messages.push(payload),
            0x80 => {
                assert!(trailers.is_none(), "two trailer frames");
                let text = String::from_utf8(payload).unwrap();
                let pairs = text
                    .split("\r\n")
                    .filter(|l| !l.is_empty())
                    .map(|l| {
                        let (k, v) = l.split_once(':').expect("name:value");
                        (k.trim().to_ascii_lowercase(), v.trim().to_owned())
                    })
                    .collect();
                trailers = Some(pairs);
            }
            other => panic!("frame flag {other:#x}"),
        }
    }
    (
        messages,
        trailers.expect("the answer ends with a trailer frame"),
    )
}

fn trailer<'a>(trailers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    trailers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn header<'a>(res: &'a hyper::Response<Bytes>, name: &str) -> Option<&'a str> {
    res.headers().get(name).map(|v| v.to_str().unwrap())
}

/// Asserts that the comma-separated header `list` names each of `names`.
#[track_caller]
fn assert_lists(res: &hyper::Response<Bytes>, list: &str, names: &[&str]) {
    let value = header(res, list).unwrap_or_default().to_ascii_lowercase();
    let listed: Vec<&str> = value.split(',').map(str::trim).collect();
    for name in names {
        assert!(listed.contains(name), "{name} not in {list}: {value}");
    }
}

const GET_GROUP: &str = "/groups.v1.GroupService/GetGroup";

/// `grpc_server_handled_total` of GetGroup with `code`, once it is there (0 if it never is).
async fn handled_get_group(metrics: SocketAddr, code: &str) -> f64 {
    let labels = [
        ("grpc_service", "groups.v1.GroupService"),
        ("grpc_method", "GetGroup"),
        ("grpc_code", code),
    ];
    let samples = eventually(metrics, |s| {
        value(s, "grpc_server_handled_total", &labels).is_some()
    })
    .await;
    value(&samples, "grpc_server_handled_total", &labels).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_a_grpc_web_call_over_http1_gets_its_message_and_a_trailer_frame() {
    let Some((srv, metrics)) = web_server().await else {
        return;
    };
    srv.company(1, 2).await;
    let g = group(1, "Browser").master(2).create(&srv).await;
    let token = srv.token(1, "2", false, false);
    let res = web_call(srv.addr, GET_GROUP, Some(&token), get_req(&g.name)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        header(&res, "content-type"),
        Some("application/grpc-web+proto")
    );
    assert_eq!(
        header(&res, "access-control-allow-origin"),
        Some(ADMIN_PAGE)
    );
    assert_lists(
        &res,
        "access-control-expose-headers",
        &[
            "grpc-status",
            "grpc-message",
            "grpc-status-details-bin",
            "x-request-id",
        ],
    );
    assert!(header(&res, "x-request-id").is_some(), "no request id");
    let (messages, trailers) = frames(res.body());
    assert_eq!(trailer(&trailers, "grpc-status"), Some("0"), "{trailers:?}");
    assert_eq!(messages.len(), 1);
    let got = pb::Group::decode(messages[0].as_slice()).unwrap();
    assert_eq!(got.name, g.name);
    assert_eq!(got.display_name, "Browser");
    // Counted by the metrics layer with its method and code, as a native call would be.
    assert_eq!(handled_get_group(metrics, "OK").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_an_error_answers_its_status_in_the_trailer_frame() {
    let Some((srv, metrics)) = web_server().await else {
        return;
    };
    srv.company(1, 2).await;
    let token = srv.token(1, "2", false, false);
    let missing = get_req("tenants/1/groups/12345");
    let res = web_call(srv.addr, GET_GROUP, Some(&token), missing.clone()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        header(&res, "grpc-status"),
        None,
        "moved to the trailer frame"
    );
    let (messages, trailers) = frames(res.body());
    assert!(messages.is_empty());
    assert_eq!(trailer(&trailers, "grpc-status"), Some("5"), "{trailers:?}");
    assert!(trailer(&trailers, "grpc-message").is_some(), "{trailers:?}");
    // The google.rpc details travel too, for clients that decode them.
    assert!(
        trailer(&trailers, "grpc-status-details-bin").is_some(),
        "{trailers:?}"
    );
    assert_eq!(handled_get_group(metrics, "NotFound").await, 1.0);
    // Without a token: refused by the auth interceptor, behind the translation.
    let res = web_call(srv.addr, GET_GROUP, None, missing).await;
    let (_, trailers) = frames(res.body());
    assert_eq!(
        trailer(&trailers, "grpc-status"),
        Some("16"),
        "{trailers:?}"
    );
    assert_eq!(handled_get_group(metrics, "Unauthenticated").await, 1.0);
}

/// A browser's preflight of a gRPC-Web call from `origin`.
async fn preflight(addr: SocketAddr, origin: &str) -> hyper::Response<Bytes> {
    let req = hyper::Request::options(GET_GROUP)
        .header("host", addr.to_string())
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,grpc-timeout,x-grpc-web,x-user-agent",
        )
        .body(Full::new(Bytes::new()))
        .unwrap();
    http1(addr, req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_preflights_are_allowed_for_the_configured_origins_only() {
    let Some((srv, _)) = web_server().await else {
        return;
    };
    let res = preflight(srv.addr, ADMIN_PAGE).await;
    assert!(res.status().is_success(), "{res:?}");
    assert_eq!(
        header(&res, "access-control-allow-origin"),
        Some(ADMIN_PAGE)
    );
    assert_eq!(header(&res, "access-control-allow-credentials"), None);
    let methods = header(&res, "access-control-allow-methods").unwrap_or_default();
    assert!(methods.contains("POST"), "{methods}");
    assert_lists(
        &res,
        "access-control-allow-headers",
        &[
            "authorization",
            "content-type",
            "x-grpc-web",
            "x-user-agent",
            "grpc-timeout",
        ],
    );
    // Another origin gets no grant (the allowed headers say nothing without it): its browser
    // refuses the call.
    let res = preflight(srv.addr, "https://elsewhere.example").await;
    assert_eq!(header(&res, "access-control-allow-origin"), None, "{res:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_without_configured_origins_no_origin_is_granted() {
    let Some(srv) = server().await else { return };
    let res = preflight(srv.addr, ADMIN_PAGE).await;
    assert_eq!(header(&res, "access-control-allow-origin"), None, "{res:?}");
    // A same-origin tool (no preflight, no CORS) still calls over gRPC-Web.
    srv.company(1, 2).await;
    let g = group(1, "Same origin").master(2).create(&srv).await;
    let token = srv.token(1, "2", false, false);
    let res = web_call(srv.addr, GET_GROUP, Some(&token), get_req(&g.name)).await;
    assert_eq!(header(&res, "access-control-allow-origin"), None);
    let (messages, trailers) = frames(res.body());
    assert_eq!(trailer(&trailers, "grpc-status"), Some("0"), "{trailers:?}");
    assert_eq!(messages.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_the_size_limit_and_the_deadline_hold_for_grpc_web_calls() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics = listener.local_addr().unwrap();
    let mut setup = Setup::default();
    setup.options.metrics_listener = Some(listener);
    setup.options.max_request_bytes = 64;
    let Some((srv, held)) =
        TestServer::start_setup_with(setup, TestServer::hold_read_connections).await
    else {
        return;
    };
    let token = srv.token(1, "2", false, false);
    // Every read connection is taken: the call waits past its grpc-timeout.
    let res = web_call_with(
        srv.addr,
        GET_GROUP,
        Some(&token),
        get_req("tenants/1/groups/1"),
        &[("grpc-timeout", "200m")],
    )
    .await;
    let (_, trailers) = frames(res.body());
    assert_eq!(trailer(&trailers, "grpc-status"), Some("4"), "{trailers:?}");
    assert_eq!(handled_get_group(metrics, "DeadlineExceeded").await, 1.0);
    drop(held);
    // A request over --max-request-bytes.
    let oversized = get_req(&format!("tenants/1/groups/{}", "9".repeat(100)));
    let res = web_call(srv.addr, GET_GROUP, Some(&token), oversized).await;
    let (_, trailers) = frames(res.body());
    assert_eq!(trailer(&trailers, "grpc-status"), Some("8"), "{trailers:?}");
    assert_eq!(handled_get_group(metrics, "ResourceExhausted").await, 1.0);
}
