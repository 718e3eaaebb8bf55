//! R10: the mailing list's address. 2-40 characters of `a-z 0-9 . - _ ! #`, unique among the
//! tenant's addresses (users', teams', other groups' lists), under any concurrency.

use group_service::grpc::pb;
use tonic::Code;

use crate::fixtures::*;
use crate::harness::*;

/// Local parts R10 refuses: too short or long, upper case (refused, not folded), characters
/// outside `a-z 0-9 . - _ ! #`.
fn bad_addresses() -> Vec<String> {
    vec![
        String::new(),
        "a".into(),
        "x".repeat(41),
        "Sales".into(),
        "SALES".into(),
        "sales team".into(),
        "sales@corp.example".into(),
        "sales+tag".into(),
        "salé".into(),
        "영업".into(),
        "sales\n".into(),
        "sa/les".into(),
    ]
}

/// A change of `name`'s mailing list to one at `address`.
fn listed_at(name: &str, address: &str) -> pb::Group {
    pb::Group {
        mailing_list: Some(mailing_list(address)),
        ..patch(name)
    }
}

/// A group of tenant `tenant` (master 2) with a mailing list at `address`.
fn with_list(tenant: i64, name: &str, address: &str) -> GroupBuilder {
    group(tenant, name)
        .master(2)
        .with(|g| g.mailing_list = Some(mailing_list(address)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_bad_address_at_update_is_invalid() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let mut admin = srv.groups(1, 1, true);
    let target = group(1, "Target").master(2).create(&srv).await;
    for address in bad_addresses() {
        let err = try_update(
            &mut admin,
            listed_at(&target.name, &address),
            &["mailing_list"],
        )
        .await
        .unwrap_err();
        assert_bad_field(&err, "group.mailing_list.address");
    }
    assert_eq!(get(&srv, &target.name).await, target);
    for address in ["ab".to_owned(), "x".repeat(40), "a.b-c_d!e#f".into()] {
        let got = try_update(
            &mut admin,
            listed_at(&target.name, &address),
            &["mailing_list"],
        )
        .await
        .unwrap();
        assert_eq!(got.mailing_list.unwrap().address, address);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_bad_address_at_create_is_invalid() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let mut stored = Vec::new();
    for (i, address) in bad_addresses().iter().enumerate() {
        match with_list(1, &format!("Bad {i}"), address)
            .try_create(&srv)
            .await
        {
            Err(err) => assert_bad_field(&err, "group.mailing_list.address"),
            Ok(_) => stored.push(address.clone()),
        }
    }
    assert!(stored.is_empty(), "stored bad addresses {stored:?}");
    assert_eq!(srv.group_count(1).await, 0);
    for (i, address) in [
        "ab".to_owned(),
        "x".repeat(40),
        "a.b-c_d!e#f".into(),
        "0123".into(),
    ]
    .iter()
    .enumerate()
    {
        let g = with_list(1, &format!("Good {i}"), address)
            .create(&srv)
            .await;
        assert_eq!(g.mailing_list.unwrap().address, *address);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_address_in_use_by_a_user_team_or_group_is_refused() {
    let Some(srv) = server().await else { return };
    srv.company(1, 3).await;
    srv.team(1, 10, &[2]).await;
    srv.upsert_user(pb::User {
        tenant_id: 1,
        id: 9,
        email: "Sales.Team@corp.example".into(),
        display_name: "Shouty".into(),
        kind: pb::UserKind::Works as i32,
        ..Default::default()
    })
    .await;
    with_list(1, "Holder", "hello").create(&srv).await;
    let target = group(1, "Target").master(2).create(&srv).await;
    let mut admin = srv.groups(1, 1, true);
    // user2@t1.example, team10@t1.example, a user's mixed-case address, another group's list.
    for (i, address) in ["user2", "team10", "sales.team", "hello"]
        .iter()
        .enumerate()
    {
        let clash = with_list(1, &format!("Clash {i}"), address);
        let err = clash.try_create(&srv).await.unwrap_err();
        assert_reason(&err, Code::FailedPrecondition, "ADDRESS_IN_USE");
        let err = try_update(
            &mut admin,
            listed_at(&target.name, address),
            &["mailing_list"],
        )
        .await
        .unwrap_err();
        assert_reason(&err, Code::FailedPrecondition, "ADDRESS_IN_USE");
    }
    assert_eq!(srv.group_count(1).await, 2);
    assert_eq!(get(&srv, &target.name).await, target);
    // Near misses are free: LIKE wildcards in an address are no wildcards.
    srv.user(1, 20, false).await; // user20@t1.example
    for address in ["user", "user2x", "team1", "sales_team", "hell"] {
        with_list(1, &format!("Free {address}"), address)
            .create(&srv)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_a_group_keeps_its_own_address_and_frees_it_when_it_goes() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let g = with_list(1, "News", "news").create(&srv).await;
    let mut admin = srv.groups(1, 1, true);
    // Re-saving its own address is no conflict.
    let blocking = pb::Group {
        mailing_list: Some(pb::MailingList {
            block_external_senders: true,
            ..mailing_list("news")
        }),
        ..patch(&g.name)
    };
    let got = try_update(&mut admin, blocking, &["mailing_list"])
        .await
        .unwrap();
    assert!(got.mailing_list.as_ref().unwrap().block_external_senders);
    assert_eq!(get(&srv, &g.name).await, got);
    // Removing the list frees the address.
    let got = try_update(&mut admin, patch(&g.name), &["mailing_list"])
        .await
        .unwrap();
    assert_eq!(got.mailing_list, None);
    assert_eq!(get(&srv, &g.name).await.mailing_list, None);
    let second = with_list(1, "News 2", "news").create(&srv).await;
    // Deleting the group frees it too.
    admin
        .delete_group(delete_req(&second.name, ""))
        .await
        .unwrap();
    try_update(&mut admin, listed_at(&g.name, "news"), &["mailing_list"])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_same_address_in_another_tenant_is_fine() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    srv.company(2, 2).await;
    // user2@t1.example is tenant 1's: tenant 2's users are user2@t2.example.
    for tenant in [1, 2] {
        let g = with_list(tenant, "All hands", "all-hands")
            .create(&srv)
            .await;
        assert_eq!(g.mailing_list.unwrap().address, "all-hands");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_concurrent_creates_with_one_address_make_one_list() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let admin = srv.groups(1, 1, true);
    let answers = race(20, 0..20, |i| {
        let mut client = admin.clone();
        let req = with_list(1, &format!("Contender {i}"), "contested").request();
        async move { client.create_group(req).await }
    })
    .await;
    let ok = winners(answers, Code::FailedPrecondition, "ADDRESS_IN_USE").len();
    assert_eq!(ok, 1);
    // The losers took no slot (R25).
    assert_eq!(srv.group_count(1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_concurrent_updates_to_one_address_give_it_to_one_group() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let mut groups = Vec::new();
    for i in 0..20 {
        groups.push(group(1, &format!("Racer {i}")).master(2).create(&srv).await);
    }
    let admin = srv.groups(1, 1, true);
    let answers = race(20, &groups, |g| {
        let mut client = admin.clone();
        let body = listed_at(&g.name, "finish-line");
        async move { try_update(&mut client, body, &["mailing_list"]).await }
    })
    .await;
    let ok = winners(answers, Code::FailedPrecondition, "ADDRESS_IN_USE").len();
    assert_eq!(ok, 1);
    let mut holders = 0;
    for g in &groups {
        if get(&srv, &g.name).await.mailing_list.is_some() {
            holders += 1;
        }
    }
    assert_eq!(holders, 1);
}
