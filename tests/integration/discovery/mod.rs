//! Discovery (R07): ListGroups with filters, SearchGroups with ranking and pages,
//! AutocompleteGroups; each shows a viewer exactly the groups GetGroup lets it read.

mod autocomplete;
mod crosscheck;
mod listing;
mod search;
mod viewers;

use std::collections::BTreeSet;

use group_service::grpc::pb;

use crate::fixtures::*;
use crate::harness::*;

/// Creates groups with these names (private, master user 1) in tenant 1.
async fn create_named(srv: &TestServer, names: &[&str]) {
    for name in names {
        group(1, name).master(1).create(srv).await;
    }
}

/// Tenant 1: admin 1, users 2-8, team 10 = {5}. Groups (all names start with "P"):
/// Public Plaza (public, master 2); Private Direct (master 2, member 3); Private Team
/// (master 2, team 10); Private Inner (master 6); Private Outer (master 2, group Inner);
/// Private Nobody (master 2, described "quarterly numbers").
async fn visibility_fixture(srv: &TestServer) -> Vec<pb::Group> {
    srv.company(1, 8).await;
    srv.company(2, 2).await;
    srv.team(1, 10, &[5]).await;
    let plaza = group(1, "Public Plaza")
        .master(2)
        .public()
        .create(srv)
        .await;
    let direct = group(1, "Private Direct")
        .master(2)
        .member(user_member(3))
        .create(srv)
        .await;
    let team = group(1, "Private Team")
        .master(2)
        .member(team_member(10))
        .create(srv)
        .await;
    let inner = group(1, "Private Inner").master(6).create(srv).await;
    let outer = group(1, "Private Outer")
        .master(2)
        .member(group_member(&inner.name))
        .create(srv)
        .await;
    let nobody = group(1, "Private Nobody")
        .master(2)
        .with(|g| g.description = "Quarterly numbers".into())
        .create(srv)
        .await;
    // A group of tenant 2 that nobody of tenant 1 may see.
    group(2, "Public Tenant Two")
        .master(2)
        .public()
        .create(srv)
        .await;
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
    let absent = client
        .get_group(get_req(&missing_group(1)))
        .await
        .unwrap_err();
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
