//! A server process of the topology (the built binary) and the calls the test makes to it.

use std::future::Future;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use group_service::grpc::pb;
use group_service::grpc::pb::directory_service_client::DirectoryServiceClient;
use group_service::grpc::pb::group_service_client::GroupServiceClient;
use group_service::grpc::pb::membership_service_client::MembershipServiceClient;
use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use super::cluster::Cluster;

const SECRET: &str = "topology-hs256-secret-0123456789abcdef";
const TENANT: i64 = 1;

fn free_addr() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.to_string())
        .expect("a free port")
}

fn token(sub: &str, admin: bool, service: bool) -> String {
    group_service::auth::mint_hs256(SECRET.as_bytes(), TENANT, sub, admin, service, 3600)
        .expect("a token")
}

/// Statements a server sent, by where they went.
#[derive(Clone, Copy, Debug, Default)]
pub struct Statements {
    pub primary: u64,
    pub standby: u64,
}

impl Statements {
    pub fn since(&self, before: &Statements) -> Statements {
        Statements {
            primary: self.primary - before.primary,
            standby: self.standby - before.standby,
        }
    }
}

/// One server process: the primary for writes, the standby for reads that it has replayed.
pub struct Replica {
    child: Child,
    metrics: String,
    channel: Channel,
    _data: tempfile::TempDir,
}

impl Replica {
    /// A server on `cluster`'s primary, reading from its standby; `extra`: more flags.
    pub async fn start(cluster: &Cluster, name: &str, extra: &[&str]) -> Replica {
        let standby = cluster.standby_url();
        let mut flags = vec!["--database-read-url", &standby];
        flags.extend_from_slice(extra);
        Replica::start_on(&cluster.primary_url(), name, &flags).await
    }

    /// A server on the database at `url`; `extra`: more flags.
    pub async fn start_on(url: &str, name: &str, extra: &[&str]) -> Replica {
        let data = tempfile::tempdir().expect("a data dir");
        let (addr, metrics) = (free_addr(), free_addr());
        let child = Command::new(env!("CARGO_BIN_EXE_group-service"))
            .args(["--listen", &addr, "--metrics-listen", &metrics])
            .args(["--database-url", url])
            .args(["--jwt-secret", SECRET])
            .args(extra)
            .arg("--data-dir")
            .arg(data.path())
            .env_remove("NATS_URL")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("server {name}: {e}"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let channel = loop {
            if let Ok(endpoint) = Channel::from_shared(format!("http://{addr}"))
                && let Ok(channel) = endpoint.connect().await
            {
                break channel;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "server {name} did not listen within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        Replica {
            child,
            metrics,
            channel,
            _data: data,
        }
    }

    fn request<T>(&self, body: T, bearer: &str) -> Request<T> {
        let mut req = Request::new(body);
        let value: MetadataValue<_> = format!("Bearer {bearer}").parse().expect("a header");
        req.metadata_mut().insert("authorization", value);
        req
    }

    /// Tenant 1 with an admin (user 1) and `users` more users, and a private group of them
    /// all (mastered by user 1); its name.
    pub async fn arrange(&self, users: i64) -> String {
        let service = token("svc", false, true);
        let mut directory = DirectoryServiceClient::new(self.channel.clone());
        let tenant = pb::Tenant {
            id: TENANT,
            display_name: "Topology".into(),
            plan: pb::Plan::Paid as i32,
            group_creation: pb::GroupCreation::AllMembers as i32,
            ..Default::default()
        };
        directory
            .upsert_tenant(self.request(
                pb::UpsertTenantRequest {
                    tenant: Some(tenant),
                },
                &service,
            ))
            .await
            .expect("tenant");
        for id in 1..=users + 1 {
            let user = pb::User {
                tenant_id: TENANT,
                id,
                email: format!("u{id}@topology.example"),
                display_name: format!("User {id}"),
                is_admin: id == 1,
                ..Default::default()
            };
            directory
                .upsert_user(self.request(pb::UpsertUserRequest { user: Some(user) }, &service))
                .await
                .expect("user");
        }
        let members = (2..=users + 1)
            .map(|id| pb::MemberRef {
                r#type: pb::MemberType::User as i32,
                id,
                ..Default::default()
            })
            .collect();
        let mut groups = GroupServiceClient::new(self.channel.clone());
        groups
            .create_group(self.request(
                pb::CreateGroupRequest {
                    parent: format!("tenants/{TENANT}"),
                    group: Some(pb::Group {
                        display_name: "Replicated".into(),
                        ..Default::default()
                    }),
                    master_user_ids: vec![1],
                    members,
                    ..Default::default()
                },
                &token("1", true, false),
            ))
            .await
            .expect("group")
            .into_inner()
            .name
    }

    /// Creates a group named `name` (mastered by the admin); the call's outcome.
    pub async fn create(&self, name: &str) -> Result<(), tonic::Status> {
        let mut groups = GroupServiceClient::new(self.channel.clone());
        let mut req = self.request(
            pb::CreateGroupRequest {
                parent: format!("tenants/{TENANT}"),
                group: Some(pb::Group {
                    display_name: name.to_owned(),
                    ..Default::default()
                }),
                master_user_ids: vec![1],
                ..Default::default()
            },
            &token("1", true, false),
        );
        req.set_timeout(Duration::from_secs(10));
        groups.create_group(req).await.map(|_| ())
    }

    /// The display names of every group of the tenant, as the admin lists them here.
    pub async fn group_names(&self) -> std::collections::BTreeSet<String> {
        let mut groups = GroupServiceClient::new(self.channel.clone());
        let (mut names, mut page_token) = (std::collections::BTreeSet::new(), String::new());
        loop {
            let page = groups
                .list_groups(self.request(
                    pb::ListGroupsRequest {
                        parent: format!("tenants/{TENANT}"),
                        page_size: 100,
                        page_token: page_token.clone(),
                        ..Default::default()
                    },
                    &token("1", true, false),
                ))
                .await
                .expect("list groups")
                .into_inner();
            names.extend(page.groups.into_iter().map(|g| g.display_name));
            if page.next_page_token.is_empty() {
                return names;
            }
            page_token = page.next_page_token;
        }
    }

    /// Sets the group's description; the write's consistency token.
    pub async fn describe(&self, group: &str, description: &str) -> String {
        let mut groups = GroupServiceClient::new(self.channel.clone());
        let answer = groups
            .update_group(self.request(
                pb::UpdateGroupRequest {
                    group: Some(pb::Group {
                        name: group.to_owned(),
                        description: description.to_owned(),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["description".into()],
                    }),
                },
                &token("1", true, false),
            ))
            .await
            .expect("update");
        answer
            .metadata()
            .get("x-consistency-token")
            .expect("a consistency token")
            .to_str()
            .expect("ASCII")
            .to_owned()
    }

    /// The group's description as the admin reads it here, with `token` if given.
    pub async fn read_description(&self, group: &str, token_value: Option<&str>) -> String {
        let mut groups = GroupServiceClient::new(self.channel.clone());
        let mut req = self.request(
            pb::GetGroupRequest {
                name: group.to_owned(),
            },
            &token("1", true, false),
        );
        if let Some(t) = token_value {
            req.metadata_mut()
                .insert("x-consistency-token", t.parse().expect("a header"));
        }
        groups
            .get_group(req)
            .await
            .expect("read")
            .into_inner()
            .description
    }

    /// Whether `user` is a member of the group, as the admin asks here.
    pub async fn check(&self, group: &str, user: i64) -> bool {
        let mut membership = MembershipServiceClient::new(self.channel.clone());
        membership
            .check_membership(self.request(
                pb::CheckMembershipRequest {
                    group: group.to_owned(),
                    user: Some(pb::UserRef {
                        tenant_id: TENANT,
                        user_id: user,
                    }),
                },
                &token("1", true, false),
            ))
            .await
            .expect("check")
            .into_inner()
            .member
    }

    /// The statements this server has sent to the primary and to the standby
    /// (`group_service_db_statements_total`, from its metrics).
    pub async fn statements(&self) -> Statements {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(&self.metrics)
            .await
            .expect("the metrics listener");
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: test\r\n\r\n")
            .await
            .expect("a scrape");
        let mut text = String::new();
        stream.read_to_string(&mut text).await.expect("the metrics");
        let mut out = Statements::default();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("group_service_db_statements_total{pool=\"") else {
                continue;
            };
            let (pool, value) = rest.split_once("\"} ").expect("a sample");
            let value: u64 = value.trim().parse().expect("a count");
            match pool {
                "postgres" => out.primary += value,
                p if p.starts_with("postgres_standby") => out.standby += value,
                _ => {}
            }
        }
        out
    }

    /// Runs `read` (its round number given) until this server has sent statements to the
    /// standby, for at most `limit`; whether it did.
    pub async fn standby_reads_within<F, Fut>(&self, limit: Duration, read: F) -> bool
    where
        F: Fn(usize) -> Fut,
        Fut: Future<Output = bool>,
    {
        let before = self.statements().await;
        let deadline = tokio::time::Instant::now() + limit;
        let mut round = 0;
        while tokio::time::Instant::now() < deadline {
            for _ in 0..20 {
                read(round).await;
                round += 1;
            }
            if self.statements().await.since(&before).standby > 0 {
                return true;
            }
        }
        false
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
