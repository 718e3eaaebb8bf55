//! R07 exists twice: `access::can_see` decides GetGroup for one group, and the store's SQL
//! decides ListGroups, SearchGroups and AutocompleteGroups for a page (each statement its own
//! way). On generated tenants (public and private, internal and external groups; user, team
//! and nested-group members) every viewer must list, search and autocomplete exactly the
//! groups it can get.

use std::collections::BTreeSet;

use group_service::grpc::pb;
use tonic::Code;

use crate::fixtures::*;
use crate::harness::*;

/// A small deterministic generator: the same seed makes the same tenant.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }

    fn one_in(&mut self, n: u64) -> bool {
        self.next(n) == 0
    }
}

/// Groups of tenant 1 made from `seed`; users 1..=8 (1 is the admin), teams 1 = {2, 3} and
/// 2 = {4}.
async fn generate(srv: &TestServer, seed: u64) -> Vec<String> {
    let mut rng = Lcg(seed);
    let mut names: Vec<String> = Vec::new();
    let mut internal: Vec<String> = Vec::new();
    for i in 0..14 {
        let master = 2 + rng.next(7) as i64;
        let mut b = group(1, &format!("Gen {seed}-{i}")).master(master);
        let external = rng.one_in(5);
        if external {
            b = b.external();
        } else if rng.one_in(2) {
            b = b.public();
        }
        for u in 2..=8 {
            if u != master && rng.one_in(4) {
                b = b.member(user_of(1, u));
            }
        }
        if !external {
            if rng.one_in(4) {
                b = b.member(member_of(2, 1, 1 + rng.next(2) as i64));
            }
            // Nest an earlier internal group now and then (external groups join nothing).
            if !internal.is_empty() && rng.one_in(3) {
                let child = &internal[rng.next(internal.len() as u64) as usize];
                b = b.member(group_member(child));
            }
        }
        let created = b.create(srv).await.name;
        if !external {
            internal.push(created.clone());
        }
        names.push(created);
    }
    names
}

async fn listed(srv: &TestServer, viewer: i64, admin: bool) -> BTreeSet<String> {
    let mut c = srv.groups(1, viewer, admin);
    let groups = list_all(&mut c, "tenants/1", "", 7).await.expect("list");
    groups.into_iter().map(|g| g.name).collect()
}

/// What the viewer finds by searching a word of every generated name, and by autocompleting
/// each seed's prefix (14 names each, under the limit of 20).
async fn found(srv: &TestServer, viewer: i64, admin: bool) -> [BTreeSet<String>; 2] {
    let mut c = srv.groups(1, viewer, admin);
    let searched = search_groups(&mut c, "tenants/1", "gen", 9)
        .await
        .expect("search");
    let mut completed = BTreeSet::new();
    for seed in SEEDS {
        let prefix = format!("gen {seed}-");
        let page = autocomplete(&mut c, "tenants/1", &prefix, 20)
            .await
            .expect("autocomplete");
        completed.extend(page.into_iter().map(|g| g.name));
    }
    [searched.into_iter().map(|g| g.name).collect(), completed]
}

const SEEDS: [u64; 3] = [7, 11, 23];

async fn gettable(srv: &TestServer, viewer: i64, admin: bool, all: &[String]) -> BTreeSet<String> {
    let mut c = srv.groups(1, viewer, admin);
    let mut out = BTreeSet::new();
    for name in all {
        let req = pb::GetGroupRequest { name: name.clone() };
        match c.get_group(req).await {
            Ok(_) => {
                out.insert(name.clone());
            }
            Err(e) => assert_eq!(e.code(), Code::NotFound, "{name}: {e:?}"),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r07_listing_search_autocomplete_and_get_agree_for_every_viewer_of_generated_tenants() {
    let Some(srv) = server().await else { return };
    srv.tenant(1, pb::Plan::Paid, pb::GroupCreation::AllMembers)
        .await;
    for u in 1..=8 {
        srv.user(1, u, u == 1).await;
    }
    srv.team(1, 1, &[2, 3]).await;
    srv.team(1, 2, &[4]).await;
    let mut all = Vec::new();
    for seed in SEEDS {
        all.extend(generate(&srv, seed).await);
    }
    // Viewers: the admin, the admin's token without the claim, a user with a claim the
    // directory does not back, and every plain user.
    let mut viewers = vec![(1, true), (1, false), (2, true)];
    viewers.extend((2..=8).map(|u| (u, false)));
    let mut private_seen = 0;
    for (viewer, admin) in viewers {
        let by_list = listed(&srv, viewer, admin).await;
        let by_get = gettable(&srv, viewer, admin, &all).await;
        assert_eq!(by_list, by_get, "viewer {viewer} (admin claim {admin})");
        let [by_search, by_autocomplete] = found(&srv, viewer, admin).await;
        assert_eq!(by_search, by_get, "search, viewer {viewer} (admin {admin})");
        assert_eq!(by_autocomplete, by_get, "autocomplete, viewer {viewer}");
        private_seen += by_get.len();
    }
    assert!(
        private_seen > 0,
        "the generated tenant shows nothing to anyone"
    );
}
