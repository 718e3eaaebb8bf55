//! AutocompleteGroups (R07): at most 20, case-insensitive, in name order.

use super::create_named;
use crate::fixtures::*;
use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_autocomplete_limit_is_at_most_20() {
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    let names: Vec<String> = (0..25).map(|i| format!("Team {i:02}")).collect();
    for name in &names {
        group(1, name).master(1).public().create(&srv).await;
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
    let Some(srv) = server().await else { return };
    srv.company(1, 2).await;
    create_named(&srv, &["team b", "TEAM A", "Team c", "Teams"]).await;
    create_named(
        &srv,
        &["Équipe Paris", "équipe Lyon", "Éclair", "Equipe Nord"],
    )
    .await;
    create_named(&srv, &["Über uns", "마케팅", "마법사", "A team"]).await;
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
    let Some(srv) = server().await else { return };
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
