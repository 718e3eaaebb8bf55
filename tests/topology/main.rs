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
