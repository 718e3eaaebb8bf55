//! The service on PostgreSQL's own streaming replication, on one machine: a primary and a
//! streaming standby the test makes (`initdb` as the postgres user, `pg_basebackup -R`, ports
//! of their own, synchronous replication on) and two server processes that send reads to the
//! standby (`--database-read-url`), torn down at the end.
//!
//! `cargo test --test topology` (a step of its own in CI; not part of the plain `cargo test`):
//! it needs PostgreSQL's server binaries and root, to run them as the postgres user. Without
//! them it says so on stderr and returns, except in CI (`CI=true`), where it fails.

mod cluster;
mod servers;

use std::time::Duration;

use cluster::Cluster;
use servers::Replica;

/// `rounds` writes of the group's description through A, each read back at once through B
/// with A's token; how many of those reads were older than the write.
async fn token_rounds(a: &Replica, b: &Replica, group: &str, label: &str, rounds: usize) -> usize {
    let mut stale = 0;
    for round in 0..rounds {
        let description = format!("{label} {round}");
        let token = a.describe(group, &description).await;
        if b.read_description(group, Some(&token)).await != description {
            stale += 1;
        }
    }
    stale
}

/// Whether B sends reads (checks of the group's 40 members, round after round) to the
/// standby within 20 s.
async fn standby_serves(b: &Replica, group: &str) -> bool {
    b.standby_reads_within(Duration::from_secs(20), |round| {
        let group = group.to_owned();
        async move { b.check(&group, 2 + (round % 40) as i64).await }
    })
    .await
}

/// Reads through B right after writes through A, with A's consistency tokens, while the
/// standby's replay is paused: never stale, and every one served by the primary. Once replay
/// resumes, reads are served by the standby again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_read_their_writes_with_tokens_and_use_the_standby_once_it_has_them() {
    let Some(cluster) = Cluster::start("reads").await else {
        return;
    };
    let a = Replica::start(&cluster, "a", &[]).await;
    // Without a cache, every read of B reaches a database: where each went shows.
    let b = Replica::start(&cluster, "b", &["--cache-mb", "0"]).await;
    let group = a.arrange(40).await;

    // The standby serves B's reads once it has replayed what B knows of.
    assert!(
        standby_serves(&b, &group).await,
        "B never read from the standby"
    );

    // Replay paused: B must not read the standby for anything written since.
    cluster.standby_sql("SELECT pg_wal_replay_pause()").await;
    const ROUNDS: usize = 300;
    let before = b.statements().await;
    let stale = token_rounds(&a, &b, &group, "paused", ROUNDS).await;
    let paused = b.statements().await.since(&before);
    eprintln!(
        "replay paused: {ROUNDS} token reads on B, {stale} stale; statements on B: primary \
         {}, standby {}",
        paused.primary, paused.standby
    );
    assert_eq!(
        stale, 0,
        "token reads on B older than A's acknowledged writes"
    );
    assert_eq!(paused.standby, 0, "the paused standby served reads");
    assert!(paused.primary >= ROUNDS as u64, "{paused:?}");

    // Replay resumed: the same rounds, and reads of many keys, go to the standby again.
    cluster.standby_sql("SELECT pg_wal_replay_resume()").await;
    let before = b.statements().await;
    let stale = token_rounds(&a, &b, &group, "resumed", ROUNDS).await;
    let served = standby_serves(&b, &group).await;
    let resumed = b.statements().await.since(&before);
    eprintln!(
        "replay resumed: {ROUNDS} token reads on B, {stale} stale; statements on B: primary \
         {}, standby {}",
        resumed.primary, resumed.standby
    );
    assert_eq!(stale, 0);
    assert!(served, "B did not go back to the standby");
}

/// The standby is promoted and the primary stopped under a steady load of creates, through
/// servers whose `DATABASE_URL` names both hosts (`target_session_attrs=read-write`): writes
/// resume on the new primary, every create that was acknowledged is there (synchronous
/// replication), and the calls caught in the switch answer UNAVAILABLE, never INTERNAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failover_to_the_promoted_standby_loses_no_acknowledged_write() {
    let Some(cluster) = Cluster::start("failover").await else {
        return;
    };
    let url = cluster.failover_url();
    let a = Replica::start_on(&url, "a", &[]).await;
    let b = Replica::start_on(&url, "b", &[]).await;
    a.arrange(1).await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for (w, server) in [a, b].into_iter().enumerate() {
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let (mut acknowledged, mut refused) = (Vec::new(), Vec::new());
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let name = format!("w{w}-{n}");
                n += 1;
                match server.create(&name).await {
                    Ok(()) => acknowledged.push((std::time::Instant::now(), name)),
                    Err(status) => {
                        refused.push((std::time::Instant::now(), status.code()));
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            (server, acknowledged, refused)
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let switched = std::time::Instant::now();
    cluster.stop_primary();
    cluster.promote_standby();
    // The new primary has no standby of its own: it must not wait for one at each commit.
    cluster
        .standby_sql("ALTER SYSTEM SET synchronous_standby_names = ''")
        .await;
    cluster.standby_sql("SELECT pg_reload_conf()").await;
    let promoted = switched.elapsed();
    tokio::time::sleep(Duration::from_secs(6)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);

    let mut acknowledged = std::collections::BTreeSet::new();
    let mut resumed = Duration::ZERO;
    let mut codes = std::collections::BTreeMap::new();
    let mut servers = Vec::new();
    for writer in writers {
        let (server, acked, refused) = writer.await.expect("a writer");
        // Resumed: the first create acknowledged once the new primary took writes and after
        // this writer's first refusal (a call in flight at the stop may be answered after
        // it, for a commit made before).
        let first_refusal = refused
            .iter()
            .map(|(at, _)| *at)
            .filter(|at| *at > switched)
            .min();
        let up = (switched + promoted).max(first_refusal.unwrap_or(switched));
        let after = acked.iter().map(|(at, _)| *at).filter(|at| *at > up).min();
        let after = after.expect("writes resumed after the failover");
        resumed = resumed.max(after - switched);
        acknowledged.extend(acked.into_iter().map(|(_, name)| name));
        for (_, code) in refused {
            *codes.entry(format!("{code:?}")).or_insert(0) += 1;
        }
        servers.push(server);
    }
    let stored = servers[0].group_names().await;
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|n| !stored.contains(*n))
        .collect();
    eprintln!(
        "failover: stopped and promoted in {promoted:?}; writes resumed {resumed:?} after the \
         primary stopped; {} creates acknowledged, {} lost; refused calls by code: {codes:?}",
        acknowledged.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged creates lost: {lost:?}");
    assert!(
        codes.keys().all(|c| c == "Unavailable"),
        "calls caught in the switch: {codes:?}"
    );
    assert!(
        resumed < Duration::from_secs(5),
        "writes resumed after {resumed:?}"
    );
}
