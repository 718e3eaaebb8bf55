//! Group Masters (R05): masters are members, and the last one stays.

use std::collections::BTreeSet;

use tonic::Code;

use super::T;
use crate::fixtures::*;
use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r05_masters_are_members_and_the_last_one_stays() {
    let Some(srv) = server().await else { return };
    srv.company(T, 5).await;
    let g = group(T, "Design")
        .master(2)
        .member(user_member(4))
        .create(&srv)
        .await
        .name;
    let mut admin = srv.membership(T, 1, true);

    // A non-member becomes member and master.
    let out = add_masters(&mut admin, &g, &[3]).await.unwrap();
    assert_eq!(out.added, [user_ref(T, 3)]);
    assert_eq!(check(&mut admin, &g, 3).await, (true, true, true));
    let err = add_masters(&mut admin, &g, &[3]).await.unwrap_err();
    assert_reason(&err, Code::AlreadyExists, "ALREADY_MASTER");
    // A member is promoted; a master is reported.
    let out = add_masters(&mut admin, &g, &[3, 4]).await.unwrap();
    assert_eq!(out.added, [user_ref(T, 4)]);
    assert_eq!(out.already_masters, [user_ref(T, 3)]);
    assert_eq!(masters_of(&mut admin, &g).await, [2, 3, 4]);
    let masters: BTreeSet<i64> = members(&mut admin, &g)
        .await
        .iter()
        .filter(|m| m.master)
        .filter_map(|m| m.member.as_ref().map(|m| m.id))
        .collect();
    assert_eq!(masters, BTreeSet::from([2, 3, 4]));

    // Demoting all of them fails and changes nothing.
    let err = remove_masters(&mut admin, &g, &[2, 3, 4])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "LAST_MASTER");
    assert_eq!(masters_of(&mut admin, &g).await, [2, 3, 4]);

    let out = remove_masters(&mut admin, &g, &[2, 3, 5]).await.unwrap();
    assert_eq!(out.removed, [user_ref(T, 2), user_ref(T, 3)]);
    assert_eq!(out.not_masters, [user_ref(T, 5)]);
    assert_eq!(masters_of(&mut admin, &g).await, [4]);
    // A demoted master stays a member.
    assert_eq!(check(&mut admin, &g, 2).await, (true, false, true));

    let err = remove_masters(&mut admin, &g, &[4]).await.unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "LAST_MASTER");
    let err = remove_masters(&mut admin, &g, &[2]).await.unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "NOT_A_MASTER");
    assert_eq!(masters_of(&mut admin, &g).await, [4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r05_removing_the_last_master_via_remove_members_fails_and_changes_nothing() {
    let Some(srv) = server().await else { return };
    srv.company(T, 5).await;
    let g = group(T, "Design")
        .master(2)
        .members([user_member(3), user_member(4)])
        .create(&srv)
        .await
        .name;
    let mut admin = srv.membership(T, 1, true);
    let before = member_keys(&mut admin, &g).await;

    let err = remove(&mut admin, &g, vec![user_member(3), user_member(2)])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "LAST_MASTER");
    assert_eq!(member_keys(&mut admin, &g).await, before);
    assert_eq!(masters_of(&mut admin, &g).await, [2]);

    // With two masters, both at once still fails; one is fine.
    add_masters(&mut admin, &g, &[5]).await.unwrap();
    let err = remove(&mut admin, &g, vec![user_member(2), user_member(5)])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "LAST_MASTER");
    assert_eq!(masters_of(&mut admin, &g).await, [2, 5]);
    remove(&mut admin, &g, vec![user_member(2)]).await.unwrap();
    assert_eq!(masters_of(&mut admin, &g).await, [5]);
    assert_eq!(
        member_keys(&mut admin, &g).await,
        BTreeSet::from([u(3), u(4), u(5)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r05_concurrent_removals_keep_one_master() {
    let Some(srv) = server().await else { return };
    srv.company(T, 3).await;
    let mut admin = srv.membership(T, 1, true);
    for round in 0..8 {
        let name = format!("Pair {round}");
        let g = group(T, &name).masters(&[2, 3]).create(&srv).await.name;
        // Demote one, remove the other, at the same time: at most one may win.
        let answers = race(2, [true, false], |demote| {
            let (mut c, g) = (admin.clone(), g.clone());
            async move {
                if demote {
                    remove_masters(&mut c, &g, &[2]).await.map(drop)
                } else {
                    remove(&mut c, &g, vec![user_member(3)]).await.map(drop)
                }
            }
        })
        .await;
        let failures: Vec<_> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
        assert_eq!(failures.len(), 1, "round {round}: {answers:?}");
        assert_reason(failures[0], Code::FailedPrecondition, "LAST_MASTER");
        assert_eq!(masters_of(&mut admin, &g).await.len(), 1, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r05_deleting_the_last_master_promotes_the_earliest_member() {
    let Some(srv) = server().await else { return };
    srv.company(T, 7).await;
    srv.team(T, 10, &[7]).await;
    let g = group(T, "Design")
        .master(2)
        .member(team_member(10))
        .create(&srv)
        .await
        .name;
    let mut admin = srv.membership(T, 1, true);
    // Joined in the order 5, 3, 4: 5 has been a member longest.
    for user in [5, 3, 4] {
        add(&mut admin, &g, vec![user_member(user)]).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    delete_user(&srv, T, 2).await;
    assert_eq!(masters_of(&mut admin, &g).await, [5]);
    assert_eq!(check(&mut admin, &g, 5).await, (true, true, true));
    assert_eq!(
        member_keys(&mut admin, &g).await,
        BTreeSet::from([u(3), u(4), u(5), (TEAM, 10)])
    );

    // With another master left, nobody is promoted.
    let h = group(T, "Two masters")
        .masters(&[5, 6])
        .create(&srv)
        .await
        .name;
    add(&mut admin, &h, vec![user_member(3)]).await.unwrap();
    delete_user(&srv, T, 5).await;
    assert_eq!(masters_of(&mut admin, &h).await, [6]);
    assert_eq!(masters_of(&mut admin, &g).await, [3], "next earliest in g");
}
