//! R10: the mailing list's senders and recipients. Designated senders are direct members;
//! external recipients are addresses or partner contacts; reads show the whole list where
//! they show one group.

use group_service::grpc::pb;
use tonic::Code;

use crate::fixtures::*;
use crate::harness::*;

/// A mailing list at `address` with these designated senders.
fn senders(address: &str, designated_senders: Vec<pb::UserRef>) -> pb::MailingList {
    pb::MailingList {
        designated_senders,
        ..mailing_list(address)
    }
}

/// A mailing list at `address` with these external recipients.
fn recipients(address: &str, external_recipients: &[&str]) -> pb::MailingList {
    pb::MailingList {
        external_recipients: strings(external_recipients),
        ..mailing_list(address)
    }
}

/// A change of `name`'s mailing list to `list`.
fn with_list(name: &str, list: pb::MailingList) -> pb::Group {
    pb::Group {
        mailing_list: Some(list),
        ..patch(name)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_designated_senders_must_be_direct_members() {
    let Some(srv) = server().await else { return };
    srv.company(1, 6).await;
    srv.company(2, 2).await;
    srv.team(1, 10, &[4]).await;
    let inner = group(1, "Inner").master(5).create(&srv).await;
    let g = group(1, "Senders")
        .master(2)
        .members([user_member(3), team_member(10), group_member(&inner.name)])
        .create(&srv)
        .await;
    let mut admin = srv.groups(1, 1, true);
    let with_senders = |users: Vec<pb::UserRef>| with_list(&g.name, senders("senders", users));
    // 4 through the team, 5 through the nested group, 6 in no group, the admin, tenant 2's user.
    for outsider in [
        user_ref(1, 4),
        user_ref(1, 5),
        user_ref(1, 6),
        user_ref(1, 1),
        user_ref(2, 2),
        user_ref(1, 99),
    ] {
        let body = with_senders(vec![user_ref(1, 3), outsider]);
        let err = try_update(&mut admin, body, &["mailing_list"])
            .await
            .unwrap_err();
        assert_reason(&err, Code::FailedPrecondition, "SENDER_NOT_MEMBER");
    }
    assert_eq!(get(&srv, &g.name).await, g);
    // The master and a direct member may be designated.
    let body = with_senders(vec![user_ref(1, 3), user_ref(1, 2)]);
    let got = try_update(&mut admin, body, &["mailing_list"])
        .await
        .unwrap();
    let list = got.mailing_list.clone().unwrap();
    assert_eq!(list.designated_senders, [user_ref(1, 2), user_ref(1, 3)]);
    assert_eq!(get(&srv, &g.name).await, got);
    // At create, too: all or nothing.
    let err = group(1, "Fresh")
        .master(2)
        .with(|g| g.mailing_list = Some(senders("fresh", vec![user_ref(1, 6)])))
        .try_create(&srv)
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "SENDER_NOT_MEMBER");
    assert_eq!(srv.group_count(1).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_designated_senders_leave_the_list_when_they_leave_the_group() {
    let Some(srv) = server().await else { return };
    srv.company(1, 5).await;
    let board = [3, 4, 5].map(|u| user_ref(1, u)).to_vec();
    let g = group(1, "Board")
        .master(2)
        .members([3, 4, 5].map(user_member))
        .with(|g| g.mailing_list = Some(senders("board", board.clone())))
        .create(&srv)
        .await;
    let list = get(&srv, &g.name).await.mailing_list.unwrap();
    assert_eq!(list.designated_senders, board);
    // Removed by a master.
    let mut master = srv.membership(1, 2, false);
    remove(&mut master, &g.name, vec![user_member(4)])
        .await
        .unwrap();
    // Deleted from the directory.
    delete_user(&srv, 1, 5).await;
    let list = get(&srv, &g.name).await.mailing_list.unwrap();
    assert_eq!(list.address, "board");
    assert_eq!(list.designated_senders, [user_ref(1, 3)]);
    // Coming back as a member does not make one a sender again.
    add(&mut master, &g.name, vec![user_member(4)])
        .await
        .unwrap();
    let list = get(&srv, &g.name).await.mailing_list.unwrap();
    assert_eq!(list.designated_senders, [user_ref(1, 3)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_external_recipients_are_addresses_or_partner_contacts() {
    let Some(srv) = server().await else { return };
    srv.company(1, 3).await;
    srv.company(2, 6).await;
    srv.company(3, 2).await;
    // Tenant 1's user 3 knows tenant 2's user 5; tenant 3's user 2 knows tenant 2's user 6.
    add_contact(&srv, (1, 3), (2, 5)).await;
    add_contact(&srv, (3, 2), (2, 6)).await;
    let g = group(1, "Outreach").master(2).create(&srv).await;
    let mut admin = srv.groups(1, 1, true);
    let with_recipients = |to: &[&str]| with_list(&g.name, recipients("outreach", to));
    let body = with_recipients(&["tenants/2/users/5", "partner@vendor.example"]);
    let got = try_update(&mut admin, body, &["mailing_list"])
        .await
        .unwrap();
    let mut recipients = got.mailing_list.clone().unwrap().external_recipients;
    recipients.sort();
    assert_eq!(recipients, ["partner@vendor.example", "tenants/2/users/5"]);
    assert_eq!(get(&srv, &g.name).await, got);
    // Not contacts of this tenant: a user of tenant 2 nobody here knows, tenant 3's contact,
    // a user of the tenant itself, a user who does not exist.
    for contact in [
        "tenants/2/users/4",
        "tenants/2/users/6",
        "tenants/1/users/3",
        "tenants/2/users/999",
        "tenants/9/users/1",
    ] {
        let body = with_recipients(&["partner@vendor.example", contact]);
        let err = try_update(&mut admin, body, &["mailing_list"])
            .await
            .unwrap_err();
        assert_reason(&err, Code::FailedPrecondition, "NOT_A_PARTNER_CONTACT");
    }
    assert_eq!(get(&srv, &g.name).await, got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_bad_external_recipient_is_named_by_its_index() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let g = group(1, "Outbound").master(2).create(&srv).await;
    let mut admin = srv.groups(1, 1, true);
    for bad in [
        "not-an-email",
        "two@@vendor.example",
        "no-domain@",
        "@vendor.example",
        "spaced out@vendor.example",
        "nodot@localhost",
        "tenants/2/users/0",
        "tenants/2/users",
    ] {
        // The bad entry is the third one the client sent, whatever it sorts as.
        let list = recipients(
            "outbound",
            &["zed@vendor.example", "amy@vendor.example", bad],
        );
        let err = try_update(&mut admin, with_list(&g.name, list), &["mailing_list"])
            .await
            .unwrap_err();
        assert_bad_field(&err, "group.mailing_list.external_recipients[2]");
    }
    assert_eq!(get(&srv, &g.name).await, g);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_bad_external_recipient_at_create_is_invalid() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let list = recipients("outbound", &["ok@vendor.example", "not-an-email"]);
    let err = group(1, "Outbound")
        .master(2)
        .with(|g| g.mailing_list = Some(list))
        .try_create(&srv)
        .await
        .unwrap_err();
    assert_bad_field(&err, "group.mailing_list.external_recipients[1]");
    assert_eq!(srv.group_count(1).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_get_group_returns_the_whole_list_and_lists_leave_it_short() {
    let Some(srv) = server().await else { return };
    srv.company(1, 3).await;
    let full = pb::MailingList {
        block_external_senders: true,
        designated_senders: vec![user_ref(1, 2)],
        external_recipients: vec!["auditor@audit.example".into()],
        ..mailing_list("ledger")
    };
    let g = group(1, "Ledger")
        .master(2)
        .member(user_member(3))
        .public()
        .with(|g| g.mailing_list = Some(full.clone()))
        .create(&srv)
        .await;
    assert_eq!(g.mailing_list.as_ref(), Some(&full));
    // An update of another field answers with the whole list too.
    let body = pb::Group {
        description: "books".into(),
        ..patch(&g.name)
    };
    let updated = try_update(&mut srv.groups(1, 1, true), body, &["description"])
        .await
        .unwrap();
    assert_eq!(updated.mailing_list.as_ref(), Some(&full));
    for (user, admin) in [(1, true), (2, false), (3, false)] {
        let got = srv
            .groups(1, user, admin)
            .get_group(get_req(&g.name))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.mailing_list.as_ref(), Some(&full), "user {user}");
    }
    let short = pb::MailingList {
        block_external_senders: true,
        ..mailing_list("ledger")
    };
    let mut admin = srv.groups(1, 1, true);
    let listed = list_all(&mut admin, "tenants/1", "", 0).await.unwrap();
    let searched = search_groups(&mut admin, "tenants/1", "ledger", 0)
        .await
        .unwrap();
    let completed = autocomplete(&mut admin, "tenants/1", "led", 0)
        .await
        .unwrap();
    for (how, groups) in [
        ("list", listed),
        ("search", searched),
        ("autocomplete", completed),
    ] {
        assert_eq!(groups.len(), 1, "{how}: {groups:?}");
        assert_eq!(groups[0].mailing_list.as_ref(), Some(&short), "{how}");
    }
}
