//! The read cache (GetGroup, CheckMembership and the caller's directory row): never stale on
//! the server that acknowledged a write, and coherent across servers sharing a PostgreSQL
//! database within the notification bound.

use std::time::{Duration, Instant};

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

/// Waits until `store` reports a generation (its listening connection is up).
async fn known(store: &group_service::store::Store) -> u64 {
    use group_service::domain::Database;
    let started = Instant::now();
    loop {
        if let Some(g) = store.generation() {
            return g;
        }
        assert!(
            started.elapsed() < BOUND,
            "the store's listener did not come up"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_a_commit_is_announced_to_other_processes_and_not_to_its_own() {
    use group_service::domain::Database;
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
    let (a0, b0) = (known(&a).await, known(&b).await);
    // What `finish` does after a commit.
    a.changed();
    assert_eq!(
        a.generation(),
        Some(a0 + 1),
        "bumped before the answer leaves"
    );
    let sent = Instant::now();
    while b.generation() == Some(b0) {
        assert!(sent.elapsed() < BOUND, "the other process was not told");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "cache: announced to the other process in {:?}",
        sent.elapsed()
    );
    // Its own notification came back to it as well, and changed nothing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        a.generation(),
        Some(a0 + 1),
        "its own notification bumped it again"
    );
    // Commits made while one notification is in flight share the next.
    let before = b.generation().expect("known");
    for _ in 0..50 {
        a.changed();
    }
    assert_eq!(a.generation(), Some(a0 + 51));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let heard = b.generation().expect("known") - before;
    assert!(
        (1..=50).contains(&heard),
        "50 commits made {heard} notifications"
    );
    println!("cache: 50 commits in a row were announced in {heard} notifications");
}
