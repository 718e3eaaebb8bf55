//! R07: who finds what, for each kind of viewer, and at once after a change.

use group_service::grpc::pb;
use tonic::Code;

use super::{assert_sees, visibility_fixture};
use crate::fixtures::*;
use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_each_viewer_lists_searches_and_autocompletes_what_it_may_read() {
    let Some(srv) = server().await else { return };
    let all = visibility_fixture(&srv).await;
    let everything = [
        "Public Plaza",
        "Private Direct",
        "Private Team",
        "Private Inner",
        "Private Outer",
        "Private Nobody",
    ];
    assert_sees(&all, srv.groups(1, 1, true), "admin", &everything).await;
    assert_sees(&all, srv.groups_service(1), "service", &everything).await;
    let master_sees = [
        "Public Plaza",
        "Private Direct",
        "Private Team",
        "Private Outer",
        "Private Nobody",
    ];
    assert_sees(&all, srv.groups(1, 2, false), "master 2", &master_sees).await;
    let direct = ["Public Plaza", "Private Direct"];
    assert_sees(&all, srv.groups(1, 3, false), "direct member 3", &direct).await;
    let team = ["Public Plaza", "Private Team"];
    assert_sees(&all, srv.groups(1, 5, false), "team member 5", &team).await;
    let nested = ["Public Plaza", "Private Inner", "Private Outer"];
    assert_sees(&all, srv.groups(1, 6, false), "nested member 6", &nested).await;
    assert_sees(&all, srv.groups(1, 7, false), "user 7", &["Public Plaza"]).await;
    // A user claiming admin whom the directory does not make one sees as a user.
    let pretender = srv.groups(1, 7, true);
    assert_sees(&all, pretender, "pretender 7", &["Public Plaza"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_other_tenants_see_nothing_of_the_tenant() {
    let Some(srv) = server().await else { return };
    let all = visibility_fixture(&srv).await;
    for (who, mut client) in [
        ("tenant 2 user", srv.groups(2, 2, false)),
        ("tenant 2 admin", srv.groups(2, 1, true)),
        ("tenant 2 service", srv.groups_service(2)),
    ] {
        // Either an empty answer or a refusal; never a group of tenant 1.
        if let Ok(groups) = list_all(&mut client, "tenants/1", "", 50).await {
            assert!(groups.is_empty(), "{who}: {groups:?}");
        }
        if let Ok(found) = search_all(&mut client, "tenants/1", "p", 50).await {
            assert!(found.is_empty(), "{who}: {found:?}");
        }
        if let Ok(found) = complete(&mut client, "tenants/1", "p", 20).await {
            assert!(found.is_empty(), "{who}: {found:?}");
        }
        for g in &all {
            let err = client.get_group(get_req(&g.name)).await.unwrap_err();
            assert_eq!(err.code(), Code::NotFound, "{who}: {err:?}");
        }
        // Their own tenant's public group they do see.
        if who != "tenant 2 service" {
            let own = complete(&mut client, "tenants/2", "public", 20)
                .await
                .unwrap();
            assert_eq!(own, ["Public Tenant Two"], "{who}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_leaving_a_team_hides_the_private_group_again() {
    let Some(srv) = server().await else { return };
    visibility_fixture(&srv).await;
    let mut user5 = srv.groups(1, 5, false);
    let privates = complete(&mut user5, "tenants/1", "private", 20).await;
    assert_eq!(privates.unwrap(), ["Private Team"]);
    srv.team(1, 10, &[4]).await;
    let privates = complete(&mut user5, "tenants/1", "private", 20).await;
    assert!(privates.unwrap().is_empty());
    let teams = search_all(&mut user5, "tenants/1", "team", 0).await;
    assert!(teams.unwrap().is_empty());
    let mut user4 = srv.groups(1, 4, false);
    let teams = search_all(&mut user4, "tenants/1", "team", 0).await;
    assert_eq!(teams.unwrap(), ["Private Team"]);
}

/// What `c` finds by autocompleting `prefix` and by searching for `query` in tenant 1.
async fn found(c: &mut Groups, prefix: &str, query: &str) -> (Vec<String>, Vec<String>) {
    let completed = complete(c, "tenants/1", prefix, 10).await.unwrap();
    let searched = search_all(c, "tenants/1", query, 0).await.unwrap();
    (completed, searched)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_updates_show_in_discovery_at_once() {
    let Some(srv) = server().await else { return };
    srv.company(1, 3).await;
    let g = group(1, "Hidden gem").master(2).create(&srv).await;
    let admin = srv.groups(1, 1, true);
    let mut outsider = srv.groups(1, 3, false);
    let hidden = complete(&mut outsider, "tenants/1", "hidden", 10).await;
    assert!(hidden.unwrap().is_empty());
    let change = |body: pb::Group, path: &'static str| {
        let body = pb::Group {
            name: g.name.clone(),
            ..body
        };
        let mut admin = admin.clone();
        async move { try_update(&mut admin, body, &[path]).await }
    };
    let public = pb::Group {
        visibility: pb::Visibility::Public as i32,
        ..Default::default()
    };
    // Made public: every user of the tenant finds it.
    change(public, "visibility").await.unwrap();
    let (completed, searched) = found(&mut outsider, "hidden", "GEM").await;
    assert_eq!(completed, ["Hidden gem"]);
    assert_eq!(searched, ["Hidden gem"]);
    // Renamed and described: found by the new name and description, not the old name.
    change(group_named("Open Book"), "display_name")
        .await
        .unwrap();
    let described = pb::Group {
        description: "Weekly READING circle".into(),
        ..Default::default()
    };
    change(described, "description").await.unwrap();
    let (completed, searched) = found(&mut outsider, "hidden", "gem").await;
    assert!(completed.is_empty());
    assert!(searched.is_empty());
    let (completed, searched) = found(&mut outsider, "open b", "reading").await;
    assert_eq!(completed, ["Open Book"]);
    assert_eq!(searched, ["Open Book"]);
    // Private again: gone for the outsider, still there for the master.
    change(group_named(""), "visibility").await.unwrap();
    let books = search_all(&mut outsider, "tenants/1", "book", 0).await;
    assert!(books.unwrap().is_empty());
    let listed = list_all(&mut outsider, "tenants/1", "", 0).await;
    assert!(listed.unwrap().is_empty());
    let mut master = srv.groups(1, 2, false);
    let books = search_all(&mut master, "tenants/1", "book", 0).await;
    assert_eq!(books.unwrap(), ["Open Book"]);
}
