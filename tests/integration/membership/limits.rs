//! The user's group limit (R03): a user is a direct member of at most 2,000 groups, under any
//! concurrency.

use std::time::Instant;

use group_service::grpc::pb;

use super::T;
use crate::fixtures::*;
use crate::harness::*;

/// 2,010 groups of tenant `T`, their masters (10, 11, 12) far from their own limit.
async fn groups_over_the_limit(srv: &TestServer) -> Vec<String> {
    let spec = |i| (format!("Quota {i}"), 10 + i % 3);
    let created = create_concurrently(srv, T, 16, 2_010, spec).await;
    let created: Result<Vec<pb::Group>, _> = created.into_iter().collect();
    let mut names: Vec<String> = created
        .expect("create groups")
        .into_iter()
        .map(|g| g.name)
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r03_user_is_direct_member_of_at_most_2000_groups_under_concurrent_adds() {
    let Some(srv) = server().await else { return };
    srv.tenant(T, pb::Plan::Paid, pb::GroupCreation::AdminsOnly)
        .await;
    srv.user(T, 1, true).await;
    srv.user(T, 2, false).await;
    for master in 10..=12 {
        srv.user(T, master, false).await;
    }
    let started = Instant::now();
    let names = groups_over_the_limit(&srv).await;
    let created = started.elapsed();

    let admin = srv.membership(T, 1, true);
    let answers = race(32, names.clone(), |g| {
        let mut c = admin.clone();
        async move { add(&mut c, &g, vec![user_member(2)]).await.map(drop) }
    })
    .await;
    let added = started.elapsed() - created;
    println!(
        "[{}] r03: created 2,010 groups in {created:?}, 2,010 concurrent adds in {added:?}",
        backend()
    );
    let user = format!("tenants/{T}/users/2");
    let mut joined = Vec::new();
    let mut refused = Vec::new();
    for (g, r) in names.into_iter().zip(answers) {
        match r {
            Ok(()) => joined.push(g),
            Err(e) => {
                assert_quota(&e, "USER_GROUP_LIMIT", &user);
                refused.push(g);
            }
        }
    }
    assert_eq!(joined.len(), 2_000);
    assert_eq!(refused.len(), 10);

    // The groups agree with the counter.
    let mut c = admin.clone();
    let listed = groups_of_user(&mut c, (T, 2), 100).await;
    assert_eq!(listed.len(), 2_000);
    assert!(listed.iter().all(|(_, direct)| *direct));

    // A freed place can be taken once, not twice.
    remove(&mut c, &joined[0], vec![user_member(2)])
        .await
        .unwrap();
    add(&mut c, &refused[0], vec![user_member(2)])
        .await
        .unwrap();
    let err = add(&mut c, &refused[1], vec![user_member(2)])
        .await
        .unwrap_err();
    assert_quota(&err, "USER_GROUP_LIMIT", &user);
    // AddMasters counts too, and so does naming the user a master of a new group.
    let err = add_masters(&mut c, &refused[2], &[2]).await.unwrap_err();
    assert_quota(&err, "USER_GROUP_LIMIT", &user);
    let err = group(T, "One too many")
        .master(2)
        .try_create(&srv)
        .await
        .unwrap_err();
    assert_quota(&err, "USER_GROUP_LIMIT", &user);
}
