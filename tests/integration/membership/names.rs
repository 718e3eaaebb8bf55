//! ListGroupsOfUser's names-only view (R22, R07, R20, R24): the user's whole membership,
//! direct and transitive, in one answer, with the same groups and `direct` flags as the full
//! view, for every caller who may list them, and refused exactly as the full view refuses.

use std::collections::BTreeSet;

use group_service::grpc::pb;
use tonic::{Code, Status};

use super::T;
use crate::fixtures::*;
use crate::harness::*;

const NAME_ONLY: i32 = pb::GroupOfUserView::NameOnly as i32;

fn names_req(user: (i64, i64), page_size: i32, page_token: &str) -> pb::ListGroupsOfUserRequest {
    pb::ListGroupsOfUserRequest {
        user: Some(user_ref(user.0, user.1)),
        page_size,
        page_token: page_token.to_owned(),
        view: NAME_ONLY,
    }
}

/// One names-only page: (name, direct) of each group, and the next page's token. Every other
/// field of each group is empty.
async fn names_page(
    c: &mut Membership,
    user: (i64, i64),
    page_size: i32,
    page_token: &str,
) -> Result<(Vec<(String, bool)>, String), Status> {
    let r = c
        .list_groups_of_user(names_req(user, page_size, page_token))
        .await?
        .into_inner();
    let rows = r
        .groups
        .into_iter()
        .map(|g| {
            let group = g.group.expect("a group");
            let name = group.name.clone();
            assert_eq!(
                group,
                pb::Group {
                    name: name.clone(),
                    ..Default::default()
                },
                "names only"
            );
            (name, g.direct)
        })
        .collect();
    Ok((rows, r.next_page_token))
}

/// Every names-only page, `page_size` at a time.
async fn all_names(c: &mut Membership, user: (i64, i64), page_size: i32) -> Vec<(String, bool)> {
    let (mut all, mut token) = (Vec::new(), String::new());
    loop {
        let (rows, next) = names_page(c, user, page_size, &token).await.unwrap();
        all.extend(rows);
        if next.is_empty() {
            return all;
        }
        token = next;
    }
}

/// User 2 of tenant `T` in 130 groups: 110 directly (10 of them public), 12 through team 5,
/// and 8 through nesting; user 3 is a member of 4 of user 2's private groups.
async fn arrange(srv: &TestServer) -> Vec<String> {
    srv.company(T, 4).await;
    srv.team(T, 5, &[2]).await;
    let mut names = Vec::new();
    for i in 0..110 {
        let mut g = group(T, &format!("Direct {i}"))
            .master(1)
            .member(user_of(T, 2));
        if i < 10 {
            g = g.public();
        }
        if i % 30 == 0 {
            g = g.member(user_of(T, 3));
        }
        names.push(g.create(srv).await.name);
    }
    for i in 0..12 {
        let g = group(T, &format!("Teamed {i}"))
            .master(1)
            .member(team_member(5));
        names.push(g.create(srv).await.name);
    }
    for i in 0..8 {
        let g = group(T, &format!("Outer {i}"))
            .master(1)
            .member(group_member(&names[20 + i]));
        names.push(g.create(srv).await.name);
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r22_names_only_answers_the_whole_membership_in_one_call_as_the_full_view_does() {
    let Some(srv) = server().await else { return };
    let names = arrange(&srv).await;
    for (caller, admin) in [((T, 2), false), ((T, 1), true), ((T, 3), false)] {
        let mut c = srv.membership(caller.0, caller.1, admin);
        let full = groups_of_user(&mut c, (T, 2), 100).await;
        let (one, next) = names_page(&mut c, (T, 2), 0, "").await.unwrap();
        assert!(next.is_empty(), "{caller:?}: one answer holds it all");
        assert_eq!(
            one, full,
            "{caller:?}: the same groups and flags as the full view"
        );
        // Pages of 7 cover the same list, in the same order.
        assert_eq!(all_names(&mut c, (T, 2), 7).await, full, "{caller:?}");
        if caller == (T, 2) || admin {
            let all: BTreeSet<&String> = names.iter().collect();
            let got: BTreeSet<&String> = one.iter().map(|(n, _)| n).collect();
            assert_eq!(got, all, "{caller:?} sees every group of the user");
            assert_eq!(one.iter().filter(|(_, d)| *d).count(), 110, "direct flags");
        } else {
            // R07: the public groups, and the private ones user 3 is in.
            assert_eq!(one.len(), 10 + 3, "{caller:?}: {one:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r24_names_only_refuses_what_the_full_view_refuses() {
    let Some(srv) = server().await else { return };
    srv.company(T, 3).await;
    srv.company(2, 3).await;
    group(T, "Mine").master(2).create(&srv).await;
    let code = |r: Result<tonic::Response<pb::ListGroupsOfUserResponse>, Status>| {
        r.map(|_| Code::Ok).unwrap_or_else(|s| s.code())
    };
    for (caller, user) in [
        // Another tenant's admin, about an existing user and a missing one.
        ((2, 1, true), (T, 2)),
        ((2, 1, true), (T, 99)),
        // A user of the tenant about a user who does not exist.
        ((T, 3, false), (T, 99)),
    ] {
        let mut c = srv.membership(caller.0, caller.1, caller.2);
        let full = pb::ListGroupsOfUserRequest {
            user: Some(user_ref(user.0, user.1)),
            ..Default::default()
        };
        let want = code(c.list_groups_of_user(full).await);
        assert_eq!(want, Code::NotFound, "{caller:?} {user:?}");
        let got = code(c.list_groups_of_user(names_req(user, 0, "")).await);
        assert_eq!(got, want, "{caller:?} {user:?}");
    }

    let mut c = srv.membership(T, 2, false);
    let bad_view = pb::ListGroupsOfUserRequest {
        view: 7,
        ..names_req((T, 2), 0, "")
    };
    let e = c.list_groups_of_user(bad_view).await.unwrap_err();
    assert_bad_field(&e, "view");
    let e = c
        .list_groups_of_user(names_req((T, 2), -1, ""))
        .await
        .unwrap_err();
    assert_bad_field(&e, "page_size");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_only_page_tokens_continue_their_own_view_only() {
    let Some(srv) = server().await else { return };
    srv.company(T, 3).await;
    for i in 0..3 {
        group(T, &format!("G{i}")).master(2).create(&srv).await;
    }
    let mut c = srv.membership(T, 2, false);
    let (_, names_token) = names_page(&mut c, (T, 2), 1, "").await.unwrap();
    assert!(!names_token.is_empty());
    let full = pb::ListGroupsOfUserRequest {
        user: Some(user_ref(T, 2)),
        page_size: 1,
        page_token: names_token,
        ..Default::default()
    };
    let e = c.list_groups_of_user(full).await.unwrap_err();
    assert_reason(&e, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
    let full_token = c
        .list_groups_of_user(pb::ListGroupsOfUserRequest {
            user: Some(user_ref(T, 2)),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    let e = names_page(&mut c, (T, 2), 1, &full_token)
        .await
        .unwrap_err();
    assert_reason(&e, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
}

/// The names list is cached: a write that changes it, on this server, is in the next answer,
/// including another tenant's external group gaining the user (R20), a write of that tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r20_names_only_follows_every_write_that_changes_the_list_at_once() {
    let Some(srv) = server().await else { return };
    srv.company(T, 3).await;
    srv.company(2, 3).await;
    add_contact(&srv, (2, 2), (T, 2)).await;
    let own = group(T, "Own").master(2).create(&srv).await.name;
    let external = group(2, "Partners")
        .master(2)
        .external()
        .create(&srv)
        .await
        .name;
    let mut me = srv.membership(T, 2, false);
    let mut listed = async || -> BTreeSet<String> {
        let (rows, next) = names_page(&mut me, (T, 2), 0, "").await.unwrap();
        assert!(next.is_empty());
        rows.into_iter().map(|(n, _)| n).collect()
    };
    let set = |names: &[&String]| names.iter().map(|n| (*n).clone()).collect::<BTreeSet<_>>();
    assert_eq!(listed().await, set(&[&own]));
    // Again: this answer comes from the cache.
    assert_eq!(listed().await, set(&[&own]));

    add_as(&srv, (2, 2), &external, vec![user_of(T, 2)])
        .await
        .unwrap();
    assert_eq!(
        listed().await,
        set(&[&own, &external]),
        "another tenant's write"
    );

    let second = group(T, "Second")
        .master(1)
        .member(user_of(T, 2))
        .create(&srv)
        .await
        .name;
    assert_eq!(listed().await, set(&[&own, &second, &external]));
    let mut admin = srv.membership(T, 1, true);
    remove(&mut admin, &second, vec![user_of(T, 2)])
        .await
        .unwrap();
    assert_eq!(listed().await, set(&[&own, &external]));
    let mut partner = srv.membership(2, 2, false);
    remove(&mut partner, &external, vec![user_of(T, 2)])
        .await
        .unwrap();
    assert_eq!(listed().await, set(&[&own]), "another tenant's write");
}
