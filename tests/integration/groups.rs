//! GroupService: create, get, delete (R01, R02, R03, R04, R07, R12), idempotent creates.

use crate::harness::*;
use group_service::grpc::pb;
use tonic::Code;
use tonic_types::StatusExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r01_create_and_get_group() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 3).await;
    let mut admin = srv.groups(1, 1, true);
    let g = admin
        .create_group(create_req(1, "Design", &[2]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g.display_name, "Design");
    let got = admin
        .get_group(pb::GetGroupRequest {
            name: g.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, g);
    let err = admin
        .create_group(create_req(1, "DESIGN", &[2]))
        .await
        .unwrap_err();
    assert_reason(&err, Code::AlreadyExists, "GROUP_NAME_TAKEN");
}

// ---- R01: names ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r01_name_of_100_multibyte_chars_is_accepted() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let mut admin = srv.groups(1, 1, true);
    for name in ["가".repeat(100), "😀".repeat(100)] {
        assert!(name.len() > 100, "the name must be longer than 100 bytes");
        let g = admin
            .create_group(create_req(1, &name, &[2]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(g.display_name, name);
        let got = admin
            .get_group(get_req(&g.name))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.display_name, name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r01_name_of_101_chars_is_rejected() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let mut admin = srv.groups(1, 1, true);
    for name in ["가".repeat(101), "a".repeat(101), "😀".repeat(101)] {
        let err = admin
            .create_group(create_req(1, &name, &[2]))
            .await
            .unwrap_err();
        assert_bad_field(&err, "group.display_name");
    }
    assert_eq!(srv.group_count(1).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r01_empty_and_blank_names_are_rejected() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let mut admin = srv.groups(1, 1, true);
    for name in ["", "   ", "\t \n"] {
        let err = admin
            .create_group(create_req(1, name, &[2]))
            .await
            .unwrap_err();
        assert_bad_field(&err, "group.display_name");
    }
    assert_eq!(srv.group_count(1).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r01_special_characters_are_accepted() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let mut admin = srv.groups(1, 1, true);
    for name in [
        "R&D / Q&A <team> #1",
        "'quotes' \"double\" `back` \\slash\\",
        "100% _under_ {braces} [brackets] (parens) | pipe ; semi",
        "«Équipe» — naïve café ✓ 🚀",
        "营销部 マーケティング 마케팅",
        "Robert'); DROP TABLE groups;--",
    ] {
        let g = admin
            .create_group(create_req(1, name, &[2]))
            .await
            .unwrap_or_else(|e| panic!("{name:?} rejected: {e:?}"))
            .into_inner();
        assert_eq!(g.display_name, name);
        let got = admin
            .get_group(get_req(&g.name))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.display_name, name);
    }
    assert_eq!(srv.group_count(1).await, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r01_names_are_unique_case_insensitively_within_tenant() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let mut admin = srv.groups(1, 1, true);
    admin
        .create_group(create_req(1, "Design", &[2]))
        .await
        .unwrap();
    admin
        .create_group(create_req(1, "Équipe Ärzte", &[2]))
        .await
        .unwrap();
    for taken in ["DESIGN", "design", "dEsIgN", "ÉQUIPE ÄRZTE", "équipe ärzte"] {
        let err = admin
            .create_group(create_req(1, taken, &[2]))
            .await
            .unwrap_err();
        assert_reason(&err, Code::AlreadyExists, "GROUP_NAME_TAKEN");
    }
    assert_eq!(srv.group_count(1).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r01_concurrent_creates_of_one_name_in_any_case_make_one_group() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let admin = srv.groups(1, 1, true);
    let calls: Vec<_> = ["design", "DESIGN", "Design", "dESIGN", "DeSiGn"]
        .iter()
        .cycle()
        .take(20)
        .map(|name| {
            let mut client = admin.clone();
            let req = create_req(1, name, &[2]);
            tokio::spawn(async move { client.create_group(req).await })
        })
        .collect();
    let mut ok = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => ok += 1,
            Err(err) => assert_reason(&err, Code::AlreadyExists, "GROUP_NAME_TAKEN"),
        }
    }
    assert_eq!(ok, 1);
    // The losers took no slot (R25: nothing half-written).
    assert_eq!(srv.group_count(1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r01_same_name_in_another_tenant_is_accepted() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    srv.company(2, 2).await;
    let a = srv
        .groups(1, 1, true)
        .create_group(create_req(1, "Design", &[2]))
        .await
        .unwrap()
        .into_inner();
    let b = srv
        .groups(2, 1, true)
        .create_group(create_req(2, "DESIGN", &[2]))
        .await
        .unwrap()
        .into_inner();
    assert!(a.name.starts_with("tenants/1/groups/"));
    assert!(b.name.starts_with("tenants/2/groups/"));
    assert_eq!(srv.group_count(1).await, 1);
    assert_eq!(srv.group_count(2).await, 1);
}

// ---- R02: description and photo ----

fn with_group(tenant: i64, group: pb::Group, masters: &[i64]) -> pb::CreateGroupRequest {
    pb::CreateGroupRequest {
        group: Some(group),
        ..create_req(tenant, "", masters)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r02_description_of_300_multibyte_chars_is_accepted() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let mut admin = srv.groups(1, 1, true);
    let description = "설명".repeat(150);
    let g = admin
        .create_group(with_group(
            1,
            pb::Group {
                description: description.clone(),
                ..group_named("Described")
            },
            &[2],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g.description, description);
    let got = admin
        .get_group(get_req(&g.name))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.description, description);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r02_description_of_301_chars_is_rejected() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let mut admin = srv.groups(1, 1, true);
    for description in ["설".repeat(301), "d".repeat(301)] {
        let err = admin
            .create_group(with_group(
                1,
                pb::Group {
                    description,
                    ..group_named("Too long")
                },
                &[2],
            ))
            .await
            .unwrap_err();
        assert_bad_field(&err, "group.description");
    }
    assert_eq!(srv.group_count(1).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r02_photo_uri_is_stored_and_returned() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let mut admin = srv.groups(1, 1, true);
    let photo = "https://cdn.example.com/photos/g%201.png?size=large&v=2";
    let g = admin
        .create_group(with_group(
            1,
            pb::Group {
                photo_uri: photo.into(),
                ..group_named("Pictured")
            },
            &[2],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g.photo_uri, photo);
    let got = admin
        .get_group(get_req(&g.name))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.photo_uri, photo);
    // Optional: a group without a photo or description has empty ones.
    let plain = admin
        .create_group(create_req(1, "Plain", &[2]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plain.photo_uri, "");
    assert_eq!(plain.description, "");
}

// ---- R04: who may create ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r04_plain_user_cannot_create_in_admins_only_tenant() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let err = srv
        .groups(1, 2, false)
        .create_group(create_req(1, "Mine", &[2]))
        .await
        .unwrap_err();
    assert_reason(&err, Code::PermissionDenied, "GROUP_CREATION_RESTRICTED");
    assert_eq!(srv.group_count(1).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r04_admin_can_create_in_admins_only_tenant() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let g = srv
        .groups(1, 1, true)
        .create_group(create_req(1, "Admins'", &[2]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g.kind, pb::GroupKind::Internal as i32);
    assert_eq!(srv.group_count(1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r04_plain_user_can_create_in_all_members_tenant() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.tenant(1, pb::Plan::Free, pb::GroupCreation::AllMembers)
        .await;
    srv.user(1, 1, true).await;
    srv.user(1, 2, false).await;
    let mut user = srv.groups(1, 2, false);
    let g = user
        .create_group(create_req(1, "Book club", &[2]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        user.get_group(get_req(&g.name)).await.unwrap().into_inner(),
        g
    );
    assert_eq!(srv.group_count(1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r04_admin_claim_without_directory_admin_is_not_admin() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 3).await;
    // User 2 is not an admin in the directory but their token claims it.
    let mut pretender = srv.groups(1, 2, true);
    let err = pretender
        .create_group(create_req(1, "Mine", &[2]))
        .await
        .unwrap_err();
    assert_reason(&err, Code::PermissionDenied, "GROUP_CREATION_RESTRICTED");
    // Nor may they see or delete a private group they are not in, as an admin could.
    let g = srv
        .groups(1, 1, true)
        .create_group(create_req(1, "Private", &[3]))
        .await
        .unwrap()
        .into_inner();
    let err = pretender.get_group(get_req(&g.name)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = pretender
        .delete_group(delete_req(&g.name, ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert_eq!(srv.group_count(1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r04_admin_demoted_in_the_directory_loses_admin_rights() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    srv.user(1, 3, true).await;
    let mut admin3 = srv.groups(1, 3, true);
    admin3
        .create_group(create_req(1, "While admin", &[2]))
        .await
        .unwrap();
    // The directory demotes user 3; their token still claims admin.
    srv.user(1, 3, false).await;
    let err = admin3
        .create_group(create_req(1, "After demotion", &[2]))
        .await
        .unwrap_err();
    assert_reason(&err, Code::PermissionDenied, "GROUP_CREATION_RESTRICTED");
    assert_eq!(srv.group_count(1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r04_master_also_named_as_member_is_one_member() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 3).await;
    let mut req = create_req(1, "Overlap", &[2, 2]);
    req.members = vec![
        user_member(2),
        user_member(3),
        pb::MemberRef {
            tenant_id: 1,
            ..user_member(3)
        },
    ];
    let g = srv
        .groups(1, 1, true)
        .create_group(req)
        .await
        .unwrap()
        .into_inner();
    for user in [2, 3] {
        srv.groups(1, user, false)
            .get_group(get_req(&g.name))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r04_create_without_masters_is_invalid() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let mut req = create_req(1, "Masterless", &[]);
    req.members = vec![user_member(2)];
    let err = srv.groups(1, 1, true).create_group(req).await.unwrap_err();
    assert_bad_field(&err, "master_user_ids");
    assert_eq!(srv.group_count(1).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r04_master_not_a_user_of_the_tenant_is_unknown_member() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    // User 50 exists, but in tenant 2 only.
    srv.company(2, 1).await;
    srv.user(2, 50, false).await;
    let mut admin = srv.groups(1, 1, true);
    for masters in [&[99][..], &[50], &[2, 99]] {
        let err = admin
            .create_group(create_req(1, "Ghost-led", masters))
            .await
            .unwrap_err();
        assert_reason(&err, Code::FailedPrecondition, "UNKNOWN_MEMBER");
    }
    // Nothing half-written (R25): no slot taken, and the name is still free.
    assert_eq!(srv.group_count(1).await, 0);
    admin
        .create_group(create_req(1, "Ghost-led", &[2]))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r04_user_member_of_another_tenant_is_rejected() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    srv.company(2, 2).await;
    let mut req = create_req(1, "Mixed", &[2]);
    req.members = vec![pb::MemberRef {
        tenant_id: 2,
        ..user_member(2)
    }];
    let err = srv.groups(1, 1, true).create_group(req).await.unwrap_err();
    assert_bad_field(&err, "members");
    assert_eq!(srv.group_count(1).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r04_unknown_user_member_is_unknown_member() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let mut req = create_req(1, "Half", &[2]);
    req.members = vec![user_member(77)];
    let err = srv.groups(1, 1, true).create_group(req).await.unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "UNKNOWN_MEMBER");
    assert_eq!(srv.group_count(1).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r04_masters_count_as_members() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 3).await;
    // No members besides the master: an internal group needs one, and the master is one.
    let g = srv
        .groups(1, 1, true)
        .create_group(create_req(1, "Solo", &[2]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g.visibility, pb::Visibility::Private as i32);
    // The master sees the private group as a member does; user 3 is no member.
    let got = srv
        .groups(1, 2, false)
        .get_group(get_req(&g.name))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, g);
    let err = srv
        .groups(1, 3, false)
        .get_group(get_req(&g.name))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}

// ---- R07: visibility basics ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_private_group_is_not_found_for_non_members() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 4).await;
    let g = srv
        .groups(1, 1, true)
        .create_group(create_req(1, "Secret", &[2]))
        .await
        .unwrap()
        .into_inner();
    let missing = format!("tenants/1/groups/{}", i64::MAX - 1);
    let mut outsider = srv.groups(1, 3, false);
    let hidden = outsider.get_group(get_req(&g.name)).await.unwrap_err();
    let absent = outsider.get_group(get_req(&missing)).await.unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound, "{hidden:?}");
    assert_eq!(fingerprint(&hidden), fingerprint(&absent));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_private_group_is_visible_to_members_and_admins() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 5).await;
    srv.team(1, 10, &[4]).await;
    let mut req = create_req(1, "Inner circle", &[2]);
    req.members = vec![user_member(3), team_member(10)];
    req.group = Some(pb::Group {
        visibility: pb::Visibility::Private as i32,
        ..group_named("Inner circle")
    });
    let g = srv
        .groups(1, 1, true)
        .create_group(req)
        .await
        .unwrap()
        .into_inner();
    // Master 2, member 3, member 4 through team 10, admin 1.
    for (user, admin) in [(2, false), (3, false), (4, false), (1, true)] {
        let got = srv
            .groups(1, user, admin)
            .get_group(get_req(&g.name))
            .await
            .unwrap_or_else(|e| panic!("user {user} cannot see it: {e:?}"))
            .into_inner();
        assert_eq!(got, g);
    }
    let err = srv
        .groups(1, 5, false)
        .get_group(get_req(&g.name))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_private_group_is_visible_to_members_of_a_nested_group() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 5).await;
    srv.team(1, 10, &[4]).await;
    let mut admin = srv.groups(1, 1, true);
    let mut inner = create_req(1, "Inner", &[2]);
    inner.members = vec![user_member(3), team_member(10)];
    let inner = admin.create_group(inner).await.unwrap().into_inner();
    let inner_id: i64 = inner.name.rsplit('/').next().unwrap().parse().unwrap();
    let mut outer = create_req(1, "Outer", &[5]);
    outer.members = vec![pb::MemberRef {
        r#type: pb::MemberType::Group as i32,
        id: inner_id,
        tenant_id: 0,
    }];
    let outer = admin.create_group(outer).await.unwrap().into_inner();
    // 3 directly in Inner, 4 through Team 10 in Inner, 2 a master of Inner (R22).
    for user in [2, 3, 4] {
        srv.groups(1, user, false)
            .get_group(get_req(&outer.name))
            .await
            .unwrap_or_else(|e| panic!("user {user} cannot see Outer: {e:?}"));
    }
    // Membership flows down, not up: the master of Outer is no member of Inner.
    let err = srv
        .groups(1, 5, false)
        .get_group(get_req(&inner.name))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_public_group_is_visible_to_every_user_of_the_tenant() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 4).await;
    srv.company(2, 2).await;
    let g = srv
        .groups(1, 1, true)
        .create_group(with_group(
            1,
            pb::Group {
                visibility: pb::Visibility::Public as i32,
                ..group_named("Town hall")
            },
            &[2],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g.visibility, pb::Visibility::Public as i32);
    for user in [2, 3, 4] {
        let got = srv
            .groups(1, user, false)
            .get_group(get_req(&g.name))
            .await
            .unwrap_or_else(|e| panic!("user {user} cannot see it: {e:?}"))
            .into_inner();
        assert_eq!(got, g);
    }
    // Every user of *its* tenant: not users of other tenants (R24).
    let err = srv
        .groups(2, 2, false)
        .get_group(get_req(&g.name))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}

// ---- R12: delete ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r12_admin_deletes_group() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let mut admin = srv.groups(1, 1, true);
    let g = admin
        .create_group(create_req(1, "Doomed", &[2]))
        .await
        .unwrap()
        .into_inner();
    admin.delete_group(delete_req(&g.name, "")).await.unwrap();
    let err = admin.get_group(get_req(&g.name)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = srv
        .groups(1, 2, false)
        .get_group(get_req(&g.name))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    // Deleting again: it is gone.
    let err = admin
        .delete_group(delete_req(&g.name, ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    // The name is free again.
    admin
        .create_group(create_req(1, "doomed", &[2]))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r12_master_or_member_cannot_delete_group() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 3).await;
    let mut req = create_req(1, "Kept", &[2]);
    req.members = vec![user_member(3)];
    let g = srv
        .groups(1, 1, true)
        .create_group(req)
        .await
        .unwrap()
        .into_inner();
    for user in [2, 3] {
        let err = srv
            .groups(1, user, false)
            .delete_group(delete_req(&g.name, ""))
            .await
            .unwrap_err();
        assert_reason(&err, Code::PermissionDenied, "NOT_GROUP_MANAGER");
    }
    let got = srv
        .groups(1, 1, true)
        .get_group(get_req(&g.name))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, g);
    assert_eq!(srv.group_count(1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r12_delete_with_stale_etag_is_aborted() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let mut admin = srv.groups(1, 1, true);
    let g = admin
        .create_group(create_req(1, "Versioned", &[2]))
        .await
        .unwrap()
        .into_inner();
    assert!(!g.etag.is_empty());
    for stale in ["\"0\"", "W/\"1\"", "not-an-etag"] {
        assert_ne!(stale, g.etag);
        let err = admin
            .delete_group(delete_req(&g.name, stale))
            .await
            .unwrap_err();
        assert_reason(&err, Code::Aborted, "ETAG_MISMATCH");
    }
    assert_eq!(srv.group_count(1).await, 1);
    admin
        .delete_group(delete_req(&g.name, &g.etag))
        .await
        .unwrap();
    let err = admin.get_group(get_req(&g.name)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r12_delete_frees_the_tenants_group_count() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let mut admin = srv.groups(1, 1, true);
    let a = admin
        .create_group(create_req(1, "A", &[2]))
        .await
        .unwrap()
        .into_inner();
    admin.create_group(create_req(1, "B", &[2])).await.unwrap();
    assert_eq!(srv.group_count(1).await, 2);
    admin.delete_group(delete_req(&a.name, "")).await.unwrap();
    assert_eq!(srv.group_count(1).await, 1);
}

// ---- Idempotent creates (request_id) ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r03_create_retried_with_same_request_id_creates_one_group() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let mut admin = srv.groups(1, 1, true);
    let req = pb::CreateGroupRequest {
        request_id: "req-1".into(),
        ..create_req(1, "Once", &[2])
    };
    let first = admin.create_group(req.clone()).await.unwrap().into_inner();
    let second = admin.create_group(req).await.unwrap().into_inner();
    assert_eq!(first, second);
    assert_eq!(srv.group_count(1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_request_id_reused_for_another_request_is_invalid() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let mut admin = srv.groups(1, 1, true);
    admin
        .create_group(pb::CreateGroupRequest {
            request_id: "req-1".into(),
            ..create_req(1, "First", &[2])
        })
        .await
        .unwrap();
    let err = admin
        .create_group(pb::CreateGroupRequest {
            request_id: "req-1".into(),
            ..create_req(1, "Second", &[2])
        })
        .await
        .unwrap_err();
    assert_reason(&err, Code::InvalidArgument, "REQUEST_ID_REUSED");
    assert_bad_field(&err, "request_id");
    assert_eq!(srv.group_count(1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r03_concurrent_creates_with_one_request_id_create_one_group() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let admin = srv.groups(1, 1, true);
    let req = pb::CreateGroupRequest {
        request_id: "retry-storm".into(),
        ..create_req(1, "Stormy", &[2])
    };
    let calls = (0..50).map(|_| {
        let (mut client, req) = (admin.clone(), req.clone());
        tokio::spawn(async move { client.create_group(req).await.map(|r| r.into_inner()) })
    });
    let mut names = std::collections::BTreeSet::new();
    for call in calls.collect::<Vec<_>>() {
        let g = call.await.unwrap().unwrap();
        names.insert(g.name);
    }
    assert_eq!(names.len(), 1, "{names:?}");
    assert_eq!(srv.group_count(1).await, 1);
}

// ---- R03: the tenant's group limit ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r03_free_tenant_limit_holds_under_concurrency() {
    use futures_util::stream::{self, StreamExt};

    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 1).await;
    let admin = srv.groups(1, 1, true);
    let started = std::time::Instant::now();
    let results: Vec<Result<pb::Group, tonic::Status>> = stream::iter(0..1_050)
        .map(|i| {
            let mut client = admin.clone();
            async move {
                client
                    .create_group(create_req(1, &format!("g{i}"), &[1]))
                    .await
                    .map(|r| r.into_inner())
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    println!(
        "r03: 1,050 creates on {} in {:?}",
        backend(),
        started.elapsed()
    );
    let mut ok = 0;
    for r in &results {
        match r {
            Ok(_) => ok += 1,
            Err(err) => {
                assert_reason(err, Code::ResourceExhausted, "TENANT_GROUP_LIMIT");
                let quota = err
                    .get_details_quota_failure()
                    .unwrap_or_else(|| panic!("no QuotaFailure in {err:?}"));
                assert_eq!(quota.violations.len(), 1);
                assert_eq!(quota.violations[0].subject, "tenants/1");
            }
        }
    }
    assert_eq!(ok, 1_000);
    assert_eq!(srv.group_count(1).await, 1_000);

    // PAID lifts the limit; the count is kept.
    let mut tenant = srv.get_tenant(1).await;
    tenant.plan = pb::Plan::Paid as i32;
    let upgraded = srv
        .directory(1)
        .upsert_tenant(pb::UpsertTenantRequest {
            tenant: Some(tenant),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(upgraded.plan, pb::Plan::Paid as i32);
    assert_eq!(upgraded.group_count, 1_000);
    let mut admin = admin;
    admin
        .create_group(create_req(1, "one more", &[1]))
        .await
        .unwrap();
    assert_eq!(srv.group_count(1).await, 1_001);
}

// ---- R25: malformed resource names ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_malformed_names_are_invalid() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let mut admin = srv.groups(1, 1, true);
    for name in [
        "",
        "groups/1",
        "tenants/1/groups",
        "tenants/x/groups/1",
        "tenants/1/groups/0",
        "tenants/1/groups/-5",
        "tenants/1/teams/1",
        "tenants/1/groups/1/extra",
    ] {
        let err = admin.get_group(get_req(name)).await.unwrap_err();
        assert_bad_field(&err, "name");
        let err = admin.delete_group(delete_req(name, "")).await.unwrap_err();
        assert_bad_field(&err, "name");
    }
    for parent in ["", "tenants", "tenants/0", "tenants/1/groups", "tenant/1"] {
        let req = pb::CreateGroupRequest {
            parent: parent.into(),
            ..create_req(1, "Orphan", &[2])
        };
        let err = admin.create_group(req).await.unwrap_err();
        assert_bad_field(&err, "parent");
    }
    assert_eq!(srv.group_count(1).await, 0);
}

// ---- R11/R12: the deletion event ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r12_delete_records_one_event_naming_purged_data_and_recipients() {
    use group_service::domain::model::{GroupId, TenantId};

    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 6).await;
    srv.team(1, 10, &[4]).await;
    let mut admin = srv.groups(1, 1, true);
    let mut inner = create_req(1, "Inner", &[5]);
    inner.members = vec![user_member(6)];
    let inner = admin.create_group(inner).await.unwrap().into_inner();
    let inner_id: i64 = inner.name.rsplit('/').next().unwrap().parse().unwrap();
    let mut req = create_req(1, "Announced", &[2]);
    req.group = Some(pb::Group {
        notify_all_members: true,
        ..group_named("Announced")
    });
    req.members = vec![
        user_member(3),
        team_member(10),
        pb::MemberRef {
            r#type: pb::MemberType::Group as i32,
            id: inner_id,
            tenant_id: 0,
        },
    ];
    let g = admin.create_group(req).await.unwrap().into_inner();
    let id: i64 = g.name.rsplit('/').next().unwrap().parse().unwrap();
    admin.delete_group(delete_req(&g.name, "")).await.unwrap();

    let events = srv
        .store
        .read(move |tx| Box::pin(async move { tx.list_events(TenantId(1), GroupId(id)).await }))
        .await
        .unwrap();
    let deleted: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "group.deleted")
        .collect();
    assert_eq!(deleted.len(), 1, "{events:?}");
    let payload: serde_json::Value = serde_json::from_str(&deleted[0].payload).unwrap();
    assert_eq!(payload["group"], g.name.as_str());
    let purged: Vec<&str> = payload["purged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for data in ["message", "note", "event", "folder", "mailing_list"] {
        assert!(purged.contains(&data), "{data} not purged: {purged:?}");
    }
    // R11: every member, resolved to users: master 2, member 3, 4 through the team, 5 and 6
    // through the nested group.
    let mut notified: Vec<(i64, i64)> = payload["notify"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_i64().unwrap(), p[1].as_i64().unwrap()))
        .collect();
    notified.sort();
    assert_eq!(notified, [(1, 2), (1, 3), (1, 4), (1, 5), (1, 6)]);
    // The nested group survives its parent.
    admin.get_group(get_req(&inner.name)).await.unwrap();
}
