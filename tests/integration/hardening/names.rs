//! Names (R01, R07, R25): names that only look different are the same name, names
//! with nothing visible are no name, stored keys follow a change of the key's definition,
//! and a resource has one name only.

use group_service::domain::model::{GroupId, TenantId};
use group_service::domain::repo::StaleKeys;
use group_service::grpc::pb;
use group_service::store::Rekeyed;
use tonic::Code;

use crate::fixtures::*;
use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r01_invisible_only_names_are_refused() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    for name in [
        "\u{200b}",
        "\u{2060}\u{feff}",
        "\u{00ad}",
        " \u{200b} ",
        "\u{3000}",
    ] {
        let err = group(1, name).master(2).try_create(&srv).await.unwrap_err();
        assert_bad_field(&err, "group.display_name");
    }
    assert_eq!(srv.group_count(1).await, 0);
    let g = group(1, "Design").master(2).create(&srv).await;
    let mut renamed = patch(&g.name);
    renamed.display_name = "\u{200b}\u{feff}".into();
    let err = try_update(&mut srv.groups(1, 2, true), renamed, &["display_name"])
        .await
        .unwrap_err();
    assert_bad_field(&err, "group.display_name");
}

/// Asserts that tenant 1 may not create a group named `name` beside an existing one.
async fn assert_taken(srv: &TestServer, name: &str) {
    let err = group(1, name).master(2).try_create(srv).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{name:?}: {err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r01_names_are_normalized_and_compared_with_full_case_folding() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let design = group(1, " Design\u{200b} ").master(2).create(&srv).await;
    assert_eq!(design.display_name, "Design");
    assert_eq!(get(&srv, &design.name).await.display_name, "Design");
    for name in ["Design ", " Design", "DESIGN", "De\u{200b}sign"] {
        assert_taken(&srv, name).await;
    }
    let cafe = group(1, "Cafe\u{301}").master(2).create(&srv).await;
    assert_eq!(cafe.display_name, "Café");
    assert_taken(&srv, "Café").await;
    assert_taken(&srv, "CAFÉ").await;
    group(1, "Straße").master(2).create(&srv).await;
    assert_taken(&srv, "STRASSE").await;
    assert_taken(&srv, "strasse").await;
    // A rename is compared the same way.
    let ops = group(1, "Ops").master(2).create(&srv).await;
    let mut renamed = patch(&ops.name);
    renamed.display_name = "design\u{feff}".into();
    let err = try_update(&mut srv.groups(1, 2, true), renamed, &["display_name"])
        .await
        .unwrap_err();
    assert_reason(&err, Code::AlreadyExists, "GROUP_NAME_TAKEN");
    assert_eq!(srv.group_count(1).await, 4);
}

async fn search(srv: &TestServer, query: &str) -> Vec<String> {
    let page = srv
        .groups(1, 2, true)
        .search_groups(pb::SearchGroupsRequest {
            parent: "tenants/1".into(),
            query: query.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    page.groups.into_iter().map(|g| g.display_name).collect()
}

async fn autocomplete(srv: &TestServer, prefix: &str) -> Vec<String> {
    let page = srv
        .groups(1, 2, true)
        .autocomplete_groups(pb::AutocompleteGroupsRequest {
            parent: "tenants/1".into(),
            prefix: prefix.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    page.groups.into_iter().map(|g| g.display_name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_search_and_autocomplete_fold_case_fully() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    group(1, "Straßenbau").master(2).public().create(&srv).await;
    group(1, "Café Nord").master(2).public().create(&srv).await;
    assert_eq!(search(&srv, "STRASSE").await, ["Straßenbau"]);
    assert_eq!(search(&srv, "cafe\u{301}").await, ["Café Nord"]);
    assert_eq!(autocomplete(&srv, "strass").await, ["Straßenbau"]);
    assert_eq!(autocomplete(&srv, "CAFÉ").await, ["Café Nord"]);
}

/// Sets the stored keys of `group` to what the previous definition (`to_lowercase`)
/// computed, marked as computed by version 1.
async fn with_old_keys(srv: &TestServer, group: &pb::Group, description: &str) {
    let (t, g) = ids(&group.name);
    let old = StaleKeys {
        tenant: TenantId(t),
        id: GroupId(g),
        display_name: group.display_name.clone(),
        description: description.to_owned(),
        name_key: group.display_name.to_lowercase(),
        search_text: format!("{}\n{}", group.display_name.to_lowercase(), description),
    };
    srv.store
        .write(move |tx| {
            let old = old.clone();
            Box::pin(async move { tx.set_name_keys(&old, 1).await })
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r01_stored_keys_are_computed_again_at_start_and_collisions_kept() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    // Stored before full case folding: "Straße" under "straße", "Maße" under "maße".
    let strasse = group(1, "Straße").master(2).public().create(&srv).await;
    with_old_keys(&srv, &strasse, "").await;
    let masse = group(1, "Maße").master(2).public().create(&srv).await;
    with_old_keys(&srv, &masse, "").await;
    // Which let "STRASSE" in beside it.
    let upper = group(1, "STRASSE").master(2).public().create(&srv).await;

    // What every start runs after the migrations.
    srv.store.migrate().await.unwrap();
    assert_eq!(
        srv.store.rekey_names().await.unwrap(),
        Rekeyed::default(),
        "a second run has nothing left"
    );

    // Both colliding groups stay, under their names; the plain key is taken.
    assert_eq!(get(&srv, &strasse.name).await.display_name, "Straße");
    assert_eq!(get(&srv, &upper.name).await.display_name, "STRASSE");
    assert_taken(&srv, "strasse").await;
    assert_taken(&srv, "MASSE").await;
    let mut found = search(&srv, "strasse").await;
    found.sort();
    assert_eq!(found, ["STRASSE", "Straße"]);
    assert_eq!(autocomplete(&srv, "MASS").await, ["Maße"]);
    // Renaming the group whose key was suffixed computes a plain key again.
    let mut renamed = patch(&strasse.name);
    renamed.display_name = "Straßenbahn".into();
    try_update(&mut srv.groups(1, 2, true), renamed, &["display_name"])
        .await
        .unwrap();
    assert_taken(&srv, "STRASSENBAHN").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_resource_names_with_aliases_are_refused() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let g = group(1, "Design").master(2).create(&srv).await;
    let (t, id) = ids(&g.name);
    assert_eq!(get(&srv, &g.name).await.name, g.name);
    for alias in [
        format!("tenants/0{t}/groups/{id}"),
        format!("tenants/+{t}/groups/{id}"),
        format!("tenants/{t}/groups/+{id}"),
        format!("tenants/{t}/groups/0{id}"),
        format!("tenants/{t}/groups/{id} "),
        format!("tenants/{t}/groups/{id}/"),
        format!("tenants/{t}//groups/{id}"),
        format!("tenants/{t}/groups/{id}\u{ff10}"),
    ] {
        let err = srv
            .groups(1, 2, true)
            .get_group(get_req(&alias))
            .await
            .unwrap_err();
        assert_bad_field(&err, "name");
    }
}
