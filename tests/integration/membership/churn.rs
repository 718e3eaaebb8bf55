//! Scans that page through a list while its rows change (R22): every row that stays is seen
//! once, and no row is seen twice.

use std::collections::BTreeSet;

use group_service::grpc::pb;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use super::T;
use crate::fixtures::*;
use crate::harness::*;

/// One page of ListMembers, 3 at a time, as (type, id) keys.
async fn member_page(
    mut c: Membership,
    group: String,
    page_token: String,
) -> (Vec<(i32, i64)>, String) {
    let req = pb::ListMembersRequest {
        group,
        page_size: 3,
        page_token,
    };
    let r = c.list_members(req).await.unwrap().into_inner();
    let keys = r.members.iter().filter_map(|m| m.member.as_ref().map(key));
    (keys.collect(), r.next_page_token)
}

/// One page of ListEffectiveMembers, 3 at a time, as user ids.
async fn effective_page(
    mut c: Membership,
    group: String,
    page_token: String,
) -> (Vec<i64>, String) {
    let req = pb::ListEffectiveMembersRequest {
        group,
        page_size: 3,
        page_token,
    };
    let r = c.list_effective_members(req).await.unwrap().into_inner();
    (
        r.users.iter().map(|u| u.user_id).collect(),
        r.next_page_token,
    )
}

/// One page of ListGroupsOfUser for user 4, 3 at a time, as group names.
async fn groups_page(mut c: Membership, page_token: String) -> (Vec<String>, String) {
    let req = pb::ListGroupsOfUserRequest {
        user: Some(user_ref(T, 4)),
        page_size: 3,
        page_token,
        ..Default::default()
    };
    let r = c.list_groups_of_user(req).await.unwrap().into_inner();
    let names = r
        .groups
        .iter()
        .filter_map(|g| g.group.as_ref().map(|g| g.name.clone()));
    (names.collect(), r.next_page_token)
}

/// Up to two of `candidates` not in `present` to join and one of `present` to leave, chosen
/// by `rng`; `present` is updated to match.
fn pick<K: Ord + Clone>(
    rng: &mut StdRng,
    candidates: &[K],
    present: &mut BTreeSet<K>,
) -> (Vec<K>, Option<K>) {
    let absent: Vec<&K> = candidates
        .iter()
        .filter(|k| !present.contains(*k))
        .collect();
    let joins: Vec<K> = absent
        .choose_multiple(rng, 2)
        .map(|k| (*k).clone())
        .collect();
    let inside: Vec<&K> = present.iter().collect();
    let leave: Option<K> = inside.choose(rng).map(|k| (*k).clone());
    present.extend(joins.iter().cloned());
    if let Some(l) = &leave {
        present.remove(l);
    }
    (joins, leave)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_members_pages_have_no_duplicates_or_gaps_while_members_change() {
    let Some(srv) = server().await else { return };
    srv.company(T, 40).await;
    for id in 10..=17 {
        srv.team(T, id, &[]).await;
    }
    let mut nested = Vec::new();
    for i in 0..4 {
        nested.push(
            group(T, &format!("Nested {i}"))
                .master(2)
                .create(&srv)
                .await
                .name,
        );
    }
    // Stable: users 2..=12, teams 10, 12, 14, 16, nested groups 0 and 2. The others churn.
    let mut stable_members: Vec<pb::MemberRef> = (3..=12).map(user_member).collect();
    stable_members.extend([10, 12, 14, 16].map(team_member));
    stable_members.extend([&nested[0], &nested[2]].map(|g| group_member(g)));
    let g = group(T, "Busy")
        .master(2)
        .members(stable_members.clone())
        .create(&srv)
        .await
        .name;
    let mut stable = keys(&stable_members);
    stable.insert(u(2));
    let mut churners: Vec<pb::MemberRef> = (13..=40).map(user_member).collect();
    churners.extend([11, 13, 15, 17].map(team_member));
    churners.extend([&nested[1], &nested[3]].map(|g| group_member(g)));
    let churner_keys: Vec<(i32, i64)> = churners.iter().map(key).collect();

    let admin = srv.membership(T, 1, true);
    let mut in_group = BTreeSet::<(i32, i64)>::new();
    let mut rng = StdRng::seed_from_u64(7);
    let seen = scan_with_churn(
        |page_token| member_page(admin.clone(), g.clone(), page_token),
        |_| {
            // Two joins and one leave among the churners, before and after the cursor.
            let (joins, leave) = pick(&mut rng, &churner_keys, &mut in_group);
            let by_key = |k: (i32, i64)| {
                churners[churner_keys.iter().position(|c| *c == k).unwrap()].clone()
            };
            let joins: Vec<pb::MemberRef> = joins.into_iter().map(by_key).collect();
            let leave = leave.map(by_key);
            let (mut c, group) = (admin.clone(), g.clone());
            async move {
                if !joins.is_empty() {
                    add(&mut c, &group, joins).await.unwrap();
                }
                if let Some(l) = leave {
                    remove(&mut c, &group, vec![l]).await.unwrap();
                }
            }
        },
    )
    .await;
    assert_once(&seen, &stable);
    // The scan really ran beside changes of every kind.
    let churned = in_group;
    assert!(churned.iter().any(|k| k.0 == USER), "{churned:?}");
    assert!(seen.len() > stable.len(), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r22_effective_member_pages_have_no_duplicates_or_gaps_while_members_change() {
    let Some(srv) = server().await else { return };
    srv.company(T, 40).await;
    // Stable users 2..=16 reached directly, through a team and through a nested group; users
    // 17..=40 come and go, directly or through a team.
    srv.team(T, 10, &[5, 6, 7, 8]).await;
    srv.team(T, 11, &[]).await;
    let nested = group(T, "Nested")
        .master(9)
        .members((10..=12).map(user_member))
        .create(&srv)
        .await
        .name;
    let g = group(T, "Busy")
        .master(2)
        .members([3, 4, 13, 14, 15, 16].map(user_member))
        .members([team_member(10), team_member(11), group_member(&nested)])
        .create(&srv)
        .await
        .name;
    let stable: BTreeSet<i64> = (2..=16).collect();

    let admin = srv.membership(T, 1, true);
    let mut direct = BTreeSet::<i64>::new();
    let mut rng = StdRng::seed_from_u64(11);
    let churners: Vec<i64> = (17..=40).collect();
    let srv = &srv;
    let seen = scan_with_churn(
        |page_token| effective_page(admin.clone(), g.clone(), page_token),
        |_| {
            let (join, leave) = pick(&mut rng, &churners, &mut direct);
            // Team 11 is rewritten with a random handful of churners.
            let team_users: Vec<i64> = (17..=40).filter(|_| rng.random_bool(0.2)).collect();
            let (mut c, group) = (admin.clone(), g.clone());
            async move {
                add(&mut c, &group, join.into_iter().map(user_member).collect())
                    .await
                    .unwrap();
                if let Some(l) = leave {
                    remove(&mut c, &group, vec![user_member(l)]).await.unwrap();
                }
                srv.team(T, 11, &team_users).await;
            }
        },
    )
    .await;
    assert_once(&seen, &stable);
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "not in order: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r22_groups_of_user_pages_have_no_duplicates_or_gaps_while_groups_change() {
    let Some(srv) = server().await else { return };
    srv.company(T, 4).await;
    srv.team(T, 10, &[4]).await;
    // User 4 stays in 12 groups (directly, through team 10, through a nested group) and comes
    // and goes in 12 others.
    let mut stable = BTreeSet::new();
    let mut churners = Vec::new();
    for i in 0..24 {
        let g = group(T, &format!("G{i:02}")).master(2);
        if i % 2 == 0 {
            let member = match i % 3 {
                0 => user_member(4),
                _ => team_member(10),
            };
            stable.insert(g.member(member).create(&srv).await.name);
        } else {
            churners.push(g.create(&srv).await.name);
        }
    }
    let first_stable = stable.iter().next().cloned().expect("stable group");
    stable.insert(
        group(T, "Parent")
            .master(3)
            .member(group_member(&first_stable))
            .create(&srv)
            .await
            .name,
    );

    let admin = srv.membership(T, 1, true);
    let mut present = BTreeSet::<String>::new();
    let mut rng = StdRng::seed_from_u64(5);
    let seen = scan_with_churn(
        |page_token| groups_page(admin.clone(), page_token),
        |_| {
            let (join, leave) = pick(&mut rng, &churners, &mut present);
            let mut c = admin.clone();
            async move {
                for g in join {
                    add(&mut c, &g, vec![user_member(4)]).await.unwrap();
                }
                if let Some(l) = leave {
                    remove(&mut c, &l, vec![user_member(4)]).await.unwrap();
                }
            }
        },
    )
    .await;
    assert_once(&seen, &stable);
}
