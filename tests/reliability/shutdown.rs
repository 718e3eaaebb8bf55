//! Shutdown reports NOT_SERVING while still answering for its delay, then
//! drains, and closes every connection by its deadline whatever keeps it open.

use std::time::{Duration, Instant};

use group_service::guard::drain::Drain;
use tokio::io::AsyncReadExt;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::harness::*;
use crate::hold::hold_writes;

/// A server that drains for at most `deadline` after a NOT_SERVING `delay`.
async fn draining(delay: Duration, deadline: Duration) -> Option<TestServer> {
    TestServer::start_setup(|s| s.options.drain = Drain { delay, deadline }).await
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

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_an_open_health_watch_stream_ends_by_the_drain_deadline() {
    let Some(mut srv) = draining(Duration::ZERO, Duration::from_millis(500)).await else {
        return;
    };
    until_serving(&srv).await;
    let mut watch = health_of(&srv)
        .watch(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    watch.message().await.unwrap().expect("the current status");
    let took = stop_within(&mut srv, Duration::from_secs(5)).await;
    assert!(
        took >= Duration::from_millis(400),
        "stopped before the deadline: {took:?}"
    );
    // Whatever it sent before, the stream has ended or failed by now.
    loop {
        match tokio::time::timeout(Duration::from_secs(2), watch.message()).await {
            Ok(Ok(Some(_))) => continue,
            Ok(_) => break,
            Err(_) => panic!("the watch stream is still open after the drain"),
        }
    }
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
