//! The read cache (GetGroup, CheckMembership and the caller's directory row): never stale on
//! the server that acknowledged a write, and coherent across servers sharing a PostgreSQL
//! database within the notification bound.

use std::time::{Duration, Instant};

use group_service::domain::model::TenantId;
use group_service::domain::{Database, Touched};
use group_service::grpc::pb;

use crate::fixtures::*;
use crate::harness::*;

/// How long another server may take to see a write (README: the cache section).
const BOUND: Duration = Duration::from_secs(1);
/// The longest an answer is served when no notification of a write arrives (README: the
/// cache section; `domain::cache::MAX_AGE`).
const MAX_AGE: Duration = Duration::from_secs(2);

async fn check(c: &mut Membership, group: &str, user: i64) -> pb::CheckMembershipResponse {
    c.check_membership(pb::CheckMembershipRequest {
        group: group.to_owned(),
        user: Some(user_ref(1, user)),
    })
    .await
    .expect("check membership")
    .into_inner()
}

/// The group's version, from its etag (`"7"`).
async fn version(c: &mut Groups, group: &str) -> u64 {
    let etag = c
        .get_group(pb::GetGroupRequest {
            name: group.to_owned(),
        })
        .await
        .expect("get group")
        .into_inner()
        .etag;
    etag.trim_matches('"').parse().expect("numeric etag")
}

/// Waits for the writers (each counting the stale answers it saw), then stops and waits for
/// the readers; no writer saw a stale answer.
async fn assert_no_stale(
    writers: Vec<tokio::task::JoinHandle<u32>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
    stop: &std::sync::atomic::AtomicBool,
) {
    let mut stale = 0;
    for w in writers {
        stale += w.await.expect("writer");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.await.expect("reader");
    }
    assert_eq!(stale, 0, "answers older than an acknowledged write");
}

/// A tenant with users 1..=users, and a group whose master is user 1.
async fn arrange(srv: &TestServer, users: i64) -> String {
    srv.tenant(1, pb::Plan::Paid, pb::GroupCreation::AllMembers)
        .await;
    for u in 1..=users {
        srv.user(1, u, u == 1).await;
    }
    group(1, "Cached").master(1).create(srv).await.name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cache_answers_match_uncached_ones_under_concurrent_writes() {
    let Some(srv) = server().await else { return };
    let group = arrange(&srv, 9).await;
    let uncached = srv.sibling(0).await;
    // Readers keep filling the cache at every generation while the writers change it.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for r in 0..4 {
        let (mut c, mut g, group, stop) = (
            srv.membership(1, 1, true),
            srv.groups(1, 1, true),
            group.clone(),
            stop.clone(),
        );
        readers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 5_000 {
                check(&mut c, &group, 2 + (n + r) % 8).await;
                version(&mut g, &group).await;
                n += 1;
            }
        }));
    }
    // Each writer owns one user: after each acknowledged change it knows the answer.
    let mut writers = Vec::new();
    for user in 2..=9 {
        let (cached, plain, group) = (
            (srv.membership(1, 1, true), srv.groups(1, 1, true)),
            (uncached.membership(1, 1, true), uncached.groups(1, 1, true)),
            group.clone(),
        );
        writers.push(tokio::spawn(async move {
            let ((mut cm, mut cg), (mut pm, mut pg)) = (cached, plain);
            let mut stale = 0;
            for i in 0..24 {
                let member = i % 2 == 0;
                // The version before this writer's change: its acknowledged change is newer.
                let before = version(&mut pg, &group).await;
                if member {
                    add(&mut cm, &group, vec![user_of(1, user)])
                        .await
                        .expect("add");
                } else {
                    remove(&mut cm, &group, vec![user_of(1, user)])
                        .await
                        .expect("remove");
                }
                let seen = check(&mut cm, &group, user).await;
                let truth = check(&mut pm, &group, user).await;
                if seen.member != member || seen != truth {
                    eprintln!("stale membership of {user} after change {i}: {seen:?} vs {truth:?}");
                    stale += 1;
                }
                // Every change bumps the version. Others change the group too, and their changes
                // may or may not show yet; this writer's acknowledged one must.
                let seen = version(&mut cg, &group).await;
                if seen <= before {
                    eprintln!("stale group after change {i} of user {user}: {seen} <= {before}");
                    stale += 1;
                }
            }
            stale
        }));
    }
    assert_no_stale(writers, readers, &stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_a_write_on_one_server_is_seen_on_another_within_the_bound() {
    let Some(a) = server().await else { return };
    if backend() != "postgres" {
        // One process owns an SQLite file; its servers share one store and one generation,
        // which the test above covers.
        eprintln!("cache replica test: PostgreSQL only (set TEST_DATABASE_URL)");
        return;
    }
    let group = arrange(&a, 3).await;
    let b = a.replica().await;
    let mut reader = b.membership(1, 1, true);
    // Wait for the replica's listener, then fill its cache with the old answer.
    let started = Instant::now();
    assert!(!check(&mut reader, &group, 2).await.member);
    assert!(!check(&mut reader, &group, 2).await.member);
    tokio::time::sleep(Duration::from_millis(300)).await;
    add(&mut a.membership(1, 1, true), &group, vec![user_of(1, 2)])
        .await
        .expect("add on the first server");
    let written = Instant::now();
    loop {
        if check(&mut reader, &group, 2).await.member {
            break;
        }
        assert!(
            written.elapsed() < BOUND,
            "the replica still answers from before the write after {:?}",
            written.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "cache: replica saw the write after {:?} (set up in {:?})",
        written.elapsed(),
        written - started
    );
    for _ in 0..20 {
        assert!(check(&mut reader, &group, 2).await.member, "flipped back");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_a_write_nobody_announced_is_seen_within_the_max_age() {
    let Some(srv) = server().await else { return };
    let group = arrange(&srv, 1).await;
    let mut reader = srv.groups(1, 1, true);
    let description = |g: pb::Group| g.description;
    let get = |c: &mut Groups| {
        let mut c = c.clone();
        let name = group.clone();
        async move {
            c.get_group(get_req(&name))
                .await
                .expect("get group")
                .into_inner()
        }
    };
    // Twice: the second answer is the cached one.
    assert_eq!(description(get(&mut reader).await), "");
    assert_eq!(description(get(&mut reader).await), "");
    // A write the server cannot hear of: made behind its back, as by a process that died
    // between its commit and its notification.
    let (t, g) = ids(&group);
    execute(
        &srv,
        format!(
            "UPDATE groups SET description = 'written outside' \
             WHERE tenant_id = {t} AND group_id = {g}"
        ),
    )
    .await;
    let written = Instant::now();
    loop {
        if description(get(&mut reader).await) == "written outside" {
            break;
        }
        assert!(
            written.elapsed() < MAX_AGE + Duration::from_millis(500),
            "the server still answers from before the write after {:?}",
            written.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "cache: an unannounced write was seen after {:?}",
        written.elapsed()
    );
}

/// Waits until `store` reports revisions (its listening connection is up); tenant 1's.
async fn known(store: &group_service::store::Store) -> u64 {
    let started = Instant::now();
    loop {
        if let Some(r) = store.revision(&[TenantId(1)]) {
            return r;
        }
        assert!(
            started.elapsed() < BOUND,
            "the store's listener did not come up"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A write that changed the rows of `tenants`.
fn touching(tenants: impl IntoIterator<Item = i64>) -> Touched {
    let mut touched = Touched::default();
    for t in tenants {
        touched.tenant(TenantId(t));
    }
    touched
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_a_commit_is_announced_to_other_processes_per_tenant_and_not_to_its_own() {
    let Some(srv) = server().await else { return };
    if !only_on(
        "postgres",
        "cache announcements",
        "notifications are PostgreSQL's",
    ) {
        return;
    }
    let a = group_service::store::Store::connect(&srv.url, 2)
        .await
        .expect("connect a");
    let b = group_service::store::Store::connect(&srv.url, 2)
        .await
        .expect("connect b");
    let (a1, b1) = (known(&a).await, known(&b).await);
    let rev = |s: &group_service::store::Store, t: i64| s.revision(&[TenantId(t)]).expect("known");
    let (a2, b2) = (rev(&a, 2), rev(&b, 2));
    // What `finish` does after a commit that changed tenant 1's rows.
    a.changed(&touching([1]));
    assert_eq!(rev(&a, 1), a1 + 1, "bumped before the answer leaves");
    assert_eq!(rev(&a, 2), a2, "another tenant's revision moved");
    let sent = Instant::now();
    while rev(&b, 1) == b1 {
        assert!(sent.elapsed() < BOUND, "the other process was not told");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "cache: announced to the other process in {:?}",
        sent.elapsed()
    );
    // Its own notification came back to it as well, and changed nothing; the other process
    // bumped only the tenant named.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rev(&a, 1), a1 + 1, "its own notification bumped it again");
    assert_eq!(rev(&b, 1), b1 + 1);
    assert_eq!(rev(&b, 2), b2, "a tenant no write touched moved");
    // Commits made while one notification is in flight share the next, which names each
    // of their tenants: every one is bumped once, a tenant none touched not at all.
    let before: Vec<u64> = (10..60).map(|t| rev(&b, t)).collect();
    let untouched = rev(&b, 99);
    for t in 10..60 {
        a.changed(&touching([t]));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after: Vec<u64> = (10..60).map(|t| rev(&b, t)).collect();
    let grown: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(grown, vec![1; 50], "each tenant is bumped once");
    assert_eq!(rev(&b, 99), untouched);
    // A write whose reach is not tracked bumps every tenant there.
    let mut all = Touched::default();
    all.everything();
    a.changed(&all);
    let sent = Instant::now();
    while rev(&b, 99) == untouched {
        assert!(sent.elapsed() < BOUND, "the other process was not told");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Whether user `(tenant, user)` is a member of `group`, as `c`'s caller learns it.
async fn member(c: &mut Membership, group: &str, (tenant, user): (i64, i64)) -> bool {
    c.check_membership(pb::CheckMembershipRequest {
        group: group.to_owned(),
        user: Some(user_ref(tenant, user)),
    })
    .await
    .expect("check membership")
    .into_inner()
    .member
}

/// Whether `group` is among the names of `user`'s groups, as `c`'s caller may list them
/// (ListGroupsOfUser's names-only view, cached whole).
async fn listed(c: &mut Membership, group: &str, (tenant, user): (i64, i64)) -> bool {
    c.list_groups_of_user(pb::ListGroupsOfUserRequest {
        user: Some(user_ref(tenant, user)),
        view: pb::GroupOfUserView::NameOnly as i32,
        ..Default::default()
    })
    .await
    .expect("list group names of user")
    .into_inner()
    .groups
    .iter()
    .any(|g| g.group.as_ref().is_some_and(|g| g.name == group))
}

/// One fact a writer changes and then reads back: the group, the caller `(tenant, user,
/// admin)` who checks, the user checked, and the caller of the user's tenant who lists the
/// user's groups.
#[derive(Clone)]
struct Fact {
    group: String,
    caller: (i64, i64, bool),
    user: (i64, i64),
    lister: (i64, i64, bool),
}

impl Fact {
    /// The fact as `srv` answers it: to the caller's check, and in the lister's list; the
    /// two must agree.
    async fn on(&self, srv: &TestServer) -> bool {
        let (t, u, admin) = self.caller;
        let checked = member(&mut srv.membership(t, u, admin), &self.group, self.user).await;
        let (t, u, admin) = self.lister;
        let names = listed(&mut srv.membership(t, u, admin), &self.group, self.user).await;
        if checked != names {
            eprintln!("{}: checked {checked}, listed {names}", self.group);
            return !checked;
        }
        checked
    }
}

/// Cached answers (checks and names-only lists of a user's groups) equal uncached ones, and
/// both the writer's acknowledged change, while writers change five facts in three tenants at
/// once: nesting and an expiring member in
/// tenant 1, a tenant-1 external group whose tenant-2 member loses and regains the external
/// permission (R18: the write is tenant 2's directory, the rows removed tenant 1's), a team of
/// tenant 3, and an internal group of tenant 2. Readers keep filling the cache with every
/// fact meanwhile. Per-tenant revisions must drop exactly the answers a write can change.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cache_answers_match_uncached_ones_across_tenants_under_concurrent_writes() {
    let Some(srv) = server().await else { return };
    let srv = std::sync::Arc::new(srv);
    srv.company(1, 6).await;
    srv.company(2, 4).await;
    srv.company(3, 4).await;
    add_contact(&srv, (1, 2), (2, 2)).await;
    let (child, parent) = nested(
        &srv,
        group(1, "Child").master(2),
        group(1, "Parent").master(2),
    )
    .await;
    let external = group(1, "Partners")
        .master(2)
        .external()
        .create(&srv)
        .await
        .name;
    add_as(&srv, (1, 2), &external, vec![user_of(2, 2)])
        .await
        .unwrap();
    srv.team(3, 10, &[3]).await;
    let teamed = group(3, "Teamed")
        .master(2)
        .member(team_member(10))
        .create(&srv)
        .await
        .name;
    let expiring = group(1, "Expiring").master(2).create(&srv).await.name;
    let internal = group(2, "Internal").master(2).create(&srv).await.name;
    let uncached = std::sync::Arc::new(srv.sibling(0).await);

    let fact = |group: &str, caller, user, lister| Fact {
        group: group.to_owned(),
        caller,
        user,
        lister,
    };
    let facts = [
        fact(&parent, (1, 1, true), (1, 4), (1, 1, true)),
        fact(&external, (1, 2, false), (2, 2), (2, 2, false)),
        fact(&teamed, (3, 1, true), (3, 3), (3, 3, false)),
        fact(&internal, (2, 1, true), (2, 3), (2, 3, false)),
        fact(&expiring, (1, 1, true), (1, 5), (1, 1, true)),
    ];
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for r in 0..3 {
        let (srv, facts, stop) = (srv.clone(), facts.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            let mut n = r;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                facts[n % facts.len()].on(&srv).await;
                n += 1;
            }
        }));
    }

    // After each acknowledged change the writer knows the fact: the cached answer must say
    // it, and say what the uncached server says.
    async fn confirm(
        srv: &TestServer,
        uncached: &TestServer,
        fact: &Fact,
        want: bool,
        what: &str,
    ) -> u32 {
        let (seen, truth) = (fact.on(srv).await, fact.on(uncached).await);
        if seen != want || truth != want {
            eprintln!("stale: {what}: cached {seen}, uncached {truth}, want {want}");
            return 1;
        }
        0
    }
    const ROUNDS: usize = 16;
    let mut writers = Vec::new();
    for (i, fact) in facts.iter().cloned().enumerate() {
        let (srv, uncached) = (srv.clone(), uncached.clone());
        let (child, expiring) = (child.clone(), expiring.clone());
        writers.push(tokio::spawn(async move {
            let mut stale = 0;
            // The external member starts in the group; every other fact starts false.
            let rounds = if i == 4 { ROUNDS / 2 } else { ROUNDS };
            for round in 0..rounds {
                let on = (round % 2 == 0) != (i == 1);
                match i {
                    // Nesting: the user joins and leaves the child group.
                    0 => {
                        let mut admin = srv.membership(1, 1, true);
                        if on {
                            add(&mut admin, &child, vec![user_of(1, 4)]).await.unwrap();
                        } else {
                            remove(&mut admin, &child, vec![user_of(1, 4)])
                                .await
                                .unwrap();
                        }
                    }
                    // R18: tenant 2's directory revokes the permission (the user leaves), or
                    // gives it back and tenant 1's master adds the user again.
                    1 => {
                        person(&srv, 2, 2, on, pb::UserKind::Works).await;
                        if on {
                            add_as(&srv, (1, 2), &fact.group, vec![user_of(2, 2)])
                                .await
                                .unwrap();
                        }
                    }
                    // Tenant 3's team gains and loses the user.
                    2 => {
                        srv.team(3, 10, if on { &[3] } else { &[] }).await;
                    }
                    3 => {
                        let mut admin = srv.membership(2, 1, true);
                        if on {
                            add(&mut admin, &fact.group, vec![user_of(2, 3)])
                                .await
                                .unwrap();
                        } else {
                            remove(&mut admin, &fact.group, vec![user_of(2, 3)])
                                .await
                                .unwrap();
                        }
                    }
                    // Expiry: a member for a second, then, with no write at all, not.
                    _ => {
                        if on {
                            let micros = srv.clock().now_micros() + 1_000_000;
                            let req = pb::AddMembersRequest {
                                expire_time: Some(prost_types::Timestamp {
                                    seconds: micros.div_euclid(1_000_000),
                                    nanos: (micros.rem_euclid(1_000_000) * 1000) as i32,
                                }),
                                ..add_req(&expiring, vec![user_of(1, 5)])
                            };
                            srv.membership(1, 1, true).add_members(req).await.unwrap();
                        } else {
                            tokio::time::sleep(Duration::from_millis(1300)).await;
                            // The expired row is swept, so that the next round can add again.
                            stale += confirm(&srv, &uncached, &fact, false, "expired").await;
                            srv.run_timers().await;
                            continue;
                        }
                    }
                }
                stale += confirm(
                    &srv,
                    &uncached,
                    &fact,
                    on,
                    &format!("fact {i} round {round}"),
                )
                .await;
            }
            stale
        }));
    }
    assert_no_stale(writers, readers, &stop).await;
}

/// Round trips to the database so far, over every pool of `srv`'s store.
fn statements(srv: &TestServer) -> u64 {
    srv.store.pools().iter().map(|p| p.statements).sum()
}

/// 1,000 concurrent CheckMembership and 1,000 concurrent GetGroup calls on one cold key each
/// (same caller, same question): each burst makes one read of its answer, not one per call.
/// Counted by the store's statement counters: the whole burst takes a handful of round trips
/// (the caller's row, the expiry horizon, the answer, with their BEGIN and COMMIT on SQLite).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cache_concurrent_misses_on_one_key_make_one_read() {
    let Some(srv) = server().await else { return };
    let group = arrange(&srv, 3).await;
    for burst in ["CheckMembership", "GetGroup"] {
        // A write first: every cached answer and the horizon are cold again.
        srv.user(1, 3, false).await;
        let before = statements(&srv);
        let calls: Vec<_> = (0..1000)
            .map(|_| {
                let (mut m, mut g, group) = (
                    srv.membership(1, 1, true),
                    srv.groups(1, 1, true),
                    group.clone(),
                );
                tokio::spawn(async move {
                    if burst == "GetGroup" {
                        version(&mut g, &group).await;
                    } else {
                        assert!(check(&mut m, &group, 1).await.member);
                    }
                })
            })
            .collect();
        for call in calls {
            call.await.expect("call");
        }
        let made = statements(&srv) - before;
        println!("cache: 1,000 concurrent {burst} calls on one cold key made {made} round trips");
        assert!(made <= 12, "{burst}: {made} round trips for one cold key");
    }
}

/// Finer than a tenant: a change of a group's own row that is not its visibility, kind or
/// external key (a description, a name) drops the answers about that group (GetGroup by id
/// and by key, on this server and on another one over the same database) and nothing else:
/// membership checks of the group and GetGroup of another group of the tenant stay cached
/// (no statement). Turning the group public drops the tenant's answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_a_groups_own_fields_drop_only_that_groups_answers() {
    let Some(srv) = server().await else { return };
    srv.company(1, 4).await;
    let g = group(1, "Described")
        .master(2)
        .member(user_member(3))
        .with(|g| g.external_key = "hr-described".into())
        .create(&srv)
        .await
        .name;
    let other = group(1, "Other").master(2).create(&srv).await.name;
    let by_key = "tenants/1/groups/key:hr-described".to_owned();
    let replica = if backend() == "postgres" {
        Some(srv.replica().await)
    } else {
        None
    };
    let mut admin = srv.membership(1, 1, true);
    let read = |srv: &TestServer, name: &str| {
        let mut c = srv.groups(1, 1, true);
        let name = name.to_owned();
        async move {
            c.get_group(get_req(&name))
                .await
                .expect("get group")
                .into_inner()
                .description
        }
    };
    for round in 0..3 {
        // Warm every answer.
        check(&mut admin, &g, 3).await;
        read(&srv, &g).await;
        read(&srv, &by_key).await;
        read(&srv, &other).await;
        if let Some(replica) = &replica {
            read(replica, &g).await;
        }
        let description = format!("round {round}");
        let mut patch = patch(&g);
        patch.description = description.clone();
        srv.groups(1, 1, true)
            .update_group(update(patch, &["description"]))
            .await
            .unwrap();
        // The group's own answers are new at once, by id and by key.
        assert_eq!(read(&srv, &g).await, description);
        assert_eq!(read(&srv, &by_key).await, description);
        // Everything else is still cached: no statement.
        let before = statements(&srv);
        assert!(check(&mut admin, &g, 3).await.member);
        read(&srv, &other).await;
        assert_eq!(
            statements(&srv),
            before,
            "round {round}: other answers were dropped"
        );
        // Another server hears of it and drops that group's answer too.
        if let Some(replica) = &replica {
            let sent = std::time::Instant::now();
            while read(replica, &g).await != description {
                assert!(
                    sent.elapsed() < Duration::from_secs(2),
                    "the replica kept it"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    // Visibility is the tenant's: a membership answer is read again after it.
    let mut public = patch(&g);
    public.visibility = pb::Visibility::Public as i32;
    srv.groups(1, 1, true)
        .update_group(update(public, &["visibility"]))
        .await
        .unwrap();
    let before = statements(&srv);
    check(&mut admin, &g, 3).await;
    assert!(
        statements(&srv) > before,
        "a visibility change kept a membership answer"
    );
}
