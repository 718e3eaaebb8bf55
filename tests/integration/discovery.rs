//! Discovery (R07): ListGroups with filters, SearchGroups with ranking and pages,
//! AutocompleteGroups; each shows a viewer exactly the groups GetGroup lets it read.

use std::collections::BTreeSet;

use crate::harness::*;
use group_service::grpc::pb;
use tonic::{Code, Status};

// ---- fixtures ----

fn group_ref(name: &str) -> pb::MemberRef {
    pb::MemberRef {
        r#type: pb::MemberType::Group as i32,
        id: name.rsplit('/').next().unwrap().parse().unwrap(),
        tenant_id: 0,
    }
}

fn public(name: &str) -> pb::Group {
    pb::Group {
        visibility: pb::Visibility::Public as i32,
        ..group_named(name)
    }
}

/// Creates a group in `tenant` as its admin (user 1).
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

/// Creates groups with these names (private, master user 1) in tenant 1.
async fn create_named(srv: &TestServer, names: &[&str]) {
    for name in names {
        create(srv, 1, group_named(name), &[1], &[]).await;
    }
}

fn display_names(groups: &[pb::Group]) -> Vec<String> {
    groups.iter().map(|g| g.display_name.clone()).collect()
}

/// Every page of ListGroups, checking that no group comes twice.
async fn list_all(
    client: &mut Groups,
    parent: &str,
    filter: &str,
    page_size: i32,
) -> Result<Vec<pb::Group>, Status> {
    let mut out: Vec<pb::Group> = Vec::new();
    let mut token = String::new();
    for _ in 0..1_000 {
        let page = client
            .list_groups(pb::ListGroupsRequest {
                parent: parent.into(),
                page_size,
                page_token: token,
                filter: filter.into(),
            })
            .await?
            .into_inner();
        for g in page.groups {
            assert!(
                out.iter().all(|o| o.name != g.name),
                "{} listed twice",
                g.display_name
            );
            out.push(g);
        }
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        token = page.next_page_token;
    }
    panic!("ListGroups never ended");
}

/// Every page of SearchGroups, in order, checking that no group comes twice.
async fn search_all(
    client: &mut Groups,
    parent: &str,
    query: &str,
    page_size: i32,
) -> Result<Vec<String>, Status> {
    let mut out: Vec<String> = Vec::new();
    let mut token = String::new();
    for _ in 0..1_000 {
        let page = client
            .search_groups(pb::SearchGroupsRequest {
                parent: parent.into(),
                query: query.into(),
                page_size,
                page_token: token,
            })
            .await?
            .into_inner();
        if page_size > 0 {
            assert!(page.groups.len() <= page_size as usize);
        }
        for g in page.groups {
            assert!(
                !out.contains(&g.display_name),
                "{} came twice",
                g.display_name
            );
            out.push(g.display_name);
        }
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        token = page.next_page_token;
    }
    panic!("SearchGroups never ended");
}

async fn complete(
    client: &mut Groups,
    parent: &str,
    prefix: &str,
    limit: i32,
) -> Result<Vec<String>, Status> {
    client
        .autocomplete_groups(pb::AutocompleteGroupsRequest {
            parent: parent.into(),
            prefix: prefix.into(),
            limit,
        })
        .await
        .map(|r| display_names(&r.into_inner().groups))
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

// ---- R07: who sees what ----

/// Tenant 1: admin 1, users 2-8, team 10 = {5}. Groups (all names start with "P"):
/// Public Plaza (public, master 2); Private Direct (master 2, member 3); Private Team
/// (master 2, team 10); Private Inner (master 6); Private Outer (master 2, group Inner);
/// Private Nobody (master 2, described "quarterly numbers").
async fn visibility_fixture(srv: &TestServer) -> Vec<pb::Group> {
    srv.company(1, 8).await;
    srv.company(2, 2).await;
    srv.team(1, 10, &[5]).await;
    let plaza = create(srv, 1, public("Public Plaza"), &[2], &[]).await;
    let direct = create(
        srv,
        1,
        group_named("Private Direct"),
        &[2],
        &[user_member(3)],
    )
    .await;
    let team = create(
        srv,
        1,
        group_named("Private Team"),
        &[2],
        &[team_member(10)],
    )
    .await;
    let inner = create(srv, 1, group_named("Private Inner"), &[6], &[]).await;
    let outer = create(
        srv,
        1,
        group_named("Private Outer"),
        &[2],
        &[group_ref(&inner.name)],
    )
    .await;
    let nobody = create(
        srv,
        1,
        pb::Group {
            description: "Quarterly numbers".into(),
            ..group_named("Private Nobody")
        },
        &[2],
        &[],
    )
    .await;
    // A group of tenant 2 that nobody of tenant 1 may see.
    create(srv, 2, public("Public Tenant Two"), &[2], &[]).await;
    vec![plaza, direct, team, inner, outer, nobody]
}

/// Checks ListGroups, SearchGroups, AutocompleteGroups and GetGroup for one viewer.
async fn assert_sees(all: &[pb::Group], mut client: Groups, who: &str, expected: &[&str]) {
    let expected: BTreeSet<String> = expected.iter().map(|n| (*n).to_owned()).collect();
    let listed: BTreeSet<String> = display_names(
        &list_all(&mut client, "tenants/1", "", 2)
            .await
            .unwrap_or_else(|e| panic!("{who}: list: {e:?}")),
    )
    .into_iter()
    .collect();
    assert_eq!(listed, expected, "{who}: ListGroups");
    let searched = search_all(&mut client, "tenants/1", "p", 2)
        .await
        .unwrap_or_else(|e| panic!("{who}: search: {e:?}"));
    // Every name starts with "p": one rank, in name order.
    let in_order: Vec<String> = expected.iter().cloned().collect();
    assert_eq!(searched, in_order, "{who}: SearchGroups");
    let completed = complete(&mut client, "tenants/1", "P", 20)
        .await
        .unwrap_or_else(|e| panic!("{who}: autocomplete: {e:?}"));
    assert_eq!(completed, in_order, "{who}: AutocompleteGroups");
    let described = search_all(&mut client, "tenants/1", "QUARTERLY", 0)
        .await
        .unwrap();
    let nobody_visible = expected.contains("Private Nobody");
    assert_eq!(
        described,
        if nobody_visible {
            strings(&["Private Nobody"])
        } else {
            Vec::new()
        },
        "{who}: search over descriptions"
    );
    let missing = format!("tenants/1/groups/{}", i64::MAX - 1);
    let absent = client.get_group(get_req(&missing)).await.unwrap_err();
    for g in all {
        match client.get_group(get_req(&g.name)).await {
            Ok(got) => assert!(
                expected.contains(&got.get_ref().display_name),
                "{who}: GetGroup shows {}",
                g.display_name
            ),
            Err(err) => {
                assert!(
                    !expected.contains(&g.display_name),
                    "{who}: GetGroup hides {}: {err:?}",
                    g.display_name
                );
                assert_eq!(fingerprint(&err), fingerprint(&absent), "{who}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_each_viewer_lists_searches_and_autocompletes_what_it_may_read() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
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
    assert_sees(
        &all,
        srv.groups(1, 2, false),
        "master 2",
        &[
            "Public Plaza",
            "Private Direct",
            "Private Team",
            "Private Outer",
            "Private Nobody",
        ],
    )
    .await;
    assert_sees(
        &all,
        srv.groups(1, 3, false),
        "direct member 3",
        &["Public Plaza", "Private Direct"],
    )
    .await;
    assert_sees(
        &all,
        srv.groups(1, 5, false),
        "team member 5",
        &["Public Plaza", "Private Team"],
    )
    .await;
    assert_sees(
        &all,
        srv.groups(1, 6, false),
        "nested member 6",
        &["Public Plaza", "Private Inner", "Private Outer"],
    )
    .await;
    assert_sees(&all, srv.groups(1, 7, false), "user 7", &["Public Plaza"]).await;
    // A user claiming admin whom the directory does not make one sees as a user.
    assert_sees(
        &all,
        srv.groups(1, 7, true),
        "pretender 7",
        &["Public Plaza"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_other_tenants_see_nothing_of_the_tenant() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
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
    let Some(srv) = TestServer::start().await else {
        return;
    };
    visibility_fixture(&srv).await;
    let mut user5 = srv.groups(1, 5, false);
    assert_eq!(
        complete(&mut user5, "tenants/1", "private", 20)
            .await
            .unwrap(),
        ["Private Team"]
    );
    srv.team(1, 10, &[4]).await;
    assert!(
        complete(&mut user5, "tenants/1", "private", 20)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        search_all(&mut user5, "tenants/1", "team", 0)
            .await
            .unwrap()
            .is_empty()
    );
    let mut user4 = srv.groups(1, 4, false);
    assert_eq!(
        search_all(&mut user4, "tenants/1", "team", 0)
            .await
            .unwrap(),
        ["Private Team"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_updates_show_in_discovery_at_once() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 3).await;
    let g = create(&srv, 1, group_named("Hidden gem"), &[2], &[]).await;
    let mut admin = srv.groups(1, 1, true);
    let mut outsider = srv.groups(1, 3, false);
    assert!(
        complete(&mut outsider, "tenants/1", "hidden", 10)
            .await
            .unwrap()
            .is_empty()
    );
    let change = |body: pb::Group, path: &str| pb::UpdateGroupRequest {
        group: Some(pb::Group {
            name: g.name.clone(),
            ..body
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec![path.to_owned()],
        }),
    };
    // Made public: every user of the tenant finds it.
    admin
        .update_group(change(public(""), "visibility"))
        .await
        .unwrap();
    assert_eq!(
        complete(&mut outsider, "tenants/1", "hidden", 10)
            .await
            .unwrap(),
        ["Hidden gem"]
    );
    assert_eq!(
        search_all(&mut outsider, "tenants/1", "GEM", 0)
            .await
            .unwrap(),
        ["Hidden gem"]
    );
    // Renamed and described: found by the new name and description, not the old name.
    admin
        .update_group(change(group_named("Open Book"), "display_name"))
        .await
        .unwrap();
    admin
        .update_group(change(
            pb::Group {
                description: "Weekly READING circle".into(),
                ..Default::default()
            },
            "description",
        ))
        .await
        .unwrap();
    assert!(
        complete(&mut outsider, "tenants/1", "hidden", 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        search_all(&mut outsider, "tenants/1", "gem", 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        complete(&mut outsider, "tenants/1", "open b", 10)
            .await
            .unwrap(),
        ["Open Book"]
    );
    assert_eq!(
        search_all(&mut outsider, "tenants/1", "reading", 0)
            .await
            .unwrap(),
        ["Open Book"]
    );
    // Private again: gone for the outsider, still there for the master.
    admin
        .update_group(change(group_named(""), "visibility"))
        .await
        .unwrap();
    assert!(
        search_all(&mut outsider, "tenants/1", "book", 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        list_all(&mut outsider, "tenants/1", "", 0)
            .await
            .unwrap()
            .is_empty()
    );
    let mut master = srv.groups(1, 2, false);
    assert_eq!(
        search_all(&mut master, "tenants/1", "book", 0)
            .await
            .unwrap(),
        ["Open Book"]
    );
}

// ---- ListGroups: filters and pages ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_list_filters_by_kind_and_visibility() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
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
    let names = |groups: Vec<pb::Group>| -> BTreeSet<String> {
        groups.into_iter().map(|g| g.display_name).collect()
    };
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
        let got = names(list_all(&mut admin, "tenants/1", filter, 0).await.unwrap());
        let expected: BTreeSet<String> = expected.into_iter().collect();
        assert_eq!(got, expected, "{filter}");
    }
    for filter in [
        "visibility = PRIVATE",
        "kind = INTERNAL AND visibility = PRIVATE",
    ] {
        let got = names(list_all(&mut admin, "tenants/1", filter, 2).await.unwrap());
        assert_eq!(got, privates, "{filter}");
    }
    let all = names(
        list_all(&mut admin, "tenants/1", "kind = INTERNAL", 0)
            .await
            .unwrap(),
    );
    assert_eq!(all.len(), 6);
    // Filters narrow what a viewer may see; they never widen it.
    let mut member = srv.groups(1, 3, false);
    let got = names(
        list_all(&mut member, "tenants/1", "visibility = PRIVATE", 0)
            .await
            .unwrap(),
    );
    assert_eq!(got, BTreeSet::from(["Private Direct".to_owned()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_bad_list_filter_is_invalid() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    create(&srv, 1, public("Anything"), &[2], &[]).await;
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
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let names: Vec<String> = (0..23).map(|i| format!("Paged {i:02}")).collect();
    for name in &names {
        create(&srv, 1, public(name), &[1], &[]).await;
    }
    let expected: BTreeSet<String> = names.iter().cloned().collect();
    for (user, admin) in [(1, true), (2, false)] {
        let mut client = srv.groups(1, user, admin);
        for page_size in [1, 2, 5, 7, 22, 23, 24, 100, 1_000] {
            let got: BTreeSet<String> = display_names(
                &list_all(&mut client, "tenants/1", "", page_size)
                    .await
                    .unwrap(),
            )
            .into_iter()
            .collect();
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

// ---- SearchGroups ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_search_is_case_insensitive_over_name_and_description_and_ranked() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    create_named(
        &srv,
        &["Web design team", "Designers", "UX Design", "Sales"],
    )
    .await;
    create(
        &srv,
        1,
        pb::Group {
            description: "Works closely with DESIGN".into(),
            ..group_named("Marketing")
        },
        &[1],
        &[],
    )
    .await;
    create_named(&srv, &["design ops", "Design"]).await;
    let mut admin = srv.groups(1, 1, true);
    // Exact name, then name prefix, then substring (name or description); by name within.
    let ranked = strings(&[
        "Design",
        "design ops",
        "Designers",
        "Marketing",
        "UX Design",
        "Web design team",
    ]);
    for query in ["design", "DESIGN", "DeSiGn"] {
        for page_size in [0, 1, 2, 4, 5, 6, 100] {
            let got = search_all(&mut admin, "tenants/1", query, page_size)
                .await
                .unwrap();
            assert_eq!(got, ranked, "{query:?} in pages of {page_size}");
        }
    }
    assert_eq!(
        search_all(&mut admin, "tenants/1", "SIGNERS", 0)
            .await
            .unwrap(),
        ["Designers"]
    );
    assert_eq!(
        search_all(&mut admin, "tenants/1", "closely", 0)
            .await
            .unwrap(),
        ["Marketing"]
    );
    assert!(
        search_all(&mut admin, "tenants/1", "engineering", 0)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_search_pages_cross_ranks_without_duplicates_or_gaps() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let mut expected = vec!["Ops".to_owned()];
    let mut prefixed: Vec<String> = (0..12).map(|i| format!("Ops team {i:02}")).collect();
    let mut inside: Vec<String> = (0..12).map(|i| format!("Dev ops {i:02}")).collect();
    for name in prefixed.iter().chain(inside.iter()).rev() {
        create(&srv, 1, public(name), &[1], &[]).await;
    }
    create_named(&srv, &["Ops", "Unrelated"]).await;
    prefixed.sort_by_key(|n| n.to_lowercase());
    inside.sort_by_key(|n| n.to_lowercase());
    expected.extend(prefixed);
    expected.extend(inside);
    let mut user = srv.groups(1, 2, false);
    let mut admin = srv.groups(1, 1, true);
    for page_size in [1, 3, 4, 7, 12, 13, 25, 26, 100] {
        let got = search_all(&mut admin, "tenants/1", "OPS", page_size)
            .await
            .unwrap();
        assert_eq!(got, expected, "admin, pages of {page_size}");
        // User 2 is no member of the private "Ops".
        let got = search_all(&mut user, "tenants/1", "ops", page_size)
            .await
            .unwrap();
        assert_eq!(got, expected[1..], "user, pages of {page_size}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_search_pages_have_no_duplicates_when_groups_change_between_pages() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    create_named(
        &srv,
        &["Alpha news", "Bravo news", "Charlie news", "Delta news"],
    )
    .await;
    let mut admin = srv.groups(1, 1, true);
    let first = admin
        .search_groups(pb::SearchGroupsRequest {
            parent: "tenants/1".into(),
            query: "news".into(),
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(display_names(&first.groups), ["Alpha news", "Bravo news"]);
    // A group that sorts before the cursor appears after the first page was read.
    create_named(&srv, &["Aardvark news"]).await;
    let mut seen = display_names(&first.groups);
    let mut token = first.next_page_token;
    while !token.is_empty() {
        let page = admin
            .search_groups(pb::SearchGroupsRequest {
                parent: "tenants/1".into(),
                query: "news".into(),
                page_size: 2,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        for name in display_names(&page.groups) {
            assert!(!seen.contains(&name), "{name} came twice");
            seen.push(name);
        }
        token = page.next_page_token;
    }
    assert_eq!(
        seen,
        ["Alpha news", "Bravo news", "Charlie news", "Delta news"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_search_and_autocomplete_match_like_wildcards_literally() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    create_named(
        &srv,
        &[
            "100% done",
            "100 percent",
            "snake_case",
            "snakeXcase",
            "back\\slash",
            "backslash",
            "[brackets]",
        ],
    )
    .await;
    create(
        &srv,
        1,
        pb::Group {
            description: "50% off_season".into(),
            ..group_named("Discounts")
        },
        &[1],
        &[],
    )
    .await;
    let mut admin = srv.groups(1, 1, true);
    for (query, expected) in [
        ("%", &["100% done", "Discounts"][..]),
        ("100%", &["100% done"]),
        ("0% ", &["100% done", "Discounts"]),
        ("_", &["snake_case", "Discounts"]),
        ("e_c", &["snake_case"]),
        ("f_s", &["Discounts"]),
        ("\\", &["back\\slash"]),
        ("k\\s", &["back\\slash"]),
        ("[b", &["[brackets]"]),
        ("%%", &[]),
        ("__", &[]),
    ] {
        let mut got = search_all(&mut admin, "tenants/1", query, 0).await.unwrap();
        got.sort();
        let mut expected = strings(expected);
        expected.sort();
        assert_eq!(got, expected, "search {query:?}");
    }
    for (prefix, expected) in [
        ("100%", &["100% done"][..]),
        ("100", &["100 percent", "100% done"]),
        ("snake_", &["snake_case"]),
        ("back\\", &["back\\slash"]),
        ("%", &[]),
        ("_", &[]),
        ("[", &["[brackets]"]),
    ] {
        let got = complete(&mut admin, "tenants/1", prefix, 20).await.unwrap();
        assert_eq!(got, strings(expected), "autocomplete {prefix:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r25_search_query_must_be_1_to_100_characters_and_tokens_fit_their_query() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    create_named(&srv, &["Query one", "Query two", "Query three"]).await;
    let mut admin = srv.groups(1, 1, true);
    for query in [String::new(), "q".repeat(101), "가".repeat(101)] {
        let err = search_all(&mut admin, "tenants/1", &query, 0)
            .await
            .unwrap_err();
        assert_bad_field(&err, "query");
    }
    assert!(
        search_all(&mut admin, "tenants/1", &"가".repeat(100), 0)
            .await
            .unwrap()
            .is_empty()
    );
    let first = admin
        .search_groups(pb::SearchGroupsRequest {
            parent: "tenants/1".into(),
            query: "query".into(),
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!first.next_page_token.is_empty());
    for (query, token) in [
        ("other", first.next_page_token.clone()),
        ("query", format!("{}x", first.next_page_token)),
        ("query", "garbage".into()),
    ] {
        let err = admin
            .search_groups(pb::SearchGroupsRequest {
                parent: "tenants/1".into(),
                query: query.into(),
                page_size: 1,
                page_token: token,
            })
            .await
            .unwrap_err();
        assert_reason(&err, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
        assert_bad_field(&err, "page_token");
    }
    // Another caller cannot continue this caller's search.
    let err = srv
        .groups(1, 2, false)
        .search_groups(pb::SearchGroupsRequest {
            parent: "tenants/1".into(),
            query: "query".into(),
            page_size: 1,
            page_token: first.next_page_token,
        })
        .await
        .unwrap_err();
    assert_reason(&err, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
}

// ---- AutocompleteGroups ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_autocomplete_limit_is_at_most_20() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    let names: Vec<String> = (0..25).map(|i| format!("Team {i:02}")).collect();
    for name in &names {
        create(&srv, 1, public(name), &[1], &[]).await;
    }
    let mut user = srv.groups(1, 2, false);
    for limit in [21, 100, -1, i32::MIN] {
        let err = complete(&mut user, "tenants/1", "team", limit)
            .await
            .unwrap_err();
        assert_bad_field(&err, "limit");
    }
    for (limit, n) in [(20, 20), (1, 1), (7, 7), (0, 10)] {
        let got = complete(&mut user, "tenants/1", "team", limit)
            .await
            .unwrap();
        assert_eq!(got, names[..n], "limit {limit}");
    }
    for prefix in [String::new(), "t".repeat(101)] {
        let err = complete(&mut user, "tenants/1", &prefix, 5)
            .await
            .unwrap_err();
        assert_bad_field(&err, "prefix");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_autocomplete_is_case_insensitive_and_in_name_order() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    create_named(
        &srv,
        &[
            "team b",
            "TEAM A",
            "Team c",
            "Teams",
            "Équipe Paris",
            "équipe Lyon",
            "Éclair",
            "Equipe Nord",
            "Über uns",
            "마케팅",
            "마법사",
            "A team",
        ],
    )
    .await;
    let mut admin = srv.groups(1, 1, true);
    for (prefix, expected) in [
        ("team", &["TEAM A", "team b", "Team c", "Teams"][..]),
        ("TEAM ", &["TEAM A", "team b", "Team c"]),
        ("tEaM c", &["Team c"]),
        ("É", &["Éclair", "équipe Lyon", "Équipe Paris"]),
        ("é", &["Éclair", "équipe Lyon", "Équipe Paris"]),
        ("ÉQUIPE", &["équipe Lyon", "Équipe Paris"]),
        ("équipe p", &["Équipe Paris"]),
        ("E", &["Equipe Nord"]),
        ("über", &["Über uns"]),
        ("ÜBER", &["Über uns"]),
        ("마", &["마법사", "마케팅"]),
        ("a", &["A team"]),
        ("teams!", &[]),
    ] {
        let got = complete(&mut admin, "tenants/1", prefix, 20).await.unwrap();
        assert_eq!(got, strings(expected), "prefix {prefix:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_search_and_autocomplete_fold_greek_final_sigma() {
    let Some(srv) = TestServer::start().await else {
        return;
    };
    srv.company(1, 2).await;
    // "ΣΑΣΑ" lower-cases to "σασα"; the typed prefix "ΣΑΣ" lower-cases on its own to "σας"
    // (final sigma). Case-insensitive matching must still find the group.
    create_named(&srv, &["ΣΑΣΑ", "ΟΔΟΣ ΠΑΤΗΣΙΩΝ"]).await;
    let mut admin = srv.groups(1, 1, true);
    assert_eq!(
        complete(&mut admin, "tenants/1", "ΣΑΣ", 20).await.unwrap(),
        ["ΣΑΣΑ"]
    );
    assert_eq!(
        complete(&mut admin, "tenants/1", "σασ", 20).await.unwrap(),
        ["ΣΑΣΑ"]
    );
    assert_eq!(
        search_all(&mut admin, "tenants/1", "ΑΣ", 0).await.unwrap(),
        ["ΣΑΣΑ"]
    );
}
