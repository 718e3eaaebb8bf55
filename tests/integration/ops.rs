//! Operations: migrations and graceful shutdown.

use std::time::Duration;

use crate::fixtures::*;
use crate::harness::*;
use group_service::domain::Service;
use group_service::domain::caller::{Caller, Principal};
use group_service::domain::model::TenantId;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_migrations_are_idempotent() {
    let Some(srv) = server().await else { return };
    // The harness migrated once already.
    srv.store.migrate().await.expect("second migrate");
    srv.store.migrate().await.expect("third migrate");
    srv.company(1, 2).await;
    let g = srv
        .groups(1, 1, true)
        .create_group(create_req(1, "After migrations", &[2]))
        .await
        .unwrap()
        .into_inner();
    srv.groups(1, 2, false)
        .get_group(get_req(&g.name))
        .await
        .unwrap();
    assert_eq!(srv.group_count(1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_graceful_shutdown_completes() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let mut admin = srv.groups(1, 1, true);
    admin
        .create_group(create_req(1, "Before shutdown", &[2]))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), srv.stop())
        .await
        .expect("shutdown completes");
    // The server no longer answers.
    let err = admin
        .create_group(create_req(1, "After shutdown", &[2]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_graceful_shutdown_drains_calls_in_flight() {
    let Some(mut srv) = server().await else {
        return;
    };
    srv.company(1, 2).await;
    let admin = srv.groups(1, 1, true);
    let calls = Race::start(40, 0..40, |i| {
        let mut client = admin.clone();
        async move {
            client
                .create_group(create_req(1, &format!("in flight {i}"), &[2]))
                .await
        }
    });
    // Let some of the calls reach the server before it is told to stop.
    tokio::time::sleep(Duration::from_millis(5)).await;
    tokio::time::timeout(Duration::from_secs(10), srv.shutdown())
        .await
        .expect("shutdown completes");
    let mut ok = 0;
    for answer in calls.answers().await {
        match answer {
            Ok(_) => ok += 1,
            // Refused by the server, or never taken: a call the client sends after the
            // server's GOAWAY fails in the tonic client itself ("h2 protocol error ... GoAway",
            // which it reports as INTERNAL); the server never saw it.
            Err(err) if err.code() == Code::Internal => {
                assert!(format!("{err:?}").contains("GoAway"), "{err:?}")
            }
            Err(err) => assert_eq!(err.code(), Code::Unavailable, "{err:?}"),
        }
    }
    // Every call the server took was answered: as many groups are stored as were reported
    // created. The server is gone, so read the count through the domain directly.
    let service = Service::new(srv.store.clone(), b"ops-test");
    let directory_system = Caller {
        tenant: TenantId(1),
        principal: Principal::Service("directory".into()),
        admin_claim: false,
    };
    let stored = service
        .get_tenant(&directory_system, TenantId(1))
        .await
        .unwrap()
        .group_count;
    println!("drain: {ok} of 40 creates answered OK before shutdown");
    assert_eq!(stored, ok);
}

/// Health says whether the database answers, not whether a connection is free: with every
/// pooled connection taken by calls it stays SERVING (a busy server told to drain by its load
/// balancer would only move the load). NOT_SERVING while the database does not answer is
/// tested in `tests/reliability/outage.rs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_health_is_serving_while_the_pool_is_busy() {
    let Some((srv, held)) = TestServer::start_with(TestServer::hold_read_connections).await else {
        return;
    };
    let mut health = HealthClient::new(srv.channel.clone());
    let mut answers = Vec::new();
    for service in ["", "groups.v1.GroupService", "groups.v1.DirectoryService"] {
        // The first answer may precede the server's first look at the database.
        let mut answer = None;
        for _ in 0..100 {
            let status = health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .map(|r| r.into_inner().status)
                .map_err(|e| (e.code(), e.message().to_owned()));
            answer = Some(status.clone());
            if status == Ok(ServingStatus::Serving as i32) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        answers.push((service, answer));
    }
    for (service, answer) in &answers {
        assert_eq!(
            *answer,
            Some(Ok(ServingStatus::Serving as i32)),
            "health of {service:?} with the pool busy; all answers: {answers:?}"
        );
    }
    drop(held);
}

/// Runs `group-service health` with `args`: whether it exited 0, and what it printed.
async fn health_command(args: &[&str]) -> (bool, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_group-service"))
            .arg("health")
            .args(&args)
            .env_remove("GROUP_SERVICE_LISTEN")
            .output()
            .expect("run group-service health")
    })
    .await
    .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), printed)
}

/// Waits until the server's health is `want`, through the gRPC client.
async fn until_health(srv: &TestServer, want: ServingStatus) {
    let mut health = HealthClient::new(srv.channel.clone());
    for _ in 0..200 {
        let status = health.check(HealthCheckRequest::default()).await;
        if status.is_ok_and(|r| r.into_inner().status == want as i32) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("health never became {want:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_health_command_exits_0_when_serving() {
    let Some(srv) = server().await else { return };
    until_health(&srv, ServingStatus::Serving).await;
    // A wildcard listen address is dialed on the loopback.
    let listen = format!("0.0.0.0:{}", srv.addr.port());
    let (ok, printed) = health_command(&["--listen", &listen]).await;
    assert!(ok, "{printed}");
    assert!(printed.contains("SERVING"), "{printed}");
    let addr = srv.addr.to_string();
    let (ok, printed) =
        health_command(&["--addr", &addr, "--service", "groups.v1.GroupService"]).await;
    assert!(ok, "{printed}");
    // A service the server does not report is a failure.
    let (ok, printed) = health_command(&["--addr", &addr, "--service", "groups.v1.Nope"]).await;
    assert!(!ok, "{printed}");
    assert!(printed.contains("unknown service"), "{printed}");
    assert_eq!(printed.lines().count(), 1, "{printed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_health_command_fails_while_shutting_down() {
    let Some(mut srv) = TestServer::start_setup(|s| {
        s.options.drain = group_service::guard::drain::Drain {
            delay: Duration::from_secs(5),
            deadline: Duration::from_secs(10),
            idle_close: group_service::guard::drain::DEFAULT_IDLE_CLOSE,
        }
    })
    .await
    else {
        return;
    };
    until_health(&srv, ServingStatus::Serving).await;
    srv.signal_shutdown();
    // Calls are still answered during the delay, with health NOT_SERVING.
    until_health(&srv, ServingStatus::NotServing).await;
    let (ok, printed) = health_command(&["--addr", &srv.addr.to_string()]).await;
    assert!(!ok, "{printed}");
    assert!(printed.contains("NOT_SERVING"), "{printed}");
    assert_eq!(printed.lines().count(), 1, "{printed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_health_command_fails_on_a_closed_port_and_on_silence() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let (ok, printed) = health_command(&["--addr", &closed]).await;
    assert!(!ok, "{printed}");
    assert!(printed.contains("unreachable"), "{printed}");
    assert_eq!(printed.lines().count(), 1, "{printed}");
    // A port that takes the connection and never answers: the timeout ends the wait.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let keep = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            open.push(conn);
        }
    });
    let started = std::time::Instant::now();
    let (ok, printed) = health_command(&["--addr", &addr, "--timeout-ms", "300"]).await;
    assert!(!ok, "{printed}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(printed.lines().count(), 1, "{printed}");
    keep.abort();
}
