//! Deadlines and overload: calls past their deadline answer DEADLINE_EXCEEDED and keep no
//! write; a burst of cancellations does not fail other calls; over the concurrency limit calls
//! are refused at once while health answers; a tenant over its rate is refused while another
//! tenant is served.

use std::time::Duration;

use group_service::grpc::pb;
use group_service::guard::overload::Concurrency;
use group_service::guard::rate::Rate;
use prost::Message;
use prost::bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::{Code, Request};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;

use crate::harness::*;
use crate::hold::hold_writes;

/// The metrics endpoint's text.
async fn scrape(addr: std::net::SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// A bare HTTP/2 connection to the server, for calls whose status is the server's answer
/// alone: unlike a tonic client, it keeps no timer of its own for a call's `grpc-timeout`.
async fn bare_h2(addr: std::net::SocketAddr) -> h2::client::SendRequest<Bytes> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

/// One unary call on `send`: its `grpc-status`, from the headers (a trailers-only answer) or
/// the trailers.
async fn bare_call(
    send: h2::client::SendRequest<Bytes>,
    path: &'static str,
    token: String,
    message: Vec<u8>,
    timeout: &'static str,
) -> String {
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    let req = hyper::Request::post(format!("http://test{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {token}"))
        .header("grpc-timeout", timeout)
        .body(())
        .unwrap();
    let mut send = send.ready().await.unwrap();
    let (answer, mut body) = send.send_request(req, false).unwrap();
    body.send_data(Bytes::from(framed), true).unwrap();
    let answer = answer.await.unwrap();
    let status =
        |h: &hyper::HeaderMap| h.get("grpc-status").map(|v| v.to_str().unwrap().to_owned());
    if let Some(code) = status(answer.headers()) {
        return code;
    }
    let mut body = answer.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let trailers = body.trailers().await.unwrap().unwrap_or_default();
    status(&trailers).unwrap_or_else(|| format!("no grpc-status in {trailers:?}"))
}

/// Deadlines, and R25's nothing half-written: 100 creates sent at one instant with a 300 ms deadline, while the tenant's
/// writes are held past it, all answer DEADLINE_EXCEEDED (status 4) from the server, none
/// CANCELLED; their transactions roll back, so no group is kept once the hold ends.
#[tokio::test(flavor = "multi_thread")]
async fn deadline_expired_calls_answer_deadline_exceeded_and_keep_no_write() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let before = srv.group_count(1).await;
    let token = srv.token(1, "1", true, false);
    let send = bare_h2(srv.addr).await;
    let hold = hold_writes(&srv, 1, Duration::from_millis(2000)).await;
    let calls: Vec<_> = (0..100)
        .map(|i| {
            let message = create_req(1, &format!("Late {i}"), &[1]).encode_to_vec();
            tokio::spawn(bare_call(
                send.clone(),
                "/groups.v1.GroupService/CreateGroup",
                token.clone(),
                message,
                "300m",
            ))
        })
        .collect();
    let mut codes = std::collections::BTreeMap::<String, usize>::new();
    for call in calls {
        *codes.entry(call.await.unwrap()).or_default() += 1;
    }
    assert_eq!(codes.get("4"), Some(&100), "grpc-status counts: {codes:?}");
    hold.await.unwrap();
    // Past the hold, a create that had kept running would commit now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        srv.group_count(1).await,
        before,
        "a write past its deadline was kept"
    );
    let created = srv
        .groups(1, 1, true)
        .create_group(create_req(1, "On time", &[1]))
        .await;
    assert!(created.is_ok(), "the tenant is left unusable: {created:?}");
}

/// The server's cap on a call (`--max-call-ms`): a call with no deadline, or a longer one, that
/// runs past it answers DEADLINE_EXCEEDED at the cap and keeps nothing; a shorter deadline
/// of the caller's still applies.
#[tokio::test(flavor = "multi_thread")]
async fn deadline_the_servers_cap_bounds_calls_without_one() {
    let Some(srv) = TestServer::start_setup(|s| {
        s.options.max_call = Some(Duration::from_millis(400));
    })
    .await
    else {
        return;
    };
    srv.company(1, 2).await;
    let before = srv.group_count(1).await;
    let hold = hold_writes(&srv, 1, Duration::from_millis(2000)).await;
    let mut groups = srv.groups(1, 1, true);
    for timeout in [
        None,
        Some(Duration::from_secs(60)),
        Some(Duration::from_millis(150)),
    ] {
        let mut req = Request::new(create_req(1, "Capped", &[1]));
        if let Some(t) = timeout {
            req.set_timeout(t);
        }
        let started = std::time::Instant::now();
        let refused = groups.create_group(req).await.unwrap_err();
        let took = started.elapsed();
        assert_eq!(
            refused.code(),
            Code::DeadlineExceeded,
            "{timeout:?}: {refused:?}"
        );
        let bound = timeout.map_or(Duration::from_millis(400), |t| {
            t.min(Duration::from_millis(400))
        });
        assert!(
            took >= bound - Duration::from_millis(30) && took < bound + Duration::from_millis(300),
            "{timeout:?}: answered after {took:?}, the bound is {bound:?}"
        );
    }
    hold.await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(srv.group_count(1).await, before, "a capped write was kept");
}

#[tokio::test(flavor = "multi_thread")]
async fn deadline_a_burst_of_cancelled_calls_does_not_fail_a_concurrent_call() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let group = srv
        .groups(1, 1, true)
        .create_group(create_req(1, "Steady", &[1]))
        .await
        .unwrap()
        .into_inner();
    let name = group.name.clone();
    let healthy = {
        let mut groups = srv.groups(1, 1, true);
        tokio::spawn(async move {
            for _ in 0..200 {
                groups.get_group(get_req(&name)).await?;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Ok::<_, tonic::Status>(())
        })
    };
    // 1,000 calls on the same connection, each given up by the client at once (RST_STREAM).
    let cancelled: Vec<_> = (0..1000)
        .map(|i| {
            let mut groups = srv.groups(1, 1, true);
            let name = group.name.clone();
            tokio::spawn(async move {
                let wait = Duration::from_micros(100 * (i % 10));
                let _ = tokio::time::timeout(wait, groups.get_group(get_req(&name))).await;
            })
        })
        .collect();
    for c in cancelled {
        c.await.unwrap();
    }
    healthy
        .await
        .unwrap()
        .expect("a healthy call failed during the burst of cancellations");
}

#[tokio::test(flavor = "multi_thread")]
async fn overload_calls_over_the_concurrency_limit_are_refused_and_health_answers() {
    let Some(srv) = TestServer::start_setup(|s| {
        s.options.concurrency = Concurrency {
            max_concurrent: 2,
            max_queued: 2,
            queue_wait: Duration::from_millis(20),
        };
    })
    .await
    else {
        return;
    };
    srv.company(1, 2).await;
    let hold = hold_writes(&srv, 1, Duration::from_millis(1500)).await;
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let mut groups = srv.groups(1, 1, true);
            tokio::spawn(async move {
                groups
                    .create_group(create_req(1, &format!("Crowd {i}"), &[1]))
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let health = HealthClient::new(srv.channel.clone())
        .check(HealthCheckRequest::default())
        .await;
    assert!(health.is_ok(), "health refused under overload: {health:?}");
    let (mut created, mut refused) = (0, 0);
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => created += 1,
            Err(status) => {
                assert_reason(&status, Code::ResourceExhausted, "OVERLOADED");
                assert!(status.get_details_retry_info().is_some(), "{status:?}");
                refused += 1;
            }
        }
    }
    hold.await.unwrap();
    // Two run, none waits past 20 ms while the writes are held: the rest are refused.
    assert_eq!(created, 2, "created {created}, refused {refused}");
    assert_eq!(refused, 18);
    assert_eq!(srv.group_count(1).await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn overload_a_tenant_over_its_rate_is_refused_while_another_is_served() {
    let Some(srv) = TestServer::start_setup(|s| {
        s.options.tenant_rate = Some(Rate {
            per_second: 1.0,
            burst: 20,
        });
    })
    .await
    else {
        return;
    };
    srv.company(1, 2).await;
    srv.company(2, 2).await;
    let mut busy = srv.directory(1);
    let mut refusal = None;
    for _ in 0..40 {
        if let Err(status) = busy.get_tenant(pb::GetTenantRequest { tenant_id: 1 }).await {
            refusal = Some(status);
            break;
        }
    }
    let status = refusal.expect("tenant 1 was never refused");
    assert_reason(&status, Code::ResourceExhausted, "RATE_LIMITED");
    let quota = status.get_details_quota_failure().expect("QuotaFailure");
    assert_eq!(quota.violations[0].subject, "tenants/1");
    let retry = status.get_details_retry_info().expect("RetryInfo");
    assert!(retry.retry_delay.is_some_and(|d| d > Duration::ZERO));
    // The other tenant's calls go through.
    for _ in 0..5 {
        srv.get_tenant(2).await;
    }
}
