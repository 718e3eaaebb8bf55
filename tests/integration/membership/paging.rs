//! Cursor pagination of the membership lists: page sizes and page tokens.

use group_service::grpc::pb;
use tonic::{Code, Status};

use super::T;
use crate::fixtures::*;
use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_size_defaults_to_50_and_is_at_most_100() {
    let Some(srv) = server().await else { return };
    srv.company(T, 121).await;
    let g = group(T, "Crowd").master(2).create(&srv).await.name;
    let mut admin = srv.membership(T, 1, true);
    add(&mut admin, &g, (3..=100).map(user_member).collect())
        .await
        .unwrap();
    add(&mut admin, &g, (101..=121).map(user_member).collect())
        .await
        .unwrap();
    add_masters(&mut admin, &g, &(3..=101).collect::<Vec<_>>())
        .await
        .unwrap();

    for (page_size, want) in [(0, 50), (1000, 100), (100, 100), (7, 7)] {
        let r = admin
            .list_members(pb::ListMembersRequest {
                group: g.clone(),
                page_size,
                page_token: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.members.len(), want, "page size {page_size}");
        assert!(!r.next_page_token.is_empty());
        let r = admin
            .list_effective_members(pb::ListEffectiveMembersRequest {
                group: g.clone(),
                page_size,
                page_token: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.users.len(), want, "page size {page_size}");
        let r = admin
            .list_masters(pb::ListMastersRequest {
                group: g.clone(),
                page_size,
                page_token: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.masters.len(), want, "page size {page_size}");
    }
    let err = admin
        .list_members(pb::ListMembersRequest {
            group: g.clone(),
            page_size: -1,
            page_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_bad_field(&err, "page_size");

    // The whole list, page by page, once each.
    assert_eq!(members(&mut admin, &g).await.len(), 120);
    assert_eq!(
        effective_of(&mut admin, &g, 0).await,
        (2..=121).collect::<Vec<_>>()
    );
    assert_eq!(
        masters_of(&mut admin, &g).await,
        (2..=101).collect::<Vec<_>>()
    );
}

fn list(group: &str, page_token: &str) -> pb::ListMembersRequest {
    pb::ListMembersRequest {
        group: group.to_owned(),
        page_size: 2,
        page_token: page_token.to_owned(),
    }
}

fn groups_req(user: i64, page_token: &str) -> pb::ListGroupsOfUserRequest {
    pb::ListGroupsOfUserRequest {
        user: Some(user_ref(T, user)),
        page_size: 1,
        page_token: page_token.to_owned(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_tokens_are_bound_to_the_query_and_the_tenant() {
    let Some(srv) = server().await else { return };
    srv.company(T, 8).await;
    srv.company(2, 2).await;
    let members: Vec<_> = (3..=8).map(user_member).collect();
    let a = group(T, "A")
        .master(2)
        .members(members.clone())
        .create(&srv)
        .await
        .name;
    let b = group(T, "B")
        .master(2)
        .members(members.clone())
        .create(&srv)
        .await
        .name;
    let mut admin = srv.membership(T, 1, true);

    let token = admin
        .list_members(list(&a, ""))
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!token.is_empty());
    // The token works where it belongs (another page size is fine).
    admin.list_members(list(&a, &token)).await.unwrap();

    for (what, err) in &misused_member_tokens(&srv, &a, &b, &token).await {
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err:?}");
        assert_reason(err, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
        assert_bad_field(err, "page_token");
    }

    // ListGroupsOfUser tokens belong to the user asked about and to the caller.
    let token = admin
        .list_groups_of_user(groups_req(3, ""))
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!token.is_empty());
    let err = admin
        .list_groups_of_user(groups_req(4, &token))
        .await
        .unwrap_err();
    assert_reason(&err, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
    let err = srv
        .membership(T, 3, false)
        .list_groups_of_user(groups_req(3, &token))
        .await
        .unwrap_err();
    assert_reason(&err, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
}

/// A ListMembers `token` of group `a`, used everywhere it does not belong.
async fn misused_member_tokens(
    srv: &TestServer,
    a: &str,
    b: &str,
    token: &str,
) -> Vec<(&'static str, Status)> {
    let mut admin = srv.membership(T, 1, true);
    let mut altered = token.to_owned().into_bytes();
    let i = altered.len() / 3;
    altered[i] = if altered[i] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).expect("ascii");
    let truncated = &token[..token.len() - 1];
    // Same group id under another tenant, in the other tenant's name.
    let other_tenant = format!("tenants/2/groups/{}", group_id(a));
    let mut bad = vec![
        ("another group", admin.list_members(list(b, token)).await),
        ("altered", admin.list_members(list(a, &altered)).await),
        ("truncated", admin.list_members(list(a, truncated)).await),
        ("garbage", admin.list_members(list(a, "not-a-token")).await),
        (
            "another tenant",
            srv.membership(2, 1, true)
                .list_members(list(&other_tenant, token))
                .await,
        ),
    ]
    .into_iter()
    .map(|(what, answer)| (what, answer.unwrap_err()))
    .collect::<Vec<_>>();
    let effective = pb::ListEffectiveMembersRequest {
        group: a.to_owned(),
        page_size: 2,
        page_token: token.to_owned(),
    };
    let masters = pb::ListMastersRequest {
        group: a.to_owned(),
        page_size: 2,
        page_token: token.to_owned(),
    };
    let groups = pb::ListGroupsOfUserRequest {
        user: Some(user_ref(T, 3)),
        page_size: 1,
        page_token: token.to_owned(),
        ..Default::default()
    };
    bad.extend([
        (
            "effective members",
            admin.list_effective_members(effective).await.unwrap_err(),
        ),
        ("masters", admin.list_masters(masters).await.unwrap_err()),
        (
            "groups of user",
            admin.list_groups_of_user(groups).await.unwrap_err(),
        ),
    ]);
    bad
}
