//! External groups across companies (R12-R20, R24): creation rules, contacts, leaving, room
//! conversion, revocation of the external permission, cross-tenant access, deletion and
//! storage. Tenants A, B and C are three companies; A owns the groups unless a test says
//! otherwise. User ids repeat across tenants on purpose (user 2 of A is not user 2 of B).

mod access;
mod contacts;
mod conversion;
mod creation;
mod matrix;
mod revocation;
mod storage;
mod tenant_deletion;

use std::collections::BTreeSet;

use group_service::grpc::pb;

use crate::fixtures::*;
use crate::harness::*;

const A: i64 = 1;
const B: i64 = 2;
const C: i64 = 3;

/// Three companies: A (admin 1, users 2-6), B (admin 1, users 2-6), C (admin 1, users 2-4);
/// every user may message other companies.
async fn three_companies(srv: &TestServer) {
    srv.company(A, 6).await;
    srv.company(B, 6).await;
    srv.company(C, 4).await;
}

/// (user, reason) of the excluded members of a create or conversion answer.
fn excluded(g: &pb::Group) -> BTreeSet<(Key, String)> {
    g.excluded_members
        .iter()
        .map(|e| {
            let u = e.user.expect("excluded user");
            ((u.tenant_id, u.user_id), e.reason.clone())
        })
        .collect()
}

/// An external group of A named `name` (master A2, initial members `initial` of A) to which
/// A2 has added `partners`, users of other tenants put in A2's contacts first.
async fn shared_group(srv: &TestServer, name: &str, initial: &[i64], partners: &[Key]) -> String {
    for partner in partners {
        add_contact(srv, (A, 2), *partner).await;
    }
    let g = group(A, name)
        .master(2)
        .members(initial.iter().map(|u| user_of(A, *u)))
        .external()
        .create(srv)
        .await
        .name;
    if !partners.is_empty() {
        let members = partners.iter().map(|(t, u)| user_of(*t, *u)).collect();
        add_as(srv, (A, 2), &g, members)
            .await
            .expect("add partners");
    }
    g
}
