//! ListGroups (R07, R25): filters by kind and visibility, and pages that cover every group once.

use std::collections::BTreeSet;

use group_service::grpc::pb;

use super::visibility_fixture;
use crate::fixtures::*;
use crate::harness::*;

/// Display names of every group `c` lists in tenant 1 under `filter`, `page_size` at a time.
async fn listed(c: &mut Groups, filter: &str, page_size: i32) -> BTreeSet<String> {
    let groups = list_all(c, "tenants/1", filter, page_size).await.unwrap();
    groups.into_iter().map(|g| g.display_name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_list_filters_by_kind_and_visibility() {
    let Some(srv) = server().await else { return };
    visibility_fixture(&srv).await;
    let mut admin = srv.groups(1, 1, true);
    let privates: BTreeSet<String> = [
        "Private Direct",
        "Private Team",
        "Private Inner",
        "Private Outer",
        "Private Nobody",
    ]
    .iter()
    .map(|n| (*n).to_owned())
    .collect();
    for (filter, expected) in [
        ("visibility = PUBLIC", strings(&["Public Plaza"])),
        ("visibility=PUBLIC", strings(&["Public Plaza"])),
        (
            "kind = INTERNAL AND visibility = PUBLIC",
            strings(&["Public Plaza"]),
        ),
        (
            "visibility = PUBLIC AND kind = INTERNAL",
            strings(&["Public Plaza"]),
        ),
        ("kind = EXTERNAL", Vec::new()),
        ("kind = EXTERNAL AND visibility = PRIVATE", Vec::new()),
    ] {
        let got = listed(&mut admin, filter, 0).await;
        let expected: BTreeSet<String> = expected.into_iter().collect();
        assert_eq!(got, expected, "{filter}");
    }
    for filter in [
        "visibility = PRIVATE",
        "kind = INTERNAL AND visibility = PRIVATE",
    ] {
        let got = listed(&mut admin, filter, 2).await;
        assert_eq!(got, privates, "{filter}");
    }
    let all = listed(&mut admin, "kind = INTERNAL", 0).await;
    assert_eq!(all.len(), 6);
    // Filters narrow what a viewer may see; they never widen it.
    let mut member = srv.groups(1, 3, false);
    let got = listed(&mut member, "visibility = PRIVATE", 0).await;
    assert_eq!(got, BTreeSet::from(["Private Direct".to_owned()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_bad_list_filter_is_invalid() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    group(1, "Anything").master(2).public().create(&srv).await;
    let mut admin = srv.groups(1, 1, true);
    for filter in [
        "kind = FOO",
        "kind = internal",
        "visibility = HIDDEN",
        "visibility = PUBLIC OR kind = INTERNAL",
        "kind = INTERNAL and visibility = PUBLIC",
        "kind = INTERNAL AND",
        "AND kind = INTERNAL",
        "kind INTERNAL",
        "kind != INTERNAL",
        "colour = RED",
        "display_name = Anything",
        "kind = INTERNAL = EXTERNAL",
    ] {
        let err = list_all(&mut admin, "tenants/1", filter, 0)
            .await
            .unwrap_err();
        assert_bad_field(&err, "filter");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_list_pages_cover_every_group_once() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let names: Vec<String> = (0..23).map(|i| format!("Paged {i:02}")).collect();
    for name in &names {
        group(1, name).master(1).public().create(&srv).await;
    }
    let expected: BTreeSet<String> = names.iter().cloned().collect();
    for (user, admin) in [(1, true), (2, false)] {
        let mut client = srv.groups(1, user, admin);
        for page_size in [1, 2, 5, 7, 22, 23, 24, 100, 1_000] {
            let got = listed(&mut client, "", page_size).await;
            assert_eq!(got, expected, "page size {page_size}");
        }
    }
    let err = srv
        .groups(1, 1, true)
        .list_groups(pb::ListGroupsRequest {
            parent: "tenants/1".into(),
            page_size: -1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_bad_field(&err, "page_size");
}
