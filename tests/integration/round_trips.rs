//! What a call costs the database, counted by the store's statement counters
//! (`PoolState::statements`, the metric `group_service_db_statements_total`): a read of a group
//! answers the caller's standing, the group and its visibility in one statement
//! (docs/decisions.md, "GetGroup and CheckMembership resolve the caller in the group's
//! statement"), and a membership check adds the checked user's membership in a second; on a
//! server without the read cache, so that every call reaches the database. A create's
//! statements are counted too, so that a change to them is seen.

use std::future::Future;
use std::pin::Pin;

use tonic::Code;

use group_service::domain::Database;
use group_service::grpc::pb;

use crate::fixtures::*;
use crate::harness::*;

/// Statements sent to the store so far, over all of its pools.
fn statements(srv: &TestServer) -> u64 {
    srv.store.pools().iter().map(|p| p.statements).sum()
}

/// The statements a read transaction adds around its own: none on PostgreSQL (a read sends
/// no BEGIN or COMMIT), BEGIN and COMMIT on SQLite.
fn around_a_read() -> u64 {
    match backend() {
        "postgres" => 0,
        _ => 2,
    }
}

/// The code a call answered.
fn code_of<T>(answer: Result<T, tonic::Status>) -> Code {
    answer.map_or_else(|status| status.code(), |_| Code::Ok)
}

type Call = Pin<Box<dyn Future<Output = Code> + Send>>;

/// `call`, five times one after the other: the statements each sent, and the answer's code
/// (every call answers alike).
async fn cost(srv: &TestServer, mut call: impl FnMut() -> Call) -> (u64, Code) {
    const CALLS: u64 = 5;
    let before = statements(srv);
    let mut codes = Vec::new();
    for _ in 0..CALLS {
        codes.push(call().await);
    }
    let sent = statements(srv) - before;
    assert!(codes.iter().all(|c| *c == codes[0]), "{codes:?}");
    assert_eq!(sent % CALLS, 0, "{sent} statements for {CALLS} calls");
    (sent / CALLS, codes[0])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r04_r07_r24_what_a_read_a_check_and_a_create_cost_in_statements() {
    let Some(cached) = server().await else { return };
    cached.company(1, 4).await;
    cached.user(1, 9, true).await;
    let private = group(1, "Private")
        .master(2)
        .member(user_member(3))
        .create(&cached)
        .await;
    let public = group(1, "Open").master(2).public().create(&cached).await;
    // The same store, no read cache: every call below reaches the database. No timer of
    // either server runs in the first seconds.
    let srv = cached.sibling(0).await;
    let one = 1 + around_a_read();
    let cases = [
        // A plain member of a private group: the directory row, the group and the
        // transitive membership test, in one statement.
        (
            "member of a private group",
            3,
            false,
            &private.name,
            Code::Ok,
        ),
        // Not a member: NOT_FOUND, at the same cost.
        ("outsider", 4, false, &private.name, Code::NotFound),
        (
            "user of the tenant, public group",
            4,
            false,
            &public.name,
            Code::Ok,
        ),
        // An admin whose directory row says so.
        ("admin", 9, true, &private.name, Code::Ok),
        // A token for a user the directory does not know: refused from the same statement.
        (
            "caller missing from the directory",
            77,
            true,
            &private.name,
            Code::PermissionDenied,
        ),
    ];
    for (who, user, admin, name, want) in cases {
        let caller = srv.groups(1, user, admin);
        let (sent, code) = cost(&srv, || {
            let (mut caller, name) = (caller.clone(), name.clone());
            Box::pin(async move { code_of(caller.get_group(get_req(&name)).await) })
        })
        .await;
        assert_eq!(code, want, "{who}");
        assert_eq!(sent, one, "{who}: statements per call");
    }

    // CheckMembership: the caller, the group and the caller's standing in one statement, the
    // checked user's membership (direct row and transitive test) in a second; a user asking
    // about themselves has their own membership from the first.
    for (who, user, admin, name, want, statements) in [
        (
            "member asks about themselves",
            3,
            false,
            &private.name,
            Code::Ok,
            1,
        ),
        ("admin", 9, true, &private.name, Code::Ok, 2),
        ("outsider", 4, false, &private.name, Code::NotFound, 1),
    ] {
        let caller = srv.membership(1, user, admin);
        let (sent, code) = cost(&srv, || {
            let (mut caller, group) = (caller.clone(), name.clone());
            Box::pin(async move {
                let req = pb::CheckMembershipRequest {
                    group,
                    user: Some(user_ref(1, 3)),
                };
                code_of(caller.check_membership(req).await)
            })
        })
        .await;
        assert_eq!(code, want, "{who}");
        assert_eq!(
            sent,
            statements + around_a_read(),
            "{who}: statements per call"
        );
    }

    // CreateGroup by an admin, one master, no request id: BEGIN, the caller, their tenant's
    // row, the group, the master's directory row, their group counter, their
    // membership, the tenant's quota, the event (numbered in the same statement on
    // PostgreSQL, apart on SQLite), COMMIT.
    let admin = srv.groups(1, 9, true);
    let mut n = 0;
    let (sent, code) = cost(&srv, || {
        n += 1;
        let (mut admin, req) = (admin.clone(), group(1, &format!("Counted {n}")).master(2));
        Box::pin(async move { code_of(admin.create_group(req.request()).await) })
    })
    .await;
    assert_eq!(code, Code::Ok);
    let want = if backend() == "postgres" { 10 } else { 11 };
    assert_eq!(sent, want, "CreateGroup: statements per call");
    srv.stop().await;
    cached.stop().await;
}
