//! Group settings: UpdateGroup with update mask and etag, the R06 permission matrix, the
//! tenant's group limit across plan changes (R03), message-room features (R08), feature data
//! and usage (R09) and the mailing list (R10).

use crate::harness::*;
use group_service::domain::model::{Event, GroupId, TenantId};
use group_service::grpc::pb;
use group_service::grpc::pb::membership_service_client::MembershipServiceClient;
use prost_types::FieldMask;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

// ---- fixtures ----

/// `(tenant, group)` ids of `tenants/{t}/groups/{g}`.
fn ids(name: &str) -> (i64, i64) {
    let parts: Vec<&str> = name.split('/').collect();
    (parts[1].parse().unwrap(), parts[3].parse().unwrap())
}

/// A group that does not exist in `tenant`.
fn missing(tenant: i64) -> String {
    format!("tenants/{tenant}/groups/{}", i64::MAX - 1)
}

/// An UpdateGroup body naming the group and nothing else.
fn patch(name: &str) -> pb::Group {
    pb::Group {
        name: name.to_owned(),
        ..Default::default()
    }
}

fn update(group: pb::Group, paths: &[&str]) -> pb::UpdateGroupRequest {
    pb::UpdateGroupRequest {
        group: Some(group),
        update_mask: Some(FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }),
    }
}

fn features(message: bool, note: bool, event: bool, task: bool, folder: bool) -> pb::Features {
    pb::Features {
        message,
        note,
        event,
        task,
        folder,
    }
}

fn mailing_list(address: &str) -> pb::MailingList {
    pb::MailingList {
        address: address.to_owned(),
        ..Default::default()
    }
}

fn user_ref(tenant: i64, user: i64) -> pb::UserRef {
    pb::UserRef {
        tenant_id: tenant,
        user_id: user,
    }
}

fn group_member(name: &str) -> pb::MemberRef {
    pb::MemberRef {
        r#type: pb::MemberType::Group as i32,
        id: ids(name).1,
        tenant_id: 0,
    }
}

/// Creates `group` in `tenant` as its admin (user 1).
async fn create(
    srv: &TestServer,
    tenant: i64,
    group: pb::Group,
    masters: &[i64],
    members: &[pb::MemberRef],
) -> pb::Group {
    let req = pb::CreateGroupRequest {
        group: Some(group),
        members: members.to_vec(),
        ..create_req(tenant, "", masters)
    };
    srv.groups(tenant, 1, true)
        .create_group(req)
        .await
        .unwrap()
        .into_inner()
}

/// The group as the owning tenant's admin reads it.
async fn get(srv: &TestServer, name: &str) -> pb::Group {
    srv.groups(ids(name).0, 1, true)
        .get_group(get_req(name))
        .await
        .unwrap()
        .into_inner()
}

/// Changes the tenant through DirectoryService, as the directory system does.
async fn set_tenant(srv: &TestServer, tenant: i64, change: impl FnOnce(&mut pb::Tenant)) {
    let mut t = srv.get_tenant(tenant).await;
    change(&mut t);
    srv.directory(tenant)
        .upsert_tenant(pb::UpsertTenantRequest { tenant: Some(t) })
        .await
        .unwrap();
}

async fn report(srv: &TestServer, name: &str, feature: &str, bytes: i64) -> pb::Group {
    srv.groups_service(ids(name).0)
        .report_feature_usage(pb::ReportFeatureUsageRequest {
            name: name.to_owned(),
            feature: feature.to_owned(),
            bytes,
        })
        .await
        .unwrap()
        .into_inner()
        .group
        .unwrap()
}

fn delete_data(name: &str, features: &[pb::DataFeature]) -> pb::DeleteFeatureDataRequest {
    pb::DeleteFeatureDataRequest {
        name: name.to_owned(),
        features: features.iter().map(|f| *f as i32).collect(),
    }
}

/// The outbox events of a group, oldest first.
async fn events_of(srv: &TestServer, name: &str) -> Vec<Event> {
    let (t, g) = ids(name);
    srv.store
        .read(move |tx| Box::pin(async move { tx.list_events(TenantId(t), GroupId(g)).await }))
        .await
        .unwrap()
}

/// A bearer token for the MembershipService client below (kept here, not in the harness).
#[derive(Clone)]
struct Token(String);

impl Interceptor for Token {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let value: MetadataValue<_> = format!("Bearer {}", self.0).parse().unwrap();
        req.metadata_mut().insert("authorization", value);
        Ok(req)
    }
}

fn membership_as(
    srv: &TestServer,
    tenant: i64,
    user: i64,
    admin: bool,
) -> MembershipServiceClient<InterceptedService<Channel, Token>> {
    let token = Token(srv.token(tenant, &user.to_string(), admin, false));
    MembershipServiceClient::with_interceptor(srv.channel.clone(), token)
}

// ---- UpdateGroup: mask (AIP-134) and etag (AIP-154) ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r06_update_changes_only_the_masked_fields() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 3).await;
    let g = create(
        &srv,
        1,
        pb::Group {
            description: "before".into(),
            photo_uri: "https://cdn.example.com/before.png".into(),
            features: Some(features(true, true, false, false, false)),
            ..group_named("Masked")
        },
        &[2],
        &[],
    )
    .await;
    let mut admin = srv.groups(1, 1, true);
    // Every field carries a new value; only the description is named.
    let body = pb::Group {
        display_name: "Other name".into(),
        description: "after".into(),
        photo_uri: "https://cdn.example.com/after.png".into(),
        visibility: pb::Visibility::Public as i32,
        features: Some(features(false, false, false, false, false)),
        notify_all_members: true,
        master_manages_features: true,
        mailing_list: Some(mailing_list("masked")),
        ..patch(&g.name)
    };
    let got = admin
        .update_group(update(body, &["description"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.description, "after");
    let expected = pb::Group {
        description: "after".into(),
        etag: got.etag.clone(),
        update_time: got.update_time,
        ..g.clone()
    };
    assert_eq!(got, expected);
    assert_ne!(got.etag, g.etag);
    assert_eq!(get(&srv, &g.name).await, got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r06_unmasked_empty_name_is_not_a_change() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let g = create(&srv, 1, group_named("Keeps its name"), &[2], &[]).await;
    let got = srv
        .groups(1, 1, true)
        .update_group(update(
            pb::Group {
                photo_uri: "https://cdn.example.com/p.png".into(),
                ..patch(&g.name)
            },
            &["photo_uri"],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.display_name, "Keeps its name");
    assert_eq!(got.photo_uri, "https://cdn.example.com/p.png");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r06_star_mask_replaces_every_updatable_field() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let g = create(
        &srv,
        1,
        pb::Group {
            description: "old description".into(),
            photo_uri: "https://cdn.example.com/old.png".into(),
            visibility: pb::Visibility::Public as i32,
            features: Some(features(true, true, true, true, true)),
            notify_all_members: true,
            master_manages_features: true,
            external_key: "ext-1".into(),
            mailing_list: Some(mailing_list("starred")),
            ..group_named("Starred")
        },
        &[2],
        &[],
    )
    .await;
    let got = srv
        .groups(1, 1, true)
        .update_group(update(
            pb::Group {
                display_name: "Replaced".into(),
                ..patch(&g.name)
            },
            &["*"],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.display_name, "Replaced");
    assert_eq!(got.description, "");
    assert_eq!(got.photo_uri, "");
    assert_eq!(got.visibility, pb::Visibility::Private as i32);
    assert_eq!(got.features, Some(pb::Features::default()));
    assert!(!got.notify_all_members);
    assert!(!got.master_manages_features);
    assert_eq!(got.mailing_list, None);
    // Not updatable: kept.
    assert_eq!(got.external_key, "ext-1");
    assert_eq!(got.kind, g.kind);
    assert_eq!(got.create_time, g.create_time);
    assert_eq!(get(&srv, &g.name).await, got);
    // The list's address is free again.
    create(
        &srv,
        1,
        pb::Group {
            mailing_list: Some(mailing_list("starred")),
            ..group_named("Heir")
        },
        &[2],
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_unknown_mask_path_is_invalid_and_changes_nothing() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let g = create(&srv, 1, group_named("Strict"), &[2], &[]).await;
    let mut admin = srv.groups(1, 1, true);
    for paths in [
        &["name"][..],
        &["etag"],
        &["kind"],
        &["external_key"],
        &["storage_used_bytes"],
        &["create_time"],
        &["features.photos"],
        &["mailing_list.address"],
        &["displayName"],
        &["DISPLAY_NAME"],
        &[""],
        &["description", "no_such_field"],
        &["*", "bogus"],
    ] {
        let body = pb::Group {
            display_name: "Changed".into(),
            description: "changed".into(),
            ..patch(&g.name)
        };
        let err = admin.update_group(update(body, paths)).await.unwrap_err();
        assert_bad_field(&err, "update_mask");
    }
    assert_eq!(get(&srv, &g.name).await, g);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_empty_mask_is_invalid() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let g = create(&srv, 1, group_named("Unmasked"), &[2], &[]).await;
    let mut admin = srv.groups(1, 1, true);
    let body = pb::Group {
        description: "changed".into(),
        ..patch(&g.name)
    };
    let err = admin
        .update_group(update(body.clone(), &[]))
        .await
        .unwrap_err();
    assert_bad_field(&err, "update_mask");
    let err = admin
        .update_group(pb::UpdateGroupRequest {
            group: Some(body),
            update_mask: None,
        })
        .await
        .unwrap_err();
    assert_bad_field(&err, "update_mask");
    assert_eq!(get(&srv, &g.name).await, g);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r06_stale_etag_is_aborted_and_the_etag_changes_on_every_change() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 3).await;
    let g = create(&srv, 1, group_named("Tagged"), &[2], &[]).await;
    let mut admin = srv.groups(1, 1, true);
    let mut seen = vec![g.etag.clone()];
    let mut current = g.clone();
    for (i, paths) in [
        &["description"][..],
        &["display_name"],
        &["photo_uri"],
        &["visibility"],
        &["features"],
        &["mailing_list"],
        &["notify_all_members"],
        &["master_manages_features"],
    ]
    .iter()
    .enumerate()
    {
        let body = pb::Group {
            etag: current.etag.clone(),
            display_name: format!("Tagged {i}"),
            description: format!("version {i}"),
            photo_uri: format!("https://cdn.example.com/{i}.png"),
            visibility: pb::Visibility::Public as i32,
            features: Some(features(true, false, true, false, false)),
            mailing_list: Some(mailing_list("tagged")),
            notify_all_members: true,
            master_manages_features: true,
            ..patch(&g.name)
        };
        let next = admin
            .update_group(update(body, paths))
            .await
            .unwrap_or_else(|e| panic!("{paths:?}: {e:?}"))
            .into_inner();
        assert!(
            !seen.contains(&next.etag),
            "{paths:?} left the etag at {}",
            next.etag
        );
        seen.push(next.etag.clone());
        current = next;
    }
    // Membership changes change the group too.
    membership_as(&srv, 1, 1, true)
        .add_members(pb::AddMembersRequest {
            group: g.name.clone(),
            members: vec![user_member(3)],
            request_id: String::new(),
        })
        .await
        .unwrap();
    let after_add = get(&srv, &g.name).await;
    assert!(
        !seen.contains(&after_add.etag),
        "adding a member kept the etag"
    );
    // Every etag seen before is stale now.
    for stale in &seen {
        let err = admin
            .update_group(update(
                pb::Group {
                    etag: stale.clone(),
                    description: "lost update".into(),
                    ..patch(&g.name)
                },
                &["description"],
            ))
            .await
            .unwrap_err();
        assert_reason(&err, Code::Aborted, "ETAG_MISMATCH");
    }
    assert_eq!(get(&srv, &g.name).await, after_add);
    // The current one applies; an empty one means "no check".
    admin
        .update_group(update(
            pb::Group {
                etag: after_add.etag.clone(),
                description: "checked".into(),
                ..patch(&g.name)
            },
            &["description"],
        ))
        .await
        .unwrap();
    let got = admin
        .update_group(update(
            pb::Group {
                description: "unchecked".into(),
                ..patch(&g.name)
            },
            &["description"],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.description, "unchecked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r06_concurrent_updates_with_one_etag_let_exactly_one_through() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let g = create(&srv, 1, group_named("Contended"), &[2], &[]).await;
    let admin = srv.groups(1, 1, true);
    let calls: Vec<_> = (0..16)
        .map(|i| {
            let mut client = admin.clone();
            let req = update(
                pb::Group {
                    etag: g.etag.clone(),
                    description: format!("writer {i}"),
                    ..patch(&g.name)
                },
                &["description"],
            );
            tokio::spawn(async move { client.update_group(req).await.map(|r| r.into_inner()) })
        })
        .collect();
    let mut winners = Vec::new();
    for call in calls {
        match call.await.unwrap() {
            Ok(g) => winners.push(g),
            Err(err) => assert_reason(&err, Code::Aborted, "ETAG_MISMATCH"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(get(&srv, &g.name).await, winners[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r12_delete_with_an_etag_from_before_an_update_is_aborted() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let g = create(&srv, 1, group_named("Short-lived"), &[2], &[]).await;
    let mut admin = srv.groups(1, 1, true);
    let updated = admin
        .update_group(update(
            pb::Group {
                description: "edited".into(),
                ..patch(&g.name)
            },
            &["description"],
        ))
        .await
        .unwrap()
        .into_inner();
    let err = admin
        .delete_group(delete_req(&g.name, &g.etag))
        .await
        .unwrap_err();
    assert_reason(&err, Code::Aborted, "ETAG_MISMATCH");
    assert_eq!(get(&srv, &g.name).await, updated);
    admin
        .delete_group(delete_req(&g.name, &updated.etag))
        .await
        .unwrap();
    assert_eq!(srv.group_count(1).await, 0);
}

// ---- R01/R02 on update ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r01_rename_validates_the_name() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let g = create(&srv, 1, group_named("Valid"), &[2], &[]).await;
    let mut admin = srv.groups(1, 1, true);
    for name in [
        String::new(),
        "   ".into(),
        "a".repeat(101),
        "가".repeat(101),
        "bell\u{7}".into(),
    ] {
        let err = admin
            .update_group(update(
                pb::Group {
                    display_name: name.clone(),
                    ..patch(&g.name)
                },
                &["display_name"],
            ))
            .await
            .unwrap_err();
        assert_bad_field(&err, "group.display_name");
    }
    assert_eq!(get(&srv, &g.name).await, g);
    for name in ["가".repeat(100), "R&D / 100% _under_ 'quoted'".into()] {
        let got = admin
            .update_group(update(
                pb::Group {
                    display_name: name.clone(),
                    ..patch(&g.name)
                },
                &["display_name"],
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.display_name, name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r01_rename_to_a_taken_name_is_group_name_taken() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    srv.company(2, 2).await;
    create(&srv, 1, group_named("Design"), &[2], &[]).await;
    let g = create(&srv, 1, group_named("Équipe"), &[2], &[]).await;
    let mut admin = srv.groups(1, 1, true);
    for taken in ["Design", "DESIGN", "design"] {
        let err = admin
            .update_group(update(
                pb::Group {
                    display_name: taken.into(),
                    ..patch(&g.name)
                },
                &["display_name"],
            ))
            .await
            .unwrap_err();
        assert_reason(&err, Code::AlreadyExists, "GROUP_NAME_TAKEN");
    }
    assert_eq!(get(&srv, &g.name).await, g);
    // Its own name in another case is no conflict.
    let got = admin
        .update_group(update(
            pb::Group {
                display_name: "ÉQUIPE".into(),
                ..patch(&g.name)
            },
            &["display_name"],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.display_name, "ÉQUIPE");
    // The old name is free again; a name used in another tenant is no conflict.
    create(&srv, 1, group_named("équipe 2"), &[2], &[]).await;
    let other = create(&srv, 2, group_named("Other"), &[2], &[]).await;
    srv.groups(2, 1, true)
        .update_group(update(
            pb::Group {
                display_name: "design".into(),
                ..patch(&other.name)
            },
            &["display_name"],
        ))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r01_concurrent_renames_to_one_name_leave_one_winner() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let mut groups = Vec::new();
    for i in 0..12 {
        groups.push(create(&srv, 1, group_named(&format!("Runner {i}")), &[2], &[]).await);
    }
    let admin = srv.groups(1, 1, true);
    let calls: Vec<_> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let mut client = admin.clone();
            // One name in several cases.
            let name = if i % 2 == 0 { "Winner" } else { "WINNER" };
            let req = update(
                pb::Group {
                    display_name: name.into(),
                    ..patch(&g.name)
                },
                &["display_name"],
            );
            tokio::spawn(async move { client.update_group(req).await })
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
    let mut winners = 0;
    for g in &groups {
        if get(&srv, &g.name).await.display_name.to_lowercase() == "winner" {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r02_update_description_and_photo_are_validated() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let g = create(&srv, 1, group_named("Described"), &[2], &[]).await;
    let mut admin = srv.groups(1, 1, true);
    let err = admin
        .update_group(update(
            pb::Group {
                description: "설".repeat(301),
                ..patch(&g.name)
            },
            &["description"],
        ))
        .await
        .unwrap_err();
    assert_bad_field(&err, "group.description");
    assert_eq!(get(&srv, &g.name).await, g);
    let got = admin
        .update_group(update(
            pb::Group {
                description: "설".repeat(300),
                ..patch(&g.name)
            },
            &["description"],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.description.chars().count(), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_update_failing_on_one_field_changes_no_field() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    create(
        &srv,
        1,
        pb::Group {
            mailing_list: Some(mailing_list("taken")),
            ..group_named("Holder")
        },
        &[2],
        &[],
    )
    .await;
    let g = create(&srv, 1, group_named("All or nothing"), &[2], &[]).await;
    let err = srv
        .groups(1, 1, true)
        .update_group(update(
            pb::Group {
                display_name: "Renamed".into(),
                description: "described".into(),
                mailing_list: Some(mailing_list("taken")),
                ..patch(&g.name)
            },
            &["display_name", "description", "mailing_list"],
        ))
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "ADDRESS_IN_USE");
    assert_eq!(get(&srv, &g.name).await, g);
}

// ---- R06: who may change what ----

#[derive(Clone, Copy, Debug)]
enum Who {
    Admin,
    Master,
    Member,
    NonMember,
    OtherTenantUser,
    OtherTenantAdmin,
}

impl Who {
    const ALL: [Who; 6] = [
        Who::Admin,
        Who::Master,
        Who::Member,
        Who::NonMember,
        Who::OtherTenantUser,
        Who::OtherTenantAdmin,
    ];

    /// Tenant 1: admin 1, master 2, member 3, user 4 in no group; tenant 2: admin 1, user 2.
    fn client(self, srv: &TestServer) -> Groups {
        match self {
            Who::Admin => srv.groups(1, 1, true),
            Who::Master => srv.groups(1, 2, false),
            Who::Member => srv.groups(1, 3, false),
            Who::NonMember => srv.groups(1, 4, false),
            Who::OtherTenantUser => srv.groups(2, 2, false),
            Who::OtherTenantAdmin => srv.groups(2, 1, true),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FieldClass {
    /// display_name, description, photo_uri, visibility.
    Basic,
    /// features (and features.*), mailing_list.
    RoomFeature,
    /// notify_all_members, master_manages_features.
    AdminOnly,
}

const MATRIX_FIELDS: [(&str, FieldClass); 13] = [
    ("display_name", FieldClass::Basic),
    ("description", FieldClass::Basic),
    ("photo_uri", FieldClass::Basic),
    ("visibility", FieldClass::Basic),
    ("features", FieldClass::RoomFeature),
    ("features.message", FieldClass::RoomFeature),
    ("features.note", FieldClass::RoomFeature),
    ("features.event", FieldClass::RoomFeature),
    ("features.task", FieldClass::RoomFeature),
    ("features.folder", FieldClass::RoomFeature),
    ("mailing_list", FieldClass::RoomFeature),
    ("notify_all_members", FieldClass::AdminOnly),
    ("master_manages_features", FieldClass::AdminOnly),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Changed,
    Denied,
    Hidden,
}

/// R06 and R07 as the issue states them.
fn expected(who: Who, class: FieldClass, tenant_lets_masters: bool, group_grants: bool) -> Outcome {
    match who {
        Who::Admin => Outcome::Changed,
        Who::Master => match class {
            FieldClass::Basic if tenant_lets_masters => Outcome::Changed,
            FieldClass::RoomFeature if tenant_lets_masters && group_grants => Outcome::Changed,
            _ => Outcome::Denied,
        },
        Who::Member => Outcome::Denied,
        Who::NonMember | Who::OtherTenantUser | Who::OtherTenantAdmin => Outcome::Hidden,
    }
}

/// The body that changes `field` of a matrix group, and how the field reads afterwards.
/// Matrix groups are created private, with message and event on.
fn matrix_change(name: &str, field: &str, n: usize, group_grants: bool) -> (pb::Group, String) {
    let mut g = patch(name);
    let after = match field {
        "display_name" => {
            g.display_name = format!("Renamed {n}");
            g.display_name.clone()
        }
        "description" => {
            g.description = format!("Described {n}");
            g.description.clone()
        }
        "photo_uri" => {
            g.photo_uri = format!("https://cdn.example.com/{n}.png");
            g.photo_uri.clone()
        }
        "visibility" => {
            g.visibility = pb::Visibility::Public as i32;
            format!("{}", g.visibility)
        }
        "features" => {
            g.features = Some(features(true, true, true, true, true));
            format!("{:?}", g.features)
        }
        "features.message" => {
            g.features = Some(features(false, false, false, false, false));
            format!("{:?}", g.features)
        }
        "features.note" => {
            g.features = Some(features(true, true, false, false, false));
            format!("{:?}", Some(features(true, true, true, false, false)))
        }
        "features.event" => {
            g.features = Some(features(true, false, false, false, false));
            format!("{:?}", g.features)
        }
        "features.task" => {
            g.features = Some(features(true, false, false, true, false));
            format!("{:?}", Some(features(true, false, true, true, false)))
        }
        "features.folder" => {
            g.features = Some(features(true, false, false, false, true));
            format!("{:?}", Some(features(true, false, true, false, true)))
        }
        "mailing_list" => {
            g.mailing_list = Some(mailing_list(&format!("matrix-{n}")));
            format!("{:?}", g.mailing_list)
        }
        "notify_all_members" => {
            g.notify_all_members = true;
            "true".into()
        }
        "master_manages_features" => {
            g.master_manages_features = !group_grants;
            format!("{}", !group_grants)
        }
        other => panic!("no matrix change for {other}"),
    };
    (g, after)
}

/// How `field` of a group reads, in the form `matrix_change` describes it.
fn matrix_value(g: &pb::Group, field: &str) -> String {
    match field {
        "display_name" => g.display_name.clone(),
        "description" => g.description.clone(),
        "photo_uri" => g.photo_uri.clone(),
        "visibility" => format!("{}", g.visibility),
        "mailing_list" => format!("{:?}", g.mailing_list),
        "notify_all_members" => format!("{}", g.notify_all_members),
        "master_manages_features" => format!("{}", g.master_manages_features),
        _ => format!("{:?}", g.features),
    }
}

/// Every cell: caller x field x tenant `masters_may_manage_settings` x group
/// `master_manages_features`, each on a fresh group. A denied or hidden update must leave the
/// group exactly as it was (same etag).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r06_permission_matrix_cell_by_cell() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 4).await;
    srv.company(2, 2).await;
    let mut failures = Vec::new();
    let mut cells = 0;
    for tenant_lets_masters in [true, false] {
        set_tenant(&srv, 1, |t| {
            t.masters_may_manage_settings = tenant_lets_masters
        })
        .await;
        for group_grants in [true, false] {
            for who in Who::ALL {
                for (field, class) in MATRIX_FIELDS {
                    cells += 1;
                    let before = create(
                        &srv,
                        1,
                        pb::Group {
                            features: Some(features(true, false, true, false, false)),
                            master_manages_features: group_grants,
                            ..group_named(&format!("Matrix {cells}"))
                        },
                        &[2],
                        &[user_member(3)],
                    )
                    .await;
                    let want = expected(who, class, tenant_lets_masters, group_grants);
                    let cell = format!(
                        "{who:?} {field} (tenant setting {tenant_lets_masters}, \
                         group grant {group_grants}): expected {want:?}"
                    );
                    let (body, after) = matrix_change(&before.name, field, cells, group_grants);
                    let res = who
                        .client(&srv)
                        .update_group(update(body, &[field]))
                        .await
                        .map(|r| r.into_inner());
                    let now = get(&srv, &before.name).await;
                    match (want, res) {
                        (Outcome::Changed, Ok(got)) => {
                            if matrix_value(&got, field) != after {
                                failures.push(format!("{cell}: {field} reads {got:?}"));
                            } else if got.etag == before.etag {
                                failures.push(format!("{cell}: etag unchanged"));
                            } else if now != got {
                                failures.push(format!("{cell}: GetGroup {now:?} != {got:?}"));
                            }
                        }
                        (Outcome::Denied, Err(err))
                            if err.code() == Code::PermissionDenied
                                && err
                                    .get_details_error_info()
                                    .is_some_and(|i| i.reason == "NOT_GROUP_MANAGER") =>
                        {
                            if now != before {
                                failures.push(format!("{cell}: denied but changed to {now:?}"));
                            }
                        }
                        (Outcome::Hidden, Err(err)) => {
                            // Exactly as a missing group would answer.
                            let (body, _) = matrix_change(&missing(1), field, cells, group_grants);
                            let absent = who
                                .client(&srv)
                                .update_group(update(body, &[field]))
                                .await
                                .unwrap_err();
                            if err.code() != Code::NotFound
                                || fingerprint(&err) != fingerprint(&absent)
                            {
                                failures.push(format!("{cell}: got {err:?}, missing {absent:?}"));
                            } else if now != before {
                                failures.push(format!("{cell}: hidden but changed to {now:?}"));
                            }
                        }
                        (_, Ok(got)) => failures.push(format!("{cell}: changed to {got:?}")),
                        (_, Err(err)) => failures.push(format!("{cell}: {err:?}")),
                    }
                }
            }
        }
    }
    assert_eq!(cells, 2 * 2 * Who::ALL.len() * MATRIX_FIELDS.len());
    assert!(
        failures.is_empty(),
        "{} of {cells} cells failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r06_master_cannot_rename_when_tenant_forbids() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    set_tenant(&srv, 1, |t| t.masters_may_manage_settings = false).await;
    let g = create(&srv, 1, group_named("Fixed name"), &[2], &[]).await;
    let err = srv
        .groups(1, 2, false)
        .update_group(update(
            pb::Group {
                display_name: "Master's name".into(),
                ..patch(&g.name)
            },
            &["display_name"],
        ))
        .await
        .unwrap_err();
    assert_reason(&err, Code::PermissionDenied, "NOT_GROUP_MANAGER");
    assert_eq!(get(&srv, &g.name).await, g);
    // The admin turns the setting on: the same request now succeeds.
    set_tenant(&srv, 1, |t| t.masters_may_manage_settings = true).await;
    let got = srv
        .groups(1, 2, false)
        .update_group(update(
            pb::Group {
                display_name: "Master's name".into(),
                ..patch(&g.name)
            },
            &["display_name"],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.display_name, "Master's name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r06_master_mask_mixing_allowed_and_admin_only_fields_changes_nothing() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let g = create(
        &srv,
        1,
        pb::Group {
            master_manages_features: true,
            ..group_named("Mixed")
        },
        &[2],
        &[],
    )
    .await;
    let mut master = srv.groups(1, 2, false);
    for paths in [
        &["display_name", "notify_all_members"][..],
        &["features", "master_manages_features"],
        &["*"],
    ] {
        let err = master
            .update_group(update(
                pb::Group {
                    display_name: "Mixed up".into(),
                    features: Some(features(true, true, false, false, false)),
                    notify_all_members: true,
                    master_manages_features: true,
                    ..patch(&g.name)
                },
                paths,
            ))
            .await
            .unwrap_err();
        assert_reason(&err, Code::PermissionDenied, "NOT_GROUP_MANAGER");
    }
    assert_eq!(get(&srv, &g.name).await, g);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r06_non_member_of_a_public_group_sees_it_but_cannot_change_it() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 3).await;
    let g = create(
        &srv,
        1,
        pb::Group {
            visibility: pb::Visibility::Public as i32,
            ..group_named("Open")
        },
        &[2],
        &[],
    )
    .await;
    let mut outsider = srv.groups(1, 3, false);
    assert_eq!(
        outsider
            .get_group(get_req(&g.name))
            .await
            .unwrap()
            .into_inner(),
        g
    );
    for (field, _) in MATRIX_FIELDS {
        let (body, _) = matrix_change(&g.name, field, 0, false);
        let err = outsider
            .update_group(update(body, &[field]))
            .await
            .unwrap_err();
        assert_reason(&err, Code::PermissionDenied, "NOT_GROUP_MANAGER");
    }
    assert_eq!(get(&srv, &g.name).await, g);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r06_member_through_a_team_or_nested_group_cannot_change_anything() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 4).await;
    srv.team(1, 10, &[3]).await;
    let inner = create(&srv, 1, group_named("Inner"), &[4], &[]).await;
    let g = create(
        &srv,
        1,
        pb::Group {
            master_manages_features: true,
            ..group_named("Outer")
        },
        &[2],
        &[team_member(10), group_member(&inner.name)],
    )
    .await;
    // User 3 through the team, user 4 (a master of Inner, not of Outer) through nesting.
    for user in [3, 4] {
        let mut client = srv.groups(1, user, false);
        for (field, _) in MATRIX_FIELDS {
            let (body, _) = matrix_change(&g.name, field, 0, true);
            let err = client
                .update_group(update(body, &[field]))
                .await
                .unwrap_err();
            assert_reason(&err, Code::PermissionDenied, "NOT_GROUP_MANAGER");
        }
    }
    assert_eq!(get(&srv, &g.name).await, g);
}

// ---- R03: the tenant's group limit across plan changes ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r03_free_limit_holds_for_1500_concurrent_creates_and_a_downgrade_keeps_every_group() {
    use futures_util::stream::{self, StreamExt};

    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 1).await;
    let admin = srv.groups(1, 1, true);
    let started = std::time::Instant::now();
    let results: Vec<Result<pb::Group, Status>> = stream::iter(0..1_500)
        .map(|i| {
            let mut client = admin.clone();
            async move {
                client
                    .create_group(create_req(1, &format!("q{i}"), &[1]))
                    .await
                    .map(|r| r.into_inner())
            }
        })
        .buffer_unordered(48)
        .collect()
        .await;
    println!(
        "r03: 1,500 creates on {} in {:?}",
        backend(),
        started.elapsed()
    );
    let (mut ok, mut exhausted) = (0, 0);
    for r in &results {
        match r {
            Ok(_) => ok += 1,
            Err(err) => {
                assert_reason(err, Code::ResourceExhausted, "TENANT_GROUP_LIMIT");
                let quota = err
                    .get_details_quota_failure()
                    .unwrap_or_else(|| panic!("no QuotaFailure in {err:?}"));
                assert_eq!(quota.violations.len(), 1, "{quota:?}");
                assert_eq!(quota.violations[0].subject, "tenants/1");
                exhausted += 1;
            }
        }
    }
    assert_eq!((ok, exhausted), (1_000, 500));
    assert_eq!(srv.group_count(1).await, 1_000);

    // PAID raises the limit at once.
    set_tenant(&srv, 1, |t| t.plan = pb::Plan::Paid as i32).await;
    let mut admin = admin;
    let extra = admin
        .create_group(create_req(1, "after upgrade", &[1]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(srv.group_count(1).await, 1_001);

    // Back to FREE: no group is deleted, new ones are blocked while over the limit.
    set_tenant(&srv, 1, |t| t.plan = pb::Plan::Free as i32).await;
    let tenant = srv.get_tenant(1).await;
    assert_eq!(tenant.plan, pb::Plan::Free as i32);
    assert_eq!(tenant.group_count, 1_001);
    let mut listed = std::collections::BTreeSet::new();
    let mut token = String::new();
    loop {
        let page = admin
            .list_groups(pb::ListGroupsRequest {
                parent: "tenants/1".into(),
                page_size: 100,
                page_token: token,
                filter: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        for g in page.groups {
            assert!(listed.insert(g.name.clone()), "{} listed twice", g.name);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(listed.len(), 1_001);
    assert!(listed.contains(&extra.name));
    let err = admin
        .create_group(create_req(1, "while over", &[1]))
        .await
        .unwrap_err();
    assert_reason(&err, Code::ResourceExhausted, "TENANT_GROUP_LIMIT");
    // One deletion brings it to the limit, still full; a second makes room for one.
    let mut names = listed.into_iter();
    admin
        .delete_group(delete_req(&names.next().unwrap(), ""))
        .await
        .unwrap();
    assert_eq!(srv.group_count(1).await, 1_000);
    let err = admin
        .create_group(create_req(1, "at the limit", &[1]))
        .await
        .unwrap_err();
    assert_reason(&err, Code::ResourceExhausted, "TENANT_GROUP_LIMIT");
    admin
        .delete_group(delete_req(&names.next().unwrap(), ""))
        .await
        .unwrap();
    admin
        .create_group(create_req(1, "under again", &[1]))
        .await
        .unwrap();
    assert_eq!(srv.group_count(1).await, 1_000);
}

// ---- R08: message-room features ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r08_feature_without_message_at_create_is_message_required() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let mut admin = srv.groups(1, 1, true);
    for (i, f) in [
        features(false, true, false, false, false),
        features(false, false, true, false, false),
        features(false, false, false, true, false),
        features(false, false, false, false, true),
        features(false, true, true, true, true),
    ]
    .into_iter()
    .enumerate()
    {
        let req = pb::CreateGroupRequest {
            group: Some(pb::Group {
                features: Some(f),
                ..group_named(&format!("No message {i}"))
            }),
            ..create_req(1, "", &[2])
        };
        let err = admin.create_group(req).await.unwrap_err();
        assert_reason(&err, Code::FailedPrecondition, "MESSAGE_REQUIRED");
    }
    assert_eq!(srv.group_count(1).await, 0);
    // With message, every combination is fine.
    let g = create(
        &srv,
        1,
        pb::Group {
            features: Some(features(true, true, true, true, true)),
            ..group_named("Everything")
        },
        &[2],
        &[],
    )
    .await;
    assert_eq!(g.features, Some(features(true, true, true, true, true)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r08_enabling_a_feature_without_message_at_update_is_message_required() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let g = create(&srv, 1, group_named("Silent"), &[2], &[]).await;
    assert_eq!(g.features, Some(pb::Features::default()));
    let mut admin = srv.groups(1, 1, true);
    for (path, f) in [
        ("features.note", features(false, true, false, false, false)),
        ("features.event", features(false, false, true, false, false)),
        ("features.task", features(false, false, false, true, false)),
        (
            "features.folder",
            features(false, false, false, false, true),
        ),
        ("features", features(false, true, false, false, false)),
        ("features", features(false, false, false, false, true)),
    ] {
        let err = admin
            .update_group(update(
                pb::Group {
                    features: Some(f),
                    ..patch(&g.name)
                },
                &[path],
            ))
            .await
            .unwrap_err();
        assert_reason(&err, Code::FailedPrecondition, "MESSAGE_REQUIRED");
    }
    assert_eq!(get(&srv, &g.name).await, g);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r08_enabling_one_feature_by_its_path_keeps_message_on() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let g = create(
        &srv,
        1,
        pb::Group {
            features: Some(features(true, false, false, false, false)),
            ..group_named("Chatty")
        },
        &[2],
        &[],
    )
    .await;
    let mut admin = srv.groups(1, 1, true);
    // The body carries only the named sub-field, as a client following AIP-134 sends it:
    // `features.message` is false in it but not in the mask, so it must not matter.
    let got = admin
        .update_group(update(
            pb::Group {
                features: Some(features(false, true, false, false, false)),
                ..patch(&g.name)
            },
            &["features.note"],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        got.features,
        Some(features(true, true, false, false, false))
    );
    let got = admin
        .update_group(update(
            pb::Group {
                features: Some(features(false, false, true, true, false)),
                ..patch(&g.name)
            },
            &["features.event", "features.task"],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.features, Some(features(true, true, true, true, false)));
    assert_eq!(get(&srv, &g.name).await, got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r08_turning_message_off_turns_the_others_off() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let g = create(
        &srv,
        1,
        pb::Group {
            features: Some(features(true, true, true, true, true)),
            ..group_named("Full room")
        },
        &[2],
        &[],
    )
    .await;
    let mut admin = srv.groups(1, 1, true);
    // The body says nothing about the others: turning message off is enough.
    let got = admin
        .update_group(update(
            pb::Group {
                features: Some(features(false, false, false, false, false)),
                ..patch(&g.name)
            },
            &["features.message"],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.features, Some(pb::Features::default()));
    assert_eq!(get(&srv, &g.name).await, got);
    // Turning message back on turns only message on.
    let got = admin
        .update_group(update(
            pb::Group {
                features: Some(features(true, false, false, false, false)),
                ..patch(&g.name)
            },
            &["features.message"],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        got.features,
        Some(features(true, false, false, false, false))
    );
}

// ---- R09: feature data and usage ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r09_report_feature_usage_needs_a_service_caller_and_valid_input() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    srv.company(2, 1).await;
    let g = create(&srv, 1, group_named("Measured"), &[2], &[]).await;
    let req = |feature: &str, bytes: i64| pb::ReportFeatureUsageRequest {
        name: g.name.clone(),
        feature: feature.into(),
        bytes,
    };
    for mut user in [srv.groups(1, 1, true), srv.groups(1, 2, false)] {
        let err = user
            .report_feature_usage(req("note", 10))
            .await
            .unwrap_err();
        assert_reason(&err, Code::PermissionDenied, "SERVICE_CALLER_REQUIRED");
    }
    let err = srv
        .groups_service(2)
        .report_feature_usage(req("note", 10))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let mut service = srv.groups_service(1);
    for bytes in [-1, i64::MIN] {
        let err = service
            .report_feature_usage(req("note", bytes))
            .await
            .unwrap_err();
        assert_bad_field(&err, "bytes");
    }
    for feature in ["", "photos", "mailing_list", "notes"] {
        let err = service
            .report_feature_usage(req(feature, 10))
            .await
            .unwrap_err();
        assert_bad_field(&err, "feature");
    }
    let err = service
        .report_feature_usage(pb::ReportFeatureUsageRequest {
            name: missing(1),
            ..req("note", 10)
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let got = get(&srv, &g.name).await;
    assert_eq!(got.storage_used_bytes, 0);
    assert_eq!(srv.get_tenant(1).await.storage_used_bytes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r09_group_and_tenant_storage_follow_the_reports() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    srv.company(2, 2).await;
    let a = create(&srv, 1, group_named("A"), &[2], &[]).await;
    let b = create(&srv, 1, group_named("B"), &[2], &[]).await;
    let elsewhere = create(&srv, 2, group_named("Elsewhere"), &[2], &[]).await;
    for feature in ["message", "note", "event", "task", "folder"] {
        report(&srv, &a.name, feature, 100).await;
    }
    assert_eq!(
        report(&srv, &b.name, "folder", 7_000)
            .await
            .storage_used_bytes,
        7_000
    );
    report(&srv, &elsewhere.name, "folder", 123).await;
    assert_eq!(get(&srv, &a.name).await.storage_used_bytes, 500);
    assert_eq!(srv.get_tenant(1).await.storage_used_bytes, 7_500);
    // A report is the size now, not an increment.
    assert_eq!(
        report(&srv, &a.name, "note", 30).await.storage_used_bytes,
        430
    );
    assert_eq!(
        report(&srv, &a.name, "note", 30).await.storage_used_bytes,
        430
    );
    assert_eq!(
        report(&srv, &b.name, "folder", 0).await.storage_used_bytes,
        0
    );
    assert_eq!(get(&srv, &a.name).await.storage_used_bytes, 430);
    assert_eq!(get(&srv, &b.name).await.storage_used_bytes, 0);
    assert_eq!(srv.get_tenant(1).await.storage_used_bytes, 430);
    assert_eq!(srv.get_tenant(2).await.storage_used_bytes, 123);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r09_concurrent_reports_keep_group_and_tenant_storage_consistent() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let a = create(&srv, 1, group_named("A"), &[2], &[]).await;
    let b = create(&srv, 1, group_named("B"), &[2], &[]).await;
    let service = srv.groups_service(1);
    let calls: Vec<_> = (0..40_i64)
        .map(|i| {
            let mut client = service.clone();
            let (name, feature) = match i % 4 {
                0 => (a.name.clone(), "note"),
                1 => (a.name.clone(), "event"),
                2 => (b.name.clone(), "note"),
                _ => (b.name.clone(), "folder"),
            };
            let req = pb::ReportFeatureUsageRequest {
                name,
                feature: feature.into(),
                bytes: 1_000 + i,
            };
            tokio::spawn(async move { client.report_feature_usage(req).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let (a, b) = (get(&srv, &a.name).await, get(&srv, &b.name).await);
    // Each group holds two features, each at one of the values reported for it.
    for g in [&a, &b] {
        assert!(
            (2_000..=2_080).contains(&g.storage_used_bytes),
            "{}: {}",
            g.display_name,
            g.storage_used_bytes
        );
    }
    assert_eq!(
        srv.get_tenant(1).await.storage_used_bytes,
        a.storage_used_bytes + b.storage_used_bytes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r09_delete_feature_data_only_where_it_exists_and_for_good() {
    use pb::DataFeature::{Event as EventData, Folder, Note};

    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let g = create(
        &srv,
        1,
        pb::Group {
            features: Some(features(true, true, true, true, true)),
            ..group_named("Archive")
        },
        &[2],
        &[],
    )
    .await;
    report(&srv, &g.name, "message", 5).await;
    report(&srv, &g.name, "note", 1_000).await;
    report(&srv, &g.name, "event", 500).await;
    report(&srv, &g.name, "folder", 0).await;
    let before = get(&srv, &g.name).await;
    assert_eq!(before.storage_used_bytes, 1_505);
    let mut admin = srv.groups(1, 1, true);
    // Folder reported empty: nothing to delete; one missing feature fails the whole call.
    for features in [&[Folder][..], &[EventData, Folder], &[Note, Folder]] {
        let err = admin
            .delete_feature_data(delete_data(&g.name, features))
            .await
            .unwrap_err();
        assert_reason(&err, Code::FailedPrecondition, "NO_FEATURE_DATA");
    }
    assert_eq!(get(&srv, &g.name).await, before);

    let got = admin
        .delete_feature_data(delete_data(&g.name, &[Note]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.storage_used_bytes, 505);
    assert_ne!(got.etag, before.etag);
    assert_eq!(get(&srv, &g.name).await, got);
    assert_eq!(srv.get_tenant(1).await.storage_used_bytes, 505);
    // Gone for good: a second delete finds nothing.
    let err = admin
        .delete_feature_data(delete_data(&g.name, &[Note]))
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "NO_FEATURE_DATA");

    // One event per purge, naming the features and their sizes.
    let purged: Vec<serde_json::Value> = events_of(&srv, &g.name)
        .await
        .iter()
        .filter(|e| e.kind == "feature_data.purged")
        .map(|e| serde_json::from_str(&e.payload).unwrap())
        .collect();
    assert_eq!(purged.len(), 1, "{purged:?}");
    assert_eq!(purged[0]["group"], g.name.as_str());
    assert_eq!(
        purged[0]["purged"],
        serde_json::json!([{"feature": "note", "bytes": 1_000}])
    );

    // Event data, named twice, goes in one purge.
    let got = admin
        .delete_feature_data(delete_data(&g.name, &[EventData, EventData]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.storage_used_bytes, 5);
    assert_eq!(srv.get_tenant(1).await.storage_used_bytes, 5);
    let kinds: Vec<String> = events_of(&srv, &g.name)
        .await
        .into_iter()
        .map(|e| e.kind)
        .filter(|k| k == "feature_data.purged")
        .collect();
    assert_eq!(kinds.len(), 2);
    // The features stay on: only their data went.
    assert_eq!(got.features, Some(features(true, true, true, true, true)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r09_delete_feature_data_follows_the_feature_permission() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 4).await;
    let g = create(&srv, 1, group_named("Guarded"), &[2], &[user_member(3)]).await;
    report(&srv, &g.name, "folder", 64).await;
    let req = || delete_data(&g.name, &[pb::DataFeature::Folder]);
    let err = srv
        .groups(1, 3, false)
        .delete_feature_data(req())
        .await
        .unwrap_err();
    assert_reason(&err, Code::PermissionDenied, "NOT_GROUP_MANAGER");
    let err = srv
        .groups(1, 4, false)
        .delete_feature_data(req())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    // A master only when the group grants it.
    let err = srv
        .groups(1, 2, false)
        .delete_feature_data(req())
        .await
        .unwrap_err();
    assert_reason(&err, Code::PermissionDenied, "NOT_GROUP_MANAGER");
    assert_eq!(get(&srv, &g.name).await.storage_used_bytes, 64);
    srv.groups(1, 1, true)
        .update_group(update(
            pb::Group {
                master_manages_features: true,
                ..patch(&g.name)
            },
            &["master_manages_features"],
        ))
        .await
        .unwrap();
    let got = srv
        .groups(1, 2, false)
        .delete_feature_data(req())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.storage_used_bytes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r09_delete_feature_data_names_bad_features() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let g = create(&srv, 1, group_named("Picky"), &[2], &[]).await;
    report(&srv, &g.name, "note", 10).await;
    let mut admin = srv.groups(1, 1, true);
    let err = admin
        .delete_feature_data(delete_data(&g.name, &[]))
        .await
        .unwrap_err();
    assert_bad_field(&err, "features");
    for bad in [0, 99] {
        let err = admin
            .delete_feature_data(pb::DeleteFeatureDataRequest {
                name: g.name.clone(),
                features: vec![pb::DataFeature::Note as i32, bad],
            })
            .await
            .unwrap_err();
        assert_bad_field(&err, "features[1]");
    }
    assert_eq!(get(&srv, &g.name).await.storage_used_bytes, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r09_reported_usage_leaves_the_etag_alone() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let g = create(&srv, 1, group_named("Growing"), &[2], &[]).await;
    let after = report(&srv, &g.name, "message", 4_096).await;
    assert_eq!(after.storage_used_bytes, 4_096);
    // Usage is measured by other services, not edited: it must not make a pending edit of
    // the group's settings fail with ETAG_MISMATCH (docs/decisions.md).
    assert_eq!(after.etag, g.etag);
    let mut edit = g.clone();
    edit.description = "still mine to edit".into();
    let updated = srv
        .groups(1, 1, true)
        .update_group(pb::UpdateGroupRequest {
            group: Some(edit),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["description".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.storage_used_bytes, 4_096);
    assert_ne!(updated.etag, g.etag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r12_deleting_a_group_gives_its_storage_back_to_the_tenant() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let kept = create(&srv, 1, group_named("Kept"), &[2], &[]).await;
    let doomed = create(&srv, 1, group_named("Doomed"), &[2], &[]).await;
    report(&srv, &kept.name, "note", 100).await;
    report(&srv, &doomed.name, "folder", 900).await;
    assert_eq!(srv.get_tenant(1).await.storage_used_bytes, 1_000);
    srv.groups(1, 1, true)
        .delete_group(delete_req(&doomed.name, ""))
        .await
        .unwrap();
    assert_eq!(srv.get_tenant(1).await.storage_used_bytes, 100);
}

// ---- R10: mailing list ----

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_bad_address_at_update_is_invalid() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let mut admin = srv.groups(1, 1, true);
    let target = create(&srv, 1, group_named("Target"), &[2], &[]).await;
    for address in bad_addresses() {
        let err = admin
            .update_group(update(
                pb::Group {
                    mailing_list: Some(mailing_list(&address)),
                    ..patch(&target.name)
                },
                &["mailing_list"],
            ))
            .await
            .unwrap_err();
        assert_bad_field(&err, "group.mailing_list.address");
    }
    assert_eq!(get(&srv, &target.name).await, target);
    for address in ["ab".to_owned(), "x".repeat(40), "a.b-c_d!e#f".into()] {
        let got = admin
            .update_group(update(
                pb::Group {
                    mailing_list: Some(mailing_list(&address)),
                    ..patch(&target.name)
                },
                &["mailing_list"],
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.mailing_list.unwrap().address, address);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_bad_address_at_create_is_invalid() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let mut admin = srv.groups(1, 1, true);
    let mut stored = Vec::new();
    for (i, address) in bad_addresses().iter().enumerate() {
        match admin
            .create_group(pb::CreateGroupRequest {
                group: Some(pb::Group {
                    mailing_list: Some(mailing_list(address)),
                    ..group_named(&format!("Bad {i}"))
                }),
                ..create_req(1, "", &[2])
            })
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
        let g = create(
            &srv,
            1,
            pb::Group {
                mailing_list: Some(mailing_list(address)),
                ..group_named(&format!("Good {i}"))
            },
            &[2],
            &[],
        )
        .await;
        assert_eq!(g.mailing_list.unwrap().address, *address);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_address_in_use_by_a_user_team_or_group_is_refused() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 3).await;
    srv.team(1, 10, &[2]).await;
    srv.directory(1)
        .upsert_user(pb::UpsertUserRequest {
            user: Some(pb::User {
                tenant_id: 1,
                id: 9,
                email: "Sales.Team@corp.example".into(),
                display_name: "Shouty".into(),
                kind: pb::UserKind::Works as i32,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    create(
        &srv,
        1,
        pb::Group {
            mailing_list: Some(mailing_list("hello")),
            ..group_named("Holder")
        },
        &[2],
        &[],
    )
    .await;
    let target = create(&srv, 1, group_named("Target"), &[2], &[]).await;
    let mut admin = srv.groups(1, 1, true);
    // user2@t1.example, team10@t1.example, a user's mixed-case address, another group's list.
    for (i, address) in ["user2", "team10", "sales.team", "hello"]
        .iter()
        .enumerate()
    {
        let err = admin
            .create_group(pb::CreateGroupRequest {
                group: Some(pb::Group {
                    mailing_list: Some(mailing_list(address)),
                    ..group_named(&format!("Clash {i}"))
                }),
                ..create_req(1, "", &[2])
            })
            .await
            .unwrap_err();
        assert_reason(&err, Code::FailedPrecondition, "ADDRESS_IN_USE");
        let err = admin
            .update_group(update(
                pb::Group {
                    mailing_list: Some(mailing_list(address)),
                    ..patch(&target.name)
                },
                &["mailing_list"],
            ))
            .await
            .unwrap_err();
        assert_reason(&err, Code::FailedPrecondition, "ADDRESS_IN_USE");
    }
    assert_eq!(srv.group_count(1).await, 2);
    assert_eq!(get(&srv, &target.name).await, target);
    // Near misses are free: LIKE wildcards in an address are no wildcards.
    srv.user(1, 20, false).await; // user20@t1.example
    for address in ["user", "user2x", "team1", "sales_team", "hell"] {
        create(
            &srv,
            1,
            pb::Group {
                mailing_list: Some(mailing_list(address)),
                ..group_named(&format!("Free {address}"))
            },
            &[2],
            &[],
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_a_group_keeps_its_own_address_and_frees_it_when_it_goes() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let g = create(
        &srv,
        1,
        pb::Group {
            mailing_list: Some(mailing_list("news")),
            ..group_named("News")
        },
        &[2],
        &[],
    )
    .await;
    let mut admin = srv.groups(1, 1, true);
    // Re-saving its own address is no conflict.
    let got = admin
        .update_group(update(
            pb::Group {
                mailing_list: Some(pb::MailingList {
                    block_external_senders: true,
                    ..mailing_list("news")
                }),
                ..patch(&g.name)
            },
            &["mailing_list"],
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(got.mailing_list.as_ref().unwrap().block_external_senders);
    assert_eq!(get(&srv, &g.name).await, got);
    // Removing the list frees the address.
    let got = admin
        .update_group(update(patch(&g.name), &["mailing_list"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.mailing_list, None);
    assert_eq!(get(&srv, &g.name).await.mailing_list, None);
    let second = create(
        &srv,
        1,
        pb::Group {
            mailing_list: Some(mailing_list("news")),
            ..group_named("News 2")
        },
        &[2],
        &[],
    )
    .await;
    // Deleting the group frees it too.
    admin
        .delete_group(delete_req(&second.name, ""))
        .await
        .unwrap();
    admin
        .update_group(update(
            pb::Group {
                mailing_list: Some(mailing_list("news")),
                ..patch(&g.name)
            },
            &["mailing_list"],
        ))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_same_address_in_another_tenant_is_fine() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    srv.company(2, 2).await;
    // user2@t1.example is tenant 1's: tenant 2's users are user2@t2.example.
    for tenant in [1, 2] {
        let g = create(
            &srv,
            tenant,
            pb::Group {
                mailing_list: Some(mailing_list("all-hands")),
                ..group_named("All hands")
            },
            &[2],
            &[],
        )
        .await;
        assert_eq!(g.mailing_list.unwrap().address, "all-hands");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_concurrent_creates_with_one_address_make_one_list() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let admin = srv.groups(1, 1, true);
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let mut client = admin.clone();
            let req = pb::CreateGroupRequest {
                group: Some(pb::Group {
                    mailing_list: Some(mailing_list("contested")),
                    ..group_named(&format!("Contender {i}"))
                }),
                ..create_req(1, "", &[2])
            };
            tokio::spawn(async move { client.create_group(req).await })
        })
        .collect();
    let mut ok = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => ok += 1,
            Err(err) => assert_reason(&err, Code::FailedPrecondition, "ADDRESS_IN_USE"),
        }
    }
    assert_eq!(ok, 1);
    // The losers took no slot (R25).
    assert_eq!(srv.group_count(1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_concurrent_updates_to_one_address_give_it_to_one_group() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let mut groups = Vec::new();
    for i in 0..20 {
        groups.push(create(&srv, 1, group_named(&format!("Racer {i}")), &[2], &[]).await);
    }
    let admin = srv.groups(1, 1, true);
    let calls: Vec<_> = groups
        .iter()
        .map(|g| {
            let mut client = admin.clone();
            let req = update(
                pb::Group {
                    mailing_list: Some(mailing_list("finish-line")),
                    ..patch(&g.name)
                },
                &["mailing_list"],
            );
            tokio::spawn(async move { client.update_group(req).await })
        })
        .collect();
    let mut ok = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => ok += 1,
            Err(err) => assert_reason(&err, Code::FailedPrecondition, "ADDRESS_IN_USE"),
        }
    }
    assert_eq!(ok, 1);
    let mut holders = 0;
    for g in &groups {
        if get(&srv, &g.name).await.mailing_list.is_some() {
            holders += 1;
        }
    }
    assert_eq!(holders, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_designated_senders_must_be_direct_members() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 6).await;
    srv.company(2, 2).await;
    srv.team(1, 10, &[4]).await;
    let inner = create(&srv, 1, group_named("Inner"), &[5], &[]).await;
    let g = create(
        &srv,
        1,
        group_named("Senders"),
        &[2],
        &[user_member(3), team_member(10), group_member(&inner.name)],
    )
    .await;
    let mut admin = srv.groups(1, 1, true);
    let with_senders = |senders: Vec<pb::UserRef>| pb::Group {
        mailing_list: Some(pb::MailingList {
            designated_senders: senders,
            ..mailing_list("senders")
        }),
        ..patch(&g.name)
    };
    // 4 through the team, 5 through the nested group, 6 in no group, the admin, tenant 2's user.
    for outsider in [
        user_ref(1, 4),
        user_ref(1, 5),
        user_ref(1, 6),
        user_ref(1, 1),
        user_ref(2, 2),
        user_ref(1, 99),
    ] {
        let err = admin
            .update_group(update(
                with_senders(vec![user_ref(1, 3), outsider]),
                &["mailing_list"],
            ))
            .await
            .unwrap_err();
        assert_reason(&err, Code::FailedPrecondition, "SENDER_NOT_MEMBER");
    }
    assert_eq!(get(&srv, &g.name).await, g);
    // The master and a direct member may be designated.
    let got = admin
        .update_group(update(
            with_senders(vec![user_ref(1, 3), user_ref(1, 2)]),
            &["mailing_list"],
        ))
        .await
        .unwrap()
        .into_inner();
    let list = got.mailing_list.clone().unwrap();
    assert_eq!(list.designated_senders, [user_ref(1, 2), user_ref(1, 3)]);
    assert_eq!(get(&srv, &g.name).await, got);
    // At create, too: all or nothing.
    let err = admin
        .create_group(pb::CreateGroupRequest {
            group: Some(pb::Group {
                mailing_list: Some(pb::MailingList {
                    designated_senders: vec![user_ref(1, 6)],
                    ..mailing_list("fresh")
                }),
                ..group_named("Fresh")
            }),
            ..create_req(1, "", &[2])
        })
        .await
        .unwrap_err();
    assert_reason(&err, Code::FailedPrecondition, "SENDER_NOT_MEMBER");
    assert_eq!(srv.group_count(1).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_designated_senders_leave_the_list_when_they_leave_the_group() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 5).await;
    let g = create(
        &srv,
        1,
        pb::Group {
            mailing_list: Some(pb::MailingList {
                designated_senders: vec![user_ref(1, 3), user_ref(1, 4), user_ref(1, 5)],
                ..mailing_list("board")
            }),
            ..group_named("Board")
        },
        &[2],
        &[user_member(3), user_member(4), user_member(5)],
    )
    .await;
    assert_eq!(
        get(&srv, &g.name)
            .await
            .mailing_list
            .unwrap()
            .designated_senders,
        [user_ref(1, 3), user_ref(1, 4), user_ref(1, 5)]
    );
    // Removed by a master.
    membership_as(&srv, 1, 2, false)
        .remove_members(pb::RemoveMembersRequest {
            group: g.name.clone(),
            members: vec![user_member(4)],
            request_id: String::new(),
        })
        .await
        .unwrap();
    // Deleted from the directory.
    srv.directory(1)
        .delete_user(pb::DeleteUserRequest {
            tenant_id: 1,
            user_id: 5,
        })
        .await
        .unwrap();
    let list = get(&srv, &g.name).await.mailing_list.unwrap();
    assert_eq!(list.address, "board");
    assert_eq!(list.designated_senders, [user_ref(1, 3)]);
    // Coming back as a member does not make one a sender again.
    membership_as(&srv, 1, 2, false)
        .add_members(pb::AddMembersRequest {
            group: g.name.clone(),
            members: vec![user_member(4)],
            request_id: String::new(),
        })
        .await
        .unwrap();
    let list = get(&srv, &g.name).await.mailing_list.unwrap();
    assert_eq!(list.designated_senders, [user_ref(1, 3)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_external_recipients_are_addresses_or_partner_contacts() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 3).await;
    srv.company(2, 6).await;
    srv.company(3, 2).await;
    // Tenant 1's user 3 knows tenant 2's user 5; tenant 3's user 2 knows tenant 2's user 6.
    for (owner_tenant, owner, contact) in [(1, 3, 5), (3, 2, 6)] {
        srv.directory(owner_tenant)
            .add_contact(pb::AddContactRequest {
                contact: Some(pb::Contact {
                    tenant_id: owner_tenant,
                    user_id: owner,
                    contact_tenant_id: 2,
                    contact_user_id: contact,
                }),
            })
            .await
            .unwrap();
    }
    let g = create(&srv, 1, group_named("Outreach"), &[2], &[]).await;
    let mut admin = srv.groups(1, 1, true);
    let with_recipients = |recipients: &[&str]| pb::Group {
        mailing_list: Some(pb::MailingList {
            external_recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
            ..mailing_list("outreach")
        }),
        ..patch(&g.name)
    };
    let got = admin
        .update_group(update(
            with_recipients(&["tenants/2/users/5", "partner@vendor.example"]),
            &["mailing_list"],
        ))
        .await
        .unwrap()
        .into_inner();
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
        let err = admin
            .update_group(update(
                with_recipients(&["partner@vendor.example", contact]),
                &["mailing_list"],
            ))
            .await
            .unwrap_err();
        assert_reason(&err, Code::FailedPrecondition, "NOT_A_PARTNER_CONTACT");
    }
    assert_eq!(get(&srv, &g.name).await, got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_bad_external_recipient_is_named_by_its_index() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let g = create(&srv, 1, group_named("Outbound"), &[2], &[]).await;
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
        let err = admin
            .update_group(update(
                pb::Group {
                    mailing_list: Some(pb::MailingList {
                        external_recipients: vec![
                            "zed@vendor.example".into(),
                            "amy@vendor.example".into(),
                            bad.into(),
                        ],
                        ..mailing_list("outbound")
                    }),
                    ..patch(&g.name)
                },
                &["mailing_list"],
            ))
            .await
            .unwrap_err();
        assert_bad_field(&err, "group.mailing_list.external_recipients[2]");
    }
    assert_eq!(get(&srv, &g.name).await, g);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_bad_external_recipient_at_create_is_invalid() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let err = srv
        .groups(1, 1, true)
        .create_group(pb::CreateGroupRequest {
            group: Some(pb::Group {
                mailing_list: Some(pb::MailingList {
                    external_recipients: vec!["ok@vendor.example".into(), "not-an-email".into()],
                    ..mailing_list("outbound")
                }),
                ..group_named("Outbound")
            }),
            ..create_req(1, "", &[2])
        })
        .await
        .unwrap_err();
    assert_bad_field(&err, "group.mailing_list.external_recipients[1]");
    assert_eq!(srv.group_count(1).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_get_group_returns_the_whole_list_and_lists_leave_it_short() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 3).await;
    let g = create(
        &srv,
        1,
        pb::Group {
            visibility: pb::Visibility::Public as i32,
            mailing_list: Some(pb::MailingList {
                block_external_senders: true,
                designated_senders: vec![user_ref(1, 2)],
                external_recipients: vec!["auditor@audit.example".into()],
                ..mailing_list("ledger")
            }),
            ..group_named("Ledger")
        },
        &[2],
        &[user_member(3)],
    )
    .await;
    let full = pb::MailingList {
        block_external_senders: true,
        designated_senders: vec![user_ref(1, 2)],
        external_recipients: vec!["auditor@audit.example".into()],
        ..mailing_list("ledger")
    };
    assert_eq!(g.mailing_list.as_ref(), Some(&full));
    // An update of another field answers with the whole list too.
    let updated = srv
        .groups(1, 1, true)
        .update_group(update(
            pb::Group {
                description: "books".into(),
                ..patch(&g.name)
            },
            &["description"],
        ))
        .await
        .unwrap()
        .into_inner();
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
    let listed = admin
        .list_groups(pb::ListGroupsRequest {
            parent: "tenants/1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .groups;
    let searched = admin
        .search_groups(pb::SearchGroupsRequest {
            parent: "tenants/1".into(),
            query: "ledger".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .groups;
    let completed = admin
        .autocomplete_groups(pb::AutocompleteGroupsRequest {
            parent: "tenants/1".into(),
            prefix: "led".into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .groups;
    for (how, groups) in [
        ("list", listed),
        ("search", searched),
        ("autocomplete", completed),
    ] {
        assert_eq!(groups.len(), 1, "{how}: {groups:?}");
        assert_eq!(groups[0].mailing_list.as_ref(), Some(&short), "{how}");
    }
}
