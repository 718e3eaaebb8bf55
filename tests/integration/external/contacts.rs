//! Members added after creation (R14, R15) come from the adding master's contacts; nobody
//! leaves by themselves (R17).

use std::collections::BTreeSet;

use group_service::grpc::pb;
use tonic::Code;
use tonic_types::StatusExt;

use super::{A, B, C, shared_group, three_companies};
use crate::fixtures::*;
use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r15_external_members_come_from_the_adding_masters_contacts() {
    let Some(srv) = server().await else { return };
    srv.company(A, 3).await;
    srv.company(B, 4).await;
    let g = group(A, "Partners")
        .master(2)
        .external()
        .create(&srv)
        .await
        .name;

    let err = add_as(&srv, (A, 2), &g, vec![user_of(B, 2)])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "NOT_IN_CONTACTS");
    // The other direction of the address book does not count.
    add_contact(&srv, (B, 2), (A, 2)).await;
    let err = add_as(&srv, (A, 2), &g, vec![user_of(B, 2)])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "NOT_IN_CONTACTS");
    // Nor does another master's address book.
    add_masters(&mut srv.membership(A, 1, true), &g, &[3])
        .await
        .unwrap();
    add_contact(&srv, (A, 3), (B, 3)).await;
    let err = add_as(&srv, (A, 2), &g, vec![user_of(B, 3)])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "NOT_IN_CONTACTS");

    add_contact(&srv, (A, 2), (B, 2)).await;
    let added = add_as(&srv, (A, 2), &g, vec![user_of(B, 2)]).await.unwrap();
    assert_eq!(added.added.len(), 1, "{added:?}");
    assert_eq!(added.added[0].tenant_id, B);
    add_as(&srv, (A, 3), &g, vec![user_of(B, 3)]).await.unwrap();
    assert_eq!(
        member_users(&srv, &g).await,
        BTreeSet::from([(A, 2), (A, 3), (B, 2), (B, 3)])
    );
    // The new members reach the group by its name in tenant A.
    let got = srv
        .groups(B, 2, false)
        .get_group(get_req(&g))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.name, g);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r14_added_members_need_the_permission_and_are_never_line_users() {
    let Some(srv) = server().await else { return };
    for tenant in [A, B] {
        srv.company(tenant, 2).await;
        person(&srv, tenant, 3, false, pb::UserKind::Works).await;
        person(&srv, tenant, 4, true, pb::UserKind::Line).await;
    }
    // In the contacts of the master (A2) and of the admin (A1) who adds masters.
    for u in [2, 3, 4] {
        add_contact(&srv, (A, 2), (B, u)).await;
        add_contact(&srv, (A, 1), (B, u)).await;
    }
    let g = group(A, "Partners")
        .master(2)
        .external()
        .create(&srv)
        .await
        .name;
    for (who, reason) in [
        ((A, 3), "EXTERNAL_PERMISSION_REQUIRED"),
        ((A, 4), "LINE_USER_NOT_ALLOWED"),
        ((B, 3), "EXTERNAL_PERMISSION_REQUIRED"),
        ((B, 4), "LINE_USER_NOT_ALLOWED"),
    ] {
        // All or nothing: the allowed user in the same batch is not added either.
        let err = add_as(&srv, (A, 2), &g, vec![user_of(B, 2), user_of(who.0, who.1)])
            .await
            .unwrap_err();
        assert_reason(&err, Code::FailedPrecondition, reason);
        // Not as a master either.
        let err = add_master_users(&mut srv.membership(A, 1, true), &g, &[who])
            .await
            .unwrap_err();
        assert_reason(&err, Code::FailedPrecondition, reason);
    }
    assert_eq!(member_users(&srv, &g).await, BTreeSet::from([(A, 2)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r15_master_from_another_tenant_manages_with_own_contacts() {
    let Some(srv) = server().await else { return };
    three_companies(&srv).await;
    add_contact(&srv, (A, 2), (B, 4)).await;
    add_contact(&srv, (A, 2), (C, 4)).await;
    add_contact(&srv, (B, 4), (C, 3)).await;
    let g = group(A, "Partners")
        .master(2)
        .external()
        .create(&srv)
        .await
        .name;
    // A master of A names a contact of B a Group Master: it joins as a master.
    add_master_users(&mut srv.membership(A, 2, false), &g, &[(B, 4)])
        .await
        .unwrap();
    assert_eq!(master_keys(&srv, &g).await, [(A, 2), (B, 4)]);

    // The B master adds their own contact from C, not one of A's master.
    add_as(&srv, (B, 4), &g, vec![user_of(C, 3)]).await.unwrap();
    let err = add_as(&srv, (B, 4), &g, vec![user_of(C, 4)])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "NOT_IN_CONTACTS");
    // ...manages members and the basic settings...
    remove(&mut srv.membership(B, 4, false), &g, vec![user_of(C, 3)])
        .await
        .unwrap();
    add_as(&srv, (B, 4), &g, vec![user_of(C, 3)]).await.unwrap();
    let described = pb::Group {
        description: "run from B".into(),
        ..patch(&g)
    };
    let updated = try_update(&mut srv.groups(B, 4, false), described, &["description"])
        .await
        .unwrap();
    assert_eq!(updated.description, "run from B");
    // ...and a plain member may not delete it.
    let err = srv
        .groups(C, 3, false)
        .delete_group(delete_req(&g, ""))
        .await
        .unwrap_err();
    assert_reason(&err, Code::PermissionDenied, "NOT_GROUP_MANAGER");
    assert_eq!(
        member_users(&srv, &g).await,
        BTreeSet::from([(A, 2), (B, 4), (C, 3)])
    );
    // The C member reads it too.
    srv.groups(C, 3, false)
        .get_group(get_req(&g))
        .await
        .unwrap();
    // A Group Master of an external group may delete it (user guide), from any tenant.
    srv.groups(B, 4, false)
        .delete_group(delete_req(&g, ""))
        .await
        .unwrap();
    let err = srv
        .groups(C, 3, false)
        .get_group(get_req(&g))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r17_members_cannot_leave_and_removed_members_lose_the_group() {
    let Some(srv) = server().await else { return };
    srv.company(A, 3).await;
    srv.company(B, 3).await;
    let g = shared_group(&srv, "Partners", &[3], &[(B, 2)]).await;

    let leave = |(tenant, user): Key| {
        let mut c = srv.membership(tenant, user, false);
        let group = g.clone();
        async move { c.leave(pb::LeaveRequest { group }).await }
    };
    for who in [(B, 2), (A, 3), (A, 2)] {
        let err = leave(who).await.unwrap_err();
        assert_reason(&err, Code::FailedPrecondition, "MEMBERS_CANNOT_LEAVE");
    }
    assert_eq!(
        member_users(&srv, &g).await,
        BTreeSet::from([(A, 2), (A, 3), (B, 2)])
    );

    // The master removes the B member: the group is gone for them, as a missing one.
    let removed = remove(&mut srv.membership(A, 2, false), &g, vec![user_of(B, 2)])
        .await
        .unwrap();
    assert_eq!(removed.removed.len(), 1, "{removed:?}");
    let mut b2 = srv.groups(B, 2, false);
    let hidden = b2.get_group(get_req(&g)).await.unwrap_err();
    let missing = b2.get_group(get_req(&missing_group(A))).await.unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    assert_eq!(fingerprint(&hidden), fingerprint(&missing));
    assert!(
        visible_groups_of(&srv, (B, 2), false, (B, 2))
            .await
            .is_empty()
    );
    let [search, auto, list] = discovered(&srv, (B, 2), false, B, "partners").await;
    assert!(search.is_empty() && auto.is_empty() && list.is_empty());
    let err = leave((B, 2)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // Removing them is what the event records.
    let ev = payloads(&srv, &g, "members.removed").await;
    assert_eq!(ev.len(), 1, "{ev:?}");
}

/// Code, message and every detail of `status`, with `user`'s name written as
/// `tenants/T/users/U`, so that the answers about two users compare exactly.
fn about(status: &tonic::Status, (t, u): Key) -> (Code, String, String) {
    let named = format!("tenants/{t}/users/{u}");
    let swap = |s: &str| s.replace(&named, "tenants/T/users/U");
    let details = format!("{:?}", status.get_error_details());
    (status.code(), swap(status.message()), swap(&details))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r24_foreign_user_answers_do_not_depend_on_existence() {
    let Some(srv) = server().await else { return };
    srv.company(A, 4).await;
    srv.company(B, 3).await;
    person(&srv, A, 3, false, pb::UserKind::Works).await;
    person(&srv, A, 4, true, pb::UserKind::Line).await;
    // B's external group: B's admin and its master B2 name users of A, who exist (A2, A3
    // without the permission, A4 a LINE user) or not (A99999).
    let g = group(B, "Partners")
        .master(2)
        .external()
        .create(&srv)
        .await
        .name;
    let missing: Key = (A, 99_999);
    let callers = [(B, 1, true), (B, 2, false)];
    let answers = |user: Key| {
        let (srv, g) = (&srv, g.clone());
        async move {
            let mut out = Vec::new();
            for (t, u, admin) in callers {
                let mut c = srv.membership(t, u, admin);
                let err = add(&mut c, &g, vec![user_of(user.0, user.1)])
                    .await
                    .unwrap_err();
                out.push(about(&err, user));
                let err = add_master_users(&mut c, &g, &[user]).await.unwrap_err();
                out.push(about(&err, user));
                let err = remove(&mut c, &g, vec![user_of(user.0, user.1)])
                    .await
                    .unwrap_err();
                out.push(about(&err, user));
                let err = remove_master_users(&mut c, &g, &[user]).await.unwrap_err();
                out.push(about(&err, user));
                let checked = c
                    .check_membership(pb::CheckMembershipRequest {
                        group: g.clone(),
                        user: Some(user_ref(user.0, user.1)),
                    })
                    .await
                    .unwrap()
                    .into_inner();
                assert!(!checked.member, "{user:?}");
                let err = c
                    .list_groups_of_user(pb::ListGroupsOfUserRequest {
                        user: Some(user_ref(user.0, user.1)),
                        ..Default::default()
                    })
                    .await
                    .unwrap_err();
                out.push(about(&err, user));
            }
            out
        }
    };
    let err = add_as(&srv, (B, 2), &g, vec![user_of(missing.0, missing.1)])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "NOT_IN_CONTACTS");
    let absent = answers(missing).await;
    for user in [(A, 2), (A, 3), (A, 4)] {
        assert_eq!(answers(user).await, absent, "{user:?}");
    }
    assert_eq!(member_users(&srv, &g).await, BTreeSet::from([(B, 2)]));

    // B's directory writes contacts and rooms naming users of A whether they exist or not.
    for user in [(A, 2), missing] {
        add_contact(&srv, (B, 2), user).await;
    }
    room(&srv, B, 40, &[(B, 2), (A, 2)]).await;
    room(&srv, B, 41, &[(B, 2), missing]).await;
    // Users of B itself must exist.
    let err = srv
        .directory(B)
        .add_contact(pb::AddContactRequest {
            contact: Some(contact_of((B, 99), (A, 2))),
        })
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "UNKNOWN_MEMBER");

    // A contact is R15's consent: the master adds A2; a contact naming nobody adds nobody.
    add_as(&srv, (B, 2), &g, vec![user_of(A, 2)]).await.unwrap();
    let err = add_as(&srv, (B, 2), &g, vec![user_of(missing.0, missing.1)])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "UNKNOWN_MEMBER");
    assert_eq!(
        member_users(&srv, &g).await,
        BTreeSet::from([(A, 2), (B, 2)])
    );

    // Deleting A2 takes the contact and the room seat naming them along.
    delete_user(&srv, A, 2).await;
    let contacts = srv
        .directory(B)
        .list_contacts(pb::ListContactsRequest {
            tenant_id: B,
            user_id: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .contacts;
    assert_eq!(contacts, [contact_of((B, 2), missing)]);
    let seats = srv
        .directory(B)
        .get_message_room(pb::GetMessageRoomRequest {
            tenant_id: B,
            room_id: 40,
        })
        .await
        .unwrap()
        .into_inner()
        .members;
    assert_eq!(seats, [user_ref(B, 2)]);
}
