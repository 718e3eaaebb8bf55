//! SearchGroups (R07, R25): case-insensitive over names and descriptions, ranked, in pages
//! without duplicates or gaps, with LIKE wildcards taken literally.

use group_service::grpc::pb;
use tonic::Code;

use super::create_named;
use crate::fixtures::*;
use crate::harness::*;

/// A SearchGroups request of tenant 1, one page of `page_size`.
fn search_req(query: &str, page_size: i32, page_token: String) -> pb::SearchGroupsRequest {
    pb::SearchGroupsRequest {
        parent: "tenants/1".into(),
        query: query.into(),
        page_size,
        page_token,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_search_is_case_insensitive_over_name_and_description_and_ranked() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    create_named(
        &srv,
        &["Web design team", "Designers", "UX Design", "Sales"],
    )
    .await;
    group(1, "Marketing")
        .master(1)
        .with(|g| g.description = "Works closely with DESIGN".into())
        .create(&srv)
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
    let signers = search_all(&mut admin, "tenants/1", "SIGNERS", 0).await;
    assert_eq!(signers.unwrap(), ["Designers"]);
    let closely = search_all(&mut admin, "tenants/1", "closely", 0).await;
    assert_eq!(closely.unwrap(), ["Marketing"]);
    let engineering = search_all(&mut admin, "tenants/1", "engineering", 0).await;
    assert!(engineering.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_search_pages_cross_ranks_without_duplicates_or_gaps() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let mut expected = vec!["Ops".to_owned()];
    let mut prefixed: Vec<String> = (0..12).map(|i| format!("Ops team {i:02}")).collect();
    let mut inside: Vec<String> = (0..12).map(|i| format!("Dev ops {i:02}")).collect();
    for name in prefixed.iter().chain(inside.iter()).rev() {
        group(1, name).master(1).public().create(&srv).await;
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
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    create_named(
        &srv,
        &["Alpha news", "Bravo news", "Charlie news", "Delta news"],
    )
    .await;
    let mut admin = srv.groups(1, 1, true);
    let first = admin
        .search_groups(search_req("news", 2, String::new()))
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
            .search_groups(search_req("news", 2, token))
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
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    create_named(&srv, &["100% done", "100 percent", "snake_case"]).await;
    create_named(
        &srv,
        &["snakeXcase", "back\\slash", "backslash", "[brackets]"],
    )
    .await;
    group(1, "Discounts")
        .master(1)
        .with(|g| g.description = "50% off_season".into())
        .create(&srv)
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
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    create_named(&srv, &["Query one", "Query two", "Query three"]).await;
    let mut admin = srv.groups(1, 1, true);
    for query in [String::new(), "q".repeat(101), "가".repeat(101)] {
        let err = search_all(&mut admin, "tenants/1", &query, 0)
            .await
            .unwrap_err();
        assert_bad_field(&err, "query");
    }
    let longest = search_all(&mut admin, "tenants/1", &"가".repeat(100), 0).await;
    assert!(longest.unwrap().is_empty());
    let first = admin
        .search_groups(search_req("query", 1, String::new()))
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
            .search_groups(search_req(query, 1, token))
            .await
            .unwrap_err();
        assert_reason(&err, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
        assert_bad_field(&err, "page_token");
    }
    // Another caller cannot continue this caller's search.
    let err = srv
        .groups(1, 2, false)
        .search_groups(search_req("query", 1, first.next_page_token))
        .await
        .unwrap_err();
    assert_reason(&err, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
}
