//! Load generator and benchmark for group-service, for machines without ghz.
//!
//! Starts the real server in-process on 127.0.0.1:0 (SQLite in a temporary directory, or
//! PostgreSQL when `DATABASE_URL` names an empty database), seeds a small tenant and a large
//! one, then drives gRPC calls at a fixed concurrency and reports latency percentiles. Speed is
//! reported as ratios against a baseline measured in the same run (GetGroup on the small
//! tenant), and the large tenant against the small one: the membership and autocomplete
//! queries should cost about the same on both.
//!
//! `cargo bench --bench loadgen` (defaults), or with settings:
//! `LOADGEN_LARGE=100000 LOADGEN_REQUESTS=3000 LOADGEN_CONCURRENCY=16 cargo bench --bench loadgen`.
//! Every loop is bounded by its request count; only loopback addresses are used.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use group_service::auth::{Verifier, mint_hs256};
use group_service::domain::Service;
use group_service::domain::caller::{Caller, Principal};
use group_service::domain::groups::{CreateGroup, GroupSpec};
use group_service::domain::model::MemberRef;
use group_service::domain::model::*;
use group_service::grpc::pb;
use group_service::grpc::pb::group_service_client::GroupServiceClient;
use group_service::grpc::pb::membership_service_client::MembershipServiceClient;
use group_service::store::Store;
use tokio::sync::Semaphore;
use tonic::Request;
use tonic::transport::Channel;

const SECRET: &[u8] = b"loadgen-secret-0123456789abcdef";
/// Users per tenant: enough that 100,000 groups stay under R03's 2,000 per user.
const USERS: i64 = 300;
const WORDS: [&str; 12] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima",
];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn service_caller(tenant: i64) -> Caller {
    Caller {
        tenant: TenantId(tenant),
        principal: Principal::Service("loadgen".into()),
        admin_claim: true,
    }
}

/// A tenant with 300 users (user 1 an admin), a team, a chain of nested groups (depth 3)
/// whose innermost group holds the team, and `groups` groups in all.
async fn seed(service: &Service, tenant: i64, groups: usize) -> anyhow::Result<(GroupId, GroupId)> {
    let svc = service_caller(tenant);
    service
        .upsert_tenant(
            &svc,
            Tenant {
                id: TenantId(tenant),
                display_name: format!("Tenant {tenant}"),
                plan: Plan::Paid,
                core_enabled: true,
                group_creation: GroupCreation::AdminsOnly,
                masters_may_manage_settings: true,
                storage_quota_bytes: 0,
                storage_used_bytes: 0,
                group_count: 0,
            },
        )
        .await?;
    for id in 1..=USERS {
        service
            .upsert_user(
                &svc,
                User {
                    key: UserKey {
                        tenant: TenantId(tenant),
                        user: UserId(id),
                    },
                    email: format!("u{id}@t{tenant}.example"),
                    display_name: format!("User {id}"),
                    is_admin: id == 1,
                    external_messaging_allowed: true,
                    kind: UserKind::Works,
                },
            )
            .await?;
    }
    service
        .upsert_team(
            &svc,
            Team {
                tenant: TenantId(tenant),
                id: TeamId(1),
                display_name: "Team".into(),
                email: String::new(),
                members: vec![UserId(20)],
            },
        )
        .await?;
    let create =
        |name: String, master: UserId, members: Vec<MemberRef>, public: bool| CreateGroup {
            tenant: TenantId(tenant),
            spec: GroupSpec {
                display_name: name,
                description: "load test group".into(),
                photo_uri: String::new(),
                kind: GroupKind::Internal,
                is_public: public,
                features: Features::default(),
                notify_all_members: false,
                master_manages_features: false,
                external_key: None,
                mailing_list: None,
            },
            masters: vec![master],
            members,
            member_keys: Vec::new(),
            request_id: None,
        };
    // Nested chain: outer > middle > inner > team 1 (user 20).
    let inner = service
        .create_group(
            &svc,
            create(
                "nest-inner".into(),
                UserId(2),
                vec![MemberRef::Team(TeamId(1))],
                false,
            ),
        )
        .await?
        .group;
    let middle = service
        .create_group(
            &svc,
            create(
                "nest-middle".into(),
                UserId(2),
                vec![MemberRef::Group(inner.id)],
                false,
            ),
        )
        .await?
        .group;
    let outer = service
        .create_group(
            &svc,
            create(
                "nest-outer".into(),
                UserId(2),
                vec![MemberRef::Group(middle.id)],
                false,
            ),
        )
        .await?
        .group;
    // The rest, created 8 at a time.
    let sem = Arc::new(Semaphore::new(8));
    let mut tasks = Vec::new();
    for i in 3..groups {
        let permit = sem.clone().acquire_owned().await?;
        let (service, svc) = (service.clone(), svc.clone());
        // Spread over the users: nobody comes near R03's 2,000 direct groups.
        let spread = (USERS - 2) / 2;
        let master = UserId(2 + (i as i64 % spread));
        let member = MemberRef::User(UserKey {
            tenant: TenantId(tenant),
            user: UserId(2 + spread + (i as i64 % spread)),
        });
        let cmd = create(
            format!("{}-{i:06}", WORDS[i % WORDS.len()]),
            master,
            vec![member],
            i % 2 == 0,
        );
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            service.create_group(&svc, cmd).await.map(|_| ())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((outer.id, inner.id))
}

struct Stats {
    name: String,
    p50: Duration,
    p95: Duration,
    p99: Duration,
    rps: f64,
}

/// Runs `requests` calls of `call`, `concurrency` at a time.
async fn measure<F, Fut>(
    name: &str,
    requests: usize,
    concurrency: usize,
    call: F,
) -> anyhow::Result<Stats>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send + 'static,
{
    let call = Arc::new(call);
    let sem = Arc::new(Semaphore::new(concurrency));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(requests);
    for i in 0..requests {
        let permit = sem.clone().acquire_owned().await?;
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let t = Instant::now();
            call(i).await.map(|()| t.elapsed())
        }));
    }
    let mut lat = Vec::with_capacity(requests);
    for t in tasks {
        lat.push(t.await?.map_err(|s| anyhow::anyhow!("{name}: {s}"))?);
    }
    let total = start.elapsed();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    Ok(Stats {
        name: name.into(),
        p50: pct(0.50),
        p95: pct(0.95),
        p99: pct(0.99),
        rps: requests as f64 / total.as_secs_f64(),
    })
}

fn with_token<T>(msg: T, token: &str) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    req
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let small = env_usize("LOADGEN_SMALL", 1_000);
    let large = env_usize("LOADGEN_LARGE", 20_000);
    let requests = env_usize("LOADGEN_REQUESTS", 2_000);
    let concurrency = env_usize("LOADGEN_CONCURRENCY", 16);

    let dir = tempfile::tempdir()?;
    let url = std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| dir.path().join("loadgen.db").to_string_lossy().into_owned());
    let store = Store::connect(&url, 16).await?;
    store.migrate().await?;
    let service = Service::new(store, b"loadgen-page-key");

    let t = Instant::now();
    let (small_outer, small_inner) = seed(&service, 1, small).await?;
    let seeded_small = t.elapsed();
    let t = Instant::now();
    let (large_outer, large_inner) = seed(&service, 2, large).await?;
    let seeded_large = t.elapsed();
    println!(
        "seeded {small} groups in {:.1}s ({:.0}/s), {large} groups in {:.1}s ({:.0}/s) on {}",
        seeded_small.as_secs_f64(),
        small as f64 / seeded_small.as_secs_f64(),
        seeded_large.as_secs_f64(),
        large as f64 / seeded_large.as_secs_f64(),
        if url.starts_with("postgres") {
            "PostgreSQL"
        } else {
            "SQLite"
        },
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(group_service::server::run(
        listener,
        service,
        Verifier::hs256(SECRET),
        async {
            let _ = stopped.await;
        },
    ));
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    // User 20 is a member of the nested chain through the team, not an admin.
    let tokens: Vec<String> = [1, 2]
        .iter()
        .map(|t| mint_hs256(SECRET, *t, "20", false, false, 3600))
        .collect::<Result<_, _>>()?;

    let mut results = Vec::new();
    for (tenant, label, outer, inner) in [
        (1i64, "small", small_outer, small_inner),
        (2, "large", large_outer, large_inner),
    ] {
        let token = tokens[(tenant - 1) as usize].clone();
        let outer_name = group_name(TenantId(tenant), outer);
        let inner_name = group_name(TenantId(tenant), inner);
        let (ch, tk, name) = (channel.clone(), token.clone(), inner_name.clone());
        results.push(
            measure(
                &format!("GetGroup ({label})"),
                requests,
                concurrency,
                move |_| {
                    let (mut c, tk, name) = (
                        GroupServiceClient::new(ch.clone()),
                        tk.clone(),
                        name.clone(),
                    );
                    async move {
                        c.get_group(with_token(pb::GetGroupRequest { name }, &tk))
                            .await
                            .map(|_| ())
                    }
                },
            )
            .await?,
        );
        let (ch, tk, name) = (channel.clone(), token.clone(), outer_name.clone());
        results.push(
            measure(
                &format!("CheckMembership depth 3 ({label})"),
                requests,
                concurrency,
                move |_| {
                    let (mut c, tk, group) = (
                        MembershipServiceClient::new(ch.clone()),
                        tk.clone(),
                        name.clone(),
                    );
                    async move {
                        let req = pb::CheckMembershipRequest {
                            group,
                            user: Some(pb::UserRef {
                                tenant_id: tenant,
                                user_id: 20,
                            }),
                        };
                        let r = c.check_membership(with_token(req, &tk)).await?.into_inner();
                        if r.member {
                            Ok(())
                        } else {
                            Err(tonic::Status::internal("expected a member"))
                        }
                    }
                },
            )
            .await?,
        );
        let (ch, tk, name) = (channel.clone(), token.clone(), outer_name.clone());
        results.push(
            measure(
                &format!("ListEffectiveMembers ({label})"),
                requests,
                concurrency,
                move |_| {
                    let (mut c, tk, group) = (
                        MembershipServiceClient::new(ch.clone()),
                        tk.clone(),
                        name.clone(),
                    );
                    async move {
                        let req = pb::ListEffectiveMembersRequest {
                            group,
                            page_size: 50,
                            page_token: String::new(),
                        };
                        c.list_effective_members(with_token(req, &tk))
                            .await
                            .map(|_| ())
                    }
                },
            )
            .await?,
        );
        let (ch, tk) = (channel.clone(), token.clone());
        results.push(
            measure(
                &format!("AutocompleteGroups ({label})"),
                requests,
                concurrency,
                move |i| {
                    let (mut c, tk) = (GroupServiceClient::new(ch.clone()), tk.clone());
                    let prefix = WORDS[i % WORDS.len()][..2].to_owned();
                    async move {
                        let req = pb::AutocompleteGroupsRequest {
                            parent: format!("tenants/{tenant}"),
                            prefix,
                            limit: 10,
                        };
                        c.autocomplete_groups(with_token(req, &tk))
                            .await
                            .map(|_| ())
                    }
                },
            )
            .await?,
        );
        let (ch, tk) = (channel.clone(), token.clone());
        results.push(
            measure(
                &format!("SearchGroups ({label})"),
                requests / 4,
                concurrency,
                move |i| {
                    let (mut c, tk) = (GroupServiceClient::new(ch.clone()), tk.clone());
                    let query = format!("{}-00", WORDS[i % WORDS.len()]);
                    async move {
                        let req = pb::SearchGroupsRequest {
                            parent: format!("tenants/{tenant}"),
                            query,
                            page_size: 20,
                            page_token: String::new(),
                        };
                        c.search_groups(with_token(req, &tk)).await.map(|_| ())
                    }
                },
            )
            .await?,
        );
    }

    let baseline = results[0].p50;
    println!(
        "\n{:<38} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "call", "p50", "p95", "p99", "req/s", "p50/baseline"
    );
    for r in &results {
        println!(
            "{:<38} {:>10.2?} {:>10.2?} {:>10.2?} {:>10.0} {:>12.2}",
            r.name,
            r.p50,
            r.p95,
            r.p99,
            r.rps,
            r.p50.as_secs_f64() / baseline.as_secs_f64()
        );
    }
    println!("\nlarge tenant ({large} groups) against small tenant ({small} groups), p50:");
    let half = results.len() / 2;
    for (s, l) in results[..half].iter().zip(&results[half..]) {
        println!(
            "  {:<34} {:>6.2}x",
            s.name.replace(" (small)", ""),
            l.p50.as_secs_f64() / s.p50.as_secs_f64()
        );
    }
    let _ = stop.send(());
    server.await??;
    Ok(())
}
