//! A crash: the server process is killed with SIGKILL while writes are in flight,
//! then started again on the same SQLite file. Every write it acknowledged is there.
//! On PostgreSQL durability is the database's; losing it under the server is `outage.rs`.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tonic::transport::Channel;

use crate::fixtures::*;
use crate::harness::*;
use group_service::auth::mint_hs256;
use group_service::grpc::pb;
use group_service::grpc::pb::directory_service_client::DirectoryServiceClient;
use group_service::grpc::pb::group_service_client::GroupServiceClient;

/// A server process, killed when dropped (a failing test leaves none behind).
struct Process(Child);

impl Process {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The service's binary serving `dir`'s SQLite file on `addr`.
fn spawn(dir: &std::path::Path, addr: &str) -> Process {
    Process(
        Command::new(env!("CARGO_BIN_EXE_group-service"))
            .args(["--listen", addr, "--data-dir"])
            .arg(dir)
            .env_remove("DATABASE_URL")
            .env(
                "GROUP_SERVICE_JWT_SECRET",
                std::str::from_utf8(SECRET).unwrap(),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the server"),
    )
}

/// A channel to `addr` once the server there answers.
async fn connect(addr: &str) -> Channel {
    for _ in 0..300 {
        if let Ok(channel) = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
        {
            return channel;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server on {addr} did not start");
}

fn groups(channel: &Channel, tenant: i64, user: i64) -> Groups {
    let token = mint_hs256(SECRET, tenant, &user.to_string(), true, false, 600).unwrap();
    GroupServiceClient::with_interceptor(channel.clone(), Bearer::new(&token))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_kill_9_loses_no_acknowledged_write() {
    if !only_on(
        "sqlite",
        "crash_kill_9",
        "on PostgreSQL see outage_loses_no_acknowledged_write",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().to_string()
    };
    let mut server = spawn(dir.path(), &addr);
    let channel = connect(&addr).await;
    let token = mint_hs256(SECRET, 1, "directory", false, true, 600).unwrap();
    let mut directory =
        DirectoryServiceClient::with_interceptor(channel.clone(), Bearer::new(&token));
    directory
        .upsert_tenant(pb::UpsertTenantRequest {
            tenant: Some(pb::Tenant {
                id: 1,
                display_name: "Tenant 1".into(),
                plan: pb::Plan::Free as i32,
                group_creation: pb::GroupCreation::AdminsOnly as i32,
                core_enabled: true,
                storage_quota_bytes: 1 << 30,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    for (id, admin) in [(1, true), (2, false)] {
        directory
            .upsert_user(pb::UpsertUserRequest {
                user: Some(pb::User {
                    is_admin: admin,
                    ..user_spec(1, id)
                }),
            })
            .await
            .unwrap();
    }

    let running = Arc::new(AtomicBool::new(true));
    let mut writers = Vec::new();
    for worker in 0..4 {
        let mut client = groups(&channel, 1, 1);
        let running = running.clone();
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut i = 0;
            while running.load(Ordering::SeqCst) {
                i += 1;
                let name = format!("Writer {worker} {i}");
                match client
                    .create_group(group(1, &name).master(2).request())
                    .await
                {
                    Ok(g) => acknowledged.push((name, g.into_inner().name)),
                    // The process is gone: the answer never came.
                    Err(_) => return acknowledged,
                }
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    // SIGKILL: no drain, no shutdown hook.
    server.kill();
    running.store(false, Ordering::SeqCst);
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    assert!(
        !acknowledged.is_empty(),
        "no write was acknowledged before the kill"
    );

    let _restarted = spawn(dir.path(), &addr);
    let channel = connect(&addr).await;
    let mut reader = groups(&channel, 1, 1);
    crate::assert_stored(&mut reader, &acknowledged).await;
    println!(
        "kill -9: {} acknowledged creates, all there after the restart",
        acknowledged.len()
    );
}
