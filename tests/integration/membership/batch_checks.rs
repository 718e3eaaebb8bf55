//! BatchCheckMembership (R22 for many groups at once): each group answered in request order,
//! exactly as CheckMembership answers it, hidden and missing groups as `found: false`.

use group_service::grpc::pb;
use tonic::Code;

use super::T;
use crate::fixtures::*;
use crate::harness::*;

async fn batch(
    c: &mut Membership,
    user: Key,
    groups: &[String],
) -> Result<Vec<pb::BatchCheckMembershipResult>, tonic::Status> {
    let req = pb::BatchCheckMembershipRequest {
        user: Some(user_ref(user.0, user.1)),
        groups: groups.to_vec(),
    };
    Ok(c.batch_check_membership(req).await?.into_inner().results)
}

/// (found, member, master, direct) of each entry.
fn answers(results: &[pb::BatchCheckMembershipResult]) -> Vec<(bool, bool, bool, bool)> {
    results
        .iter()
        .map(|r| (r.found, r.member, r.master, r.direct))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r22_batch_check_answers_each_group_as_check_membership_does() {
    let Some(srv) = server().await else { return };
    srv.company(T, 6).await;
    srv.team(T, 10, &[3]).await;
    let direct = group(T, "Direct")
        .master(2)
        .member(user_member(3))
        .create(&srv)
        .await
        .name;
    let master = group(T, "Master").master(3).create(&srv).await.name;
    let by_team = group(T, "Team")
        .master(2)
        .member(team_member(10))
        .create(&srv)
        .await
        .name;
    let (_, nested_in) = nested(
        &srv,
        group(T, "Inner").master(2).member(user_member(3)),
        group(T, "Outer").master(2),
    )
    .await;
    let other = group(T, "Other").master(2).public().create(&srv).await.name;
    group(T, "Keyed")
        .master(2)
        .member(user_member(3))
        .with(|g| g.external_key = "k".into())
        .create(&srv)
        .await;
    let hidden = group(T, "Hidden").master(4).create(&srv).await.name;
    let names = vec![
        direct.clone(),
        master.clone(),
        by_team.clone(),
        nested_in.clone(),
        other.clone(),
        missing_group(T),
        "tenants/1/groups/key:k".to_owned(),
        direct.clone(),
        hidden.clone(),
    ];
    // User 3 asks about themselves: Hidden is a private group they are not in.
    let mut own = srv.membership(T, 3, false);
    let got = batch(&mut own, (T, 3), &names).await.unwrap();
    let groups: Vec<&str> = got.iter().map(|r| r.group.as_str()).collect();
    assert_eq!(groups, names.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        answers(&got),
        vec![
            (true, true, false, true),
            (true, true, true, true),
            (true, true, false, false),
            (true, true, false, false),
            (true, false, false, false),
            (false, false, false, false),
            (true, true, false, true),
            (true, true, false, true),
            (false, false, false, false),
        ]
    );
    // Every found entry is what CheckMembership answers; every other is its NOT_FOUND.
    let mut admin = srv.membership(T, 1, true);
    for (name, r) in names.iter().zip(&got) {
        let single = own
            .check_membership(pb::CheckMembershipRequest {
                group: name.clone(),
                user: Some(user_ref(T, 3)),
            })
            .await;
        match single {
            Ok(s) => {
                let s = s.into_inner();
                assert!(r.found, "{name}");
                assert_eq!(
                    (s.member, s.master, s.direct),
                    (r.member, r.master, r.direct)
                );
            }
            Err(e) => {
                assert_eq!(e.code(), Code::NotFound, "{name}");
                assert!(!r.found, "{name}");
            }
        }
    }
    // The admin sees the hidden group: found, and user 3 is not in it.
    let as_admin = batch(&mut admin, (T, 3), std::slice::from_ref(&hidden))
        .await
        .unwrap();
    assert_eq!(answers(&as_admin), vec![(true, false, false, false)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r22_batch_check_takes_1_to_100_well_formed_group_names() {
    let Some(srv) = server().await else { return };
    srv.company(T, 3).await;
    let g = group(T, "G")
        .master(2)
        .member(user_member(3))
        .create(&srv)
        .await
        .name;
    let mut admin = srv.membership(T, 1, true);
    let err = batch(&mut admin, (T, 3), &[]).await.unwrap_err();
    assert_bad_field(&err, "groups");
    let hundred = vec![g.clone(); 100];
    let got = batch(&mut admin, (T, 3), &hundred).await.unwrap();
    assert_eq!(got.len(), 100);
    assert!(got.iter().all(|r| r.found && r.member && r.direct));
    let err = batch(&mut admin, (T, 3), &vec![g.clone(); 101])
        .await
        .unwrap_err();
    assert_bad_field(&err, "groups");
    let err = batch(&mut admin, (T, 3), &[g.clone(), "tenants/1/teams/2".into()])
        .await
        .unwrap_err();
    assert_bad_field(&err, "groups[1]");
    let req = pb::BatchCheckMembershipRequest {
        user: None,
        groups: vec![g],
    };
    let err = admin.batch_check_membership(req).await.unwrap_err();
    assert_bad_field(&err, "user");
}

/// The cache holds batch answers too: after every acknowledged write the batch answers what
/// a server without a cache answers, while other writers churn the same groups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r22_batch_check_is_never_stale_after_an_acknowledged_write() {
    let Some(srv) = server().await else { return };
    srv.company(T, 8).await;
    let a = group(T, "A").master(2).create(&srv).await.name;
    let b = group(T, "B").master(2).create(&srv).await.name;
    let names = vec![a.clone(), b.clone()];
    let churn = {
        let mut c = srv.membership(T, 1, true);
        let b = b.clone();
        tokio::spawn(async move {
            for _ in 0..15 {
                add(&mut c, &b, vec![user_member(5)]).await.unwrap();
                remove(&mut c, &b, vec![user_member(5)]).await.unwrap();
            }
        })
    };
    let mut admin = srv.membership(T, 1, true);
    let uncached = srv.sibling(0).await;
    let mut plain = uncached.membership(T, 1, true);
    for round in 0..10 {
        // Warm the cache, write, and ask again.
        let before = batch(&mut admin, (T, 3), &names).await.unwrap();
        assert!(!before[0].member, "round {round}");
        add(&mut admin, &a, vec![user_member(3)]).await.unwrap();
        let after = batch(&mut admin, (T, 3), &names).await.unwrap();
        assert!(
            after[0].member && after[0].direct,
            "round {round}: stale after add"
        );
        remove(&mut admin, &a, vec![user_member(3)]).await.unwrap();
        let removed = batch(&mut admin, (T, 3), &names).await.unwrap();
        assert!(!removed[0].member, "round {round}: stale after remove");
        // Entry a (no writer but this loop) must equal the uncached answer exactly.
        let fresh = batch(&mut plain, (T, 3), &names).await.unwrap();
        let cached = batch(&mut admin, (T, 3), &names).await.unwrap();
        assert_eq!(answers(&cached[..1]), answers(&fresh[..1]), "round {round}");
    }
    churn.await.unwrap();
    let settled = batch(&mut admin, (T, 5), std::slice::from_ref(&b))
        .await
        .unwrap();
    assert_eq!(answers(&settled), vec![(true, false, false, false)]);
}
