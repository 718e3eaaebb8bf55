//! Expiring members: a user, team or group member added with an `expire_time` counts in
//! checks, listings, effective members, visibility and cached answers until then, and nowhere
//! after, before the sweeper deletes its row; the sweeper deletes it with a MembersRemoved
//! event; Group Masters never expire (R05). The clock is the server's own, moved by the test.

use std::time::Duration;

use group_service::grpc::pb;
use tonic::Code;

use super::T;
use crate::fixtures::*;
use crate::harness::*;

const HOUR: Duration = Duration::from_secs(3600);

fn in_an_hour(srv: &TestServer) -> prost_types::Timestamp {
    let micros = srv.clock().now_micros() + 3_600_000_000;
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1000) as i32,
    }
}

async fn add_expiring(
    srv: &TestServer,
    group: &str,
    members: Vec<pb::MemberRef>,
    expire_time: prost_types::Timestamp,
) -> Result<pb::AddMembersResponse, tonic::Status> {
    let req = pb::AddMembersRequest {
        expire_time: Some(expire_time),
        ..add_req(group, members)
    };
    let mut admin = srv.membership(T, 1, true);
    admin.add_members(req).await.map(|r| r.into_inner())
}

/// Whether `user` of tenant T may read the group, and the groups they are listed in.
async fn seen_by(srv: &TestServer, user: i64, group: &str) -> (bool, bool) {
    let read = srv.groups(T, user, false).get_group(get_req(group)).await;
    let mut own = srv.membership(T, user, false);
    let listed = groups_of_user(&mut own, (T, user), 100).await;
    (read.is_ok(), listed.iter().any(|(name, _)| name == group))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_member_counts_nowhere_even_before_the_sweep() {
    let Some(srv) = server().await else { return };
    srv.company(T, 6).await;
    srv.team(T, 10, &[4]).await;
    let nested = group(T, "Nested")
        .master(2)
        .member(user_member(5))
        .create(&srv)
        .await
        .name;
    let g = group(T, "Private").master(2).create(&srv).await.name;
    let expires = in_an_hour(&srv);
    let added = add_expiring(
        &srv,
        &g,
        vec![user_member(3), team_member(10), group_member(&nested)],
        expires,
    )
    .await
    .unwrap();
    assert_eq!(added.added.len(), 3);
    let mut admin = srv.membership(T, 1, true);

    // Until then: everywhere (and cached).
    let listed = members(&mut admin, &g).await;
    let expiring: Vec<_> = listed.iter().filter(|m| m.expire_time.is_some()).collect();
    assert_eq!(expiring.len(), 3, "{listed:?}");
    assert_eq!(expiring[0].expire_time.unwrap().seconds, expires.seconds);
    for user in [3, 4, 5] {
        assert!(check(&mut admin, &g, user).await.0, "user {user}");
        assert_eq!(seen_by(&srv, user, &g).await, (true, true), "user {user}");
    }
    assert_eq!(effective_of(&mut admin, &g, 10).await, vec![2, 3, 4, 5]);

    srv.clock().advance(2 * HOUR);
    let uncached = srv.sibling(0).await;
    let mut plain = uncached.membership(T, 1, true);
    for user in [3, 4, 5] {
        assert_eq!(
            check(&mut admin, &g, user).await,
            check(&mut plain, &g, user).await,
            "cached and uncached answers differ for user {user}"
        );
    }

    // After: nowhere, with no write in between (the rows are still stored).
    assert_eq!(member_keys(&mut admin, &g).await, [u(2)].into());
    for user in [3, 4, 5] {
        assert_eq!(
            check(&mut admin, &g, user).await,
            (false, false, false),
            "user {user}"
        );
        assert_eq!(seen_by(&srv, user, &g).await, (false, false), "user {user}");
        let batch = admin
            .batch_check_membership(pb::BatchCheckMembershipRequest {
                user: Some(user_ref(T, user)),
                groups: vec![g.clone()],
            })
            .await
            .unwrap()
            .into_inner();
        assert!(batch.results[0].found && !batch.results[0].member);
    }
    assert_eq!(effective_of(&mut admin, &g, 10).await, vec![2]);
    // The nested group itself keeps its own member.
    assert!(check(&mut admin, &nested, 5).await.0);
    assert!(
        payloads(&srv, &g, "members.removed").await.is_empty(),
        "nothing is written until the sweep or a change"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_deletes_expired_members_with_a_members_removed_event() {
    let Some(srv) = server().await else { return };
    srv.company(T, 4).await;
    let g = group(T, "G")
        .master(2)
        .member(user_member(4))
        .create(&srv)
        .await
        .name;
    add_expiring(&srv, &g, vec![user_member(3)], in_an_hour(&srv))
        .await
        .unwrap();
    srv.run_timers().await;
    assert!(
        payloads(&srv, &g, "members.removed").await.is_empty(),
        "not yet due"
    );

    srv.clock().advance(2 * HOUR);
    srv.run_timers().await;
    let removed = payloads(&srv, &g, "members.removed").await;
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(removed[0]["detail"]["cause"], "membership_expired");
    assert_eq!(removed[0]["members"].as_array().unwrap().len(), 1);
    srv.run_timers().await;
    assert_eq!(
        payloads(&srv, &g, "members.removed").await.len(),
        1,
        "swept once"
    );
    // The user can be added again, as a new member.
    let mut admin = srv.membership(T, 1, true);
    let again = add(&mut admin, &g, vec![user_member(3)]).await.unwrap();
    assert_eq!(keys(&again.added), [u(3)].into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_timers_sweep_by_themselves() {
    let Some(srv) = TestServer::start_setup(|s| {
        s.options.timers_every = Duration::from_millis(50);
    })
    .await
    else {
        return;
    };
    srv.company(T, 3).await;
    let g = group(T, "G").master(2).create(&srv).await.name;
    add_expiring(&srv, &g, vec![user_member(3)], in_an_hour(&srv))
        .await
        .unwrap();
    srv.clock().advance(2 * HOUR);
    let mut swept = false;
    for _ in 0..100 {
        if !payloads(&srv, &g, "members.removed").await.is_empty() {
            swept = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(swept, "the timers did not sweep within 5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_after_expiry_sees_the_member_gone_first() {
    let Some(srv) = server().await else { return };
    srv.company(T, 3).await;
    let g = group(T, "G").master(2).create(&srv).await.name;
    add_expiring(&srv, &g, vec![user_member(3)], in_an_hour(&srv))
        .await
        .unwrap();
    srv.clock().advance(2 * HOUR);
    let mut admin = srv.membership(T, 1, true);
    let again = add(&mut admin, &g, vec![user_member(3)]).await.unwrap();
    assert_eq!(
        keys(&again.added),
        [u(3)].into(),
        "added, not already present"
    );
    let kinds: Vec<String> = events(&srv, &g).await.into_iter().map(|e| e.kind).collect();
    let removed = kinds
        .iter()
        .position(|k| k == "members.removed")
        .expect("removal event");
    let added = kinds.iter().rposition(|k| k == "members.added").unwrap();
    assert!(removed < added, "{kinds:?}");
    assert_eq!(
        members(&mut admin, &g)
            .await
            .iter()
            .filter(|m| m.expire_time.is_some())
            .count(),
        0
    );
}

/// (kind, actor) pairs of `events` that are member changes.
fn member_changes(events: Vec<(String, String)>) -> Vec<(String, String)> {
    events
        .into_iter()
        .filter(|(kind, _)| kind.starts_with("members."))
        .collect()
}

/// Group G of tenant T (master 2) whose member 3, added by the admin, has expired (not yet
/// swept); users 1 to 4.
async fn group_with_expired_member(srv: &TestServer) -> String {
    srv.company(T, 4).await;
    let g = group(T, "G").master(2).create(srv).await.name;
    add_expiring(srv, &g, vec![user_member(3)], in_an_hour(srv))
        .await
        .unwrap();
    srv.clock().advance(2 * HOUR);
    g
}

/// R11: an event names who made the change. Members whose expire time passed leave on the
/// service's own account: the sweep's `members.removed`, read through WatchEvents, has no
/// actor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_expiry_events_have_no_actor() {
    let Some(srv) = server().await else { return };
    group_with_expired_member(&srv).await;
    srv.run_timers().await;
    assert_eq!(
        member_changes(kinds_and_actors(&srv, T).await),
        [
            pair("members.added", "tenants/1/users/1"),
            pair("members.removed", ""),
        ]
    );
}

/// The expired members another user's membership change sweeps first are the service's
/// work too: their `members.removed` has no actor, the change itself has its user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_expired_members_swept_by_another_users_change_have_no_actor() {
    let Some(srv) = server().await else { return };
    let g = group_with_expired_member(&srv).await;
    // The master adds someone else: the expired member goes first, in the same transaction.
    add(&mut srv.membership(T, 2, false), &g, vec![user_member(4)])
        .await
        .unwrap();
    assert_eq!(
        member_changes(kinds_and_actors(&srv, T).await),
        [
            pair("members.added", "tenants/1/users/1"),
            pair("members.removed", ""),
            pair("members.added", "tenants/1/users/2"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r05_masters_never_expire_and_expire_time_must_be_in_the_future() {
    let Some(srv) = server().await else { return };
    srv.company(T, 4).await;
    let g = group(T, "G").master(2).create(&srv).await.name;
    let past = prost_types::Timestamp {
        seconds: srv.clock().now_micros() / 1_000_000 - 60,
        nanos: 0,
    };
    let err = add_expiring(&srv, &g, vec![user_member(3)], past)
        .await
        .unwrap_err();
    assert_bad_field(&err, "expire_time");
    let bad = prost_types::Timestamp {
        seconds: 1,
        nanos: -1,
    };
    let err = add_expiring(&srv, &g, vec![user_member(3)], bad)
        .await
        .unwrap_err();
    assert_bad_field(&err, "expire_time");

    add_expiring(&srv, &g, vec![user_member(3)], in_an_hour(&srv))
        .await
        .unwrap();
    let mut admin = srv.membership(T, 1, true);
    add_masters(&mut admin, &g, &[3]).await.unwrap();
    let listed = members(&mut admin, &g).await;
    assert!(listed.iter().all(|m| m.expire_time.is_none()), "{listed:?}");
    remove_masters(&mut admin, &g, &[2]).await.unwrap();
    srv.clock().advance(2 * HOUR);
    srv.run_timers().await;
    assert_eq!(
        check(&mut admin, &g, 3).await,
        (true, true, true),
        "the last master stays"
    );
    assert_eq!(masters_of(&mut admin, &g).await, vec![3]);
    let err = srv
        .membership(T, 1, true)
        .add_members(pb::AddMembersRequest {
            expire_time: Some(in_an_hour(&srv)),
            ..add_req(&g, vec![user_member(3)])
        })
        .await
        .unwrap_err();
    assert_reason(&err, Code::AlreadyExists, "ALREADY_MEMBER");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r05_an_expired_member_is_no_successor_of_the_last_master() {
    let Some(srv) = server().await else { return };
    srv.company(T, 4).await;
    let g = group(T, "G").master(2).create(&srv).await.name;
    add_expiring(&srv, &g, vec![user_member(3)], in_an_hour(&srv))
        .await
        .unwrap();
    let mut admin = srv.membership(T, 1, true);
    add(&mut admin, &g, vec![user_member(4)]).await.unwrap();
    srv.clock().advance(2 * HOUR);
    delete_user(&srv, T, 2).await;
    assert_eq!(
        masters_of(&mut admin, &g).await,
        vec![4],
        "the earliest live member"
    );
    assert_eq!(check(&mut admin, &g, 3).await, (false, false, false));
}

async fn set_expiry(
    srv: &TestServer,
    group: &str,
    members: Vec<pb::MemberRef>,
    expire_time: Option<prost_types::Timestamp>,
) -> Result<pb::SetMembersExpiryResponse, tonic::Status> {
    let req = pb::SetMembersExpiryRequest {
        group: group.to_owned(),
        members,
        expire_time,
    };
    let mut admin = srv.membership(T, 1, true);
    admin.set_members_expiry(req).await.map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_members_expiry_sets_extends_and_clears_an_expiry() {
    let Some(srv) = server().await else { return };
    srv.company(T, 5).await;
    let g = group(T, "G")
        .master(2)
        .members([user_member(3), user_member(4)])
        .create(&srv)
        .await
        .name;
    let set = set_expiry(
        &srv,
        &g,
        vec![user_member(3), user_member(5)],
        Some(in_an_hour(&srv)),
    )
    .await
    .unwrap();
    assert_eq!(keys(&set.updated), [u(3)].into());
    assert_eq!(keys(&set.not_members), [u(5)].into());
    let changed = payloads(&srv, &g, "members.expiry_changed").await;
    assert_eq!(changed.len(), 1);
    assert!(changed[0]["expire_time"].is_i64());

    // Cleared before it passed: user 3 stays; user 4 given an hour is gone after it.
    set_expiry(&srv, &g, vec![user_member(3)], None)
        .await
        .unwrap();
    set_expiry(&srv, &g, vec![user_member(4)], Some(in_an_hour(&srv)))
        .await
        .unwrap();
    srv.clock().advance(2 * HOUR);
    let mut admin = srv.membership(T, 1, true);
    assert!(check(&mut admin, &g, 3).await.0);
    assert!(!check(&mut admin, &g, 4).await.0);

    let err = set_expiry(&srv, &g, vec![user_member(2)], Some(in_an_hour(&srv)))
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "MASTERS_NEVER_EXPIRE");
    let err = set_expiry(&srv, &g, vec![user_member(5)], Some(in_an_hour(&srv)))
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "NOT_A_MEMBER");
    // The expired member is gone for this call too: it cannot be revived by a new expiry.
    let err = set_expiry(&srv, &g, vec![user_member(4)], Some(in_an_hour(&srv)))
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "NOT_A_MEMBER");
    let listed = members(&mut admin, &g).await;
    assert!(listed.iter().all(|m| m.expire_time.is_none()), "{listed:?}");
}

/// Work of the service's own goes through the seam as a caller's does: the sweep of expired
/// members loses two serialization races (PostgreSQL's `serialization_failure`, raised by a
/// trigger whose count is a sequence, which the rolled back attempts do not undo) and removes
/// the member, with its event, on its third attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_a_sweep_that_loses_serialization_races_is_retried() {
    let test = "r11_a_sweep_that_loses_serialization_races_is_retried";
    if !only_on("postgres", test, "a sequence outlives rolled back attempts") {
        return;
    }
    let Some(srv) = server().await else { return };
    srv.company(T, 4).await;
    let g = group(T, "Swept").master(2).create(&srv).await.name;
    add_expiring(&srv, &g, vec![user_member(3)], in_an_hour(&srv))
        .await
        .unwrap();
    execute(
        &srv,
        "CREATE SEQUENCE forced_races; \
         CREATE FUNCTION lose_two_races() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF nextval('forced_races') <= 2 THEN \
             RAISE EXCEPTION 'forced race' USING ERRCODE = 'serialization_failure'; \
           END IF; \
           RETURN OLD; \
         END $$; \
         CREATE TRIGGER lose_two_races BEFORE DELETE ON group_user_members \
           FOR EACH ROW EXECUTE FUNCTION lose_two_races();"
            .into(),
    )
    .await;
    srv.clock().advance(2 * HOUR);
    srv.run_timers().await;
    let db = pg_client(&srv).await;
    let attempts: i64 = db
        .query_one("SELECT last_value FROM forced_races", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(attempts, 3, "two lost races, then the sweep");
    let left: i64 = db
        .query_one(
            "SELECT count(*) FROM group_user_members WHERE user_id = 3",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "the expired member's row is gone");
    assert_eq!(payloads(&srv, &g, "members.removed").await.len(), 1);
}
