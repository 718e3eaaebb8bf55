//! Database outages, on PostgreSQL: a second server reaches the test's
//! database through a TCP proxy the test cuts and restores, or has its sessions terminated by
//! the database. Calls answer UNAVAILABLE at once while the database is known down, health
//! follows the database within 1 s each way, a broken connection is never INTERNAL, and no
//! acknowledged write is lost.
//!
//! SQLite is embedded in the process: there is no database to lose, and these tests say so
//! and return (they run in CI's PostgreSQL step).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::fixtures::*;
use crate::harness::*;
use group_service::grpc::pb;

/// A TCP proxy to PostgreSQL that the test can cut (every connection closed, new ones closed
/// at once, as a database that went away), freeze (connections stay open, new ones are
/// accepted, and nothing is forwarded either way: a network that went silent) and restore.
struct Proxy {
    addr: std::net::SocketAddr,
    cut: Arc<tokio::sync::watch::Sender<bool>>,
    frozen: Arc<tokio::sync::watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

/// Forwards bytes from `from` to `to`, none while `frozen`.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 << 10];
    loop {
        if frozen.wait_for(|f| !*f).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen.wait_for(|f| !*f).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl Proxy {
    async fn to(upstream: std::net::SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(tokio::sync::watch::Sender::new(false));
        let frozen = Arc::new(tokio::sync::watch::Sender::new(false));
        let (state, freezing) = (cut.clone(), frozen.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if *state.borrow() {
                    drop(client);
                    continue;
                }
                let mut cut = state.subscribe();
                let frozen = freezing.subscribe();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (client_in, client_out) = client.into_split();
                    let (server_in, server_out) = server.into_split();
                    tokio::select! {
                        _ = pump(client_in, server_out, frozen.clone()) => {}
                        _ = pump(server_in, client_out, frozen) => {}
                        _ = cut.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Proxy {
            addr,
            cut,
            frozen,
            task,
        }
    }

    fn cut(&self) {
        self.cut.send_replace(true);
    }

    fn restore(&self) {
        self.cut.send_replace(false);
        self.frozen.send_replace(false);
    }

    fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// `count` times: `period` up, then `period` cut; up at the end.
    async fn outages(&self, count: usize, period: Duration) {
        for _ in 0..count {
            tokio::time::sleep(period).await;
            self.cut();
            tokio::time::sleep(period).await;
            self.restore();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Each create of `unknown` (display name, request id) that did not answer OK, retried through
/// `srv` with its request id: stored once, added to `acknowledged`.
async fn retry_unanswered(
    srv: &TestServer,
    unknown: &[(String, String)],
    acknowledged: &mut Vec<(String, String)>,
) {
    let mut creator = srv.groups(1, 1, true);
    for (name, request_id) in unknown {
        let g = creator
            .create_group(group(1, name).master(2).request_id(request_id).request())
            .await
            .unwrap()
            .into_inner();
        acknowledged.push((name.clone(), g.name));
    }
}

/// The test's server, and a replica of it that reaches the database through a proxy; `None`
/// on SQLite (said on stderr).
async fn behind_proxy(test: &str) -> Option<(TestServer, TestServer, Proxy)> {
    if !only_on("postgres", test, "SQLite is embedded: no outage") {
        return None;
    }
    let srv = TestServer::start().await?;
    let (host_port, rest) = authority(&srv.url);
    let upstream = tokio::net::lookup_host(host_port.as_str())
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = Proxy::to(upstream).await;
    let via = format!("{}{}{}", rest.0, proxy.addr, rest.1);
    let replica = srv.replica_via(&via).await;
    Some((srv, replica, proxy))
}

/// `postgres://user@host:port/db?q` as ("host:port", ("postgres://user@", "/db?q")).
fn authority(url: &str) -> (String, (String, String)) {
    let start = url.find("://").unwrap() + 3;
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    let host_start = url[start..end].rfind('@').map_or(start, |i| start + i + 1);
    let mut host_port = url[host_start..end].to_owned();
    if !host_port.contains(':') {
        host_port.push_str(":5432");
    }
    (
        host_port,
        (url[..host_start].to_owned(), url[end..].to_owned()),
    )
}

/// Polls health every 10 ms until it reports `want`; how long that took.
async fn until_health(
    health: &mut HealthClient<tonic::transport::Channel>,
    want: ServingStatus,
) -> Duration {
    let start = Instant::now();
    loop {
        let status = health
            .check(HealthCheckRequest::default())
            .await
            .unwrap()
            .into_inner()
            .status;
        if status == want as i32 {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "health did not become {want:?} in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outage_calls_fail_fast_and_health_follows_the_database() {
    let Some((srv, replica, proxy)) = behind_proxy("outage_calls_fail_fast").await else {
        return;
    };
    srv.company(1, 3).await;
    let g = group(1, "Design").master(2).create(&srv).await;
    let mut health = HealthClient::new(replica.channel.clone());
    until_health(&mut health, ServingStatus::Serving).await;
    let mut groups = replica.groups(1, 2, false);
    groups
        .get_group(pb::GetGroupRequest {
            name: g.name.clone(),
        })
        .await
        .unwrap();

    proxy.cut();
    let lost = until_health(&mut health, ServingStatus::NotServing).await;
    // Known down: reads and writes answer UNAVAILABLE at once, not after the pool's 5 s.
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let start = Instant::now();
        let err = if i % 2 == 0 {
            groups
                .get_group(pb::GetGroupRequest {
                    name: g.name.clone(),
                })
                .await
                .unwrap_err()
        } else {
            replica
                .groups(1, 1, true)
                .create_group(group(1, &format!("Down {i}")).master(2).request())
                .await
                .unwrap_err()
        };
        slowest = slowest.max(start.elapsed());
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    }
    proxy.restore();
    let back = until_health(&mut health, ServingStatus::Serving).await;
    println!(
        "outage: NOT_SERVING {lost:?} after the cut, UNAVAILABLE within {slowest:?} while \
         down, SERVING {back:?} after the return"
    );
    // The bounds are 1 s each way and 100 ms for a refusal; asserted with room for a loaded
    // machine, so that only a return to waiting out timeouts fails here.
    assert!(lost < Duration::from_secs(3), "NOT_SERVING after {lost:?}");
    assert!(back < Duration::from_secs(3), "SERVING after {back:?}");
    assert!(
        slowest < Duration::from_secs(1),
        "a refusal took {slowest:?}"
    );

    // Back: the pool's connections from before the cut are closed; reads and writes work
    // at once on new ones.
    groups
        .get_group(pb::GetGroupRequest {
            name: g.name.clone(),
        })
        .await
        .unwrap();
    replica
        .groups(1, 1, true)
        .create_group(group(1, "After").master(2).request())
        .await
        .unwrap();
}

/// Calls in flight when the database ends their sessions (as a fast stop does: "terminating
/// connection due to administrator command") or when the network goes: OK or UNAVAILABLE,
/// never INTERNAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outage_calls_in_flight_answer_unavailable_never_internal() {
    let Some((srv, replica, proxy)) = behind_proxy("outage_calls_in_flight").await else {
        return;
    };
    srv.company(1, 3).await;
    let g = group(1, "Design")
        .master(2)
        .member(user_of(1, 3))
        .create(&srv)
        .await;
    let admin = pg_client(&srv).await;
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let counts = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
    let mut callers = Vec::new();
    for worker in 0..6 {
        let (running, counts, name) = (running.clone(), counts.clone(), g.name.clone());
        let mut groups = replica.groups(1, 2, false);
        let mut membership = replica.membership(1, 2, false);
        let mut creator = replica.groups(1, 1, true);
        callers.push(tokio::spawn(async move {
            let mut i = 0;
            while running.load(Ordering::SeqCst) {
                i += 1;
                let code = match (worker + i) % 3 {
                    0 => groups
                        .get_group(pb::GetGroupRequest { name: name.clone() })
                        .await
                        .err()
                        .map(|e| (e.code(), e.message().to_owned())),
                    1 => membership
                        .check_membership(pb::CheckMembershipRequest {
                            group: name.clone(),
                            user: Some(user_ref(1, 3)),
                        })
                        .await
                        .err()
                        .map(|e| (e.code(), e.message().to_owned())),
                    _ => creator
                        .create_group(
                            group(1, &format!("W{worker} {i}"))
                                .master(2)
                                .request_id(&format!("w{worker}-{i}"))
                                .request(),
                        )
                        .await
                        .err()
                        .map(|e| (e.code(), e.message().to_owned())),
                };
                let key = code
                    .map(|(c, m)| format!("{c:?}: {m}"))
                    .unwrap_or_else(|| "Ok".into());
                *counts.lock().unwrap().entry(key).or_insert(0u64) += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    // The database ends every session of the test database but the killer's, three times;
    // then the network goes twice.
    let database = srv
        .url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&database],
            )
            .await
            .unwrap();
    }
    proxy.outages(2, Duration::from_millis(150)).await;
    tokio::time::sleep(Duration::from_millis(650)).await;
    running.store(false, Ordering::SeqCst);
    for caller in callers {
        caller.await.unwrap();
    }
    let counts = counts.lock().unwrap().clone();
    println!("in-flight answers: {counts:?}");
    for answer in counts.keys() {
        assert!(
            answer == "Ok" || answer.starts_with("Unavailable"),
            "an answer other than OK or UNAVAILABLE: {answer}; all: {counts:?}"
        );
    }
    assert!(counts.contains_key("Ok"), "{counts:?}");
}

/// Writers keep creating groups while the database goes and comes back: every create that
/// answered OK is stored, and a create retried with its request id after UNAVAILABLE is
/// stored exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outage_loses_no_acknowledged_write() {
    let Some((srv, replica, proxy)) = behind_proxy("outage_loses_no_write").await else {
        return;
    };
    srv.company(1, 3).await;
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let failed = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for worker in 0..4 {
        let mut creator = replica.groups(1, 1, true);
        let (running, failed) = (running.clone(), failed.clone());
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut unknown = Vec::new();
            let mut i = 0;
            while running.load(Ordering::SeqCst) {
                i += 1;
                let name = format!("Writer {worker} {i}");
                match creator
                    .create_group(
                        group(1, &name)
                            .master(2)
                            .request_id(&format!("{worker}-{i}"))
                            .request(),
                    )
                    .await
                {
                    Ok(g) => acknowledged.push((name, g.into_inner().name)),
                    Err(e) => {
                        assert_eq!(e.code(), Code::Unavailable, "{e:?}");
                        failed.fetch_add(1, Ordering::SeqCst);
                        unknown.push((name, format!("{worker}-{i}")));
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
            (acknowledged, unknown)
        }));
    }
    proxy.outages(3, Duration::from_millis(300)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.store(false, Ordering::SeqCst);
    let mut acknowledged = Vec::new();
    let mut unknown = Vec::new();
    for writer in writers {
        let (a, u) = writer.await.unwrap();
        acknowledged.extend(a);
        unknown.extend(u);
    }
    // Whatever did not answer is retried with its request id until it does.
    retry_unanswered(&srv, &unknown, &mut acknowledged).await;
    println!(
        "writes: {} acknowledged during the outages, {} retried after UNAVAILABLE",
        acknowledged.len() - unknown.len(),
        failed.load(Ordering::SeqCst)
    );
    assert!(acknowledged.len() > unknown.len(), "no write got through");
    let mut reader = srv.groups(1, 1, true);
    crate::assert_stored(&mut reader, &acknowledged).await;
    assert_eq!(srv.group_count(1).await, acknowledged.len() as i64);
}

/// The network to the database goes silent for 4 s (connections stay open, nothing is
/// forwarded, nothing is closed) under readers and writers: every call running when it froze
/// answers within about a second (UNAVAILABLE), never waiting out the outage; every answer is
/// OK or UNAVAILABLE; after it, every acknowledged write is stored and the rest are stored
/// exactly once when retried with their request ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn frozen_database_network_fails_calls_in_flight_within_a_second() {
    let Some((srv, replica, proxy)) = behind_proxy("frozen_database_network").await else {
        return;
    };
    srv.company(1, 3).await;
    let g = group(1, "Design").master(2).create(&srv).await;
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let frozen_at: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let mut workers = Vec::new();
    for worker in 0..6 {
        let (running, frozen_at, name) = (running.clone(), frozen_at.clone(), g.name.clone());
        let mut creator = replica.groups(1, 1, true);
        let mut reader = replica.groups(1, 2, false);
        workers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut unknown = Vec::new();
            let mut codes = std::collections::BTreeMap::<String, u64>::new();
            // How long past the freeze each call caught by it took to answer.
            let mut caught = Vec::new();
            let mut i = 0;
            while running.load(Ordering::SeqCst) {
                i += 1;
                let started = Instant::now();
                let name_i = format!("Frozen {worker} {i}");
                let request_id = format!("f{worker}-{i}");
                let answer = if worker % 2 == 0 {
                    creator
                        .create_group(
                            group(1, &name_i)
                                .master(2)
                                .request_id(&request_id)
                                .request(),
                        )
                        .await
                        .map(|g| Some(g.into_inner().name))
                } else {
                    reader
                        .get_group(pb::GetGroupRequest { name: name.clone() })
                        .await
                        .map(|_| None)
                };
                let ended = Instant::now();
                let frozen = *frozen_at.lock().unwrap();
                if let Some(at) = frozen
                    && started <= at
                    && ended > at
                {
                    caught.push(ended - at);
                }
                let code = match answer {
                    Ok(Some(stored)) => {
                        acknowledged.push((name_i, stored));
                        "Ok".to_owned()
                    }
                    Ok(None) => "Ok".to_owned(),
                    Err(e) => {
                        if worker % 2 == 0 {
                            unknown.push((name_i, request_id));
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        format!("{:?}", e.code())
                    }
                };
                *codes.entry(code).or_default() += 1;
            }
            (acknowledged, unknown, codes, caught)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    *frozen_at.lock().unwrap() = Some(Instant::now());
    proxy.freeze();
    tokio::time::sleep(Duration::from_secs(4)).await;
    proxy.restore();
    tokio::time::sleep(Duration::from_millis(700)).await;
    running.store(false, Ordering::SeqCst);
    let (mut acknowledged, mut unknown) = (Vec::new(), Vec::new());
    let mut codes = std::collections::BTreeMap::<String, u64>::new();
    let mut caught = Vec::new();
    for worker in workers {
        let (a, u, c, t) = worker.await.unwrap();
        acknowledged.extend(a);
        unknown.extend(u);
        caught.extend(t);
        for (code, n) in c {
            *codes.entry(code).or_default() += n;
        }
    }
    caught.sort();
    println!("answers: {codes:?}; calls caught by the freeze answered after {caught:?}");
    for code in codes.keys() {
        assert!(code == "Ok" || code == "Unavailable", "{codes:?}");
    }
    assert!(
        !caught.is_empty(),
        "no call was running when the network froze"
    );
    let slowest = *caught.last().unwrap();
    assert!(
        slowest < Duration::from_millis(1500),
        "a call caught by the freeze answered {slowest:?} after it: {caught:?}"
    );
    // Whatever did not answer OK is retried with its request id, through the server that
    // never lost the database: stored once, and nothing acknowledged is missing.
    retry_unanswered(&srv, &unknown, &mut acknowledged).await;
    let mut reader = srv.groups(1, 1, true);
    crate::assert_stored(&mut reader, &acknowledged).await;
    assert_eq!(srv.group_count(1).await, acknowledged.len() as i64 + 1);
    // And the replica serves again.
    replica
        .groups(1, 2, false)
        .get_group(pb::GetGroupRequest { name: g.name })
        .await
        .unwrap();
}
