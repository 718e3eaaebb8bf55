//! Who sees an external group across tenants (R20, R24): its members from every tenant, and
//! nobody else; nothing of another tenant reaches the owning tenant beyond its members.

use std::collections::BTreeSet;

use group_service::grpc::pb;
use tonic::Code;

use super::{A, B, C, shared_group, three_companies};
use crate::fixtures::*;
use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r20_members_from_other_tenants_find_the_group_and_nobody_else_does() {
    let Some(srv) = server().await else { return };
    three_companies(&srv).await;
    let g = shared_group(&srv, "Partner Project", &[], &[(B, 2), (C, 2)]).await;
    // Groups of the member's own tenant stay in the answers beside it.
    let own_b = group(B, "Partner Desk").master(2).create(&srv).await.name;

    let as_admin = get(&srv, &g).await;
    for (t, u) in [(B, 2), (C, 2)] {
        let got = srv
            .groups(t, u, false)
            .get_group(get_req(&g))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got, as_admin, "{t}/{u} reads the group as it is");
        for (i, found) in discovered(&srv, (t, u), false, t, "partner")
            .await
            .iter()
            .enumerate()
        {
            assert!(found.contains(&g), "{t}/{u}, answer {i}: {found:?}");
        }
        assert!(
            visible_groups_of(&srv, (t, u), false, (t, u))
                .await
                .contains(&g)
        );
    }
    let [search, auto, list] = discovered(&srv, (B, 2), false, B, "partner").await;
    assert_eq!(search, BTreeSet::from([g.clone(), own_b.clone()]));
    assert_eq!(auto, search);
    assert_eq!(list, search);

    // Non-members of B, and B's admin, find nothing of it.
    for (u, admin) in [(3, false), (1, true)] {
        for (i, found) in discovered(&srv, (B, u), admin, B, "partner")
            .await
            .iter()
            .enumerate()
        {
            assert!(!found.contains(&g), "{B}/{u}, answer {i}: {found:?}");
        }
        assert!(
            !visible_groups_of(&srv, (B, u), admin, (B, 2))
                .await
                .contains(&g)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r24_owning_tenant_sees_only_id_name_and_tenant_of_other_members() {
    let Some(srv) = server().await else { return };
    srv.company(A, 3).await;
    srv.company(B, 3).await;
    srv.upsert_user(pb::User {
        email: "kim.secret@partner-b.example".into(),
        display_name: "Kim from B".into(),
        ..user_spec(B, 2)
    })
    .await;
    let g = shared_group(&srv, "Partners", &[], &[(B, 2)]).await;
    let b_public = group(B, "B Public")
        .master(2)
        .public()
        .create(&srv)
        .await
        .name;

    let listed = srv
        .membership(A, 1, true)
        .list_members(pb::ListMembersRequest {
            group: g.clone(),
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let kim = listed
        .members
        .iter()
        .find(|m| {
            m.member
                .as_ref()
                .is_some_and(|r| r.tenant_id == B && r.id == 2)
        })
        .expect("the B member is listed");
    assert_eq!(kim.display_name, "Kim from B");
    assert!(
        !format!("{listed:?}").contains("partner-b.example"),
        "B's data leaks: {listed:?}"
    );

    // Nothing else of B reaches A's admin.
    let mut a_admin = srv.groups(A, 1, true);
    let err = a_admin.get_group(get_req(&b_public)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let [search, auto, list] = discovered(&srv, (A, 1), true, B, "b").await;
    assert!(search.is_empty() && auto.is_empty() && list.is_empty());
    let err = srv
        .membership(A, 1, true)
        .list_groups_of_user(pb::ListGroupsOfUserRequest {
            user: Some(user_ref(B, 2)),
            page_size: 10,
            page_token: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r24_nesting_an_external_group_never_opens_an_internal_group_to_other_tenants() {
    let Some(srv) = server().await else { return };
    srv.company(A, 3).await;
    srv.company(B, 3).await;
    let e = shared_group(&srv, "Partners", &[], &[(B, 2)]).await;
    let i = group(A, "Payroll").master(3).create(&srv).await.name;

    // Whether or not nesting is refused, B's user must not reach the internal group.
    let nested = add(&mut srv.membership(A, 1, true), &i, vec![group_member(&e)]).await;
    if let Err(err) = &nested {
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    }
    let mut b2 = srv.groups(B, 2, false);
    let hidden = b2.get_group(get_req(&i)).await;
    let missing = b2.get_group(get_req(&missing_group(A))).await.unwrap_err();
    match hidden {
        Ok(_) => panic!("B's member reads A's internal group (nesting answered {nested:?})"),
        Err(err) => assert_eq!(fingerprint(&err), fingerprint(&missing)),
    }
    assert!(
        !visible_groups_of(&srv, (B, 2), false, (B, 2))
            .await
            .contains(&i),
        "the internal group is listed for B's member"
    );
    // An internal group's effective members are users of its own tenant.
    let effective = srv
        .membership(A, 1, true)
        .list_effective_members(pb::ListEffectiveMembersRequest {
            group: i.clone(),
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .users;
    assert!(
        effective.iter().all(|u| u.tenant_id == A),
        "internal group with members of another tenant: {effective:?}"
    );
}

/// R24, existence by timing: a group the caller cannot see costs what a missing one does. In
/// particular an outsider's change of it never takes its row lock: while a writer of the
/// owning tenant holds it, the outsider's calls answer NOT_FOUND at once, as for a missing
/// group (and an outsider cannot make the tenant's writers wait). PostgreSQL: on SQLite the
/// lock is the one writer connection, which every write waits for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r24_an_outsider_never_locks_a_group_it_cannot_see() {
    if !only_on(
        "postgres",
        "r24_an_outsider_never_locks_a_group_it_cannot_see",
        "SQLite's lock is its one writer",
    ) {
        return;
    }
    let Some(srv) = server().await else { return };
    three_companies(&srv).await;
    let g = group(A, "Board").master(2).create(&srv).await.name;
    let (_, id) = ids(&g);
    let mut db = pg_client(&srv).await;
    let holder = db.transaction().await.unwrap();
    holder
        .execute(
            "SELECT 1 FROM groups WHERE tenant_id = $1 AND group_id = $2 FOR UPDATE",
            &[&A, &id],
        )
        .await
        .unwrap();
    let missing = missing_group(A);
    for (who, admin) in [((B, 1), true), ((B, 2), false), ((A, 3), false)] {
        let mut c = srv.groups(who.0, who.1, admin);
        for name in [&g, &missing] {
            let mut renamed = patch(name);
            renamed.display_name = "Taken over".into();
            let answer = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                try_update(&mut c, renamed, &["display_name"]),
            )
            .await
            .unwrap_or_else(|_| panic!("{who:?} waited for the lock of {name}"));
            assert_eq!(
                answer.unwrap_err().code(),
                Code::NotFound,
                "{who:?} on {name}"
            );
            let deleted = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                c.delete_group(delete_req(name, "")),
            )
            .await
            .unwrap_or_else(|_| panic!("{who:?} waited for the lock of {name}"));
            assert_eq!(
                deleted.unwrap_err().code(),
                Code::NotFound,
                "{who:?} on {name}"
            );
        }
    }
    holder.rollback().await.unwrap();
    assert_eq!(get(&srv, &g).await.display_name, "Board");
}

/// Deletes `g` as `who`; the answer.
async fn delete_as(srv: &TestServer, who: (i64, i64, bool), g: &str) -> Result<(), tonic::Status> {
    let (tenant, user, admin) = who;
    srv.groups(tenant, user, admin)
        .delete_group(delete_req(g, ""))
        .await
        .map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r12_external_group_is_deleted_by_owning_admins_and_any_of_its_masters() {
    let Some(srv) = server().await else { return };
    three_companies(&srv).await;
    // Masters A2 and B4; plain members A3, B2, and C1 (C's admin).
    let partners = [(B, 2), (B, 4), (C, 1)];
    let shared = |name: &'static str| {
        let srv = &srv;
        async move {
            let g = shared_group(srv, name, &[3], &partners).await;
            add_master_users(&mut srv.membership(A, 2, false), &g, &[(B, 4)])
                .await
                .unwrap();
            g
        }
    };
    let gone = |g: String| {
        let srv = &srv;
        async move {
            let err = srv
                .groups(A, 1, true)
                .get_group(get_req(&g))
                .await
                .unwrap_err();
            assert_eq!(err.code(), Code::NotFound, "{g} survived");
        }
    };

    let g = shared("Partners").await;
    for who in [(A, 3, false), (B, 2, false), (C, 1, true)] {
        let err = delete_as(&srv, who, &g).await.unwrap_err();
        assert_reason(&err, Code::PermissionDenied, "NOT_GROUP_MANAGER");
    }
    // An admin of another tenant who is not a member: as if the group were missing.
    let err = delete_as(&srv, (B, 1, true), &g).await.unwrap_err();
    let absent = delete_as(&srv, (B, 1, true), &missing_group(A))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(fingerprint(&err), fingerprint(&absent));
    // Masters delete only where the owning tenant lets masters manage groups.
    set_tenant(&srv, A, |t| t.masters_may_manage_settings = false).await;
    for who in [(A, 2, false), (B, 4, false)] {
        let err = delete_as(&srv, who, &g).await.unwrap_err();
        assert_reason(&err, Code::PermissionDenied, "NOT_GROUP_MANAGER");
    }
    set_tenant(&srv, A, |t| t.masters_may_manage_settings = true).await;
    assert_eq!(
        member_users(&srv, &g).await,
        BTreeSet::from([(A, 2), (A, 3), (B, 2), (B, 4), (C, 1)])
    );

    // The master from another tenant deletes it, as the user guide lets any master.
    delete_as(&srv, (B, 4, false), &g).await.unwrap();
    gone(g).await;
    let g = shared("Partners again").await;
    delete_as(&srv, (A, 2, false), &g).await.unwrap();
    gone(g).await;
    let g = shared("Partners once more").await;
    delete_as(&srv, (A, 1, true), &g).await.unwrap();
    gone(g).await;
}
