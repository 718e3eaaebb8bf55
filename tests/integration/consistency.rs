//! Consistency tokens: every write answers `x-consistency-token`; a read that sends it back is
//! never older than that write, on any server, even while the server's notifications are
//! late; `x-consistency: fully-consistent` never reads the cache; anything else in those
//! headers is refused naming the header.

use std::time::{Duration, Instant};

use group_service::grpc::consistency::{CONSISTENCY_HEADER, TOKEN_HEADER};
use group_service::grpc::pb;
use tonic::Code;
use tonic::metadata::MetadataValue;

use crate::fixtures::*;
use crate::harness::*;

/// `message` with `header: value` in its metadata.
fn with_header<T>(message: T, header: &'static str, value: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.metadata_mut()
        .insert(header, MetadataValue::try_from(value).unwrap());
    req
}

fn check_req(group: &str, user: i64) -> pb::CheckMembershipRequest {
    pb::CheckMembershipRequest {
        group: group.to_owned(),
        user: Some(user_ref(1, user)),
    }
}

/// A tenant with users 1..=users and a group whose master is user 1.
async fn arrange(srv: &TestServer, users: i64) -> String {
    srv.company(1, users).await;
    group(1, "Tokens").master(1).create(srv).await.name
}

/// Two servers on one PostgreSQL database, the second hearing of the first's writes late on
/// purpose. First, once: B holds an answer in its cache, A changes it, and B without the
/// token still serves the old answer (the delay is real) while B with the token does not.
/// Then 8 writers, 10,000 round trips in all, each on a group of its own: a membership
/// change through A, then the check through B with A's token: 0 stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consistency_a_token_read_on_another_server_is_never_older_than_the_write() {
    const ROUNDS: usize = 10_000;
    const WRITERS: i64 = 8;
    let Some(a) = server().await else { return };
    if !only_on(
        "postgres",
        "consistency tokens across servers",
        "one server owns an SQLite file",
    ) {
        return;
    }
    a.company(1, WRITERS + 1).await;
    let mut groups = Vec::new();
    for w in 0..WRITERS {
        groups.push(
            group(1, &format!("Tokens {w}"))
                .master(1)
                .create(&a)
                .await
                .name,
        );
    }
    let b = a.replica().await;
    let (mut write, mut read) = (a.membership(1, 1, true), b.membership(1, 1, true));

    b.store.hold_notifications(Duration::from_millis(500));
    let g = &groups[0];
    assert!(
        !read
            .check_membership(check_req(g, 2))
            .await
            .unwrap()
            .into_inner()
            .member
    );
    let token = write
        .add_members(add_req(g, vec![user_of(1, 2)]))
        .await
        .unwrap()
        .metadata()
        .get(TOKEN_HEADER)
        .expect("a write answers its token")
        .to_str()
        .unwrap()
        .to_owned();
    let plain = read
        .check_membership(check_req(g, 2))
        .await
        .unwrap()
        .into_inner();
    assert!(
        !plain.member,
        "B heard of the write at once: the hold did not hold"
    );
    let asked = Instant::now();
    let fresh = read
        .check_membership(with_header(check_req(g, 2), TOKEN_HEADER, &token))
        .await
        .unwrap()
        .into_inner();
    assert!(fresh.member, "the token read is older than the write");
    println!(
        "consistency: the token read waited {:?}, then read the database",
        asked.elapsed()
    );
    write
        .remove_members(remove_req(g, vec![user_of(1, 2)]))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;

    b.store.hold_notifications(Duration::from_millis(5));
    let started = Instant::now();
    let mut writers = Vec::new();
    for (w, g) in groups.into_iter().enumerate() {
        let user = 2 + w as i64;
        let (mut write, mut read) = (a.membership(1, 1, true), b.membership(1, 1, true));
        writers.push(tokio::spawn(async move {
            let (mut stale, mut slowest) = (0, Duration::ZERO);
            for i in 0..ROUNDS / WRITERS as usize {
                let member = i % 2 == 0;
                let answer = if member {
                    write
                        .add_members(add_req(&g, vec![user_of(1, user)]))
                        .await
                        .unwrap()
                        .metadata()
                        .clone()
                } else {
                    write
                        .remove_members(remove_req(&g, vec![user_of(1, user)]))
                        .await
                        .unwrap()
                        .metadata()
                        .clone()
                };
                let token = answer
                    .get(TOKEN_HEADER)
                    .expect("a write answers its token")
                    .to_str()
                    .unwrap()
                    .to_owned();
                let asked = Instant::now();
                let seen = read
                    .check_membership(with_header(check_req(&g, user), TOKEN_HEADER, &token))
                    .await
                    .unwrap()
                    .into_inner();
                slowest = slowest.max(asked.elapsed());
                if seen.member != member {
                    stale += 1;
                }
            }
            (stale, slowest)
        }));
    }
    let (mut stale, mut slowest) = (0, Duration::ZERO);
    for w in writers {
        let (s, t) = w.await.unwrap();
        stale += s;
        slowest = slowest.max(t);
    }
    println!(
        "consistency: {ROUNDS} token reads in {:?}: {stale} stale; slowest {slowest:?}",
        started.elapsed()
    );
    assert_eq!(stale, 0, "token reads older than their write");
}

/// On the server that acknowledged the write, the token costs nothing and the answer is the
/// write's; a token of a process that never wrote (made up, or of another deployment) is read
/// from the database after the bounded wait; `fully-consistent` reads the database; malformed
/// headers are INVALID_ARGUMENT naming the header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistency_choices_are_honoured_and_bad_ones_refused() {
    let Some(srv) = server().await else { return };
    let g = arrange(&srv, 3).await;
    let mut admin = srv.membership(1, 1, true);
    // Cached: user 2 is not a member.
    assert!(
        !admin
            .check_membership(check_req(&g, 2))
            .await
            .unwrap()
            .into_inner()
            .member
    );
    let token = admin
        .add_members(add_req(&g, vec![user_of(1, 2)]))
        .await
        .unwrap()
        .metadata()
        .get(TOKEN_HEADER)
        .expect("token")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(token.starts_with("v1."), "{token}");
    let own = admin
        .check_membership(with_header(check_req(&g, 2), TOKEN_HEADER, &token))
        .await
        .unwrap()
        .into_inner();
    assert!(own.member);

    let stranger = "v1.0badc0ffee-1.99";
    let asked = Instant::now();
    let seen = admin
        .check_membership(with_header(check_req(&g, 2), TOKEN_HEADER, stranger))
        .await
        .unwrap()
        .into_inner();
    assert!(seen.member);
    assert!(
        asked.elapsed() >= group_service::domain::consistency::TOKEN_WAIT,
        "the unknown token was not waited for"
    );
    let full = admin
        .check_membership(with_header(
            check_req(&g, 2),
            CONSISTENCY_HEADER,
            "fully-consistent",
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(full.member);

    for (header, value) in [
        (TOKEN_HEADER, "not-a-token"),
        (CONSISTENCY_HEADER, "linearizable"),
        (CONSISTENCY_HEADER, "at-least-as-fresh"),
    ] {
        let refused = admin
            .check_membership(with_header(check_req(&g, 2), header, value))
            .await
            .unwrap_err();
        assert_reason(&refused, Code::InvalidArgument, "INVALID_FIELD");
        assert!(refused.message().starts_with(header), "{refused:?}");
    }
}
