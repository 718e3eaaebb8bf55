//! Names, descriptions and photos at creation (R01, R02), and malformed resource names (R25).

use group_service::grpc::pb;
use tonic::Code;

use crate::fixtures::*;
use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r01_create_and_get_group() {
    let Some(srv) = server().await else { return };
    srv.company(1, 3).await;
    let g = group(1, "Design").master(2).create(&srv).await;
    assert_eq!(g.display_name, "Design");
    assert_eq!(get(&srv, &g.name).await, g);
    let err = group(1, "DESIGN")
        .master(2)
        .try_create(&srv)
        .await
        .unwrap_err();
    assert_reason(&err, Code::AlreadyExists, "GROUP_NAME_TAKEN");
}

/// Creates a group of tenant 1 named `name` (master 2) and reads it back; both as created.
async fn created_and_read(srv: &TestServer, name: &str) -> (pb::Group, pb::Group) {
    let g = group(1, name)
        .master(2)
        .try_create(srv)
        .await
        .unwrap_or_else(|e| panic!("{name:?} rejected: {e:?}"));
    let got = get(srv, &g.name).await;
    (g, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r01_name_of_100_multibyte_chars_is_accepted() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    for name in ["가".repeat(100), "😀".repeat(100)] {
        assert!(name.len() > 100, "the name must be longer than 100 bytes");
        let (g, got) = created_and_read(&srv, &name).await;
        assert_eq!(g.display_name, name);
        assert_eq!(got.display_name, name);
    }
}

/// Asserts that creating each group of tenant 1 named in `names` is INVALID_ARGUMENT naming
/// the display name, and that none was created.
async fn assert_names_refused(srv: &TestServer, names: &[String]) {
    for name in names {
        let err = group(1, name).master(2).try_create(srv).await.unwrap_err();
        assert_bad_field(&err, "group.display_name");
    }
    assert_eq!(srv.group_count(1).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r01_name_of_101_chars_is_rejected() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let names = ["가".repeat(101), "a".repeat(101), "😀".repeat(101)];
    assert_names_refused(&srv, &names).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r01_empty_and_blank_names_are_rejected() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    assert_names_refused(&srv, &strings(&["", "   ", "\t \n"])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r01_special_characters_are_accepted() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    for name in [
        "R&D / Q&A <team> #1",
        "'quotes' \"double\" `back` \\slash\\",
        "100% _under_ {braces} [brackets] (parens) | pipe ; semi",
        "«Équipe» — naïve café ✓ 🚀",
        "营销部 マーケティング 마케팅",
        "Robert'); DROP TABLE groups;--",
    ] {
        let (g, got) = created_and_read(&srv, name).await;
        assert_eq!(g.display_name, name);
        assert_eq!(got.display_name, name);
    }
    assert_eq!(srv.group_count(1).await, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r01_names_are_unique_case_insensitively_within_tenant() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    group(1, "Design").master(2).create(&srv).await;
    group(1, "Équipe Ärzte").master(2).create(&srv).await;
    for taken in ["DESIGN", "design", "dEsIgN", "ÉQUIPE ÄRZTE", "équipe ärzte"] {
        let err = group(1, taken)
            .master(2)
            .try_create(&srv)
            .await
            .unwrap_err();
        assert_reason(&err, Code::AlreadyExists, "GROUP_NAME_TAKEN");
    }
    assert_eq!(srv.group_count(1).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r01_concurrent_creates_of_one_name_in_any_case_make_one_group() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let admin = srv.groups(1, 1, true);
    let names = ["design", "DESIGN", "Design", "dESIGN", "DeSiGn"];
    let answers = race(20, names.iter().cycle().take(20), |name| {
        let mut client = admin.clone();
        let req = create_req(1, name, &[2]);
        async move { client.create_group(req).await }
    })
    .await;
    let ok = winners(answers, Code::AlreadyExists, "GROUP_NAME_TAKEN").len();
    assert_eq!(ok, 1);
    // The losers took no slot (R25: nothing half-written).
    assert_eq!(srv.group_count(1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r01_same_name_in_another_tenant_is_accepted() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    srv.company(2, 2).await;
    let a = group(1, "Design").master(2).create(&srv).await;
    let b = group(2, "DESIGN").master(2).create(&srv).await;
    assert!(a.name.starts_with("tenants/1/groups/"));
    assert!(b.name.starts_with("tenants/2/groups/"));
    assert_eq!(srv.group_count(1).await, 1);
    assert_eq!(srv.group_count(2).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r02_description_of_300_multibyte_chars_is_accepted() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let description = "설명".repeat(150);
    let g = group(1, "Described")
        .master(2)
        .with(|g| g.description = description.clone())
        .create(&srv)
        .await;
    assert_eq!(g.description, description);
    assert_eq!(get(&srv, &g.name).await.description, description);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r02_description_of_301_chars_is_rejected() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    for description in ["설".repeat(301), "d".repeat(301)] {
        let err = group(1, "Too long")
            .master(2)
            .with(|g| g.description = description)
            .try_create(&srv)
            .await
            .unwrap_err();
        assert_bad_field(&err, "group.description");
    }
    assert_eq!(srv.group_count(1).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r02_photo_uri_is_stored_and_returned() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let photo = "https://cdn.example.com/photos/g%201.png?size=large&v=2";
    let g = group(1, "Pictured")
        .master(2)
        .with(|g| g.photo_uri = photo.into())
        .create(&srv)
        .await;
    assert_eq!(g.photo_uri, photo);
    assert_eq!(get(&srv, &g.name).await.photo_uri, photo);
    // Optional: a group without a photo or description has empty ones.
    let plain = group(1, "Plain").master(2).create(&srv).await;
    assert_eq!(plain.photo_uri, "");
    assert_eq!(plain.description, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_malformed_names_are_invalid() {
    let Some(srv) = server().await else { return };
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
