//! External keys (the product's `groupExternalKey`): a group named by the key its tenant gave
//! it, `tenants/{tenant}/groups/key:{key}`, wherever a group name goes; 1-100 characters, none
//! of `/ % # ? \`, unique per tenant; set, changed and cleared by admins through UpdateGroup.

use group_service::grpc::pb;
use tonic::Code;

use crate::fixtures::*;
use crate::harness::*;

fn keyed(tenant: i64, name: &str, key: &str) -> GroupBuilder {
    group(tenant, name).with(|g| g.external_key = key.to_owned())
}

fn by_key(tenant: i64, key: &str) -> String {
    format!("tenants/{tenant}/groups/key:{key}")
}

fn keyed_group_member(key: &str) -> pb::MemberRef {
    pb::MemberRef {
        r#type: GROUP,
        external_key: key.to_owned(),
        ..Default::default()
    }
}

async fn get_as(
    srv: &TestServer,
    (tenant, user): Key,
    admin: bool,
    name: &str,
) -> Result<pb::Group, tonic::Status> {
    srv.groups(tenant, user, admin)
        .get_group(get_req(name))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_key_names_the_group_in_every_group_and_membership_call() {
    let Some(srv) = server().await else { return };
    srv.company(1, 5).await;
    let g = keyed(1, "HR", "hr-2026 Q1").master(2).create(&srv).await;
    assert_eq!(g.external_key, "hr-2026 Q1");
    let key = by_key(1, "hr-2026 Q1");
    let got = get_as(&srv, (1, 1), true, &key).await.unwrap();
    assert_eq!(
        got,
        get(&srv, &g.name).await,
        "the key reads the same group"
    );
    assert_eq!(got.name, g.name, "answers name the group by id");

    let mut admin = srv.membership(1, 1, true);
    add(&mut admin, &key, vec![user_member(3)]).await.unwrap();
    assert_eq!(check(&mut admin, &g.name, 3).await, (true, false, true));
    let via_key = admin
        .check_membership(pb::CheckMembershipRequest {
            group: key.clone(),
            user: Some(user_ref(1, 3)),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(via_key.member && via_key.direct);
    assert_eq!(member_keys(&mut admin, &key).await, [u(2), u(3)].into());
    assert_eq!(effective_of(&mut admin, &key, 10).await, vec![2, 3]);
    add_master_users(&mut admin, &key, &[(1, 3)]).await.unwrap();
    assert_eq!(masters_of(&mut admin, &key).await, vec![2, 3]);
    remove_master_users(&mut admin, &key, &[(1, 3)])
        .await
        .unwrap();
    assert_eq!(masters_of(&mut admin, &key).await, vec![2]);
    let leave = srv
        .membership(1, 3, false)
        .leave(pb::LeaveRequest { group: key.clone() })
        .await
        .unwrap_err();
    assert_reason(&leave, Code::FailedPrecondition, "MEMBERS_CANNOT_LEAVE");
    remove(&mut admin, &key, vec![user_member(3)])
        .await
        .unwrap();
    assert_eq!(member_keys(&mut admin, &key).await, [u(2)].into());

    let mut groups = srv.groups(1, 1, true);
    let mut change = patch(&key);
    change.description = "People".into();
    let updated = groups
        .update_group(update(change, &["description"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (updated.name.as_str(), updated.description.as_str()),
        (g.name.as_str(), "People")
    );
    let report = srv
        .groups_service(1)
        .report_feature_usage(pb::ReportFeatureUsageRequest {
            name: key.clone(),
            feature: "message".into(),
            bytes: 10,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.group.unwrap().storage_used_bytes, 10);

    groups
        .delete_group(delete_req(&key, &updated.etag))
        .await
        .unwrap();
    let gone = get_as(&srv, (1, 1), true, &key).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    assert_eq!(
        get_as(&srv, (1, 1), true, &g.name)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_key_rule_is_1_to_100_characters_without_slash_percent_hash_question_backslash() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    for bad in ["a/b", "50%", "#1", "why?", "a\\b", &"k".repeat(101)] {
        let err = keyed(1, "G", bad)
            .master(2)
            .try_create(&srv)
            .await
            .unwrap_err();
        assert_bad_field(&err, "group.external_key");
        let err = get_as(&srv, (1, 1), true, &by_key(1, bad))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}");
    }
    assert_eq!(srv.group_count(1).await, 0);
    let longest = "가".repeat(100);
    let g = keyed(1, "G", &longest).master(2).create(&srv).await;
    assert_eq!(
        get_as(&srv, (1, 1), true, &by_key(1, &longest))
            .await
            .unwrap()
            .name,
        g.name
    );
    let err = get_as(&srv, (1, 1), true, "tenants/1/groups/key:")
        .await
        .unwrap_err();
    assert_bad_field(&err, "name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_keys_are_unique_per_tenant_even_under_concurrent_creates() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    srv.company(2, 2).await;
    let answers = race(8, 0..8, |i| {
        let req = keyed(1, &format!("G{i}"), "shared").master(2).request();
        let mut c = srv.groups(1, 1, true);
        async move { c.create_group(req).await.map(|r| r.into_inner()) }
    })
    .await;
    let won = winners(answers, Code::AlreadyExists, "EXTERNAL_KEY_TAKEN");
    assert_eq!(won.len(), 1, "exactly one group holds the key");
    let other = keyed(2, "G", "shared").master(2).create(&srv).await;
    assert_eq!(
        get_as(&srv, (1, 1), true, &by_key(1, "shared"))
            .await
            .unwrap()
            .name,
        won[0].name
    );
    assert_eq!(
        get_as(&srv, (2, 1), true, &by_key(2, "shared"))
            .await
            .unwrap()
            .name,
        other.name
    );
    // Keys are compared exactly: another case is another key.
    keyed(1, "H", "Shared").master(2).create(&srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_group_sets_changes_and_clears_the_external_key_admins_only() {
    let Some(srv) = server().await else { return };
    srv.company(1, 3).await;
    let g = group(1, "Ops").master(2).create(&srv).await;
    let taken = keyed(1, "Other", "taken").master(2).create(&srv).await;
    let mut admin = srv.groups(1, 1, true);
    let set = |name: &str, key: &str| {
        let mut change = patch(name);
        change.external_key = key.to_owned();
        update(change, &["external_key"])
    };
    let updated = admin
        .update_group(set(&g.name, "ops-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.external_key, "ops-1");
    assert_eq!(
        get_as(&srv, (1, 1), true, &by_key(1, "ops-1"))
            .await
            .unwrap()
            .name,
        g.name
    );

    // Changed: the old key names nothing (the cache included), the new one the group.
    admin
        .update_group(set(&by_key(1, "ops-1"), "ops-2"))
        .await
        .unwrap();
    let old = get_as(&srv, (1, 1), true, &by_key(1, "ops-1"))
        .await
        .unwrap_err();
    assert_eq!(old.code(), Code::NotFound);
    assert_eq!(
        get_as(&srv, (1, 1), true, &by_key(1, "ops-2"))
            .await
            .unwrap()
            .name,
        g.name
    );

    let err = admin.update_group(set(&g.name, "taken")).await.unwrap_err();
    assert_reason(&err, Code::AlreadyExists, "EXTERNAL_KEY_TAKEN");
    let err = admin.update_group(set(&g.name, "a?b")).await.unwrap_err();
    assert_bad_field(&err, "group.external_key");
    assert_eq!(get(&srv, &g.name).await.external_key, "ops-2");
    assert_eq!(get(&srv, &taken.name).await.external_key, "taken");

    // A Group Master may not: the key is the tenant's integrations' handle on the group.
    let err = srv
        .groups(1, 2, false)
        .update_group(set(&g.name, "mine"))
        .await
        .unwrap_err();
    assert_reason(&err, Code::PermissionDenied, "NOT_GROUP_MANAGER");

    let cleared = admin
        .update_group(set(&g.name, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cleared.external_key, "");
    let gone = get_as(&srv, (1, 1), true, &by_key(1, "ops-2"))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    // A cleared key is free again.
    admin.update_group(set(&taken.name, "ops-2")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_groups_are_named_by_external_key_when_nesting() {
    let Some(srv) = server().await else { return };
    srv.company(1, 5).await;
    let inner = keyed(1, "Inner", "inner").master(4).create(&srv).await;
    let outer = group(1, "Outer").master(2).create(&srv).await;
    let mut admin = srv.membership(1, 1, true);
    let added = add(&mut admin, &outer.name, vec![keyed_group_member("inner")])
        .await
        .unwrap();
    assert_eq!(keys(&added.added), [(GROUP, group_id(&inner.name))].into());
    assert!(
        added.added[0].external_key.is_empty(),
        "answers name members by id"
    );
    assert_eq!(
        check(&mut admin, &outer.name, 4).await,
        (true, false, false)
    );

    let created = group(1, "Created")
        .master(2)
        .member(keyed_group_member("inner"))
        .create(&srv)
        .await;
    assert!(check(&mut admin, &created.name, 4).await.0);

    let err = add(&mut admin, &outer.name, vec![keyed_group_member("nobody")])
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "UNKNOWN_MEMBER");
    let mut user_by_key = keyed_group_member("inner");
    user_by_key.r#type = USER;
    let err = add(&mut admin, &outer.name, vec![user_by_key])
        .await
        .unwrap_err();
    assert_bad_field(&err, "members[0].external_key");
    let mut both = keyed_group_member("inner");
    both.id = group_id(&inner.name);
    let err = add(&mut admin, &outer.name, vec![user_member(3), both])
        .await
        .unwrap_err();
    assert_bad_field(&err, "members[1].id");

    remove(&mut admin, &outer.name, vec![keyed_group_member("inner")])
        .await
        .unwrap();
    assert_eq!(
        check(&mut admin, &outer.name, 4).await,
        (false, false, false)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_groups_filters_on_having_an_external_key() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let with = keyed(1, "With", "k1").master(2).create(&srv).await;
    let without = group(1, "Without").master(2).create(&srv).await;
    let mut admin = srv.groups(1, 1, true);
    let names = |filter: &str| {
        let mut c = admin.clone();
        let filter = filter.to_owned();
        async move {
            let r = c
                .list_groups(pb::ListGroupsRequest {
                    parent: "tenants/1".into(),
                    filter,
                    ..Default::default()
                })
                .await?
                .into_inner();
            Ok::<_, tonic::Status>(r.groups.into_iter().map(|g| g.name).collect::<Vec<_>>())
        }
    };
    assert_eq!(
        names("has_external_key = true").await.unwrap(),
        vec![with.name.clone()]
    );
    assert_eq!(
        names("has_external_key = false").await.unwrap(),
        vec![without.name.clone()]
    );
    assert_eq!(
        names("has_external_key = true AND kind = INTERNAL")
            .await
            .unwrap(),
        vec![with.name.clone()]
    );
    let err = names("has_external_key = yes").await.unwrap_err();
    assert_bad_field(&err, "filter");
    let _ = admin.get_group(get_req(&with.name)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_a_hidden_group_by_key_answers_as_a_missing_key() {
    let Some(srv) = server().await else { return };
    srv.company(1, 3).await;
    srv.company(2, 2).await;
    keyed(1, "Private", "secret").master(2).create(&srv).await;
    let hidden = get_as(&srv, (1, 3), false, &by_key(1, "secret"))
        .await
        .unwrap_err();
    let missing = get_as(&srv, (1, 3), false, &by_key(1, "no-such-key"))
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    assert_eq!(fingerprint(&hidden), fingerprint(&missing));
    let foreign = get_as(&srv, (2, 1), true, &by_key(1, "secret"))
        .await
        .unwrap_err();
    assert_eq!(fingerprint(&foreign), fingerprint(&missing));
    let mut outsider = srv.membership(1, 3, false);
    let err = outsider
        .check_membership(pb::CheckMembershipRequest {
            group: by_key(1, "secret"),
            user: Some(user_ref(1, 2)),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = add(&mut outsider, &by_key(1, "secret"), vec![user_member(3)])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r06_plain_user_cannot_claim_an_external_key_at_creation() {
    let Some(srv) = server().await else { return };
    srv.tenant(1, pb::Plan::Free, pb::GroupCreation::AllMembers)
        .await;
    srv.user(1, 1, true).await;
    srv.user(1, 2, false).await;
    let mut user = srv.groups(1, 2, false);
    let claim = pb::CreateGroupRequest {
        group: Some(pb::Group {
            external_key: "hr-payroll".into(),
            ..group_named("Payroll")
        }),
        ..create_req(1, "", &[2])
    };
    let refused = user.create_group(claim.clone()).await.unwrap_err();
    assert_reason(&refused, Code::PermissionDenied, "NOT_GROUP_MANAGER");
    // Nothing was written: no group, and the key names nothing.
    assert_eq!(srv.group_count(1).await, 0);
    let err = get_as(&srv, (1, 1), true, &by_key(1, "hr-payroll"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // The other fields only admins change are refused alike.
    for change in [
        |g: &mut pb::Group| g.notify_all_members = true,
        |g: &mut pb::Group| g.master_manages_features = true,
    ] {
        let mut req = create_req(1, "Flags", &[2]);
        change(req.group.as_mut().unwrap());
        let err = user.create_group(req).await.unwrap_err();
        assert_eq!(fingerprint(&err), fingerprint(&refused));
    }

    // The same answer as UpdateGroup refusing the key to the group's own master.
    let own = user
        .create_group(create_req(1, "Payroll", &[2]))
        .await
        .unwrap()
        .into_inner();
    assert!(own.external_key.is_empty());
    let set = pb::Group {
        external_key: "hr-payroll".into(),
        ..patch(&own.name)
    };
    let err = try_update(&mut user, set, &["external_key"])
        .await
        .unwrap_err();
    assert_eq!(fingerprint(&err), fingerprint(&refused));
    // An admin sets it, at creation too.
    let mut admin = srv.groups(1, 1, true);
    let created = admin
        .create_group(pb::CreateGroupRequest {
            group: Some(pb::Group {
                external_key: "hr-payroll".into(),
                ..group_named("Payroll (HR)")
            }),
            ..create_req(1, "", &[2])
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.external_key, "hr-payroll");
    assert_eq!(srv.group_count(1).await, 2);
}
