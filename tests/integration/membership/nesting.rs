//! Nested groups (R21): never a cycle, at most ten edges deep, under any concurrency.

use std::collections::BTreeSet;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tonic::Code;

use super::T;
use crate::fixtures::*;
use crate::harness::*;

/// Creates `n` groups named `{prefix} {i}` with master 2.
async fn groups(srv: &TestServer, prefix: &str, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(
            group(T, &format!("{prefix} {i}"))
                .master(2)
                .create(srv)
                .await
                .name,
        );
    }
    out
}

/// Nests each group of `chain` in the one before it.
async fn nest_chain(c: &mut Membership, chain: &[String]) {
    for pair in chain.windows(2) {
        add(c, &pair[0], vec![group_member(&pair[1])])
            .await
            .unwrap_or_else(|e| panic!("{} in {}: {e:?}", pair[1], pair[0]));
    }
}

/// Asserts that nesting `member` in `parent` fails with `reason`.
async fn assert_refused(c: &mut Membership, parent: &str, member: &str, reason: &str) {
    let err = add(c, parent, vec![group_member(member)])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, reason);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r21_group_cannot_contain_itself() {
    let Some(srv) = server().await else { return };
    srv.company(T, 2).await;
    let names = groups(&srv, "Cycle", 4).await;
    let [a, b, c, d] = &names[..] else {
        unreachable!()
    };
    let mut admin = srv.membership(T, 1, true);

    assert_refused(&mut admin, a, a, "MEMBERSHIP_CYCLE").await;
    add(&mut admin, a, vec![group_member(b)]).await.unwrap();
    assert_refused(&mut admin, b, a, "MEMBERSHIP_CYCLE").await;
    add(&mut admin, b, vec![group_member(c)]).await.unwrap();
    assert_refused(&mut admin, c, a, "MEMBERSHIP_CYCLE").await;
    // Batched with a good one: nothing is added.
    let err = add(&mut admin, c, vec![group_member(d), group_member(a)])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "MEMBERSHIP_CYCLE");
    assert_eq!(member_keys(&mut admin, c).await, BTreeSet::from([u(2)]));
    // A diamond is no cycle.
    add(&mut admin, a, vec![group_member(c)]).await.unwrap();
    add(&mut admin, d, vec![group_member(a)]).await.unwrap();
    assert_eq!(nesting_stats(&srv, T).await, (3, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r21_nesting_depth_is_at_most_ten_edges() {
    let Some(srv) = server().await else { return };
    srv.company(T, 2).await;
    let g = groups(&srv, "Level", 13).await;
    let mut admin = srv.membership(T, 1, true);
    // g0 > g1 > ... > g10: ten edges.
    nest_chain(&mut admin, &g[..11]).await;
    assert_eq!(nesting_stats(&srv, T).await, (10, 0));
    // The eleventh edge fails below the chain and above it.
    assert_refused(&mut admin, &g[10], &g[11], "NESTING_TOO_DEEP").await;
    assert_refused(&mut admin, &g[11], &g[0], "NESTING_TOO_DEEP").await;
    // A group whose own child would become the eleventh level.
    add(&mut admin, &g[11], vec![group_member(&g[12])])
        .await
        .unwrap();
    assert_refused(&mut admin, &g[9], &g[11], "NESTING_TOO_DEEP").await;
    // A short side branch is fine.
    add(&mut admin, &g[5], vec![group_member(&g[11])])
        .await
        .unwrap();
    assert_eq!(nesting_stats(&srv, T).await, (10, 0));
    // Users of the deepest level are members of the top.
    add(&mut admin, &g[10], vec![user_member(1)]).await.unwrap();
    assert_eq!(check(&mut admin, &g[0], 1).await, (true, false, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r21_joining_two_chains_deeper_than_ten_fails() {
    let Some(srv) = server().await else { return };
    srv.company(T, 2).await;
    let mut admin = srv.membership(T, 1, true);
    let a = groups(&srv, "A", 6).await; // five edges
    let b = groups(&srv, "B", 6).await; // five edges
    let c = groups(&srv, "C", 5).await; // four edges
    nest_chain(&mut admin, &a).await;
    nest_chain(&mut admin, &b).await;
    nest_chain(&mut admin, &c).await;

    // 5 + 1 + 5 = 11 edges, whichever way the join is made.
    assert_refused(&mut admin, &a[5], &b[0], "NESTING_TOO_DEEP").await;
    assert_refused(&mut admin, &b[5], &a[0], "NESTING_TOO_DEEP").await;
    // Joined lower, the total stays in bounds: 2 + 1 + 5 = 8.
    add(&mut admin, &a[2], vec![group_member(&b[0])])
        .await
        .unwrap();
    // 5 + 1 + 4 = 10 is fine, then nothing more fits under the bottom.
    add(&mut admin, &a[5], vec![group_member(&c[0])])
        .await
        .unwrap();
    assert_eq!(nesting_stats(&srv, T).await, (10, 0));
    let d = groups(&srv, "D", 1).await;
    assert_refused(&mut admin, &c[4], &d[0], "NESTING_TOO_DEEP").await;
    // A chain that got long through the B branch: a0 > a1 > a2 > b0 > ... > b5 is 8 edges;
    // hanging c0's chain (4 edges) under b5 would make 13.
    assert_refused(&mut admin, &b[5], &c[0], "NESTING_TOO_DEEP").await;
}

/// 1,000 random (parent, member) pairs over `n` groups, many pairs in both directions.
fn random_pairs(n: usize) -> Vec<(usize, usize)> {
    let mut rng = StdRng::seed_from_u64(21);
    let mut pairs = Vec::with_capacity(1_000);
    while pairs.len() < 1_000 {
        let a = rng.random_range(0..n);
        let b = rng.random_range(0..n);
        if a == b {
            continue;
        }
        pairs.push((a, b));
        if pairs.len() < 1_000 && rng.random_bool(0.5) {
            pairs.push((b, a));
        }
    }
    pairs.shuffle(&mut rng);
    pairs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r21_concurrent_nesting_never_forms_a_cycle() {
    let Some(srv) = server().await else { return };
    srv.company(T, 2).await;
    let started = Instant::now();
    let g = groups(&srv, "Net", 40).await;
    // 1,000 random group-in-group adds, 32 at a time.
    let admin = srv.membership(T, 1, true);
    let answers = race(32, random_pairs(g.len()), |(a, b)| {
        let mut c = admin.clone();
        let (parent, member) = (g[a].clone(), group_member(&g[b]));
        async move { add(&mut c, &parent, vec![member]).await.map(drop) }
    })
    .await;
    let outcomes = tally(&answers, outcome_of);
    let elapsed = started.elapsed();
    let (depth, cyclic) = nesting_stats(&srv, T).await;
    println!(
        "[{}] r21 concurrent nesting: {outcomes:?}, max depth {depth}, in {elapsed:?}, \
         deadlocks {:?}",
        backend(),
        pg_deadlocks(&srv).await
    );
    assert_eq!(cyclic, 0, "groups that contain themselves");
    assert!(depth <= 10, "nesting depth {depth}");
    let expected = [
        "OK",
        "FailedPrecondition MEMBERSHIP_CYCLE",
        "FailedPrecondition NESTING_TOO_DEEP",
        "AlreadyExists ALREADY_MEMBER",
    ];
    for outcome in outcomes.keys() {
        assert!(
            expected.contains(&outcome.as_str()),
            "unexpected outcome {outcome}: {outcomes:?}"
        );
    }
    assert!(
        outcomes.get("OK").copied().unwrap_or(0) > 40,
        "{outcomes:?}"
    );
    assert!(
        outcomes.contains_key("FailedPrecondition MEMBERSHIP_CYCLE"),
        "{outcomes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r21_concurrent_nesting_changes_do_not_deadlock() {
    let Some(srv) = server().await else { return };
    srv.company(T, 2).await;
    let g = groups(&srv, "Knot", 8).await;
    let admin = srv.membership(T, 1, true);
    let mut rng = StdRng::seed_from_u64(42);
    let started = Instant::now();
    let mut answers = Vec::new();
    let mut deadlocks = 0;
    // Random nesting adds and removes, 16 at a time, in rounds; stop at the first deadlock.
    for _round in 0..16 {
        let ops: Vec<(bool, usize, usize)> = (0..16)
            .map(|_| {
                let a = rng.random_range(0..g.len());
                let b = (a + rng.random_range(1..g.len())) % g.len();
                (rng.random_bool(0.7), a, b)
            })
            .collect();
        answers.extend(
            race(16, ops, |(is_add, a, b)| {
                let mut c = admin.clone();
                let (parent, member) = (g[a].clone(), group_member(&g[b]));
                async move {
                    if is_add {
                        add(&mut c, &parent, vec![member]).await.map(drop)
                    } else {
                        remove(&mut c, &parent, vec![member]).await.map(drop)
                    }
                }
            })
            .await,
        );
        deadlocks = pg_deadlocks(&srv).await.unwrap_or(0);
        if deadlocks > 0 {
            break;
        }
    }
    // SQLite runs one writer at a time and counts no deadlocks; PostgreSQL backends report
    // theirs within a second of going idle.
    if deadlocks == 0 && backend() == "postgres" {
        tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
        deadlocks = pg_deadlocks(&srv).await.unwrap_or(0);
    }
    let outcomes = tally(&answers, code_of);
    println!(
        "[{}] r21 nesting changes: {outcomes:?} in {:?}, deadlocks {deadlocks}",
        backend(),
        started.elapsed()
    );
    assert_eq!(nesting_stats(&srv, T).await.1, 0, "a cycle");
    for code in outcomes.keys() {
        assert!(
            ["OK", "FailedPrecondition", "AlreadyExists"].contains(&code.as_str()),
            "unexpected outcome {code}: {outcomes:?}"
        );
    }
    assert_eq!(
        deadlocks, 0,
        "PostgreSQL detected deadlocks among concurrent membership changes (each stalls the \
         calls involved for deadlock_timeout before a retry): {outcomes:?}"
    );
}
