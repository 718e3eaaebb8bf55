//! Shutdown reports NOT_SERVING while still answering for its delay, then
//! drains, and closes every connection by its deadline whatever keeps it open.

use std::time::{Duration, Instant};

use group_service::grpc::pb;
use group_service::guard::drain::{DEFAULT_IDLE_CLOSE, Drain};
use tokio::io::AsyncReadExt;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::harness::*;
use crate::hold::hold_writes;

/// A server that drains for at most `deadline` after a NOT_SERVING `delay`.
async fn draining(delay: Duration, deadline: Duration) -> Option<TestServer> {
    draining_with(delay, deadline, DEFAULT_IDLE_CLOSE).await
}

/// `draining`, closing connections `idle_close` after the last call has answered.
async fn draining_with(
    delay: Duration,
    deadline: Duration,
    idle_close: Duration,
) -> Option<TestServer> {
    TestServer::start_setup(|s| {
        s.options.drain = Drain {
            delay,
            deadline,
            idle_close,
        }
    })
    .await
}

/// The messages a stream still sends, and the status it ends with; panics if it ends without
/// one or is still open 2 s after its last message.
async fn stream_end<T>(stream: &mut tonic::Streaming<T>) -> (Vec<T>, tonic::Status) {
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(2), stream.message()).await {
            Ok(Ok(Some(m))) => seen.push(m),
            Ok(Ok(None)) => panic!("the stream ended without a status"),
            Ok(Err(status)) => return (seen, status),
            Err(_) => panic!("the stream is still open after the drain"),
        }
    }
}

/// A status whose ErrorInfo reason is SHUTTING_DOWN, with code UNAVAILABLE.
#[track_caller]
fn assert_shutting_down(status: &tonic::Status) {
    use tonic_types::StatusExt;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "SHUTTING_DOWN", "{status:?}");
}

fn health_of(srv: &TestServer) -> HealthClient<tonic::transport::Channel> {
    HealthClient::new(srv.channel.clone())
}

async fn check(srv: &TestServer) -> Result<HealthCheckResponse, tonic::Status> {
    health_of(srv)
        .check(HealthCheckRequest::default())
        .await
        .map(|r| r.into_inner())
}

/// Shuts the server down and returns how long it took, failing past `limit`.
async fn stop_within(srv: &mut TestServer, limit: Duration) -> Duration {
    let start = Instant::now();
    tokio::time::timeout(limit, srv.shutdown())
        .await
        .expect("the server stops by its drain deadline");
    start.elapsed()
}

async fn until_serving(srv: &TestServer) {
    for _ in 0..100 {
        if check(srv)
            .await
            .is_ok_and(|r| r.status == ServingStatus::Serving as i32)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server never reported SERVING");
}

/// Open streams (health's Watch and WatchEvents) end at the start of the drain with
/// UNAVAILABLE `SHUTTING_DOWN`, after the health watcher has seen NOT_SERVING during the delay;
/// the server stops long before its deadline.
#[tokio::test(flavor = "multi_thread")]
async fn shutdown_open_streams_end_at_the_start_of_the_drain() {
    let delay = Duration::from_millis(300);
    let Some(mut srv) = draining(delay, Duration::from_secs(10)).await else {
        return;
    };
    srv.company(1, 2).await;
    until_serving(&srv).await;
    let mut watch = health_of(&srv)
        .watch(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().expect("the current status");
    assert_eq!(first.status, ServingStatus::Serving as i32);
    let mut events = srv
        .events(1)
        .watch_events(pb::WatchEventsRequest {
            parent: "tenants/1".into(),
            after_cursor: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let took = stop_within(&mut srv, Duration::from_secs(5)).await;
    assert!(
        took < Duration::from_secs(2),
        "the open streams held the drain: {took:?}"
    );
    let (seen, health_end) = stream_end(&mut watch).await;
    let seen: Vec<i32> = seen.iter().map(|m| m.status).collect();
    assert_eq!(seen, vec![ServingStatus::NotServing as i32]);
    assert_shutting_down(&health_end);
    let (_, events_end) = stream_end(&mut events).await;
    assert_shutting_down(&events_end);
}

/// An HTTP/2 client that sent its preface and then never reads (the server's GOAWAY and PING
/// are never acknowledged) is closed `idle_close` after the last call answered, not at the
/// deadline.
#[tokio::test(flavor = "multi_thread")]
async fn shutdown_a_client_that_never_reads_is_closed_after_the_idle_close() {
    use tokio::io::AsyncWriteExt;
    let Some(mut srv) = draining_with(
        Duration::ZERO,
        Duration::from_secs(10),
        Duration::from_millis(300),
    )
    .await
    else {
        return;
    };
    until_serving(&srv).await;
    let mut deaf = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    // The connection preface and an empty SETTINGS frame; nothing is ever read.
    deaf.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let took = stop_within(&mut srv, Duration::from_secs(5)).await;
    assert!(
        took < Duration::from_secs(2),
        "the client that never reads held the drain: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_an_idle_http2_connection_does_not_hold_the_drain() {
    let Some(mut srv) = draining(Duration::ZERO, Duration::from_secs(2)).await else {
        return;
    };
    until_serving(&srv).await;
    // The channel's connection stays open and idle.
    let took = stop_within(&mut srv, Duration::from_secs(5)).await;
    assert!(
        took < Duration::from_secs(2),
        "the idle connection held the drain: {took:?}"
    );
    assert!(check(&srv).await.is_err(), "the server still answers");
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_a_silent_tcp_connection_is_closed_by_the_drain_deadline() {
    let Some(mut srv) = draining(Duration::ZERO, Duration::from_millis(500)).await else {
        return;
    };
    let mut silent = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop_within(&mut srv, Duration::from_secs(5)).await;
    let mut buf = [0u8; 64];
    // The server may have said goodbye (bytes); then the socket is closed (0 or an error).
    let closed = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match silent.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the silent connection is still open");
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_a_call_in_flight_that_finishes_within_the_deadline_succeeds() {
    let Some(mut srv) = draining(Duration::ZERO, Duration::from_secs(5)).await else {
        return;
    };
    srv.company(1, 2).await;
    let hold = hold_writes(&srv, 1, Duration::from_millis(700)).await;
    let mut groups = srv.groups(1, 1, true);
    let call = tokio::spawn(async move { groups.create_group(create_req(1, "Late", &[1])).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    srv.signal_shutdown();
    let answer = call.await.unwrap();
    assert!(answer.is_ok(), "the call in flight failed: {answer:?}");
    stop_within(&mut srv, Duration::from_secs(6)).await;
    hold.await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_a_call_in_flight_past_the_deadline_is_cut_and_leaves_no_write() {
    let Some(mut srv) = draining(Duration::ZERO, Duration::from_millis(500)).await else {
        return;
    };
    srv.company(1, 2).await;
    let hold = hold_writes(&srv, 1, Duration::from_secs(3)).await;
    let mut groups = srv.groups(1, 1, true);
    let call = tokio::spawn(async move { groups.create_group(create_req(1, "Cut", &[1])).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let took = stop_within(&mut srv, Duration::from_secs(2)).await;
    assert!(took < Duration::from_millis(1500), "{took:?}");
    let answer = call.await.unwrap();
    assert!(answer.is_err(), "the cut call succeeded");
    hold.await.unwrap();
    // A new server over the same database: the group was never written.
    let after = srv.sibling(0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(after.group_count(1).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_pollers_see_not_serving_while_the_server_still_answers() {
    let Some(mut srv) = draining(Duration::from_millis(800), Duration::from_secs(3)).await else {
        return;
    };
    srv.company(1, 2).await;
    until_serving(&srv).await;
    srv.signal_shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let status = check(&srv).await.expect("health answers during the delay");
    assert_eq!(status.status, ServingStatus::NotServing as i32);
    // Calls are still served during the delay.
    srv.groups(1, 1, true)
        .create_group(create_req(1, "During the delay", &[1]))
        .await
        .expect("a call during the delay");
    let took = stop_within(&mut srv, Duration::from_secs(4)).await;
    assert!(took >= Duration::from_millis(500), "{took:?}");
    let refused = check(&srv).await.expect_err("no answers after the drain");
    assert_eq!(refused.code(), Code::Unavailable);
}
