//! Huge headers on one HTTP/2 connection: an oversized bearer token is UNAUTHENTICATED
//! `TOKEN_TOO_LARGE`, up to the header limit, and never fails the connection's other calls.

use group_service::auth::MAX_TOKEN_BYTES;
use group_service::server::MAX_HEADER_LIST_BYTES;
use prost::Message;
use prost::bytes::Bytes;
use tonic::Code;

use crate::fixtures::*;
use crate::harness::*;

const GET: &str = "/groups.v1.GroupService/GetGroup";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_token_is_unauthenticated_and_spares_the_connection() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let name = group(1, "Design").master(1).create(&srv).await.name;
    let conn = bare_h2(srv.addr).await;
    let token = srv.token(1, "1", true, false);
    let get = framed(0, &get_req(&name).encode_to_vec());

    // A healthy call in flight: its headers sent, its message not yet.
    let req = hyper::Request::post(format!("http://test{GET}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap();
    let mut sender = conn.clone().ready().await.unwrap();
    let (in_flight, mut in_flight_body) = sender.send_request(req, false).unwrap();

    let largest = MAX_HEADER_LIST_BYTES as usize - (8 << 10);
    for size in [
        MAX_TOKEN_BYTES + 1,
        16 << 10,
        32 << 10,
        64 << 10,
        256 << 10,
        1 << 20,
        largest,
    ] {
        let huge = [("authorization", format!("Bearer {}", "a".repeat(size)))];
        let status = bare_call(&conn, GET, &huge, get.clone()).await.status();
        assert_reason(&status, Code::Unauthenticated, "TOKEN_TOO_LARGE");
        assert!(status.message().contains("8192"), "{status:?}");
    }

    // The call in flight finishes, and a new call on the connection is served.
    in_flight_body
        .send_data(Bytes::from(get.clone()), true)
        .unwrap();
    let answer = in_flight.await.unwrap();
    assert_eq!(answer.status(), 200);
    let mut body = answer.into_body();
    while let Some(chunk) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.unwrap().len());
    }
    let trailers = body.trailers().await.unwrap().unwrap();
    assert_eq!(trailers["grpc-status"], "0", "{trailers:?}");
    let auth = [("authorization", format!("Bearer {token}"))];
    let status = bare_call(&conn, GET, &auth, get.clone()).await.status();
    assert_eq!(status.code(), Code::Ok, "{status:?}");

    // Just past the header limit: that call alone gets HTTP 431; the connection carries on.
    let over = [(
        "authorization",
        format!("Bearer {}", "a".repeat(MAX_HEADER_LIST_BYTES as usize)),
    )];
    match bare_call(&conn, GET, &over, get.clone()).await {
        Answer::Http(431) => {}
        other => panic!("past the header limit: {other:?}"),
    }
    let status = bare_call(&conn, GET, &auth, get).await.status();
    assert_eq!(status.code(), Code::Ok, "{status:?}");
}
